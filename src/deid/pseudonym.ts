// Keyed pseudonyms (HMAC-SHA256 with the configured secret). Pure: the pairs made are returned to
// the caller, which persists them (dicomweb/ + store/); nothing here does I/O.
import { createHmac } from 'node:crypto';

export type PseudonymKind = 'uid' | 'patientId' | 'patientName' | 'accessionNumber' | 'otherPatientId' | 'value';

/** One pseudonym made in a session, for the caller to persist. `value` = a `hash` override. */
export interface PseudonymPair {
  readonly kind: PseudonymKind;
  readonly pseudonym: string;
  readonly original: string;
}

/** PS3.5 6.2: LO (PatientID, OtherPatientIDs) holds 64 characters, SH (AccessionNumber) 16. */
const CODE_LENGTH = { patientId: 16, patientName: 12, accessionNumber: 16, otherPatientId: 16 } as const;
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'; // RFC 4648: upper-case ASCII, valid in CS/SH/LO/PN

function base32(bytes: Uint8Array, length: number): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < length) {
      out += BASE32[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
    if (out.length >= length) break;
  }
  return out;
}

/**
 * PS3.5 B.2: a UID derived from a UUID-sized integer under the `2.25` root. The integer is the first
 * 16 bytes of HMAC-SHA256(secret, [fresh salt] + "uid:" + original), so at most 39 digits and 44
 * characters (< 64), with no leading zero.
 */
export function keyedUid(secret: Uint8Array, original: string, salt?: Uint8Array): string {
  const digest = hmac(secret, 'uid', original, salt);
  let n = 0n;
  for (let i = 0; i < 16; i++) n = (n << 8n) | BigInt(digest[i]!);
  return `2.25.${n.toString(10)}`;
}

/** A keyed code of `length` base32 characters (A-Z, 2-7). */
export function keyedCode(secret: Uint8Array, kind: string, original: string, length: number, salt?: Uint8Array): string {
  if (length > 51) throw new RangeError('keyed code longer than the digest');
  return base32(hmac(secret, kind, original, salt), length);
}

function hmac(secret: Uint8Array, kind: string, original: string, salt: Uint8Array | undefined): Buffer {
  const mac = createHmac('sha256', secret);
  if (salt !== undefined) mac.update(`fresh:${Buffer.from(salt).toString('hex')}:`);
  mac.update(`${kind}:`);
  mac.update(original, 'utf8');
  return mac.digest();
}

/**
 * Makes and remembers the pseudonyms of one session. With a salt ("fresh per call" mode) the same
 * original maps to the same pseudonym within the session but to unrelated ones across sessions.
 */
export class Pseudonymizer {
  readonly #secret: Uint8Array;
  readonly #salt: Uint8Array | undefined;
  readonly #made = new Map<string, string>();
  readonly #pairs: PseudonymPair[] = [];

  constructor(secret: Uint8Array, salt?: Uint8Array) {
    this.#secret = secret;
    this.#salt = salt;
  }

  get fresh(): boolean {
    return this.#salt !== undefined;
  }

  uid(original: string): string {
    return this.#remember('uid', original, () => keyedUid(this.#secret, original, this.#salt));
  }

  patientId(original: string): string {
    return this.#code('patientId', original, CODE_LENGTH.patientId);
  }

  /** PN value `ANON^<code>` (family name ANON, given name the code). */
  patientName(original: string): string {
    return this.#remember('patientName', original, () =>
      `ANON^${keyedCode(this.#secret, 'patientName', original, CODE_LENGTH.patientName, this.#salt)}`);
  }

  accessionNumber(original: string): string {
    return this.#code('accessionNumber', original, CODE_LENGTH.accessionNumber);
  }

  otherPatientId(original: string): string {
    return this.#code('otherPatientId', original, CODE_LENGTH.otherPatientId);
  }

  /** A `hash` override on any other text attribute: a code of at most `maxLength` characters. */
  value(original: string, maxLength: number): string {
    return this.#code('value', original, Math.min(16, maxLength));
  }

  pairs(): readonly PseudonymPair[] {
    return [...this.#pairs];
  }

  /** How many pairs were made; with `pairsSince`, lets a caller persist new pairs without copying all. */
  get pairCount(): number {
    return this.#pairs.length;
  }

  pairsSince(index: number): readonly PseudonymPair[] {
    return this.#pairs.slice(index);
  }

  #code(kind: PseudonymKind, original: string, length: number): string {
    return this.#remember(kind, original, () => keyedCode(this.#secret, kind, original, length, this.#salt));
  }

  #remember(kind: PseudonymKind, original: string, make: () => string): string {
    const key = `${kind}\u0000${original}`;
    let pseudonym = this.#made.get(key);
    if (pseudonym === undefined) {
      pseudonym = make();
      this.#made.set(key, pseudonym);
      this.#pairs.push(Object.freeze({ kind, pseudonym, original }));
    }
    return pseudonym;
  }
}

// Keyed pseudonyms (HMAC-SHA256 with the configured secret). Pure: the pairs made are returned to
// the caller, which persists them (dicomweb/ + store/); nothing here does I/O.
import { createHmac } from 'node:crypto';
import { TAG } from '../dicom/tags.ts';

/**
 * Which attribute gets which pseudonym kind, written once (deidentify.ts applies it; dicomweb/qido.ts and
 * audit/reidentify.ts ask `IDENTITY_ATTRIBUTES` / `identityAttribute` which kinds map back). These are the
 * attributes that a viewer needs to list and link a study, so Table E.1-1's Z or D on them ("a dummy
 * value consistent with the VR", E.1-1a) is a keyed code instead of an empty value or a constant.
 *   - `codeLength`: base32 characters, within the VR (PS3.5 6.2: LO 64, SH 16, PN 64 per component group).
 *   - `mapsBack`: the store maps the pseudonym back to this attribute's own original value, one to one,
 *     so a QIDO key holding the pseudonym goes upstream as that original, and a steward may ask for it.
 *     Not PatientName: its pseudonym stands for the patient, not for one spelling of the name (see
 *     `patientNameBasis`). Not OtherPatientIDs: removed by the Basic Profile (X), pseudonymised only
 *     under an override, never queried or re-identified by the gateway.
 */
export const IDENTITY_ATTRIBUTES = Object.freeze([
  { tag: TAG.PatientID, keyword: 'PatientID', kind: 'patientId', codeLength: 16, mapsBack: true },
  { tag: TAG.PatientName, keyword: 'PatientName', kind: 'patientName', codeLength: 12, mapsBack: false },
  { tag: TAG.AccessionNumber, keyword: 'AccessionNumber', kind: 'accessionNumber', codeLength: 16, mapsBack: true },
  { tag: TAG.OtherPatientIDs, keyword: 'OtherPatientIDs', kind: 'otherPatientId', codeLength: 16, mapsBack: false },
] as const);

export type IdentityAttribute = (typeof IDENTITY_ATTRIBUTES)[number];
export type IdentityKind = IdentityAttribute['kind'];
/** `uid`: every UID (U, PS3.15 E.3.9); `value`: a `hash` override on any other attribute. */
export type PseudonymKind = 'uid' | IdentityKind | 'value';

const BY_TAG: ReadonlyMap<number, IdentityAttribute> = new Map(IDENTITY_ATTRIBUTES.map((a) => [a.tag, a]));
const BY_KIND: ReadonlyMap<string, IdentityAttribute> = new Map(IDENTITY_ATTRIBUTES.map((a) => [a.kind, a]));

/** The identity attribute a tag is, if any. */
export function identityAttribute(tag: number): IdentityAttribute | undefined {
  return BY_TAG.get(tag);
}

/** The kinds that map back (`mapsBack`), with their attributes' keywords, in table order. */
export const MAPS_BACK: readonly Extract<IdentityAttribute, { mapsBack: true }>[] = IDENTITY_ATTRIBUTES.filter(
  (a): a is Extract<IdentityAttribute, { mapsBack: true }> => a.mapsBack,
);

/**
 * The original a PatientName pseudonym is derived from: a function of the patient, not of one
 * representation's spelling of the name (QIDO, /metadata and Part 10 may spell it differently: a PACS
 * can transcode a name to another Specific Character Set and lose characters on the way).
 *   1. With the dataset's original Patient ID (top level only): `PatientID=<Patient ID>`. Every
 *      representation of that patient's datasets then shows one name pseudonym, as it shows one Patient
 *      ID pseudonym and one date offset (also keyed on the Patient ID).
 *   2. Otherwise (no or empty Patient ID; or a name inside a sequence item, which may name another
 *      person, e.g. one of a Group of Patients, and is never tied to the top-level Patient ID):
 *      `PatientName=<normalizePersonName(name)>`. The normalisation removes only differences PS3.5
 *      defines as no difference; a representation that lost or replaced characters still gives
 *      another pseudonym.
 * The prefix keeps the two cases apart (no Patient ID can collide with a name) and makes the stored
 * original say what it is: the pseudonym is keyedCode('patientName', basis), as for every other kind.
 */
export function patientNameBasis(originalPatientId: string | undefined, name: string): string {
  const id = originalPatientId?.trim() ?? '';
  return id !== '' ? `PatientID=${id}` : `PatientName=${normalizePersonName(name)}`;
}

/**
 * A PN value ("Alphabetic=Ideographic=Phonetic", each "family^given^middle^prefix^suffix") in the one
 * form that every equal value has:
 *   1. Unicode NFC: canonically equivalent sequences are the same text (decoders of ISO 2022, GB18030
 *      and UTF-8 may compose differently).
 *   2. Leading and trailing spaces of each component removed: PS3.5 6.2 (CP-726) makes them insignificant.
 *   3. Trailing empty components and trailing empty component groups removed, with their delimiters:
 *      PS3.5 6.2 says they may be omitted, so "Doe^John^^=" is "Doe^John".
 * Nothing else: case, accents, width (half- and full-width katakana) and the choice of component group
 * are significant in PS3.5, and folding them could give two people one pseudonym.
 */
export function normalizePersonName(name: string): string {
  const groups = name.normalize('NFC').split('=').map((group) => {
    const components = group.split('^').map((c) => c.replace(/^ +| +$/g, ''));
    while (components.length > 0 && components[components.length - 1] === '') components.pop();
    return components.join('^');
  });
  while (groups.length > 0 && groups[groups.length - 1] === '') groups.pop();
  return groups.join('=');
}

/** One pseudonym made in a session, for the caller to persist. `value` = a `hash` override. */
export interface PseudonymPair {
  readonly kind: PseudonymKind;
  readonly pseudonym: string;
  readonly original: string;
}

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

/**
 * The key of one pseudonym scope (a project's researcher view, the uploader): HMAC-SHA256(secret,
 * "scope:" + scope). Pseudonyms and date offsets of two scopes are then unlinkable without the secret,
 * and each scope is stable: the same secret and scope always give the same key.
 */
export function scopedSecret(secret: Uint8Array, scope: string): Uint8Array {
  return createHmac('sha256', secret).update(`scope:${scope}`, 'utf8').digest();
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

  /**
   * The keyed code of an identity attribute (IDENTITY_ATTRIBUTES). PatientName: the PN value
   * `ANON^<code>` (family name ANON, given name the code) of `original` = patientNameBasis(…).
   */
  identity(kind: IdentityKind, original: string): string {
    const { codeLength } = BY_KIND.get(kind) as IdentityAttribute;
    if (kind !== 'patientName') return this.#code(kind, original, codeLength);
    return this.#remember(kind, original, () => `ANON^${keyedCode(this.#secret, kind, original, codeLength, this.#salt)}`);
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

  /** Forgets the pairs made after the first `index`, as if they had never been made. */
  discardSince(index: number): void {
    for (const pair of this.#pairs.splice(index)) this.#made.delete(`${pair.kind}\u0000${pair.original}`);
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

// Specific Character Set (0008,0005) decoding and encoding: PS3.5 6.1 and PS3.3 C.12.1.1.2.
import { DicomUnsupportedCharsetError } from './errors.ts';
import { TAG } from './tags.ts';

/** The defined terms of (0008,0005), in order; [] means the default repertoire (ISO-IR 6). */
export type CharacterSet = readonly string[];

const DEFAULT_CHARACTER_SET: CharacterSet = [];
export const UTF8_CHARACTER_SET: CharacterSet = ['ISO_IR 192'];

/** Single-code-extension-free terms and the WHATWG label that decodes them. */
const SINGLE: Readonly<Record<string, string>> = {
  '': 'latin1',
  'ISO_IR 6': 'latin1',
  'ISO_IR 100': 'latin1',
  'ISO_IR 101': 'iso-8859-2',
  'ISO_IR 109': 'iso-8859-3',
  'ISO_IR 110': 'iso-8859-4',
  'ISO_IR 144': 'iso-8859-5',
  'ISO_IR 127': 'iso-8859-6',
  'ISO_IR 126': 'iso-8859-7',
  'ISO_IR 138': 'iso-8859-8',
  'ISO_IR 148': 'iso-8859-9',
  'ISO_IR 203': 'iso-8859-15',
  'ISO_IR 13': 'shift_jis',
  'ISO_IR 166': 'windows-874',
  'ISO_IR 192': 'utf-8',
  GB18030: 'gb18030',
  GBK: 'gbk',
};

/** G1 single-byte sets designated by ISO 2022 terms (PS3.3 Table C.12-3). */
const ISO2022_SINGLE: Readonly<Record<string, string>> = {
  'ISO 2022 IR 6': '',
  'ISO 2022 IR 100': 'latin1',
  'ISO 2022 IR 101': 'iso-8859-2',
  'ISO 2022 IR 109': 'iso-8859-3',
  'ISO 2022 IR 110': 'iso-8859-4',
  'ISO 2022 IR 144': 'iso-8859-5',
  'ISO 2022 IR 127': 'iso-8859-6',
  'ISO 2022 IR 126': 'iso-8859-7',
  'ISO 2022 IR 138': 'iso-8859-8',
  'ISO 2022 IR 148': 'iso-8859-9',
  'ISO 2022 IR 203': 'iso-8859-15',
  'ISO 2022 IR 13': 'katakana',
  'ISO 2022 IR 166': 'windows-874',
};
const ISO2022_MULTI = new Set(['ISO 2022 IR 87', 'ISO 2022 IR 159', 'ISO 2022 IR 149', 'ISO 2022 IR 58']);

/** Escape sequences (without ESC) to the G0 or G1 set they designate (PS3.3 Tables C.12-3, C.12-4). */
type G0 = 'ascii' | 'jisx0208' | 'jisx0212';
type G1 = string; // '' none, 'katakana', 'ksx1001', 'gb2312' or a WHATWG label
const ESCAPES: Readonly<Record<string, { g0?: G0; g1?: G1 }>> = {
  '(B': { g0: 'ascii' },
  '(J': { g0: 'ascii' },
  '$B': { g0: 'jisx0208' },
  '$@': { g0: 'jisx0208' },
  '$(D': { g0: 'jisx0212' },
  ')I': { g1: 'katakana' },
  '$)C': { g1: 'ksx1001' },
  '$)A': { g1: 'gb2312' },
  '-A': { g1: 'latin1' },
  '-B': { g1: 'iso-8859-2' },
  '-C': { g1: 'iso-8859-3' },
  '-D': { g1: 'iso-8859-4' },
  '-F': { g1: 'iso-8859-7' },
  '-G': { g1: 'iso-8859-6' },
  '-H': { g1: 'iso-8859-8' },
  '-L': { g1: 'iso-8859-5' },
  '-M': { g1: 'iso-8859-9' },
  '-T': { g1: 'windows-874' },
  '-b': { g1: 'iso-8859-15' },
};

const decoders = new Map<string, TextDecoder>();
function decoder(label: string): TextDecoder {
  let d = decoders.get(label);
  if (!d) {
    d = new TextDecoder(label);
    decoders.set(label, d);
  }
  return d;
}

function normalizeTerm(term: string): string {
  const t = term.trim();
  // Common non-standard spellings ("ISO-IR 100", "ISO_IR_100"), accepted as pydicom and dcmtk do.
  const m = /^ISO[-_ ]IR[-_ ]?(\d+)$/.exec(t);
  if (m) return `ISO_IR ${m[1]}`;
  const m2 = /^ISO[-_ ]2022[-_ ]IR[-_ ]?(\d+)$/.exec(t);
  if (m2) return `ISO 2022 IR ${m2[1]}`;
  return t;
}

/** Parses the value of (0008,0005); throws DicomUnsupportedCharsetError for unknown terms. */
export function parseSpecificCharacterSet(value: string | undefined): CharacterSet {
  if (value === undefined) return DEFAULT_CHARACTER_SET;
  const terms = value.split('\\').map(normalizeTerm);
  if (terms.every((t) => t === '')) return DEFAULT_CHARACTER_SET;
  for (const [i, t] of terms.entries()) {
    const known = t in SINGLE || t in ISO2022_SINGLE || ISO2022_MULTI.has(t) || (i === 0 && t === '');
    if (!known) throw new DicomUnsupportedCharsetError('unknown Specific Character Set term', { tag: TAG.SpecificCharacterSet });
  }
  return terms;
}

function usesCodeExtensions(charset: CharacterSet): boolean {
  return charset.length > 1 || (charset[0] ?? '').startsWith('ISO 2022');
}

const LATIN1_DELIMS = new Set([0x5c]);
const PN_DELIMS = new Set([0x5c, 0x5e, 0x3d]);
const TEXT_DELIMS = new Set([0x5c, 0x0d, 0x0a, 0x09, 0x0c]);

/** Decodes a string value's bytes (padding included; callers trim). `vr` picks the delimiters that reset ISO 2022 state. */
export function decodeText(bytes: Uint8Array, charset: CharacterSet, vr = 'LO'): string {
  if (!usesCodeExtensions(charset)) {
    const label = SINGLE[charset[0] ?? ''] ?? 'latin1';
    if (label === 'latin1') return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
    return decoder(label).decode(bytes);
  }
  return decodeIso2022(bytes, charset, vr === 'PN' ? PN_DELIMS : vr === 'LT' || vr === 'ST' || vr === 'UT' ? TEXT_DELIMS : LATIN1_DELIMS);
}

// PS3.5 6.1.2.5: ISO 2022 code extension. G0 starts as ASCII, G1 as the first term's set; both return to
// their initial state at value and component delimiters (PS3.5 6.1.2.5.3).
function decodeIso2022(bytes: Uint8Array, charset: CharacterSet, delimiters: ReadonlySet<number>): string {
  const initialG1 = ISO2022_SINGLE[charset[0] ?? ''] ?? SINGLE[charset[0] ?? ''] ?? '';
  let g0: G0 = 'ascii';
  let g1: G1 = initialG1 === 'shift_jis' ? 'katakana' : initialG1;
  let out = '';
  let run: number[] = [];
  let runLabel = '';
  const flush = (): void => {
    if (run.length > 0) out += runLabel === 'latin1' ? Buffer.from(run).toString('latin1') : decoder(runLabel).decode(Uint8Array.from(run));
    run = [];
  };
  const emit = (label: string, ...b: number[]): void => {
    if (label !== runLabel) {
      flush();
      runLabel = label;
    }
    run.push(...b);
  };
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] ?? 0;
    if (b === 0x1b) {
      let j = i + 1;
      while (j < bytes.length && (bytes[j] ?? 0) >= 0x20 && (bytes[j] ?? 0) <= 0x2f) j++;
      const seq = Buffer.from(bytes.subarray(i + 1, j + 1)).toString('latin1');
      const designation = ESCAPES[seq];
      if (!designation) throw new DicomUnsupportedCharsetError('unsupported ISO 2022 escape sequence');
      if (designation.g0) g0 = designation.g0;
      if (designation.g1 !== undefined) g1 = designation.g1;
      i = j;
      continue;
    }
    if (b < 0x80) {
      if (g0 !== 'ascii' && b >= 0x21 && b <= 0x7e) {
        const b2 = bytes[i + 1] ?? 0x21;
        i++;
        if (g0 === 'jisx0208') emit('euc-jp', b | 0x80, b2 | 0x80);
        else emit('euc-jp', 0x8f, b | 0x80, b2 | 0x80);
        continue;
      }
      if (delimiters.has(b)) {
        g0 = 'ascii';
        g1 = initialG1 === 'shift_jis' ? 'katakana' : initialG1;
      }
      emit('latin1', b);
      continue;
    }
    if (g1 === 'katakana') emit('euc-jp', 0x8e, b);
    else if (g1 === 'ksx1001' || g1 === 'gb2312') {
      const b2 = bytes[i + 1] ?? 0xa1;
      i++;
      emit(g1 === 'ksx1001' ? 'euc-kr' : 'gbk', b, b2 | 0x80);
    } else emit(g1 === '' ? 'latin1' : g1, b);
  }
  flush();
  return out;
}

const reverseTables = new Map<string, Map<string, number>>();
function reverseTable(label: string): Map<string, number> {
  let t = reverseTables.get(label);
  if (!t) {
    t = new Map();
    const d = decoder(label);
    for (let b = 0x80; b <= 0xff; b++) {
      const ch = d.decode(Uint8Array.of(b));
      if (ch !== '\ufffd' && !t.has(ch)) t.set(ch, b);
    }
    reverseTables.set(label, t);
  }
  return t;
}

/**
 * Encodes text in a character set. Returns undefined when the text cannot be represented there
 * (Node has no encoder for GB18030, ISO 2022 or Shift-JIS): the caller then switches to ISO_IR 192.
 */
export function encodeText(text: string, charset: CharacterSet): Buffer | undefined {
  if (/^[\x00-\x7f]*$/.test(text)) return Buffer.from(text, 'latin1');
  if (usesCodeExtensions(charset)) return undefined;
  const label = SINGLE[charset[0] ?? ''];
  if (label === 'utf-8') return Buffer.from(text, 'utf8');
  if (label === undefined || (charset[0] ?? '') === '' || charset[0] === 'ISO_IR 6') return undefined;
  if (label === 'latin1') return /^[\x00-\xff]*$/.test(text) ? Buffer.from(text, 'latin1') : undefined;
  if (label === 'shift_jis' || label === 'gb18030' || label === 'gbk') return undefined;
  const table = reverseTable(label);
  const out: number[] = [];
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0;
    if (code < 0x80) out.push(code);
    else {
      const b = table.get(ch);
      if (b === undefined) return undefined;
      out.push(b);
    }
  }
  return Buffer.from(out);
}

/** Whether a value in this character set can be re-encoded by encodeText for any text it decodes to. */
export function isUtf8(charset: CharacterSet): boolean {
  return charset.length === 1 && charset[0] === 'ISO_IR 192';
}

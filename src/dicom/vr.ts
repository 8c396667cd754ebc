// Value Representations, PS3.5 6.2 (Table 6.2-1) and 7.1.2 (explicit VR header forms).

type VrKind = 'string' | 'text' | 'person-name' | 'number' | 'binary' | 'tag' | 'sequence';

export interface VrInfo {
  readonly vr: string;
  /** PS3.5 7.1.2: 'long' VRs have 2 reserved bytes and a 32-bit length in Explicit VR. */
  readonly header: 'short' | 'long';
  readonly kind: VrKind;
  /** PS3.5 6.2: odd-length values are padded with this byte. */
  readonly padding: 0x20 | 0x00;
  /** Bytes per value for binary numbers (byte swapping unit); 1 means no swap. */
  readonly unit: 1 | 2 | 4 | 8;
  /** Characters (string VRs) or bytes (fixed binary) per value, where the standard bounds it. */
  readonly maxLength?: number;
  /** Whether the Specific Character Set applies (PS3.5 6.1.2.3); otherwise the default repertoire. */
  readonly charsetApplies: boolean;
  /** Values are split at backslash (VM > 1 possible). */
  readonly multiValued: boolean;
}

function v(
  vr: string,
  header: 'short' | 'long',
  kind: VrKind,
  padding: 0x20 | 0x00,
  unit: 1 | 2 | 4 | 8,
  charsetApplies: boolean,
  multiValued: boolean,
  maxLength?: number,
): VrInfo {
  return maxLength === undefined
    ? { vr, header, kind, padding, unit, charsetApplies, multiValued }
    : { vr, header, kind, padding, unit, charsetApplies, multiValued, maxLength };
}

const TABLE: readonly VrInfo[] = [
  v('AE', 'short', 'string', 0x20, 1, false, true, 16),
  v('AS', 'short', 'string', 0x20, 1, false, true, 4),
  v('AT', 'short', 'tag', 0x00, 2, false, true, 4),
  v('CS', 'short', 'string', 0x20, 1, false, true, 16),
  v('DA', 'short', 'string', 0x20, 1, false, true, 8),
  v('DS', 'short', 'number', 0x20, 1, false, true, 16),
  v('DT', 'short', 'string', 0x20, 1, false, true, 26),
  v('FD', 'short', 'number', 0x00, 8, false, true, 8),
  v('FL', 'short', 'number', 0x00, 4, false, true, 4),
  v('IS', 'short', 'number', 0x20, 1, false, true, 12),
  v('LO', 'short', 'string', 0x20, 1, true, true, 64),
  v('LT', 'short', 'text', 0x20, 1, true, false, 10240),
  v('OB', 'long', 'binary', 0x00, 1, false, false),
  v('OD', 'long', 'binary', 0x00, 8, false, false),
  v('OF', 'long', 'binary', 0x00, 4, false, false),
  v('OL', 'long', 'binary', 0x00, 4, false, false),
  v('OV', 'long', 'binary', 0x00, 8, false, false),
  v('OW', 'long', 'binary', 0x00, 2, false, false),
  v('PN', 'short', 'person-name', 0x20, 1, true, true, 64),
  v('SH', 'short', 'string', 0x20, 1, true, true, 16),
  v('SL', 'short', 'number', 0x00, 4, false, true, 4),
  v('SQ', 'long', 'sequence', 0x00, 1, false, false),
  v('SS', 'short', 'number', 0x00, 2, false, true, 2),
  v('ST', 'short', 'text', 0x20, 1, true, false, 1024),
  v('SV', 'long', 'number', 0x00, 8, false, true, 8),
  v('TM', 'short', 'string', 0x20, 1, false, true, 14),
  v('UC', 'long', 'string', 0x20, 1, true, true),
  v('UI', 'short', 'string', 0x00, 1, false, true, 64),
  v('UL', 'short', 'number', 0x00, 4, false, true, 4),
  v('UN', 'long', 'binary', 0x00, 1, false, false),
  v('UR', 'long', 'text', 0x20, 1, false, false),
  v('US', 'short', 'number', 0x00, 2, false, true, 2),
  v('UT', 'long', 'text', 0x20, 1, true, false),
  v('UV', 'long', 'number', 0x00, 8, false, true, 8),
];

const BY_NAME: ReadonlyMap<string, VrInfo> = new Map(TABLE.map((i) => [i.vr, i]));

export function isVr(vr: string): boolean {
  return BY_NAME.has(vr);
}

const BY_CODE: ReadonlyMap<number, string> = new Map(TABLE.map((i) => [(i.vr.charCodeAt(0) << 8) | i.vr.charCodeAt(1), i.vr]));

/** The VR whose two characters (PS3.5 7.1.2, explicit VR) are these bytes; undefined if none is. */
export function vrFromBytes(first: number, second: number): string | undefined {
  return BY_CODE.get((first << 8) | second);
}

/** Info for a VR; throws TypeError for a name that is not a VR (callers validate first). */
export function vrInfo(vr: string): VrInfo {
  const info = BY_NAME.get(vr);
  if (!info) throw new TypeError(`not a VR: ${vr.length === 2 ? vr : '?'}`);
  return info;
}

export function hasLongHeader(vr: string): boolean {
  return vrInfo(vr).header === 'long';
}

/** The fixed size of one value of a binary number or AT (PS3.5 Table 6.2-1); undefined for other VRs. */
export function binaryValueSize(vr: string): number | undefined {
  const info = BY_NAME.get(vr);
  return info && (info.kind === 'tag' || (info.kind === 'number' && info.unit > 1)) ? info.maxLength : undefined;
}

/** Binary numeric VRs whose values are byte-swapped between Little and Big Endian (PS3.5 7.3). */
export function swapUnit(vr: string): 1 | 2 | 4 | 8 {
  return BY_NAME.get(vr)?.unit ?? 1;
}

/** In-place byte swap of `buf` in units of `unit` bytes (the trailing odd bytes stay). */
export function swapBytes(buf: Buffer, unit: 1 | 2 | 4 | 8): Buffer {
  if (unit === 1) return buf;
  const n = buf.length - (buf.length % unit);
  if (unit === 2) buf.subarray(0, n).swap16();
  else if (unit === 4) buf.subarray(0, n).swap32();
  else buf.subarray(0, n).swap64();
  return buf;
}

/** PS3.5 6.2: values have even length; odd ones get the VR's padding byte. */
export function padValue(value: Buffer, vr: string): Buffer {
  if (value.length % 2 === 0) return value;
  const pad = BY_NAME.get(vr)?.padding ?? 0;
  return Buffer.concat([value, Buffer.of(pad)]);
}

/**
 * True when a character-string value (kinds string, text, person-name, and DS/IS) holds a control
 * character no repertoire allows there: PS3.5 6.1.2/6.1.3 permit only ESC (ISO 2022) and, in text,
 * TAB, LF, FF and CR; trailing NUL/space padding is ignored (PS3.5 6.2). Such bytes in a value mean a
 * length that swallowed the element headers after it (a misframed element), not text.
 */
export function hasInvalidControlBytes(vr: string, value: Buffer): boolean {
  const info = BY_NAME.get(vr);
  if (!info || info.kind === 'binary' || info.kind === 'sequence' || binaryValueSize(vr) !== undefined) return false;
  let end = value.length;
  while (end > 0 && (value[end - 1] === 0x00 || value[end - 1] === 0x20)) end--;
  for (let i = 0; i < end; i++) {
    const b = value[i] as number;
    if (b < 0x20 && b !== 0x1b && b !== 0x09 && b !== 0x0a && b !== 0x0c && b !== 0x0d) return true;
  }
  return false;
}

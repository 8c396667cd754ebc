// DICOM JSON Model (PS3.18 F.2) to and from the Dataset tree.
import { UTF8_CHARACTER_SET, decodeText, encodeText, isUtf8, type CharacterSet } from './charset.ts';
import { characterSetOf, type DataElement, type Dataset } from './dataset.ts';
import { DicomInvalidValueError, DicomUnsupportedCharsetError } from './errors.ts';
import { parseTag, tagToHex, type Tag } from './tag.ts';
import { TAG } from './tags.ts';
import { isVr, padValue, swapBytes, swapUnit, vrInfo } from './vr.ts';

interface PersonNameJson {
  Alphabetic?: string;
  Ideographic?: string;
  Phonetic?: string;
}

export type JsonValue = string | number | PersonNameJson | JsonDataset | null;

/** PS3.18 F.2.2: one attribute; at most one of Value, InlineBinary, BulkDataURI. */
export interface JsonElement {
  vr: string;
  Value?: JsonValue[];
  InlineBinary?: string;
  BulkDataURI?: string;
}

export type JsonDataset = Record<string, JsonElement>;

export interface ToJsonOptions {
  /** Return a URI to emit BulkDataURI instead of InlineBinary for a binary element (PS3.18 F.2.6). */
  readonly bulkDataUri?: (element: DataElement, path: readonly Tag[]) => string | undefined;
}

const PN_GROUPS = ['Alphabetic', 'Ideographic', 'Phonetic'] as const;

function trimFor(vr: string, s: string): string {
  // PS3.5 6.2: trailing spaces are padding; leading spaces are significant only in LT, ST, UT, UR.
  if (vr === 'UI') return s.replace(/[\0 ]+$/, '');
  if (vr === 'LT' || vr === 'ST' || vr === 'UT' || vr === 'UR') return s.replace(/[ \0]+$/, '');
  return s.replace(/^ +/, '').replace(/[ \0]+$/, '');
}

function readNumbers(value: Buffer, vr: string, le: boolean): number[] | string[] {
  const unit = vrInfo(vr).unit;
  const n = Math.floor(value.length / unit);
  const out: number[] = [];
  const big: string[] = [];
  let useBig = false;
  for (let i = 0; i < n; i++) {
    const o = i * unit;
    switch (vr) {
      case 'US': out.push(le ? value.readUInt16LE(o) : value.readUInt16BE(o)); break;
      case 'SS': out.push(le ? value.readInt16LE(o) : value.readInt16BE(o)); break;
      case 'UL': out.push(le ? value.readUInt32LE(o) : value.readUInt32BE(o)); break;
      case 'SL': out.push(le ? value.readInt32LE(o) : value.readInt32BE(o)); break;
      case 'FL': out.push(le ? value.readFloatLE(o) : value.readFloatBE(o)); break;
      case 'FD': out.push(le ? value.readDoubleLE(o) : value.readDoubleBE(o)); break;
      default: {
        const v = vr === 'SV' ? (le ? value.readBigInt64LE(o) : value.readBigInt64BE(o)) : le ? value.readBigUInt64LE(o) : value.readBigUInt64BE(o);
        // PS3.18 F.2.3.1: SV/UV outside the safe integer range are JSON strings.
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) useBig = true;
        big.push(v.toString());
        out.push(Number(v));
      }
    }
  }
  return useBig ? big : out;
}

function toLittleEndian(value: Buffer, vr: string, le: boolean): Buffer {
  return le ? value : swapBytes(Buffer.from(value), swapUnit(vr));
}

/** PS3.18 F.2: the JSON form of one element; sequences recurse with per-item Specific Character Set. */
export function elementToJsonValue(el: DataElement, charset: CharacterSet, littleEndian: boolean, options: ToJsonOptions = {}, path: readonly Tag[] = []): JsonElement {
  const vr = el.vr;
  if (el.items || vr === 'SQ') {
    const items = el.items ?? [];
    return items.length === 0 ? { vr: 'SQ' } : { vr: 'SQ', Value: items.map((item) => datasetToJson(item, charset, littleEndian, options, [...path, el.tag])) };
  }
  const info = isVr(vr) ? vrInfo(vr) : vrInfo('UN');
  if (el.fragments) {
    const uri = options.bulkDataUri?.(el, path);
    if (uri !== undefined) return { vr, BulkDataURI: uri };
    const parts: Buffer[] = [];
    for (const f of el.fragments) {
      const h = Buffer.alloc(8);
      h.writeUInt16LE(0xfffe, 0);
      h.writeUInt16LE(0xe000, 2);
      h.writeUInt32LE(f.length, 4);
      parts.push(h, f);
    }
    parts.push(Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]));
    return { vr, InlineBinary: Buffer.concat(parts).toString('base64') };
  }
  const value = el.value ?? Buffer.alloc(0);
  if (value.length === 0) return { vr };
  switch (info.kind) {
    case 'binary': {
      const uri = options.bulkDataUri?.(el, path);
      if (uri !== undefined) return { vr, BulkDataURI: uri };
      return { vr, InlineBinary: toLittleEndian(value, vr, littleEndian).toString('base64') };
    }
    case 'tag': {
      const out: string[] = [];
      for (let o = 0; o + 4 <= value.length; o += 4) {
        const g = littleEndian ? value.readUInt16LE(o) : value.readUInt16BE(o);
        const e = littleEndian ? value.readUInt16LE(o + 2) : value.readUInt16BE(o + 2);
        out.push(tagToHex(((g << 16) | e) >>> 0));
      }
      return { vr, Value: out };
    }
    case 'number':
      if (vr !== 'IS' && vr !== 'DS') return { vr, Value: readNumbers(value, vr, littleEndian) };
      break;
    default:
      break;
  }
  const text = info.charsetApplies ? decodeText(value, charset, vr) : value.toString('latin1');
  const whole = trimFor(vr, text);
  if (whole === '') return { vr };
  const parts = info.multiValued ? text.split('\\') : [text];
  const values: JsonValue[] = parts.map((p) => {
    const s = trimFor(vr, p);
    if (s === '') return null;
    if (vr === 'IS' || vr === 'DS') {
      const n = Number(s);
      return Number.isFinite(n) && /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s) ? n : s;
    }
    if (vr === 'PN') {
      const pn: PersonNameJson = {};
      s.split('=').forEach((g, i) => {
        const key = PN_GROUPS[i];
        if (key && g !== '') pn[key] = g;
      });
      return pn;
    }
    return s;
  });
  return { vr, Value: values };
}

/** PS3.18 F.2: a dataset (or item) to JSON; its own (0008,0005) overrides the inherited character set. */
export function datasetToJson(dataset: readonly DataElement[], inherited: CharacterSet, littleEndian: boolean, options: ToJsonOptions = {}, path: readonly Tag[] = []): JsonDataset {
  const charset = characterSetOf(dataset, inherited);
  const out: JsonDataset = {};
  for (const el of dataset) out[tagToHex(el.tag)] = elementToJsonValue(el, charset, littleEndian, options, path);
  return out;
}

function formatDecimalString(n: number): string {
  // PS3.5 6.2: DS is at most 16 characters.
  let s = Object.is(n, -0) ? '-0' : String(n);
  for (let p = 16; s.length > 16 && p > 0; p--) s = trimFractionZeros(n.toPrecision(p));
  return s;
}

/** Trailing zeros of a fraction go (`12.3400` → `12.34`, `1.000e-7` → `1e-7`); an integer's zeros are its value. */
function trimFractionZeros(text: string): string {
  return text.replace(/^([^e]*\.[^e]*?)0+(e.*)?$/, '$1$2').replace(/\.(e|$)/, '$1');
}

function encodeString(text: string, charset: CharacterSet, charsetApplies: boolean, tag: Tag | undefined): Buffer {
  const bytes = charsetApplies ? encodeText(text, charset) : /^[\x00-\x7f]*$/.test(text) ? Buffer.from(text, 'latin1') : undefined;
  if (!bytes) throw new DicomUnsupportedCharsetError('value cannot be encoded in the Specific Character Set', tag === undefined ? {} : { tag });
  return bytes;
}

/**
 * The value bytes of an element from its JSON Value (or InlineBinary), in the target byte order and
 * character set, padded to even length. Throws DicomUnsupportedCharsetError when the text needs a
 * character set change (callers then switch the dataset to ISO_IR 192), DicomInvalidValueError otherwise.
 */
export function jsonValueToElementBytes(vr: string, json: Omit<JsonElement, 'vr'> | readonly JsonValue[] | undefined, charset: CharacterSet, littleEndian: boolean, tag?: Tag): Buffer {
  const where = tag === undefined ? {} : { tag };
  if (!isVr(vr) || vr === 'SQ') throw new DicomInvalidValueError('not a value VR', where);
  const element: Omit<JsonElement, 'vr'> = Array.isArray(json) ? { Value: json as JsonValue[] } : ((json ?? {}) as Omit<JsonElement, 'vr'>);
  const info = vrInfo(vr);
  if (element.BulkDataURI !== undefined) throw new DicomInvalidValueError('BulkDataURI cannot be resolved here', where);
  if (element.InlineBinary !== undefined) {
    const raw = Buffer.from(element.InlineBinary, 'base64');
    return padValue(littleEndian ? raw : swapBytes(raw, swapUnit(vr)), vr);
  }
  const values = element.Value ?? [];
  if (values.length === 0) return Buffer.alloc(0);
  if (info.kind === 'binary') throw new DicomInvalidValueError('binary VR needs InlineBinary', where);
  if (info.kind === 'tag') {
    const out = Buffer.alloc(values.length * 4);
    values.forEach((v, i) => {
      // PS3.18 F.2.3: an AT value is "ggggeeee" (8 characters: parseTag's other forms are longer).
      // Anything else (a pseudonym given to an element whose VR was AT, found by test/unit/fuzz) is refused.
      const t = typeof v === 'string' && v.length === 8 ? parseTag(v) : undefined;
      if (t === undefined) throw new DicomInvalidValueError('AT value must be a hex tag string', where);
      if (littleEndian) {
        out.writeUInt16LE(t >>> 16, i * 4);
        out.writeUInt16LE(t & 0xffff, i * 4 + 2);
      } else {
        out.writeUInt16BE(t >>> 16, i * 4);
        out.writeUInt16BE(t & 0xffff, i * 4 + 2);
      }
    });
    return out;
  }
  if (info.kind === 'number' && vr !== 'IS' && vr !== 'DS') {
    const unit = info.unit;
    const out = Buffer.alloc(values.length * unit);
    values.forEach((v, i) => {
      if (typeof v !== 'number' && typeof v !== 'string') throw new DicomInvalidValueError('numeric value expected', where);
      const o = i * unit;
      const n = Number(v);
      if ((vr === 'SV' || vr === 'UV') && typeof v === 'string' && !/^-?\d+$/.test(v)) throw new DicomInvalidValueError('integer expected', where);
      if (vr !== 'SV' && vr !== 'UV' && !Number.isFinite(n) && vr !== 'FL' && vr !== 'FD') throw new DicomInvalidValueError('numeric value expected', where);
      try {
        switch (vr) {
          case 'US': littleEndian ? out.writeUInt16LE(n, o) : out.writeUInt16BE(n, o); break;
          case 'SS': littleEndian ? out.writeInt16LE(n, o) : out.writeInt16BE(n, o); break;
          case 'UL': littleEndian ? out.writeUInt32LE(n, o) : out.writeUInt32BE(n, o); break;
          case 'SL': littleEndian ? out.writeInt32LE(n, o) : out.writeInt32BE(n, o); break;
          case 'FL': littleEndian ? out.writeFloatLE(n, o) : out.writeFloatBE(n, o); break;
          case 'FD': littleEndian ? out.writeDoubleLE(n, o) : out.writeDoubleBE(n, o); break;
          case 'SV': littleEndian ? out.writeBigInt64LE(BigInt(v), o) : out.writeBigInt64BE(BigInt(v), o); break;
          default: littleEndian ? out.writeBigUInt64LE(BigInt(v), o) : out.writeBigUInt64BE(BigInt(v), o);
        }
      } catch (err) {
        throw new DicomInvalidValueError('numeric value out of range for its VR', { ...where, cause: err });
      }
    });
    return out;
  }
  const strings = values.map((v): string => {
    if (v === null) return '';
    if (vr === 'PN') {
      if (typeof v === 'string') return v;
      if (typeof v !== 'object') throw new DicomInvalidValueError('PN value must be an object', where);
      const pn = v as PersonNameJson;
      const groups = [pn.Alphabetic ?? '', pn.Ideographic ?? '', pn.Phonetic ?? ''];
      while (groups.length > 0 && groups[groups.length - 1] === '') groups.pop();
      return groups.join('=');
    }
    if (typeof v === 'number') return vr === 'DS' ? formatDecimalString(v) : String(Math.trunc(v));
    if (typeof v === 'string') return v;
    throw new DicomInvalidValueError('string value expected', where);
  });
  if (!info.multiValued && strings.length > 1) throw new DicomInvalidValueError('VR allows a single value', where);
  return padValue(encodeString(strings.join('\\'), charset, info.charsetApplies, tag), vr);
}

const SPECIFIC_CHARACTER_SET_KEY = tagToHex(TAG.SpecificCharacterSet);

/**
 * PS3.18 F.2 back to a Dataset in the given byte order; text in the dataset's (or inherited) character
 * set. When that set cannot hold the text (no encoder for ISO 2022, GB18030, ...), the dataset (item)
 * is written in ISO_IR 192 and its (0008,0005) says so.
 */
export function jsonToDataset(json: JsonDataset, inherited: CharacterSet, littleEndian: boolean): Dataset {
  const charsetEl = json[SPECIFIC_CHARACTER_SET_KEY];
  const charsetText = charsetEl?.Value?.map((v) => (typeof v === 'string' ? v : '')).join('\\');
  const charset = charsetEl ? characterSetOf([{ tag: TAG.SpecificCharacterSet, vr: 'CS', value: Buffer.from(charsetText ?? '', 'latin1') }], inherited) : inherited;
  try {
    return jsonLevelToDataset(json, charset, littleEndian);
  } catch (err) {
    if (!(err instanceof DicomUnsupportedCharsetError) || isUtf8(charset)) throw err;
    return jsonLevelToDataset({ ...json, [SPECIFIC_CHARACTER_SET_KEY]: { vr: 'CS', Value: ['ISO_IR 192'] } }, UTF8_CHARACTER_SET, littleEndian);
  }
}

function jsonLevelToDataset(json: JsonDataset, charset: CharacterSet, littleEndian: boolean): Dataset {
  const out: Dataset = [];
  for (const key of Object.keys(json).sort()) {
    const el = json[key] as JsonElement;
    const tag = key.length === 8 ? parseTag(key) : undefined; // PS3.18 F.2.1.1: the key is "ggggeeee"
    if (tag === undefined) throw new DicomInvalidValueError('not a DICOM JSON tag key');
    if (el.vr === 'SQ') {
      const items = (el.Value ?? []).map((item) => {
        if (item === null || typeof item !== 'object') throw new DicomInvalidValueError('SQ item must be an object', { tag });
        return jsonToDataset(item as JsonDataset, charset, littleEndian);
      });
      out.push({ tag, vr: 'SQ', items });
      continue;
    }
    out.push({ tag, vr: el.vr, value: jsonValueToElementBytes(el.vr, el, charset, littleEndian, tag) });
  }
  return out;
}

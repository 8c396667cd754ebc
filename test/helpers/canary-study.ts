// The canary patient: a synthetic study generated from PS3.15 Table E.1-1 (../shared/standard JSON, the
// same source as src/deid/profile-table.generated.ts) in which every attribute of the table holds a
// unique canary value valid for its VR (PS3.6 dictionary VR), at the top level, at sequence depth 3,
// inside the items of every sequence the table lists, in an item with its own Specific Character Set
// (ISO_IR 100, PS3.5 6.1.2.3), in a safe private block (PS3.15 Table E.3.10-1) and an unsafe one, in an
// overlay group (60xx) and a retired curve group (50xx, from the PS3.6 (50xx,eeee) entries).
//
// Beside the table (issue 13, finding 5; PS3.15 Table E.1-1 Note 1): every PS3.6 attribute that the table
// does not list and whose VR can carry identity (src/deid/identity-safe-list.ts IDENTITY_VRS) holds a
// canary too, at the top level and at depth 3; the (60xx,eeee) ones in the overlay group, the (50xx,eeee)
// ones in the curve group; a few encoded with a VR that PS3.6 does not give them (placement 'misencoded').
// Those on the reviewed safe list are the positive control (kept); all others must never appear, but for
// dates the temporal options keep (Full Dates) and names, emptied. File Meta (0002) is left out: the
// writer makes its own.
//
// How each VR's canary is found in response bytes (`findCanaries`):
//   text VRs (AE CS LO LT PN SH ST UC UR UT): `CANARY` + 5 digits, found by one regex;
//   UI: `1.2.826.0.1.3680043.10.543.` + 5 digits;
//   DA: `yyyy0615`, one even year per canary from 1200 on; DT: `yyyy0615101112` (own year). A date
//       shift moves a value by at most a year, so a shifted canary never lands on another one;
//   TM: `hhmmss.9nnnnn`; DS: `97531.nnnnn`; IS: `1642nnnnn` (each found with a leading non-digit);
//   AS: a unique `nnnW`, searched as is;
//   binary VRs (OB OW UN, Overlay Data, Curve Data, private OB): the ASCII bytes `CANARYnnnnnB`, found
//       raw and as base64 (InlineBinary);
//   ISO_IR 100 item: text canaries followed by Latin-1 letters, searched as Latin-1 and UTF-8 too;
//   US (2 rows): not scanned — a 2-byte value occurs by chance in any binary; listed with scan 'none'.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { DataElement, Dataset } from '../../src/dicom/dataset.ts';
import { encodeDataset, encodeFileMeta } from '../../src/dicom/part10-writer.ts';
import { padValue } from '../../src/dicom/vr.ts';
import { IDENTITY_VRS, identitySafeEntry } from '../../src/deid/identity-safe-list.ts';
import { TABLE_E1_1_OPTION_COLUMNS } from '../../src/deid/profile-table.generated.ts';
import { IOD_TYPES, IODS } from '../../src/deid/iod-table.generated.ts';

const STANDARD = path.resolve(import.meta.dirname, '../../../shared/standard');

// The ten option columns of Table E.1-1, as scripts/generate-profile.ts names them.
export const OPTION_COLUMNS = TABLE_E1_1_OPTION_COLUMNS;
export type OptionColumn = (typeof OPTION_COLUMNS)[number];

interface TableRow {
  readonly tag: string;
  readonly keyword: string;
  readonly tagKind: 'exact' | 'repeating-group' | 'private';
  readonly basic: string;
  readonly [option: string]: unknown;
}
interface DictRow {
  readonly tag: string;
  readonly keyword: string | null;
  readonly vr: string | null;
  readonly retired: boolean;
  readonly part: string;
}
interface SafePrivateRow {
  readonly tag: string;
  readonly privateCreator: string;
  readonly vr: string | null;
}

export type ScanKind = 'text' | 'uid' | 'date' | 'time' | 'ds' | 'is' | 'as' | 'binary' | 'none';
export type Placement = 'top' | 'depth-3' | 'sequence-item' | 'charset-item' | 'private-safe' | 'private-unsafe' | 'overlay' | 'curve' | 'misencoded' | 'in-text';

export interface CanaryEntry {
  /** The searched form (regex family key), unique per canary. */
  readonly id: string;
  readonly vr: string;
  /** Tag path, e.g. `(0040,0260)>(0040,A043)>(0040,08EA)>(0010,0010)`. */
  readonly path: string;
  readonly placement: Placement;
  /** The Table E.1-1 row that governs the value, as printed (`(0010,0010)`, `(60xx,3000)`, …). */
  readonly row: string;
  readonly keyword: string;
  /** Basic Profile code and option cells of that row. */
  readonly basic: string;
  readonly options: Readonly<Partial<Record<OptionColumn, 'K' | 'C'>>>;
  /**
   * For a canary in an item of a sequence the table lists (placement 'sequence-item'): that sequence's
   * row. The canary can survive only when the profile recurses into the sequence (K, C, U).
   */
  readonly enclosing?: { readonly row: string; readonly basic: string; readonly options: Readonly<Partial<Record<OptionColumn, 'K' | 'C'>>> };
  readonly scan: ScanKind;
  /**
   * For an attribute Table E.1-1 does not list (Note 1), whether the reviewed safe list keeps it; `row`
   * is then the attribute's own tag (or, in the overlay and curve groups, the row that takes the group)
   * and `basic` what the Note 1 rule does: K safe, X removed, Z a name, X with Full Dates K and Modified
   * Dates C for a date.
   */
  readonly outsideTable?: 'safe' | 'removed';
  /** Extra byte forms searched with Buffer.includes (binary: raw and base64; Latin-1 text). */
  readonly needles: readonly Buffer[];
}

export interface CanaryStudy {
  /** Part 10 files (Explicit VR Little Endian): two instances in one series, one in a second series. */
  readonly instances: readonly Buffer[];
  readonly canaries: readonly CanaryEntry[];
  readonly studyInstanceUID: string;
  readonly sopInstanceUIDs: readonly string[];
  /** Rows of Table E.1-1 left out, with the reason. */
  readonly skipped: readonly { readonly row: string; readonly reason: string }[];
  /** PS3.6 attributes outside Table E.1-1 whose VR can carry identity, as printed; each has canaries or a reason. */
  readonly outsideTable: readonly string[];
  readonly outsideTableSkipped: readonly { readonly tag: string; readonly reason: string }[];
}

const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const UID_ROOT = '1.2.826.0.1.3680043.10.543.';
const TEXT_VRS = new Set(['AE', 'CS', 'LO', 'LT', 'PN', 'SH', 'ST', 'UC', 'UR', 'UT']);
const BINARY_VRS = new Set(['OB', 'OW', 'UN', 'OD', 'OF', 'OL', 'OV']);
// Sequences the table does not list (the dictionary keeps them, recursing): the depth-3 container chain
// and the parent of the ISO_IR 100 item. Checked against the table at generation time.
const DEPTH_CHAIN = ['(0040,0260)', '(0040,A043)', '(0040,08EA)']; // PerformedProtocolCode > ConceptNameCode > MeasurementUnitsCode
const CHARSET_PARENT = '(0008,9215)'; // DerivationCodeSequence
const CODE_MEANING = '(0008,0104)';
// A code sequence the table does not list, holding the misencoded canaries; and those canaries: Device ID
// (LO) as binary and as CS, a date (DA) as LO (no longer a date that Full Dates keeps).
const MISENCODED_PARENT = '(0008,2218)'; // AnatomicRegionSequence
const MISENCODED: readonly (readonly [string, string])[] = [['(0018,1003)', 'OB'], ['(0010,0033)', 'CS'], ['(0014,1020)', 'LO']];
const TEXT_VALUE = '(0040,A160)'; // cleaned by the gateway's supplement (profile.ts SUPPLEMENT_CLEAN), never kept
const REFERENCED_SOP_INSTANCE_UID = '(0008,1155)';
const LATIN1_SUFFIX = ' Àé';

function tagNumber(text: string): number {
  return Number.parseInt(text.slice(1, 5) + text.slice(6, 10), 16) >>> 0;
}
function optionsOf(row: TableRow): Partial<Record<OptionColumn, 'K' | 'C'>> {
  const out: Partial<Record<OptionColumn, 'K' | 'C'>> = {};
  for (const o of OPTION_COLUMNS) if (row[o] === 'K' || row[o] === 'C') out[o] = row[o] as 'K' | 'C';
  return out;
}
function firstVr(vr: string): string {
  const first = vr.split(' or ')[0] ?? 'UN';
  return first === 'OB' && vr.includes('OW') ? 'OW' : first;
}
/** What the Note 1 rule does with an attribute outside the table (derived from the safe list and the VR, not from the engine). */
function outsideTableCode(tag: string, vr: string): Pick<CanaryEntry, 'basic' | 'options' | 'outsideTable'> {
  if (identitySafeEntry(tagNumber(tag)) !== undefined) return { basic: 'K', options: {}, outsideTable: 'safe' };
  if (tag === TEXT_VALUE) return { basic: 'C', options: {}, outsideTable: 'removed' };
  if (vr === 'DA' || vr === 'DT') return { basic: 'X', options: { retainLongitudinalTemporalFullDates: 'K', retainLongitudinalTemporalModifiedDates: 'C' }, outsideTable: 'removed' };
  return { basic: vr === 'PN' ? 'Z' : 'X', options: {}, outsideTable: 'removed' };
}
function sorted(dataset: Dataset): Dataset {
  return dataset.sort((a, b) => (a.tag >>> 0) - (b.tag >>> 0));
}

/** Generates the canary study. Deterministic: the same call gives the same bytes. */
export function makeCanaryStudy(): CanaryStudy {
  const table = JSON.parse(readFileSync(path.join(STANDARD, 'ps3.15-table-e1-1.json'), 'utf8')) as TableRow[];
  const dictionary = JSON.parse(readFileSync(path.join(STANDARD, 'ps3.6-dictionary.json'), 'utf8')) as DictRow[];
  const safePrivate = JSON.parse(readFileSync(path.join(STANDARD, 'ps3.15-table-e3.10-1-safe-private.json'), 'utf8')) as SafePrivateRow[];
  const dict = new Map(dictionary.map((d) => [d.tag, d]));
  const tableTags = new Set(table.map((r) => r.tag));
  for (const t of [...DEPTH_CHAIN, CHARSET_PARENT, CODE_MEANING, MISENCODED_PARENT, ...MISENCODED.map(([t]) => t)]) {
    if (tableTags.has(t)) throw new Error(`canary study: container ${t} is in Table E.1-1`);
  }

  const canaries: CanaryEntry[] = [];
  const skipped: { row: string; reason: string }[] = [];
  let serial = 10000;
  let year = 1200;
  let asSerial = 700;

  /** A value for `vr` and its canary entry (added to the list). */
  const value = (vr: string, where: Omit<CanaryEntry, 'id' | 'vr' | 'scan' | 'needles'>, latin1 = false): Buffer => {
    const n = serial++;
    let text: string | undefined;
    let bytes: Buffer;
    let scan: ScanKind;
    let id: string;
    const needles: Buffer[] = [];
    if (TEXT_VRS.has(vr)) {
      id = `CANARY${n}`;
      text = vr === 'UR' ? `urn:x:${id}` : latin1 ? `${id}${LATIN1_SUFFIX}` : id;
      bytes = Buffer.from(text, 'latin1');
      if (latin1) needles.push(bytes, Buffer.from(text, 'utf8'));
      scan = 'text';
    } else if (vr === 'UI') {
      id = `${UID_ROOT}${n}`;
      bytes = Buffer.from(id, 'latin1');
      scan = 'uid';
    } else if (vr === 'DA' || vr === 'DT') {
      id = `${year}0615`;
      year += 2;
      bytes = Buffer.from(vr === 'DT' ? `${id}101112` : id, 'latin1');
      scan = 'date';
    } else if (vr === 'TM') {
      id = `101112.9${String(n).padStart(5, '0')}`;
      bytes = Buffer.from(id, 'latin1');
      scan = 'time';
    } else if (vr === 'DS') {
      id = `97531.${n}`;
      bytes = Buffer.from(id, 'latin1');
      scan = 'ds';
    } else if (vr === 'IS') {
      id = `1642${n}`;
      bytes = Buffer.from(id, 'latin1');
      scan = 'is';
    } else if (vr === 'AS') {
      id = `${asSerial++}W`;
      bytes = Buffer.from(id, 'latin1');
      needles.push(bytes);
      scan = 'as';
    } else if (BINARY_VRS.has(vr)) {
      id = `CANARY${n}`;
      bytes = Buffer.from(`${id}B`.padEnd(vr === 'OD' || vr === 'OV' ? 16 : 12, 'B'), 'latin1');
      needles.push(Buffer.from(bytes.subarray(0, 12).toString('base64'), 'latin1'));
      scan = 'binary';
    } else if (vr === 'US' || vr === 'SS') {
      id = `US${n}`;
      bytes = Buffer.alloc(2);
      bytes.writeUInt16LE(40000 + (n % 20000));
      scan = 'none';
    } else if (vr === 'UL' || vr === 'SL' || vr === 'FL' || vr === 'FD' || vr === 'AT' || vr === 'SV' || vr === 'UV') {
      id = `${vr}${n}`;
      bytes = Buffer.alloc(vr === 'FD' || vr === 'SV' || vr === 'UV' ? 8 : 4, 0x5a);
      scan = 'none';
    } else throw new Error(`canary study: no canary for VR ${vr}`);
    canaries.push({ id, vr, scan, needles, ...where });
    return padValue(bytes, vr);
  };

  const el = (tag: number, vr: string, bytes: Buffer): DataElement => ({ tag, vr, value: bytes });
  const plain = (tag: string, vr: string, text: string): DataElement => el(tagNumber(tag), vr, padValue(Buffer.from(text, 'latin1'), vr));

  /**
   * One element per exact row of the table, at `prefix` (a tag path). Sequence rows get one item holding
   * a Code Meaning (kept by the dictionary) and a Referenced SOP Instance UID (U), each a canary.
   */
  const tableElements = (prefix: string, placement: Placement, options: { sequences: boolean; textOnly?: boolean; latin1?: boolean }): Dataset => {
    const out: Dataset = [];
    for (const row of table) {
      if (row.tagKind !== 'exact') continue;
      const group = row.tag.slice(1, 5);
      if (group === '0000' || group === '0002') {
        if (placement === 'top') skipped.push({ row: row.tag, reason: group === '0000' ? 'PS3.7 command element, not a dataset attribute' : 'File Meta (the writer makes its own)' });
        continue;
      }
      const d = dict.get(row.tag);
      if (!d?.vr) {
        if (placement === 'top') skipped.push({ row: row.tag, reason: 'no VR in PS3.6' });
        continue;
      }
      const vr = firstVr(d.vr);
      if (options.textOnly && !TEXT_VRS.has(vr)) continue;
      if (vr === 'UR' && options.latin1) continue;
      const where = { path: `${prefix}${row.tag}`, placement, row: row.tag, keyword: row.keyword, basic: row.basic, options: optionsOf(row) };
      const tag = tagNumber(row.tag);
      if (vr === 'SQ') {
        if (!options.sequences) continue;
        const enclosing = { row: row.tag, basic: row.basic, options: optionsOf(row) };
        const inner = (t: string, innerVr: string): DataElement => {
          const innerRow = table.find((r) => r.tag === t);
          const kw = dict.get(t)?.keyword ?? '';
          return el(tagNumber(t), innerVr, value(innerVr, {
            path: `${prefix}${row.tag}>${t}`,
            placement: 'sequence-item',
            row: t,
            keyword: kw,
            // Code Meaning is not in the table: the safe list keeps it (Note 1).
            basic: innerRow?.basic ?? outsideTableCode(t, innerVr).basic,
            options: innerRow ? optionsOf(innerRow) : {},
            enclosing,
          }));
        };
        out.push({ tag, vr: 'SQ', items: [sorted([inner(CODE_MEANING, 'LO'), inner(REFERENCED_SOP_INSTANCE_UID, 'UI')])] });
        continue;
      }
      out.push(el(tag, vr, value(vr, where, options.latin1)));
    }
    return out;
  };

  // 1. Top level: every exact row.
  const top = tableElements('', 'top', { sequences: true });

  // 1b. Outside the table (Note 1): every PS3.6 data element whose VR can carry identity, one canary each
  //     (a repeating `xx` element nibble as 1); (50xx) and (60xx) ones go to the curve and overlay groups.
  const outsideTable = dictionary.filter((d) => d.part === 'PS3.6' && !tableTags.has(d.tag) && (d.vr ?? '').split(' or ').some((v) => IDENTITY_VRS.has(v)));
  const outsideTableSkipped: { tag: string; reason: string }[] = [];
  const outsideElements = (prefix: string, placement: Placement): Dataset => {
    const out: Dataset = [];
    for (const d of outsideTable) {
      if (d.tag.startsWith('(50xx,') || d.tag.startsWith('(60xx,')) continue; // sections 5 and 6
      if (d.tag.startsWith('(0002,')) {
        if (placement === 'top') outsideTableSkipped.push({ tag: d.tag, reason: 'File Meta (the writer makes its own)' });
        continue;
      }
      const t = d.tag.replace('x', '1');
      const vr = firstVr(d.vr as string);
      out.push(el(tagNumber(t), vr, value(vr, { path: `${prefix}${t}`, placement, row: d.tag, keyword: d.keyword ?? '', ...outsideTableCode(d.tag, vr) })));
    }
    return out;
  };
  top.push(...outsideElements('', 'top'));

  // 2. Depth 3: every exact row again (sequences included) and every attribute of 1b, three kept sequences down.
  const depth3 = tableElements(`${DEPTH_CHAIN.map((t) => `${t}>`).join('')}`, 'depth-3', { sequences: true });
  depth3.push(...outsideElements(`${DEPTH_CHAIN.map((t) => `${t}>`).join('')}`, 'depth-3'));
  let nested: DataElement = { tag: tagNumber(DEPTH_CHAIN[2] as string), vr: 'SQ', items: [sorted(depth3)] };
  nested = { tag: tagNumber(DEPTH_CHAIN[1] as string), vr: 'SQ', items: [[nested]] };
  nested = { tag: tagNumber(DEPTH_CHAIN[0] as string), vr: 'SQ', items: [[nested]] };
  top.push(nested);

  // 3. An item with its own Specific Character Set (PS3.5 6.1.2.3): every text row, Latin-1 canaries.
  const charsetItem = tableElements(`${CHARSET_PARENT}>`, 'charset-item', { sequences: false, textOnly: true, latin1: true });
  charsetItem.push(plain('(0008,0005)', 'CS', 'ISO_IR 100'));
  top.push({ tag: tagNumber(CHARSET_PARENT), vr: 'SQ', items: [sorted(charsetItem)] });

  // 3b. Misencoded VRs in the item of a kept code sequence: the PS3.6 VR counts as well as the encoded one.
  const misencoded = MISENCODED.map(([t, vr]) => {
    const d = dict.get(t) as DictRow;
    return el(tagNumber(t), vr, value(vr, { path: `${MISENCODED_PARENT}>${t}`, placement: 'misencoded', row: t, keyword: d.keyword ?? '', basic: 'X', options: {}, outsideTable: 'removed' }));
  });
  top.push({ tag: tagNumber(MISENCODED_PARENT), vr: 'SQ', items: [sorted(misencoded)] });

  // 4. Private blocks: the first text-VR attribute of Table E.3.10-1 in its block (PS3.5 7.8.1), and an
  //    unsafe block whose creator and values are canaries. Table E.1-1 private row: basic X, Safe Private C.
  const privateRow = table.find((r) => r.tagKind === 'private') as TableRow;
  const safe = safePrivate.find((r) => r.vr !== null && (TEXT_VRS.has(r.vr) || r.vr === 'DS') && r.tag.endsWith('xx00') === false) as SafePrivateRow;
  const safeGroup = safe.tag.slice(1, 5);
  const safeOffset = safe.tag.slice(8, 10);
  top.push(plain(`(${safeGroup},0010)`, 'LO', safe.privateCreator));
  top.push(el(tagNumber(`(${safeGroup},10${safeOffset})`), safe.vr as string, value(safe.vr as string, {
    path: `(${safeGroup},10${safeOffset})`, placement: 'private-safe', row: privateRow.tag, keyword: `${safe.privateCreator} ${safe.tag}`, basic: privateRow.basic, options: optionsOf(privateRow),
  })));
  const unsafeWhere = (t: string) => ({ path: t, placement: 'private-unsafe' as const, row: privateRow.tag, keyword: 'unsafe private', basic: privateRow.basic, options: optionsOf(privateRow) });
  top.push(el(tagNumber('(0009,0010)'), 'LO', value('LO', unsafeWhere('(0009,0010)'))));
  top.push(el(tagNumber('(0009,1001)'), 'LO', value('LO', unsafeWhere('(0009,1001)'))));
  top.push(el(tagNumber('(0009,1002)'), 'OB', value('OB', unsafeWhere('(0009,1002)'))));

  // 5. Overlay group 6000 (PS3.3 C.9.2) with the two (60xx,eeee) rows of the table as canaries.
  for (const row of table.filter((r) => r.tagKind === 'repeating-group' && r.tag.startsWith('(60xx,'))) {
    const t = `(6000,${row.tag.slice(6, 10)})`;
    const vr = firstVr(dict.get(row.tag)?.vr ?? 'OW');
    top.push(el(tagNumber(t), vr, value(vr, { path: t, placement: 'overlay', row: row.tag, keyword: row.keyword, basic: row.basic, options: optionsOf(row) })));
  }
  // Outside the table (Note 1): the (60xx,eeee) text entries, which go with Overlay Data (its row governs them).
  const overlayRow = table.find((r) => r.tag === '(60xx,3000)') as TableRow;
  for (const d of outsideTable.filter((e) => e.tag.startsWith('(60xx,'))) {
    const t = `(6000,${d.tag.slice(6, 10)})`;
    const vr = firstVr(d.vr as string);
    top.push(el(tagNumber(t), vr, value(vr, { path: t, placement: 'overlay', row: overlayRow.tag, keyword: d.keyword ?? '', basic: overlayRow.basic, options: optionsOf(overlayRow), outsideTable: 'removed' })));
  }
  top.push(el(tagNumber('(6000,0010)'), 'US', Buffer.from([16, 0])), el(tagNumber('(6000,0011)'), 'US', Buffer.from([16, 0])));
  top.push(plain('(6000,0040)', 'CS', 'G'), el(tagNumber('(6000,0050)'), 'SS', Buffer.from([1, 0, 1, 0])));
  top.push(el(tagNumber('(6000,0100)'), 'US', Buffer.from([1, 0])), el(tagNumber('(6000,0102)'), 'US', Buffer.from([0, 0])));

  // 6. Curve group 5000 (retired, PS3.3 2004 C.10.2): every PS3.6 (50xx,eeee) text or binary entry.
  const curveRow = table.find((r) => r.tag === '(50xx,xxxx)') as TableRow;
  for (const d of dictionary.filter((e) => e.tag.startsWith('(50xx,') && e.vr !== null)) {
    const vr = firstVr(d.vr as string);
    if (!TEXT_VRS.has(vr) && !BINARY_VRS.has(vr)) continue;
    const t = `(5000,${d.tag.slice(6, 10)})`;
    const outside = outsideTable.includes(d) ? { outsideTable: 'removed' as const } : {}; // (50xx) Note 1 entries: the curve row governs them
    top.push(el(tagNumber(t), vr, value(vr, { path: t, placement: 'curve', row: curveRow.tag, keyword: d.keyword ?? '', basic: curveRow.basic, options: optionsOf(curveRow), ...outside })));
  }

  // 9. Identities inside text (issue 17): Study and Series Description, Protocol Name, Image Comments, an SR
  //    TEXT content item and a graphic annotation text object hold, beside their own canary and clinical
  //    words, the canaries of this dataset's names, IDs, institution and dates in other spellings
  //    (lowercase, with a separator, "15/06/1234": each such form a needle of the canary it comes from),
  //    and identities no attribute holds (telephone, e-mail, a labelled record number: placement 'in-text').
  //    A Clean option keeps the text around them and must remove every one; without one the text goes.
  embedIdentities(top, canaries);

  // 7. The image: a CT-like 16x16 MONOCHROME2 frame (PS3.3 C.7.6.3), values 0..255 (no canary bytes).
  const rows = 16;
  const pixels = Buffer.alloc(rows * rows * 2);
  for (let i = 0; i < rows * rows; i++) pixels.writeUInt16LE(i, i * 2);
  const us = (n: number) => Buffer.from([n & 0xff, n >> 8]);
  top.push(
    plain('(0008,0016)', 'UI', CT_IMAGE_STORAGE),
    plain('(0008,0060)', 'CS', 'CT'),
    el(tagNumber('(0028,0002)'), 'US', us(1)),
    plain('(0028,0004)', 'CS', 'MONOCHROME2'),
    el(tagNumber('(0028,0010)'), 'US', us(rows)),
    el(tagNumber('(0028,0011)'), 'US', us(rows)),
    el(tagNumber('(0028,0100)'), 'US', us(16)),
    el(tagNumber('(0028,0101)'), 'US', us(16)),
    el(tagNumber('(0028,0102)'), 'US', us(15)),
    el(tagNumber('(0028,0103)'), 'US', us(0)),
    el(tagNumber('(7FE0,0010)'), 'OW', pixels),
  );
  // Attributes the image needs that the table also lists keep their canary (e.g. (0008,0018)); drop
  // anything written twice (first wins: the canary).
  const seen = new Set<number>();
  const template = sorted(
    top.filter((e) => {
      if (seen.has(e.tag)) return false;
      seen.add(e.tag);
      return true;
    }),
  );

  // 8. Three instances: A and B in the first series, C in a second one; each its own SOP Instance UID.
  const sopRow = table.find((r) => r.tag === '(0008,0018)') as TableRow;
  const seriesRow = table.find((r) => r.tag === '(0020,000E)') as TableRow;
  const uidCanary = (row: TableRow): string => {
    const bytes = value('UI', { path: row.tag, placement: 'top', row: row.tag, keyword: row.keyword, basic: row.basic, options: optionsOf(row) });
    return bytes.toString('latin1').replace(/\0$/, '');
  };
  const text = (tag: number): string => (template.find((e) => e.tag === tag)?.value ?? Buffer.alloc(0)).toString('latin1').replace(/[\0 ]+$/, '');
  const sopUids = [text(0x00080018), uidCanary(sopRow), uidCanary(sopRow)];
  const seriesUids = [text(0x0020000e), text(0x0020000e), uidCanary(seriesRow)];
  const instances = sopUids.map((sop, i) => {
    const dataset = template.map((e) =>
      e.tag === 0x00080018 ? plain('(0008,0018)', 'UI', sop) : e.tag === 0x0020000e ? plain('(0020,000E)', 'UI', seriesUids[i] as string) : e,
    );
    return Buffer.concat([
      encodeFileMeta({ transferSyntaxUID: EXPLICIT_LE, mediaStorageSOPClassUID: CT_IMAGE_STORAGE, mediaStorageSOPInstanceUID: sop }),
      encodeDataset(dataset, { explicitVr: true, littleEndian: true }),
    ]);
  });
  return { instances, canaries, studyInstanceUID: text(0x0020000d), sopInstanceUIDs: sopUids, skipped, outsideTable: outsideTable.map((d) => d.tag), outsideTableSkipped };
}

/** Section 9 of makeCanaryStudy: canaries of the dataset's own identities embedded in its text. */
function embedIdentities(top: Dataset, canaries: CanaryEntry[]): void {
  const at = (tag: string): DataElement => {
    const found = top.find((e) => e.tag === tagNumber(tag));
    if (found === undefined) throw new Error(`canary study: no top-level ${tag}`);
    return found;
  };
  const text = (tag: string): string => (at(tag).value ?? Buffer.alloc(0)).toString('latin1').replace(/[\0 ]+$/, '');
  const entry = (tag: string): CanaryEntry => {
    const found = canaries.find((c) => c.path === tag && c.placement === 'top');
    if (found === undefined) throw new Error(`canary study: no top-level canary at ${tag}`);
    return found;
  };
  /** `form` of the canary at `tag`, registered as a needle of that canary. */
  const form = (tag: string, written: string): string => {
    (entry(tag).needles as Buffer[]).push(Buffer.from(written, 'latin1'));
    return written;
  };
  /** An identity no attribute holds, found by `needle`. */
  const own = (carrier: string, id: string, written: string, needle: string): string => {
    const c = entry(carrier);
    canaries.push({ id, vr: c.vr, path: c.path, placement: 'in-text', row: c.row, keyword: c.keyword, basic: c.basic, options: c.options, scan: 'text', needles: [Buffer.from(needle, 'latin1')] });
    return written;
  };
  const name = text('(0010,0010)');
  const pid = text('(0010,0020)');
  const birth = text('(0010,0030)'); // yyyy0615
  const study = text('(0008,0020)');
  const [by, sy] = [birth.slice(0, 4), study.slice(0, 4)];
  const set = (tag: string, vr: string, value: string): void => {
    const i = top.findIndex((e) => e.tag === tagNumber(tag));
    top[i] = { tag: tagNumber(tag), vr, value: padValue(Buffer.from(value, 'latin1'), vr) };
  };
  // LO: 64 characters at most.
  set('(0008,1030)', 'LO', `${text('(0008,1030)')} AX T1 ${form('(0010,0010)', name.toLowerCase())} ${form('(0010,0020)', `${pid.slice(0, 6)}-${pid.slice(6)}`)}`);
  set('(0008,103E)', 'LO', `${text('(0008,103E)')} MPRAGE POST ${text('(0008,0050)')} ${text('(0010,1000)')}`);
  set('(0018,1030)', 'LO', `${text('(0018,1030)')} DWI ${text('(0008,0080)')} ${text('(0008,1070)')}`);
  set('(0020,4000)', 'LT', [
    `${text('(0020,4000)')} lesion 12 mm, ${form('(0008,0090)', text('(0008,0090)').toLowerCase())}`,
    `born ${form('(0010,0030)', `15/06/${by}`)}, seen ${form('(0010,0030)', `15 Jun ${by}`)} and ${form('(0008,0020)', `June 15, ${sy}`)}`,
    `tel ${own('(0020,4000)', 'in-text phone', '+44 20 7946 0958', '7946 0958')}, ${own('(0020,4000)', 'in-text e-mail', 'quokka.canary@example.org', 'quokka.canary')}`,
    `${own('(0020,4000)', 'in-text MRN', 'MRN: 7301946', '7301946')}`,
  ].join('\r\n'));
  // An SR TEXT content item (PS3.3 C.17.3) and a graphic annotation text object (C.10.5), each a second
  // item beside the one every sequence row gets.
  const textItem: Dataset = [
    { tag: 0x0040a040, vr: 'CS', value: padValue(Buffer.from('TEXT', 'latin1'), 'CS') },
    { tag: 0x0040a160, vr: 'UT', value: padValue(Buffer.from(`no acute findings; patient ${name} (${pid}), DOB ${form('(0010,0030)', `${by}-06-15`)}, referred by ${text('(0008,0090)')}`, 'latin1'), 'UT') },
  ];
  (at('(0040,A730)').items as Dataset[]).push(textItem);
  const textObject: Dataset = [{ tag: 0x00700006, vr: 'ST', value: padValue(Buffer.from(`arrow: lesion of ${name.toLowerCase()} ${pid}`, 'latin1'), 'ST') }];
  (at('(0070,0001)').items as Dataset[]).push([{ tag: 0x00700008, vr: 'SQ', items: [textObject] }]);
}

// --- finding canaries in bytes ------------------------------------------------------------------

const FAMILIES: readonly RegExp[] = [
  /CANARY\d{5}/g,
  /1\.2\.826\.0\.1\.3680043\.10\.543\.\d{5}/g,
  /(?<!\d)1[2-8]\d\d0615/g,
  /(?<!\d)101112\.9\d{5}/g,
  /(?<!\d)97531\.\d{5}/g,
  /(?<!\d)1642\d{5}/g,
];

/** The canaries whose value occurs in `bytes` (any of the forms described at the top of this file). */
export function findCanaries(bytes: Buffer, canaries: readonly CanaryEntry[]): CanaryEntry[] {
  const byId = new Map<string, CanaryEntry[]>();
  for (const c of canaries) byId.set(c.id, [...(byId.get(c.id) ?? []), c]);
  const text = bytes.toString('latin1');
  const found = new Set<CanaryEntry>();
  for (const re of FAMILIES) {
    for (const m of text.matchAll(re)) for (const c of byId.get(m[0]) ?? []) if (c.scan !== 'as') found.add(c);
  }
  for (const c of canaries) if (!found.has(c) && c.needles.some((n) => bytes.includes(n))) found.add(c);
  return [...found];
}

/**
 * The canaries a profile keeps by design, derived from the table row of each canary (not from the
 * engine): PS3.15 E.1.1 — an option's cell overrides the Basic Profile (C over K when two apply).
 *   - K keeps the value; U, D, Z, X and the compound codes replace or remove it;
 *   - C replaces it, except that Modified Dates keeps times of day (TM: E.3.6 shifts dates only), and C on
 *     text from a Clean option keeps the text but for the dataset's identities (issue 17), so a canary
 *     standing alone in it stays (an embedded identity, placement 'in-text' or a needle, never does);
 *   - the private row is X; Retain Safe Private keeps the attributes of Table E.3.10-1 (safe block);
 *   - inside the item of a listed sequence, the value can only survive when the profile recurses into
 *     that sequence (its code K, C, U or X/Z/U*) and the value's own action keeps it;
 *   - outside the table (Note 1), `basic` holds the rule's code: kept only when safe-listed, or a date
 *     under Full Dates; never when encoded with a VR PS3.6 does not give the attribute.
 */
export function keptByDesign(c: CanaryEntry, options: readonly OptionColumn[]): boolean {
  if (c.placement === 'private-unsafe' || c.placement === 'overlay' || c.placement === 'curve' || c.placement === 'misencoded' || c.placement === 'in-text') return false;
  if (c.placement === 'private-safe') return options.includes('retainSafePrivate');
  if (c.enclosing) {
    const outer = effectiveCode(c.enclosing.basic, c.enclosing.options, options);
    if (!['K', 'C', 'U', 'X/Z/U*'].includes(outer)) return false;
    // PS3.15 E.1.1 (issue 17): a compound code takes X where the sequence is Type 3 in the study's IOD (CT Image).
    // Deeper (the sequence inside another's item) the table gives no Type: today's choice, kept.
    if (outer === 'X/Z/U*' && c.path === `${c.enclosing.row}>${c.row}` && ctImageType(c.enclosing.row) === '3') return false;
  }
  const { code, option } = effectiveRule(c.basic, c.options, options);
  if (code === 'K') return true;
  if (code === 'C' && c.vr === 'TM' && options.includes('retainLongitudinalTemporalModifiedDates') && c.options.retainLongitudinalTemporalModifiedDates === 'C') return true;
  // Issue 17: C on text from a Clean option (or Retain Patient Characteristics) keeps the text and removes
  // the identities in it; a canary on its own is not one of the dataset's identities, so it stays. Text
  // Value (outside the table, C by the gateway's supplement) likewise under Clean Structured Content.
  if (code === 'C' && CLEANED_TEXT_VRS.has(c.vr)) {
    if (option !== undefined && TEXT_CLEANING.includes(option)) return true;
    if (option === undefined && c.row === TEXT_VALUE && options.includes('cleanStructuredContent')) return true;
  }
  return false;
}

const CLEANED_TEXT_VRS = new Set(['LO', 'SH', 'ST', 'LT', 'UT', 'UC']);

/** A top-level attribute's Type in the CT Image IOD (dicom3tools' tables, as generated), '.' when not in it. */
function ctImageType(row: string): string {
  const ct = IODS.findIndex(([, sopClasses]) => sopClasses.split(' ').includes(CT_IMAGE_STORAGE));
  const hex = row.replace(/[(),]/g, '').toUpperCase();
  return IOD_TYPES.find(([path]) => path === hex)?.[1][ct] ?? '.';
}
const TEXT_CLEANING: readonly OptionColumn[] = ['cleanDescriptors', 'cleanStructuredContent', 'cleanGraphics', 'retainPatientCharacteristics'];

function effectiveCode(basic: string, cells: Readonly<Partial<Record<OptionColumn, 'K' | 'C'>>>, options: readonly OptionColumn[]): string {
  return effectiveRule(basic, cells, options).code;
}

/** The code in effect and the option it comes from (none: the Basic Profile). */
function effectiveRule(basic: string, cells: Readonly<Partial<Record<OptionColumn, 'K' | 'C'>>>, options: readonly OptionColumn[]): { code: string; option: OptionColumn | undefined } {
  let code = basic;
  let option: OptionColumn | undefined;
  for (const o of OPTION_COLUMNS) {
    const cell = cells[o];
    if (!options.includes(o) || cell === undefined) continue;
    if (option === undefined || (cell === 'C' && code === 'K')) {
      code = cell;
      option = o;
    }
  }
  return { code, option };
}

/** `CANARY…` at `(0010,0010)` style lines for assertion messages. */
export function describeCanaries(list: readonly CanaryEntry[], max = 40): string {
  const lines = list.slice(0, max).map((c) => `${c.id} ${c.vr} ${c.path} [${c.placement}, row ${c.row} ${c.basic}]`);
  return lines.join('\n') + (list.length > max ? `\n… ${list.length - max} more` : '');
}

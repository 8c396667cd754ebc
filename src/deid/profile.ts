// The de-identification profile: PS3.15 Annex E Basic Application Level Confidentiality Profile plus
// any subset of its ten options, compiled from Table E.1-1 (generated, see profile-table.generated.ts)
// into a per-tag lookup, with per-tag overrides from config on top.
import { lookup, tagForKeyword } from '../dicom/dictionary.ts';
import { elementOf, formatTag, groupOf, isPrivate, parseTag, privateCreatorTagFor, tagToHex } from '../dicom/tag.ts';
import { TAG } from '../dicom/tags.ts';
import { DeidPolicyError } from './errors.ts';
import { IDENTITY_VRS, identitySafeEntry } from './identity-safe-list.ts';
import { DUMMY_ITEMS, IODS, IOD_TYPES, NO_DUMMY_ITEM } from './iod-table.generated.ts';
import { SAFE_PRIVATE_ATTRIBUTES, TABLE_E1_1, TABLE_E1_1_OPTION_COLUMNS } from './profile-table.generated.ts';

/** The ten option names, as PS3.15 Table E.1-1 columns and dcm4chee name them. */
export const PROFILE_OPTIONS = TABLE_E1_1_OPTION_COLUMNS;
export type ProfileOption = (typeof PROFILE_OPTIONS)[number];
export type ProfileOptions = Readonly<Partial<Record<ProfileOption, boolean>>>;

/** PS3.15 Table E.1-1a action codes as printed in the table. */
export type TableCode = 'X' | 'Z' | 'D' | 'K' | 'C' | 'U' | 'Z/D' | 'X/Z' | 'X/D' | 'X/Z/D' | 'X/Z/U*';
/** An action after compound codes are resolved. */
export type ActionCode = 'X' | 'Z' | 'D' | 'K' | 'C' | 'U';

/** Per-tag override from config: `keep | remove | empty | replace:<value> | hash`. */
export type OverrideAction =
  | { readonly kind: 'keep' }
  | { readonly kind: 'remove' }
  | { readonly kind: 'empty' }
  | { readonly kind: 'replace'; readonly value: string }
  | { readonly kind: 'hash' };

type RuleSource =
  | 'basic'
  | ProfileOption
  | 'override'
  | 'supplement'
  | 'dictionary'
  | 'unknown';

/**
 * What the profile does to one tag. `replace`/`hash` only come from overrides. `iodType`: the attribute's
 * Type code in the instance's IOD (iod-table.generated.ts) when it chose the action; `dummyItem`: the
 * DUMMY_ITEMS index of the item a sequence replaced by D gets.
 */
export type TagRule =
  | { readonly action: ActionCode; readonly source: RuleSource; readonly tableCode?: TableCode; readonly iodType?: string; readonly dummyItem?: number }
  | { readonly action: 'replace'; readonly value: string; readonly source: 'override'; readonly tableCode?: TableCode }
  | { readonly action: 'hash'; readonly source: 'override'; readonly tableCode?: TableCode };

/**
 * PS3.15 E.1.1, Table E.1-1a: a compound code's choice "depends on the type of the attribute in the IOD".
 * `type` is the attribute's Type code in the instance's IOD (iod-table.generated.ts: 1, 2, 3; A/a = 1C,
 * B/b = 2C). The choice:
 *   1. Type 3: X where the code allows it (Z/D: Z);
 *   2. Type 2 or 2C: Z (present, zero length; X/D has no Z: D);
 *   3. Type 1 or 1C: D (X/Z: Z);
 *   4. X/Z/U* (references to other instances) where Type 1, 1C, 2 or 2C: U, the items kept with their
 *      instance UIDs replaced. E.1-1a allows U where it "is required to be consistent with the IOD": a
 *      Type 2 reference emptied would leave a Common Instance Reference Module (PS3.3 C.12.2) naming
 *      instances the object no longer references (dciodvfy: "ReferencedSeriesSequence present but
 *      Instance does not reference Instances", e.g. Source Image Sequence in a Segmentation's
 *      Derivation Image Sequence).
 * 1C and 2C count as required: a condition the table cannot decide from the attribute alone is taken to
 * hold (keeping the attribute present is never a leak, as its value goes). No type (an unknown SOP Class,
 * or an attribute the IOD does not have): the alternative that keeps a dataset valid whatever the Type
 * (Type 1 > Type 2 > Type 3): X/Z -> Z, X/D -> D, X/Z/D -> D, Z/D -> D, X/Z/U* -> U.
 * Keeping an attribute present never keeps its original value: Z empties it, D replaces it with a
 * dummy of the VR (or a keyed pseudonym for PatientID etc., see deidentify.ts), U with a keyed UID.
 */
export function resolveCompoundCode(code: TableCode, type?: string): ActionCode {
  const need = type === undefined ? 1 : type === '3' ? 3 : '2Bb'.includes(type) ? 2 : 1;
  switch (code) {
    case 'X/Z':
      return need === 3 ? 'X' : 'Z';
    case 'X/D':
      return need === 3 ? 'X' : 'D';
    case 'Z/D':
      return need === 1 ? 'D' : 'Z';
    case 'X/Z/D':
      return need === 3 ? 'X' : need === 2 ? 'Z' : 'D';
    case 'X/Z/U*':
      return need === 3 ? 'X' : 'U';
    default:
      return code;
  }
}

// --- the instance's IOD (PS3.15 E.1.1; iod-table.generated.ts, from dicom3tools) ------------------

const iodBySopClass = new Map<string, number>();
IODS.forEach(([, uids], index) => {
  for (const uid of uids.split(' ')) if (uid !== '' && !iodBySopClass.has(uid)) iodBySopClass.set(uid, index);
});
/** One row of IOD_TYPES, with the rules ruleInIod made from it (per input rule, per IOD and SQ or not). */
interface IodRow {
  readonly types: string;
  readonly dummies: readonly string[];
  readonly made: WeakMap<TagRule, TagRule[]>;
}
const iodTypes = new Map<string, IodRow>(); // by path, `ggggeeee>ggggeeee`
const iodTopLevel = new Map<number, IodRow>(); // the rows of top-level attributes, by tag: no key to build
const iodLeaves = new Set<number>();
for (const [path, types, dummies] of IOD_TYPES) {
  const row: IodRow = { types, dummies: dummies.split(' '), made: new WeakMap() };
  iodTypes.set(path, row);
  const tag = Number.parseInt(path.slice(-8), 16);
  iodLeaves.add(tag);
  if (path.length === 8) iodTopLevel.set(tag, row);
}

/** The IOD (an index into IODS) of a SOP Class UID; undefined for a SOP Class the tables do not know. */
export function iodOfSopClass(sopClassUid: string | undefined): number | undefined {
  return sopClassUid === undefined ? undefined : iodBySopClass.get(sopClassUid.replace(/[\0 ]+$/, '').trim());
}

/** The SOP Class UIDs of an IOD. */
export function sopClassesOfIod(iod: number): readonly string[] {
  return (IODS[iod]?.[1] ?? '').split(' ').filter((uid) => uid !== '');
}

/** The Type codes (one per IOD, see IOD_TYPES) of the attribute at a path of iodTablePaths. */
export function iodTypeCodes(path: string): string {
  return iodTypes.get(path)?.types ?? '';
}

/** The IOD's name, e.g. CTImage. */
export function iodName(iod: number): string {
  return IODS[iod]?.[0] ?? '';
}

/** The number of IODs the table knows. */
export const IOD_COUNT = IODS.length;

/** One attribute of a dummy item; see DUMMY_ITEMS. */
export type DummyAttribute = (typeof DUMMY_ITEMS)[number][number];

/** The attributes of a dummy item (DUMMY_ITEMS). */
export function dummyItemTemplate(index: number): readonly DummyAttribute[] {
  return DUMMY_ITEMS[index] ?? [];
}

/** Sequences D empties rather than giving a dummy item, with the reason (conformance statement). */
export const SEQUENCES_WITHOUT_DUMMY_ITEM: ReadonlyMap<string, string> = new Map(NO_DUMMY_ITEM);

/** The tag paths the IOD table has a Type for, as `ggggeeee>ggggeeee` (conformance statement). */
export function iodTablePaths(): IterableIterator<string> {
  return iodTypes.keys();
}

const TYPE_NAMES: Readonly<Record<string, string>> = { '1': '1', '2': '2', '3': '3', A: '1C', a: '1C', B: '2C', b: '2C' };

/** A Type code of the IOD table as PS3.3 prints it (1, 1C, 2, 2C, 3). */
export function typeName(code: string): string {
  return TYPE_NAMES[code] ?? '';
}

const TABLE_CODES = new Set<string>(['X', 'Z', 'D', 'K', 'C', 'U', 'Z/D', 'X/Z', 'X/D', 'X/Z/D', 'X/Z/U*']);

export interface TableEntry {
  readonly tag: string;
  readonly keyword: string;
  readonly basic: TableCode;
  /** Option cells in PROFILE_OPTIONS order; undefined = empty cell. */
  readonly options: readonly ('K' | 'C' | undefined)[];
}

function toEntry(row: (typeof TABLE_E1_1)[number]): TableEntry {
  const [tag, , basic, cells, keyword] = row;
  if (!TABLE_CODES.has(basic)) throw new Error(`profile table: bad code at ${tag}`);
  const options = [...cells].map((c) => (c === 'K' || c === 'C' ? c : undefined));
  return { tag, keyword, basic: basic as TableCode, options };
}

const exactEntries = new Map<number, TableEntry>();
let curveEntry: TableEntry | undefined;
const overlayEntries = new Map<number, TableEntry>(); // by element: (60xx,3000), (60xx,4000)
let privateEntry: TableEntry | undefined;
for (const row of TABLE_E1_1) {
  const entry = toEntry(row);
  if (row[1] === 'exact') {
    const tag = parseTag(entry.tag);
    if (tag === undefined) throw new Error(`profile table: bad tag ${entry.tag}`);
    exactEntries.set(tag, entry);
  } else if (row[1] === 'private') {
    privateEntry = entry;
  } else if (entry.tag === '(50xx,xxxx)') {
    curveEntry = entry;
  } else if (entry.tag.startsWith('(60xx,')) {
    overlayEntries.set(Number.parseInt(entry.tag.slice(6, 10), 16), entry);
  } else {
    throw new Error(`profile table: unhandled repeating-group row ${entry.tag}`);
  }
}
if (curveEntry === undefined || privateEntry === undefined || overlayEntries.size !== 2) {
  throw new Error('profile table: repeating-group or private rows missing');
}
const CURVE_ENTRY: TableEntry = curveEntry;
const PRIVATE_ENTRY: TableEntry = privateEntry;

/** PS3.5 7.6: repeating groups are the even groups base..base+0x1E (curves 50xx, overlays 60xx). */
function isRepeatingGroup(group: number, base: number): boolean {
  return (group & 0xff00) === base && (group & 1) === 0 && (group & 0xff) <= 0x1e;
}

/** The Table E.1-1 row that applies to a public or private tag, if any. */
export function tableEntryFor(tag: number): TableEntry | undefined {
  const group = groupOf(tag);
  if (isPrivate(tag)) return PRIVATE_ENTRY;
  const exact = exactEntries.get(tag);
  if (exact !== undefined) return exact;
  if (isRepeatingGroup(group, 0x5000)) return CURVE_ENTRY;
  if (isRepeatingGroup(group, 0x6000)) return overlayEntries.get(elementOf(tag));
  return undefined;
}

// Attributes the table does not list but that must not pass through (Table E.1-1 is not exhaustive,
// Note 1). Each is removed:
export const SUPPLEMENT_REMOVE: ReadonlyMap<number, string> = new Map<number, string>([
  // MAC Parameters Sequence: the MACs are computed over the original values and only serve the
  // Digital Signatures Sequence, which the table removes (PS3.15 E.1.1 Note 8; PS3.15 C.12).
  [TAG.MACParametersSequence, 'MACParametersSequence'],
  // Encrypted Attributes Sequence: holds the original identifying attributes, encrypted for a
  // re-identifying recipient (PS3.15 E.1.2); we never forward one made by somebody else.
  [TAG.EncryptedAttributesSequence, 'EncryptedAttributesSequence'],
  // Referenced File ID (DICOMDIR records, PS3.3 F.3.2.2): the components of a file's path on the
  // medium, which media creators commonly name after the Patient ID or name (PS3.10 8.5: any
  // 1-8 character CS). The de-identified files do not live at the original paths anyway.
  [TAG.ReferencedFileID, 'ReferencedFileID'],
  // Locators (UR, PS3.5 6.2) of the original object, its storage or its host. A Retrieve URL or
  // Retrieve URI names the PACS's host and the original Study/Series/SOP Instance UIDs in its path, at
  // the top level (a QIDO-RS result, PS3.18 10.6.3) and inside the hierarchical references of other
  // objects (PS3.3 Section 10, e.g. a Key Object Selection's evidence); the others locate the original's
  // storage, file or pixel data provider, or a network peer (File Meta, PS3.10 7.1). A de-identified
  // copy is at none of these places and the gateway does not map such URLs, so they are removed in every
  // representation alike (Part 10, metadata, QIDO). The gateway gives QIDO results its own Retrieve URL,
  // built from pseudonymous UIDs (dicomweb/qido.ts). Table E.1-1 lists Display URI (0040,E012) itself
  // (X); any other UR attribute outside the table goes by its VR (outsideTableRule: removed), except URN
  // Code Value, which names a code and locates nothing (identity-safe-list.ts).
  [TAG.RetrieveURL, 'RetrieveURL'],
  [TAG.RetrieveURI, 'RetrieveURI'],
  [TAG.StorageURL, 'StorageURL'],
  [TAG.PixelDataProviderURL, 'PixelDataProviderURL'],
  [TAG.StoredInstanceBaseURI, 'StoredInstanceBaseURI'],
  [TAG.FolderAccessURI, 'FolderAccessURI'],
  [TAG.FileAccessURI, 'FileAccessURI'],
  [TAG.SourcePresentationAddress, 'SourcePresentationAddress'],
  [TAG.SendingPresentationAddress, 'SendingPresentationAddress'],
  [TAG.ReceivingPresentationAddress, 'ReceivingPresentationAddress'],
]);

// Free text the table does not list but that Clean Structured Content must reach: Text Value of SR
// content items (TEXT) is cleaned (C; PS3.15 E.3.5). Without the option, Content Sequence is D and
// never recursed into, so this only matters inside sequences that are kept or cleaned.
export const SUPPLEMENT_CLEAN: ReadonlyMap<number, string> = new Map<number, string>([[TAG.TextValue, 'TextValue']]);

// --- the PS3.6 dictionary (src/dicom's), the default "known tag?" test ------------------------

/** True when the tag is a PS3.6 data element or PS3.7 command element (repeating groups included). */
export function isStandardTag(tag: number): boolean {
  return !isPrivate(tag) && lookup(tag) !== undefined;
}

/** True when PS3.6 gives the tag the VR SQ (used to refuse keeping an SQ encoded as UN unparsed). */
export function isStandardSequenceTag(tag: number): boolean {
  return !isPrivate(tag) && (lookup(tag)?.vrs.includes('SQ') ?? false);
}

// --- safe private attributes (PS3.15 E.3.10) -------------------------------------------------

function creatorKey(group: number, creator: string): string {
  return `${group.toString(16).toUpperCase().padStart(4, '0')}|${creator}`;
}

const safePrivate = new Map<string, string>(); // `${group}|${creator}|${offset}` -> VR ('' unknown)
const safeCreators = new Set<string>();
for (const [group, offset, creator, vr] of SAFE_PRIVATE_ATTRIBUTES) {
  const key = creatorKey(Number.parseInt(group, 16), creator);
  safeCreators.add(key);
  safePrivate.set(`${key}|${offset}`, vr);
}

/** Private creator strings are LO: compare without their padding (PS3.5 6.2). */
export function normalizeCreator(creator: string): string {
  return creator.replace(/^[ \0]+|[ \0]+$/g, '');
}

/**
 * The creators of one dataset level, for both representations: each private data element's block
 * (gggg,xx00-xxFF) is reserved by (gggg,00xx) of the same level (PS3.5 7.8.1). `read` gives that
 * creator element's text (undefined: absent or not text); each is read and normalized once per block.
 * The lookup answers undefined for any other element, and for a block without a creator.
 */
export function privateCreatorLookup(read: (creatorTag: number) => string | undefined): (tag: number) => string | undefined {
  const byCreatorTag = new Map<number, string | undefined>();
  return (tag) => {
    const creatorTag = privateCreatorTagFor(tag);
    if (creatorTag === undefined) return undefined;
    if (!byCreatorTag.has(creatorTag)) {
      const creator = read(creatorTag);
      byCreatorTag.set(creatorTag, creator === undefined ? undefined : normalizeCreator(creator));
    }
    return byCreatorTag.get(creatorTag);
  };
}

// --- overrides ----------------------------------------------------------------------------------

/** Parses `keep | remove | empty | replace:<value> | hash`; undefined when it is none of them. */
function parseOverride(spec: string): OverrideAction | undefined {
  if (spec === 'keep' || spec === 'remove' || spec === 'empty' || spec === 'hash') return { kind: spec };
  if (spec.startsWith('replace:')) return { kind: 'replace', value: spec.slice('replace:'.length) };
  return undefined;
}

const tableKeywords = new Map<string, number>();
for (const [tag, entry] of exactEntries) if (entry.keyword !== '') tableKeywords.set(entry.keyword, tag);

export interface ProfileInput {
  readonly options?: ProfileOptions;
  /** Key: `(gggg,eeee)`, `ggggeeee` or a keyword (Table E.1-1 keywords, or via resolveKeyword). */
  readonly overrides?: Readonly<Record<string, string>>;
  /** "Is this a standard attribute?" Defaults to the PS3.6 dictionary generated into this module. */
  readonly isKnownTag?: (tag: number) => boolean;
  /** Keyword -> tag for override keys. Defaults to the PS3.6 dictionary of src/dicom. */
  readonly resolveKeyword?: (keyword: string) => number | undefined;
}

/** Every problem with a profile input, each naming its key; empty when the input is valid. */
export function checkProfileInput(input: ProfileInput, prefix = ''): { issues: string[]; overrides: Map<number, OverrideAction> } {
  const issues: string[] = [];
  const overrides = new Map<number, OverrideAction>();
  const known = new Set<string>(PROFILE_OPTIONS);
  for (const [key, value] of Object.entries(input.options ?? {})) {
    if (!known.has(key)) issues.push(`${prefix}options.${key}: not a PS3.15 option`);
    else if (typeof value !== 'boolean' && value !== undefined) issues.push(`${prefix}options.${key}: must be a boolean`);
  }
  if (input.options?.retainLongitudinalTemporalFullDates === true && input.options.retainLongitudinalTemporalModifiedDates === true) {
    issues.push(`${prefix}options: retainLongitudinalTemporalFullDates and retainLongitudinalTemporalModifiedDates exclude each other`);
  }
  for (const [key, spec] of Object.entries(input.overrides ?? {})) {
    const tag = parseTag(key) ?? tableKeywords.get(key) ?? (input.resolveKeyword ?? tagForKeyword)(key);
    const action = typeof spec === 'string' ? parseOverride(spec) : undefined;
    if (tag === undefined) issues.push(`${prefix}overrides.${key}: not a tag or known keyword`);
    else if (isPrivate(tag)) issues.push(`${prefix}overrides.${key}: private tags cannot be overridden (block numbers vary)`);
    if (action === undefined) issues.push(`${prefix}overrides.${key}: expected keep | remove | empty | replace:<value> | hash`);
    else if (action.kind === 'replace' && /[\\\0]/.test(action.value)) issues.push(`${prefix}overrides.${key}: replacement contains a backslash or NUL`);
    if (tag !== undefined && action !== undefined) {
      if (overrides.has(tag)) issues.push(`${prefix}overrides.${key}: ${formatTag(tag)} is overridden twice`);
      overrides.set(tag, action);
    }
  }
  return { issues, overrides };
}

const OUTSIDE_TABLE_KEEP = Object.freeze({ action: 'K', source: 'dictionary' } as const);

/** The compiled profile: options resolved against Table E.1-1 into a per-tag lookup. Immutable. */
export class CompiledProfile {
  readonly options: Readonly<Record<ProfileOption, boolean>>;
  readonly overrides: ReadonlyMap<number, OverrideAction>;
  readonly #isKnownTag: (tag: number) => boolean;
  readonly #cache = new Map<number, TagRule>();

  constructor(input: ProfileInput) {
    const { issues, overrides } = checkProfileInput(input);
    if (issues.length > 0) throw new DeidPolicyError(issues);
    const options = {} as Record<ProfileOption, boolean>;
    for (const name of PROFILE_OPTIONS) options[name] = input.options?.[name] === true;
    this.options = Object.freeze(options);
    this.overrides = overrides;
    this.#isKnownTag = input.isKnownTag ?? isStandardTag;
    Object.freeze(this);
  }

  /**
   * PS3.15 E.1.1: `rule` (ruleFor, or outsideTableRule for the element) made for one element of an instance
   * of IOD `iod` (iodOfSopClass), at `ref.path` (the enclosing sequences' tags). The attribute's Type there
   * decides:
   *   1. a compound code of the Basic Profile: resolveCompoundCode with that Type;
   *   2. D on a sequence: removed (X) where Type 3, else replaced by one dummy item that satisfies the
   *      item's macro (DUMMY_ITEMS; none is made for SEQUENCES_WITHOUT_DUMMY_ITEM: zero items);
   *   3. an attribute outside Table E.1-1 that its VR removes or empties (Note 1, outsideTableRule): D
   *      where Type 1, Z where Type 2 (and 1C / 2C whose condition holds whenever it is present), so the
   *      IOD stays valid; the original value goes either way.
   * Options and overrides are not touched (an option's K or C, an override's action stand), nor is any
   * rule when the IOD is unknown or does not have the attribute at that path: the rule stands.
   */
  ruleInIod(rule: TagRule, ref: { readonly tag: number; readonly vr: string; readonly path: readonly number[] }, iod: number | undefined): TagRule {
    if (iod === undefined) return rule;
    // Cheapest tests first: most elements are kept outside the table or have a simple code.
    const code = rule.tableCode;
    const basic = rule.source === 'basic' && code !== undefined && (code.length > 1 || code === 'D');
    const outside = rule.source === 'dictionary' && (rule.action === 'X' || rule.action === 'Z');
    if ((!basic && !outside) || !iodLeaves.has(ref.tag)) return rule;
    const row = ref.path.length === 0 ? iodTopLevel.get(ref.tag) : iodTypes.get(`${ref.path.map(tagToHex).join('>')}>${tagToHex(ref.tag)}`);
    const type = row?.types[iod];
    if (row === undefined || type === undefined || type === '.') return rule;
    let made = row.made.get(rule);
    if (made === undefined) {
      made = [];
      row.made.set(rule, made);
    }
    const slot = ref.vr === 'SQ' ? 2 * iod + 1 : 2 * iod;
    const hit = made[slot];
    if (hit !== undefined) return hit;
    let out: TagRule = rule;
    if (basic && code?.includes('/')) {
      out = { action: resolveCompoundCode(code as TableCode, type), source: rule.source, tableCode: code, iodType: type };
    } else if (basic && code === 'D' && rule.action === 'D') {
      out = { action: type === '3' ? 'X' : 'D', source: rule.source, tableCode: code, iodType: type };
    } else if (outside && '12ab'.includes(type)) {
      out = { action: '1a'.includes(type) ? 'D' : 'Z', source: rule.source, iodType: type };
    }
    if (out !== rule && out.action === 'D' && ref.vr === 'SQ') {
      const index = row.dummies.length === 1 ? row.dummies[0] : row.dummies[iod];
      if (index !== undefined && index !== '') out = { ...out, dummyItem: Number(index) };
    }
    made[slot] = out;
    return out;
  }

  /**
   * The rule for a tag (public, repeating-group or private), overrides included. For private tags
   * this is the table's private row only; the Retain Safe Private matching is `safePrivateVr`.
   */
  ruleFor(tag: number): TagRule {
    const cached = this.#cache.get(tag);
    if (cached !== undefined) return cached;
    const override = this.overrides.get(tag);
    const base = this.ruleWithoutOverride(tag);
    let rule: TagRule = base;
    if (override !== undefined) {
      const tableCode = base.tableCode;
      const extra = tableCode === undefined ? {} : { tableCode };
      switch (override.kind) {
        case 'keep':
          rule = { action: 'K', source: 'override', ...extra };
          break;
        case 'remove':
          rule = { action: 'X', source: 'override', ...extra };
          break;
        case 'empty':
          rule = { action: 'Z', source: 'override', ...extra };
          break;
        case 'replace':
          rule = { action: 'replace', value: override.value, source: 'override', ...extra };
          break;
        case 'hash':
          rule = { action: 'hash', source: 'override', ...extra };
          break;
      }
    }
    // Only tags we have a reason to know are cached, so hostile input cannot grow the cache.
    if (base.source !== 'unknown' || override !== undefined) this.#cache.set(tag, rule);
    return rule;
  }

  /** The profile's rule before config overrides (used to warn about overrides that keep). */
  ruleWithoutOverride(tag: number): TagRule & { action: ActionCode } {
    // PS3.3 C.9.2: Overlay Data is Type 1 in the Overlay Plane Module. When the profile removes it, the
    // rest of its repeating group would describe an overlay that is no longer there (an invalid IOD),
    // so the whole group (60xx,eeee) goes with it. C (Clean Graphics) removes it too: a bitmap cannot
    // be cleaned of burned-in text here, so C on a binary value is removal (deidentify.ts #clean).
    const overlayData = isRepeatingGroup(groupOf(tag), 0x6000) && elementOf(tag) !== 0x3000 ? this.ruleWithoutOverride(TAG.OverlayData).action : undefined;
    if (overlayData === 'X' || overlayData === 'C') {
      return { action: 'X', source: 'supplement' };
    }
    const entry = tableEntryFor(tag);
    if (entry !== undefined) {
      // PS3.15 E.1.1: "A requirement for an Option, when implemented, overrides any requirement for the
      // underlying Profile". When two options in effect both have a cell for the row (e.g. Retain
      // Device Identity K and Modified Dates C on DateOfLastDetectorCalibration), C wins over K: the
      // value is cleaned rather than kept, the more protective of the two.
      let code: TableCode = entry.basic;
      let source: RuleSource = 'basic';
      for (let i = 0; i < PROFILE_OPTIONS.length; i++) {
        const name = PROFILE_OPTIONS[i]!;
        const cell = entry.options[i];
        if (!this.options[name] || cell === undefined) continue;
        if (source === 'basic' || (cell === 'C' && code === 'K')) {
          code = cell;
          source = name;
        }
      }
      return { action: resolveCompoundCode(code), source, tableCode: entry.basic };
    }
    if (SUPPLEMENT_REMOVE.has(tag)) return { action: 'X', source: 'supplement' };
    if (SUPPLEMENT_CLEAN.has(tag)) return { action: 'C', source: 'supplement' };
    // Table E.1-1 Note 1: the table is not exhaustive. A standard attribute it does not list goes by its
    // VR (outsideTableRule); one in no dictionary is removed.
    if (this.#isKnownTag(tag)) return this.outsideTableRule(tag);
    return { action: 'X', source: 'unknown' };
  }

  /**
   * PS3.15 E.1.1, Table E.1-1 Note 1: the table is not exhaustive, so a standard attribute it does not
   * list is judged by the VRs it may have: PS3.6's, plus `encodedVr`, the VR of the element at hand (a
   * misencoded VR must not let a value through). Steps:
   *   1. On the reviewed safe list (identity-safe-list.ts), or no VR that can carry identity: K.
   *   2. Dates only (DA, DT; Note 4 lets dates be treated by VR): with Modified Dates C, shifted with all
   *      the patient's other dates (E.3.6); with Full Dates K; otherwise X.
   *   3. A person name (PN): Z, emptied (a Type 2 name stays present).
   *   4. Anything else that can carry identity (LO SH ST LT UT UC UR AE …): X.
   * Option columns are not extended to attributes outside the table: Retain Device Identity keeps what
   * its column names, not Device ID (0018,1003) (see identity-safe-list.ts).
   */
  outsideTableRule(tag: number, encodedVr?: string): TagRule & { action: ActionCode } {
    if (identitySafeEntry(tag) !== undefined) return OUTSIDE_TABLE_KEEP; // first: decide asks per element
    const vrs = new Set(isPrivate(tag) ? [] : (lookup(tag)?.vrs ?? []));
    if (encodedVr !== undefined) vrs.add(encodedVr);
    const identity = [...vrs].filter((vr) => IDENTITY_VRS.has(vr));
    if (identity.length === 0) return OUTSIDE_TABLE_KEEP;
    if (identity.every((vr) => vr === 'DA' || vr === 'DT')) {
      if (this.options.retainLongitudinalTemporalModifiedDates) return { action: 'C', source: 'retainLongitudinalTemporalModifiedDates' };
      if (this.options.retainLongitudinalTemporalFullDates) return { action: 'K', source: 'retainLongitudinalTemporalFullDates' };
      return { action: 'X', source: 'dictionary' };
    }
    if (identity.includes('PN')) return { action: 'Z', source: 'dictionary' };
    return { action: 'X', source: 'dictionary' };
  }

  /**
   * PS3.15 E.3.10 Retain Safe Private: the VR ('' when the standard gives none) of the Table
   * E.3.10-1 attribute at this element offset (element low byte) in a block reserved by `creator`
   * in `group`; undefined when the attribute is not on the list.
   */
  safePrivateVr(group: number, creator: string, offset: number): string | undefined {
    const hex = offset.toString(16).toUpperCase().padStart(2, '0');
    return safePrivate.get(`${creatorKey(group, normalizeCreator(creator))}|${hex}`);
  }

  /** True when `creator` reserves a block in `group` under which Table E.3.10-1 lists attributes. */
  isSafePrivateCreator(group: number, creator: string): boolean {
    return safeCreators.has(creatorKey(group, normalizeCreator(creator)));
  }
}

export function compileProfile(input: ProfileInput = {}): CompiledProfile {
  return new CompiledProfile(input);
}

export interface KeepingOverride {
  /** `(gggg,eeee)` */
  readonly tag: string;
  readonly keyword: string | undefined;
  /** The Basic Profile code of Table E.1-1, undefined for attributes the table does not list. */
  readonly basic: TableCode | undefined;
  /** What the profile (Basic + options in effect) would have done without the override. */
  readonly profileAction: ActionCode;
}

/**
 * `keep` overrides on attributes whose original value the Basic Profile removes or replaces (any
 * resolved action but K; for attributes outside Table E.1-1, outsideTableRule: unknown tags and
 * identity-capable VRs off the safe list are removed). Reported even when an option in effect would
 * keep it too (`profileAction` says so); the caller logs each at start-up as a warning naming the tag.
 */
export function overridesKeepingBasicRemoved(profile: CompiledProfile): KeepingOverride[] {
  const out: KeepingOverride[] = [];
  for (const [tag, override] of profile.overrides) {
    if (override.kind !== 'keep') continue;
    const base = profile.ruleWithoutOverride(tag);
    const entry = tableEntryFor(tag);
    const basicAction = entry !== undefined ? resolveCompoundCode(entry.basic) : base.action;
    if (basicAction === 'K') continue;
    out.push({
      tag: formatTag(tag),
      keyword: entry?.keyword || SUPPLEMENT_REMOVE.get(tag) || SUPPLEMENT_CLEAN.get(tag) || undefined,
      basic: entry?.basic,
      profileAction: base.action,
    });
  }
  return out;
}

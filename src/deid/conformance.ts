// What a policy does per attribute, for the conformance statement (PS3.15 E.3.10 asks that retained
// private attributes be listed; the rest documents the profile). Derived by asking the real decision
// function about a sample value, so the listing cannot drift from what `decide` does.
import { createSession } from './deidentify.ts';
import { IDENTITY_SAFE_LIST, IDENTITY_VRS, SAFE_CATEGORIES, type SafeCategory } from './identity-safe-list.ts';
import type { DeidPolicy, Decision } from './deidentify.ts';
import type { PixelPolicyDescription } from './pixel-policy.ts';
import { SAFE_PRIVATE_ATTRIBUTES, TABLE_E1_1 } from './profile-table.generated.ts';
import { lookup } from '../dicom/dictionary.ts';
import { IOD_COUNT, PROFILE_OPTIONS, SEQUENCES_WITHOUT_DUMMY_ITEM, SUPPLEMENT_CLEAN, SUPPLEMENT_REMOVE, iodName, iodOfSopClass, iodTablePaths, iodTypeCodes, sopClassesOfIod, tableEntryFor, typeName } from './profile.ts';
import type { ProfileOption } from './profile.ts';
import { formatTag, parseTag, tagToHex } from '../dicom/tag.ts';
import { TEXT_CLEANING_KEEPS, TEXT_CLEANING_REMOVES, TEXT_CLEANING_WHERE, jsonIdentitySource } from './text-clean.ts';
import { TAG } from '../dicom/tags.ts';

export interface ConformanceRow {
  /** As printed in Table E.1-1, e.g. `(0010,0010)`, `(60xx,3000)`. */
  readonly tag: string;
  readonly keyword: string;
  readonly vr: string;
  /** The Basic Profile code of Table E.1-1. */
  readonly basic: string;
  /** Resolved action and where it came from (basic, an option, an override). */
  readonly action: string;
  readonly source: string;
  /** What happens to a value: keep, remove, empty, dummy "…", keyed UID, keyed pseudonym, date shift, clean items. */
  readonly effect: string;
  /** The effect in one word, for the statement's grouping. */
  readonly category: Category;
}

/**
 * removed: the attribute is gone; emptied: present with zero length; replaced: a dummy, keyed UID or
 * keyed pseudonym in place of the value; cleaned: a value of similar meaning (dates shifted) or a
 * sequence whose items go through the profile; kept: the original value.
 */
export const CATEGORIES = ['removed', 'emptied', 'replaced', 'cleaned', 'kept'] as const;
type Category = (typeof CATEGORIES)[number];

function categoryOf(effect: string): Category {
  if (effect === 'remove') return 'removed';
  if (effect === 'keep') return 'kept';
  if (effect.startsWith('empty')) return 'emptied';
  if (effect.startsWith('shifted') || effect.startsWith('keep, profile applied') || effect.startsWith(TEXT_CLEANED)) return 'cleaned';
  return 'replaced';
}

const SAMPLE: Readonly<Record<string, unknown>> = {
  AE: 'SAMPLE', AS: '042Y', AT: tagToHex(TAG.PatientName), CS: 'SAMPLE', DA: '20000615', DT: '20000615120000', DS: 1, FD: 1, FL: 1,
  IS: 1, LO: 'SAMPLE', LT: 'SAMPLE', PN: { Alphabetic: 'SAMPLE^NAME' }, SH: 'SAMPLE', SL: 1, SS: 1, ST: 'SAMPLE', SV: 1,
  TM: '120000', UC: 'SAMPLE', UI: '1.2.3.4', UL: 1, UR: 'SAMPLE', US: 1, UT: 'SAMPLE', UV: 1,
};

function concreteTag(text: string): number {
  return parseTag(text.replace('(50xx,xxxx)', '(5000,3000)').replace('60xx', '6000')) ?? 0;
}

function describe(decision: Decision, vr: string, sample: unknown): string {
  // Text cleaning (text-clean.ts) gives back a sample that holds no identity as it was.
  if (decision.op === 'replace' && typeof sample === 'string' && vr !== 'UI' && decision.value.length === 1 && decision.value[0] === sample) return TEXT_CLEANED;
  switch (decision.op) {
    case 'keep':
      return 'keep';
    case 'remove':
      return 'remove';
    case 'recurse':
      return 'keep, profile applied to the items';
    case 'replace': {
      const [first] = decision.value;
      if (decision.value.length === 0) return vr === 'SQ' ? 'empty (zero items)' : 'empty (zero length)';
      if (vr === 'UI') return 'keyed UID 2.25.<HMAC>';
      if ((vr === 'DA' || vr === 'DT') && typeof first === 'string' && first !== sample && !first.startsWith('1900')) {
        return 'shifted by the patient day offset';
      }
      const text = JSON.stringify(first);
      if (/ANON\^|"[A-Z2-7]{16}"/.test(text)) return 'keyed pseudonym';
      return `dummy ${text}`;
    }
  }
}

const TEXT_CLEANED = 'text cleaned: identities removed, the rest kept (see Text cleaning)';
/** A sample dataset's identity values, so that text cleaning shows as such (text-clean.ts). */
const SAMPLE_IDENTITIES = jsonIdentitySource({ '00100010': { vr: 'PN', Value: [{ Alphabetic: 'DOE^JANE' }] } });

/** One row per Table E.1-1 row (exact and repeating), plus the private rule, under `policy`. */
export function describeProfile(policy: DeidPolicy): ConformanceRow[] {
  const session = createSession(policy, { fresh: false });
  session.beginDataset('SAMPLE');
  session.setIdentities(SAMPLE_IDENTITIES);
  const rows: ConformanceRow[] = [];
  for (const [text, kind, basic, , keyword] of TABLE_E1_1) {
    if (kind === 'private') continue;
    const tag = concreteTag(text);
    const vr = lookup(tag)?.vrs.at(-1) ?? 'OB'; // "OB or OW": the last; curve data has none
    const rule = policy.profile.ruleFor(tag);
    const sample = SAMPLE[vr];
    const decision = session.decide({ tag, vr, path: [] }, sample === undefined ? undefined : [sample]);
    const effect = describe(decision, vr, sample);
    rows.push({ tag: text, keyword, vr, basic, action: rule.action, source: rule.source, effect, category: categoryOf(effect) });
  }
  const safe = policy.options.retainSafePrivate;
  rows.push({
    tag: '(gggg,eeee) where gggg is odd',
    keyword: '',
    vr: '',
    basic: 'X',
    action: safe ? 'C' : 'X',
    source: safe ? 'retainSafePrivate' : 'basic',
    effect: safe
      ? `keep the ${SAFE_PRIVATE_ATTRIBUTES.length} attributes of Table E.3.10-1 (matched by creator and offset) and their creators; remove the rest`
      : 'remove',
    category: safe ? 'cleaned' : 'removed',
  });
  return rows;
}

/** Rows for attributes outside Table E.1-1 that the policy names: the supplements and config overrides. */
function describeOtherAttributes(policy: DeidPolicy): ConformanceRow[] {
  const session = createSession(policy, { fresh: false });
  session.beginDataset('SAMPLE');
  session.setIdentities(SAMPLE_IDENTITIES);
  const tags = new Set<number>([...SUPPLEMENT_REMOVE.keys(), ...SUPPLEMENT_CLEAN.keys()]);
  for (const tag of policy.profile.overrides.keys()) if (tableEntryFor(tag) === undefined) tags.add(tag);
  return [...tags].sort((a, b) => a - b).map((tag) => {
    const entry = lookup(tag);
    const vr = entry?.vrs.at(-1) ?? 'UN';
    const rule = policy.profile.ruleFor(tag);
    const sample = SAMPLE[vr];
    const effect = describe(session.decide({ tag, vr, path: [] }, sample === undefined ? undefined : [sample]), vr, sample);
    const keyword = entry?.keyword ?? SUPPLEMENT_REMOVE.get(tag) ?? SUPPLEMENT_CLEAN.get(tag) ?? '';
    return { tag: formatTag(tag), keyword, vr, basic: '', action: rule.action, source: rule.source, effect, category: categoryOf(effect) };
  });
}

/** What an attribute whose action depends on the IOD becomes, per IOD (PS3.15 E.1.1). */
export interface IodChoiceRow {
  /** The tag path, enclosing sequences first: `(0008,1110)`, `(0040,0275)>(0008,1110)`. */
  readonly path: string;
  readonly keyword: string;
  /** The Basic Profile code of Table E.1-1; `outside` for an attribute the table does not list (Note 1). */
  readonly basic: string;
  /** Each effect with the IODs it is taken in and the Type that chose it there (PS3.3, as dicom3tools gives it). */
  readonly choices: readonly { readonly effect: string; readonly types: readonly string[]; readonly iods: readonly string[] }[];
  /** The effect for an instance whose SOP Class the table does not know (and in IODs without the attribute). */
  readonly otherwise: string;
}

/** An effect in a few words; a dummy item is named by its attributes. */
function describeChoice(decision: Decision, vr: string, sample: unknown): string {
  if (decision.op === 'replace' && vr === 'SQ' && decision.value.length > 0) {
    return `dummy item (${Object.keys(decision.value[0] as Record<string, unknown>).map((hex) => lookup(Number.parseInt(hex, 16))?.keyword ?? hex).join(', ')})`;
  }
  return describe(decision, vr, sample);
}

/**
 * PS3.15 E.1.1: for every attribute whose action depends on its Type in the IOD (compound codes, D on a
 * sequence, X or Z by VR outside the table; profile.ts ruleInIod), the effect per IOD, asked of the
 * decision function with an instance of each IOD (one of its SOP Classes). Memoised per policy.
 */
export function describeIodChoices(policy: DeidPolicy): IodChoiceRow[] {
  const known = iodChoices.get(policy);
  if (known !== undefined) return known;
  const session = createSession(policy, { fresh: false });
  const keys = [...iodTablePaths()];
  const paths = keys.map((p) => p.split('>').map((h) => Number.parseInt(h, 16)));
  const codes = keys.map(iodTypeCodes);
  /** The effect at each of `indices` (into paths) for an instance of `sopClass`. */
  const decideAt = (sopClass: string | undefined, indices: readonly number[]): Map<number, string> => {
    session.beginDataset('SAMPLE', undefined, sopClass);
    return new Map(indices.map((i) => {
      const path = paths[i]!;
      const tag = path.at(-1)!;
      const vr = lookup(tag)?.vrs.at(-1) ?? 'UN';
      const sample = vr === 'SQ' ? undefined : SAMPLE[vr];
      return [i, describeChoice(session.decide({ tag, vr, path: path.slice(0, -1) }, sample === undefined ? undefined : [sample]), vr, sample)];
    }));
  };
  const otherwise = decideAt(undefined, paths.map((_, i) => i));
  const choices = paths.map(() => new Map<string, { types: Set<string>; iods: string[] }>());
  const presentIn: number[][] = Array.from({ length: IOD_COUNT }, () => []);
  codes.forEach((types, i) => {
    for (let iod = 0; iod < IOD_COUNT; iod++) if (types[iod] !== '.') presentIn[iod]!.push(i);
  });
  for (let iod = 0; iod < IOD_COUNT; iod++) {
    const present = presentIn[iod]!;
    const sop = sopClassesOfIod(iod)[0];
    if (present.length === 0 || sop === undefined || iodOfSopClass(sop) !== iod) continue;
    for (const [i, effect] of decideAt(sop, present)) {
      const choice = choices[i]!.get(effect) ?? { types: new Set<string>(), iods: [] };
      choice.types.add(typeName(codes[i]![iod]!));
      choice.iods.push(iodName(iod));
      choices[i]!.set(effect, choice);
    }
  }
  const rows: IodChoiceRow[] = paths.map((path, i) => ({
    path: path.map(formatTag).join('>'),
    keyword: path.map((t) => lookup(t)?.keyword ?? formatTag(t)).join('>'),
    basic: tableEntryFor(path.at(-1)!)?.basic ?? 'outside',
    choices: [...choices[i]!].sort(([, a], [, b]) => b.iods.length - a.iods.length).map(([effect, c]) => ({ effect, types: [...c.types].sort(), iods: c.iods })),
    otherwise: otherwise.get(i)!,
  }));
  iodChoices.set(policy, rows);
  return rows;
}
const iodChoices = new WeakMap<DeidPolicy, IodChoiceRow[]>();

/** One attribute of the reviewed safe list (identity-safe-list.ts) and what the policy does with it. */
interface SafeListRow {
  readonly tag: string;
  readonly keyword: string;
  readonly vr: string;
  readonly category: SafeCategory;
  /** The category's reason, and the entry's own note where the call was close. */
  readonly reason: string;
  /** As for the other rows: `keep` unless an override says otherwise. */
  readonly effect: string;
}

/**
 * PS3.15 Table E.1-1 Note 1: the attributes outside the table that are kept although their VR can carry
 * identity, each with its reason; asked of the decision function like every other row.
 */
function describeSafeList(policy: DeidPolicy): SafeListRow[] {
  const session = createSession(policy, { fresh: false });
  session.beginDataset('SAMPLE');
  return IDENTITY_SAFE_LIST.map(([text, keyword, vr, category, note]) => {
    const tag = parseTag(text) ?? 0;
    const sample = SAMPLE[vr];
    const effect = describe(session.decide({ tag, vr, path: [] }, sample === undefined ? undefined : [sample]), vr, sample);
    return { tag: text, keyword, vr, category, reason: note === undefined ? SAFE_CATEGORIES[category] : `${SAFE_CATEGORIES[category]}; ${note}`, effect };
  }).sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
}

/** Issue 17: what the options whose C cleans text remove and keep (text-clean.ts), under this policy. */
export interface TextCleaningStatement {
  /** The options in effect that clean text, each with the attributes whose text it cleans (Table E.1-1 rows and the supplement). */
  readonly options: readonly { readonly option: ProfileOption; readonly attributes: readonly string[] }[];
  /** Inside sequences those options clean item by item. */
  readonly inSequences: readonly string[];
  readonly removes: readonly string[];
  readonly keeps: readonly string[];
  readonly where: readonly string[];
}

/** The text cleaning section: asked of the decision function, like the rows (the `cleaned text` effect). */
function textCleaningStatement(rows: readonly ConformanceRow[], policy: DeidPolicy): TextCleaningStatement {
  const o = policy.options;
  const byOption = new Map<ProfileOption, string[]>();
  for (const row of rows) {
    if (row.effect !== TEXT_CLEANED) continue;
    const option = (row.source === 'supplement' ? 'cleanStructuredContent' : row.source) as ProfileOption;
    byOption.set(option, [...(byOption.get(option) ?? []), row.keyword]);
  }
  const inSequences = [
    ...(o.cleanGraphics ? ['Clean Graphics (E.3.3): Unformatted Text Value (0070,0006) of the text objects in Graphic Annotation Sequence (0070,0001) > Text Object Sequence (0070,0008); the graphics themselves are kept, Overlay Data and its group removed'] : []),
    ...(o.cleanStructuredContent
      ? ['Clean Structured Content (E.3.5): Text Value (0040,A160) of TEXT content items at any depth, and Unformatted Text Value in Waveform Annotation Sequence (0040,B020); PNAME items get the dummy, DATE/DATETIME items are shifted (Modified Dates) or dummies, UIDREF items keyed UIDs; CODE and NUM items are kept']
      : []),
  ];
  return { options: [...byOption].map(([option, attributes]) => ({ option, attributes })), inSequences, removes: TEXT_CLEANING_REMOVES, keeps: TEXT_CLEANING_KEEPS, where: TEXT_CLEANING_WHERE };
}

function textCleaningMarkdown(t: TextCleaningStatement): string[] {
  const out = ['## Text cleaning (Clean options, PS3.15 E.3.3, E.3.5, E.3.11)', ''];
  if (t.options.length === 0 && t.inSequences.length === 0) return [...out, 'No option in effect cleans text: text the profile does not keep is removed, emptied or replaced by a dummy.', ''];
  for (const { option, attributes } of t.options) out.push(`- ${option}: ${attributes.join(', ')}`);
  for (const line of t.inSequences) out.push(`- ${line}`);
  out.push('', 'Removed from that text:', '');
  for (const line of t.removes) out.push(`- ${line}`);
  out.push('', 'Kept:', '');
  for (const line of t.keeps) out.push(`- ${line}`);
  out.push('', 'Where the identity values are known:', '');
  for (const line of t.where) out.push(`- ${line}`);
  out.push('');
  return out;
}

/** What the gateway adds to its deployment of the profile for one role (not part of the policy). */
export interface StatementContext {
  /** The gateway role the statement is for, e.g. `researcher`. */
  readonly role?: string;
  /** Researcher: whether `/rendered` and `/thumbnail` (server-rendered pixels, burned-in text) are offered. */
  readonly renderedOffered?: boolean;
}

/** A de-identification conformance statement: what the policy does, derived from the policy itself. */
export interface ConformanceStatement {
  readonly standard: string;
  readonly role: string | undefined;
  readonly profile: { readonly name: string; readonly code: string };
  readonly options: readonly { readonly name: ProfileOption; readonly enabled: boolean }[];
  /** De-identification Method Code Sequence (0012,0064) as written into every dataset (CID 7050). */
  readonly methodCodes: readonly { readonly code: string; readonly meaning: string }[];
  readonly pseudonyms: {
    readonly mode: 'keyed' | 'fresh';
    readonly uids: string;
    readonly identifiers: string;
  };
  readonly dates: string;
  readonly dateShift: { readonly minDays: number; readonly maxDays: number } | undefined;
  readonly renderedOffered: boolean | undefined;
  readonly overrides: readonly { readonly tag: string; readonly keyword: string; readonly override: string }[];
  /** Attributes set on every top-level dataset (PS3.15 E.1.1 steps after the actions). */
  readonly attributesAdded: readonly { readonly tag: string; readonly keyword: string; readonly value: string }[];
  /** How attributes that no row names are treated. */
  readonly rules: readonly string[];
  readonly summary: Readonly<Record<Category, number>>;
  /** One row per Table E.1-1 row and the private-attribute rule. */
  readonly attributes: readonly ConformanceRow[];
  /** Attributes outside Table E.1-1 that the gateway's supplements or the config's overrides name. */
  readonly otherAttributes: readonly ConformanceRow[];
  /** Table E.1-1 Note 1: attributes outside the table kept although their VR can carry identity. */
  readonly identitySafeList: readonly SafeListRow[];
  /** PS3.15 E.1.1: per IOD, the choice each compound action (and each D on a sequence) took. */
  readonly iodChoices: readonly IodChoiceRow[];
  /** Sequences D empties instead of giving them a dummy item, with the reason. */
  readonly sequencesWithoutDummyItem: readonly { readonly keyword: string; readonly reason: string }[];
  /** The pixel policy in force (PS3.15 E.3.1 Clean Pixel Data; deid/pixel-policy.ts). */
  readonly pixels: PixelStatement;
  /** Issue 17: what the Clean options remove from text and keep. */
  readonly textCleaning: TextCleaningStatement;
}

export interface PixelStatement {
  /** False: every pixel is kept as stored (`pixels.enabled: false`). */
  readonly enabled: boolean;
  /** Risky criteria that withhold an instance no rule matches. */
  readonly withheld: readonly string[];
  /** Risky criteria the configuration allows. */
  readonly allowed: readonly string[];
  /** Series filters: `name: condition`. */
  readonly filters: readonly string[];
  readonly rules: PixelPolicyDescription['rules'];
  /** How a redacted instance is written. */
  readonly redaction: readonly string[];
  /** Issue 18: whether OCR redacts risky instances no rule covers (`pixels.ocr`), and what it can and cannot find. */
  readonly ocr: { readonly enabled: boolean; readonly statements: readonly string[] };
}

/** What the gateway does to an instance a rule redacts; the same for every policy. */
export const REDACTION_STATEMENTS: readonly string[] = [
  'Evaluation per instance, from its top-level header: a series filter that matches withholds it; else the first redaction rule that matches (configured rules, then CTP script signatures, in order) redacts it; else a risky criterion in force withholds it; else its pixels are kept byte-identical',
  'A rule matched on a layout the gateway cannot blank (Float or Double Float Pixel Data, YBR_PARTIAL_420/422, Bits Allocated other than 1, 8, 16, 32, no Rows or Columns) withholds the instance (fail closed)',
  'Native frames are blanked in place, every frame; encapsulated frames are decoded, blanked and written native, Explicit VR Little Endian. Lossy Image Compression (0028,2110/2112/2114) is kept as it was: decoding adds no loss',
  'Photometric Interpretation of decoded frames: YBR_FULL_422 becomes YBR_FULL, YBR_ICT and YBR_RCT become RGB; others keep their name',
  'Blank value 0 in every sample (YBR: Y = 0, Cb = Cr = mid-scale, i.e. black)',
  'A redacted instance gets Burned In Annotation (0028,0301) NO and CID 7050 code 113101 Clean Pixel Data Option in the De-identification Method Code Sequence; nothing else changes',
  'A withheld instance is not sent at all: absent from search results and retrieval, refused with its reason on upload',
];

/** What OCR-assisted redaction (issue 18, `pixels.ocr: true`) does and does not do; the same for every policy. */
export const OCR_STATEMENTS: readonly string[] = [
  'A risky instance no rule covers, of a layout the gateway can blank, is OCR-redacted instead of withheld: text regions are found by two engines and joined: OCR (tesseract.js, English LSTM model), which finds text by reading it, and a trained text-region detector (PaddleOCR PP-OCRv4 detection model on ONNX Runtime WebAssembly), which marks text it need not read; both run in worker threads on this host, no network. Every region either finds is blanked, with a margin, in every frame',
  'Frames read: the first and every Nth (`ocr.sampleEvery`), at most `ocr.maxSampledFrames` spread over the instance; the union of the regions found on them is blanked in every frame. Text that appears only on frames not read is missed',
  'Regions are found once per series and layout (Manufacturer, Manufacturer\'s Model Name, Rows, Columns, Samples per Pixel, Bits Allocated, Photometric Interpretation) and reused for `ocr.cacheTtlSeconds`: an instance of that series with text elsewhere than the one read is not read again',
  'OCR does not find faces or other recognizable features, handwriting, text in low contrast against its background, text that crosses anatomy or lies over a textured image, very small or rotated text, or non-Latin scripts. Recognizable Visual Features (0028,0302) YES stays a reason to withhold unless the configuration allows it',
  'Fail closed: if OCR times out (`ocr.timeoutMs` per frame), its queue is full, a frame cannot be retrieved or decoded, or the layout has no luminance OCR can read (PALETTE COLOR, YBR_PARTIAL), the instance stays withheld. Burned In Annotation (0028,0301) NO is set only on an instance whose regions OCR found, every one of them blanked',
  'Searches list an instance OCR may redact without running OCR (it is counted as present); retrieval then redacts it, or withholds it if OCR fails. Its server-rendered pixels (rendered, thumbnail) and its Pixel Data bulkdata are refused (403): the PACS would give its unredacted pixels',
  'Uploads (STOW-RS and the upload page) under a profile with OCR: the original part is spooled to the gateway\'s temporary directory (owner-only, deleted afterwards, swept at start), its sampled frames are read from it, and it is stored with the union of their regions blanked; if OCR fails the part is refused (0x0124), and if its detector is full or out of time it is refused for lack of resources (0xA700, to be sent again); nothing of it reaches the PACS. Each upload is read from its own pixels (no regions are reused). An instance received over DIMSE (C-STORE) is read by OCR at intake, before its response: success (0000) means its regions were found and can be blanked, an OCR failure refuses it (0x0124), and a detector that is full or out of time refuses it for lack of resources (A700, to be sent again); it is forwarded with those regions blanked',
  'Recognised text is never logged, stored, cached or returned: only the rectangles leave the OCR worker',
];

const ADDED_KEYWORDS = ['PatientIdentityRemoved', 'DeidentificationMethod', 'DeidentificationMethodCodeSequence', 'LongitudinalTemporalInformationModified'] as const;
const ADDED_KEYWORD_OF: ReadonlyMap<string, string> = new Map(ADDED_KEYWORDS.map((k) => [tagToHex(TAG[k]), k]));
const METHOD_CODES_KEY = tagToHex(TAG.DeidentificationMethodCodeSequence);

/**
 * PS3.15 E.3.10 asks a de-identifier to state what it does; this states it from the policy in force
 * (the same `decide` calls the engine makes), so the statement cannot drift from the behaviour.
 * Nothing in it depends on the secret: the effects are described, no pseudonym is shown.
 */
export function conformanceStatement(policy: DeidPolicy, context: StatementContext = {}): ConformanceStatement {
  const session = createSession(policy, { fresh: false });
  session.beginDataset('SAMPLE');
  const added = session.attributesToAdd();
  const codeItems = (added[METHOD_CODES_KEY]?.Value ?? []) as Record<string, { Value?: unknown[] }>[];
  const methodCodes = codeItems.map((item) => ({ code: String(item[tagToHex(TAG.CodeValue)]?.Value?.[0]), meaning: String(item[tagToHex(TAG.CodeMeaning)]?.Value?.[0]) }));
  const attributes = describeProfile(policy);
  const otherAttributes = describeOtherAttributes(policy);
  const summary = Object.fromEntries(CATEGORIES.map((c) => [c, 0])) as Record<Category, number>;
  for (const row of [...attributes, ...otherAttributes]) summary[row.category]++;
  const o = policy.options;
  const mode = policy.pseudonymMode === 'fresh' ? 'fresh' : 'keyed';
  const keyed = mode === 'fresh' ? 'HMAC-SHA256 under the gateway secret and a random salt per request (unlinkable across requests)' : 'HMAC-SHA256 under the gateway secret (the same original always gives the same pseudonym)';
  const dates = o.retainLongitudinalTemporalModifiedDates
    ? 'Retain Longitudinal Temporal Information Modified Dates (E.3.6): every date of a patient moves by one keyed per-patient offset; times are kept'
    : o.retainLongitudinalTemporalFullDates
      ? 'Retain Longitudinal Temporal Information Full Dates (E.3.6): dates and times are kept unmodified'
      : 'dates and times are removed, emptied or replaced by dummies as Table E.1-1 says';
  const rules = [
    `Private attributes (odd groups): ${o.retainSafePrivate ? 'only those of Table E.3.10-1, matched by private creator and element offset, are kept (private UIDs become keyed UIDs); all others are removed' : 'all removed'}`,
    `Standard attributes Table E.1-1 does not list (Note 1): removed when their VR can carry identity (${[...IDENTITY_VRS].join(' ')}, by their PS3.6 VR or by the VR they are encoded with), except the ${IDENTITY_SAFE_LIST.length} technical attributes of the reviewed safe list below, which are kept; a person name (PN) among them is emptied, and dates (DA, DT) are ` +
      (o.retainLongitudinalTemporalModifiedDates ? 'shifted with the others' : o.retainLongitudinalTemporalFullDates ? 'kept (Full Dates)' : 'removed') +
      '. Attributes of other VRs (codes, numbers, times, UIDs) are kept; their sequences go through the profile',
    'Options keep only the attributes their Table E.1-1 column names: e.g. Retain Device Identity does not keep Device ID (0018,1003), which the table does not list. A keep override keeps any attribute',
    'Attributes in no dictionary: removed',
    `Compound codes (X/Z, X/D, Z/D, X/Z/D, X/Z/U*) are chosen by the attribute's Type in the instance's IOD (PS3.15 E.1.1; PS3.3 Types from David Clunie's dicom3tools tables, ${IOD_COUNT} composite IODs): Type 3 removes (X; Z/D empties), Type 2 empties (Z; X/D gives a dummy), Type 1 gives a dummy (D; X/Z empties); X/Z/U* keeps the references with keyed UIDs (U) wherever the IOD has them as Type 1 or 2. 1C and 2C count as required (their value goes either way). The rows above show the choice for an instance of a SOP Class the tables do not know, the one valid whatever the Type; the section on IODs below gives the choice per IOD`,
    'A sequence the profile replaces (D) is removed where the IOD has it as Type 3, else given one dummy item with the attributes its macro requires (dummies of their VRs, enumerated values where the IOD checks them, keyed UIDs); nothing of the original items is used. Standard attributes outside Table E.1-1 that their VR would remove or empty are given a dummy where the IOD has them as Type 1 and are emptied where Type 2',
    'Sequences that are kept or cleaned: the profile applies to every item, at every depth (E.1.1)',
    'Overlay group (60xx): when Overlay Data is removed, the whole group goes with it (PS3.3 C.9.2)',
    'Values the engine cannot read safely (truncation, bad lengths, unknown encodings): the whole object is refused, never passed on',
  ];
  return {
    standard: 'DICOM PS3.15 Annex E (Attribute Confidentiality Profiles)',
    role: context.role,
    profile: { name: 'Basic Application Level Confidentiality Profile', code: '113100' },
    options: PROFILE_OPTIONS.map((name) => ({ name, enabled: o[name] })),
    methodCodes,
    pseudonyms: {
      mode,
      uids: o.retainUIDs ? 'kept (Retain UIDs Option)' : `replaced by 2.25.<integer> derived by ${keyed}`,
      identifiers:
        `PatientID, PatientName, AccessionNumber (and OtherPatientIDs when kept): keyed base32 codes by ${keyed}. ` +
        'PatientName becomes ANON^<code> keyed on the original Patient ID, so one patient shows one name pseudonym in every representation; without a Patient ID (or inside a sequence item) on the name, normalised (Unicode NFC, spaces around components and trailing empty components and groups removed)',
    },
    dates,
    dateShift: o.retainLongitudinalTemporalModifiedDates ? { ...policy.dateShift } : undefined,
    renderedOffered: context.renderedOffered,
    overrides: [...policy.profile.overrides].map(([tag, action]) => ({
      tag: formatTag(tag),
      keyword: lookup(tag)?.keyword ?? '',
      override: action.kind === 'replace' ? `replace:${action.value}` : action.kind,
    })),
    attributesAdded: Object.entries(added).map(([hex, element]) => ({
      tag: formatTag(Number.parseInt(hex, 16)),
      keyword: ADDED_KEYWORD_OF.get(hex) ?? '',
      value: hex === METHOD_CODES_KEY ? methodCodes.map((c) => `(${c.code}, DCM, "${c.meaning}")`).join(', ') : String(element.Value?.[0] ?? ''),
    })),
    rules,
    summary,
    attributes,
    otherAttributes,
    identitySafeList: describeSafeList(policy),
    iodChoices: describeIodChoices(policy),
    sequencesWithoutDummyItem: [...SEQUENCES_WITHOUT_DUMMY_ITEM].map(([keyword, reason]) => ({ keyword, reason })),
    pixels: pixelStatement(policy),
    textCleaning: textCleaningStatement([...attributes, ...otherAttributes], policy),
  };
}

function pixelStatement(policy: DeidPolicy): PixelStatement {
  const d = policy.pixels.describe();
  return {
    enabled: policy.pixels.active,
    withheld: d.risky,
    allowed: d.allowed,
    filters: d.filters,
    rules: d.rules,
    redaction: REDACTION_STATEMENTS,
    ocr: { enabled: d.ocr, statements: OCR_STATEMENTS },
  };
}

/** The pixel policy section of the markdown statement. */
function pixelMarkdown(p: PixelStatement): string[] {
  const out = ['## Pixel data (Clean Pixel Data, PS3.15 E.3.1)', ''];
  if (!p.enabled) return [...out, 'The pixel policy is off (`pixels.enabled: false`): every pixel is kept as stored, burned-in text included.', ''];
  out.push(`- Withheld when risky and no rule matches: ${p.withheld.length > 0 ? p.withheld.join(', ') : 'none'}`);
  out.push(`- Allowed by the configuration: ${p.allowed.length > 0 ? p.allowed.join(', ') : 'none'}`);
  out.push(`- Series filters (withheld): ${p.filters.length > 0 ? p.filters.map(cell).join('; ') : 'none'}`);
  for (const r of p.redaction) out.push(`- ${r}`);
  out.push('', '### OCR-assisted redaction', '');
  out.push(p.ocr.enabled ? 'On (`pixels.ocr: true`):' : 'Off (`pixels.ocr: false`): a risky instance no rule covers is withheld. When on:', '');
  for (const r of p.ocr.statements) out.push(`- ${r}`);
  out.push('', '### Redaction rules', '');
  if (p.rules.length === 0) out.push('None.');
  else {
    out.push('| rule | source | matches | rectangles (x, y, width, height) |', '|---|---|---|---|');
    for (const r of p.rules) out.push(`| ${cell(r.name)} | ${cell(r.source)} | ${cell(r.match)} | ${r.rectangles.map((x) => `(${x.x}, ${x.y}, ${x.width}, ${x.height})`).join(' ')} |`);
  }
  out.push('');
  return out;
}

const cell = (text: string): string => text.replace(/\|/g, '\\|');

/** The per-IOD choices: the most common effect with its count, the others with their IODs. */
function iodChoicesMarkdown(s: ConformanceStatement): string[] {
  const out = [`## Choices by IOD (PS3.15 E.1.1) (${s.iodChoices.length})`, ''];
  out.push('Compound codes, D on sequences and attributes outside Table E.1-1 (basic `outside`) per IOD, by the attribute\'s Type there (nested attributes by their sequence path). Types: PS3.3 as the dicom3tools tables give them.', '');
  out.push('| path | keyword | Basic | Types | IODs | per IOD (Type) | SOP Class not known |', '|---|---|---|---|---|---|---|');
  for (const r of s.iodChoices) {
    const types = [...new Set(r.choices.flatMap((c) => c.types))].sort().join(', ');
    const count = r.choices.reduce((n, c) => n + c.iods.length, 0);
    const per = r.choices.map((c) => `${c.effect} (${c.types.join('/')}): ${c.iods.length > 6 ? `${c.iods.length} IODs` : c.iods.join(', ')}`);
    out.push(`| ${cell(r.path)} | ${cell(r.keyword)} | ${r.basic} | ${types} | ${count} | ${cell(per.join('; '))} | ${cell(r.otherwise)} |`);
  }
  out.push('', 'Sequences D empties rather than giving them a dummy item:', '');
  for (const x of s.sequencesWithoutDummyItem) out.push(`- ${x.keyword}: ${x.reason}`);
  out.push('');
  return out;
}

/** The statement as a markdown document (for people); `conformanceStatement` itself is the JSON form. */
export function statementMarkdown(s: ConformanceStatement): string {
  const out: string[] = [];
  out.push(`# De-identification conformance statement${s.role ? `: ${s.role}` : ''}`, '');
  out.push(`${s.standard}. Generated by deid-gateway from its configuration; every row below is the answer of the engine's own decision function.`, '');
  out.push('## Profile and options', '');
  out.push(`${s.profile.name} (DCM ${s.profile.code}), with these options (PS3.15 Table E.1-1 columns):`, '');
  out.push('| option | in effect |', '|---|---|');
  for (const o of s.options) out.push(`| ${o.name} | ${o.enabled ? 'yes' : 'no'} |`);
  out.push('', `De-identification Method Code Sequence (CID 7050): ${s.methodCodes.map((c) => `${c.code} ${c.meaning}`).join('; ')}.`, '');
  out.push('## Pseudonyms and dates', '');
  out.push(`- Mode: ${s.pseudonyms.mode}`, `- UIDs: ${s.pseudonyms.uids}`, `- Identifiers: ${s.pseudonyms.identifiers}`, `- Dates: ${s.dates}`);
  if (s.dateShift) out.push(`- Day offset range: ${s.dateShift.minDays} to ${s.dateShift.maxDays} days, never 0`);
  if (s.renderedOffered !== undefined) {
    out.push(`- Rendered images and thumbnails (server-rendered pixels, which can show burned-in text): ${s.renderedOffered ? 'offered' : 'not offered'}`);
  }
  out.push('', '## Attributes added to every dataset', '', '| tag | keyword | value |', '|---|---|---|');
  for (const a of s.attributesAdded) out.push(`| ${a.tag} | ${a.keyword} | ${cell(a.value)} |`);
  out.push('', ...pixelMarkdown(s.pixels));
  out.push(...textCleaningMarkdown(s.textCleaning));
  out.push('## Overrides from the configuration', '');
  if (s.overrides.length === 0) out.push('None.');
  else {
    out.push('| tag | keyword | override |', '|---|---|---|');
    for (const o of s.overrides) out.push(`| ${o.tag} | ${o.keyword} | ${cell(o.override)} |`);
  }
  out.push('', '## General rules', '');
  for (const rule of s.rules) out.push(`- ${rule}`);
  out.push('', '## Summary', '');
  out.push(`${CATEGORIES.map((c) => `${s.summary[c]} ${c}`).join(', ')} (Table E.1-1 rows, the private rule and the attributes below it).`, '');
  const all = [...s.attributes, ...s.otherAttributes];
  for (const category of CATEGORIES) {
    const rows = all.filter((r) => r.category === category);
    out.push(`## ${category[0]!.toUpperCase()}${category.slice(1)} (${rows.length})`, '');
    if (rows.length === 0) {
      out.push('None.', '');
      continue;
    }
    out.push('| tag | keyword | VR | Basic | rule from | effect |', '|---|---|---|---|---|---|');
    for (const r of rows) out.push(`| ${cell(r.tag)} | ${r.keyword} | ${r.vr} | ${r.basic} | ${r.source} | ${cell(r.effect)} |`);
    out.push('');
  }
  out.push(`## Safe list: attributes outside Table E.1-1 kept although their VR can carry identity (${s.identitySafeList.length})`, '');
  out.push('PS3.15 Table E.1-1 Note 1: the table is not exhaustive. Every other standard attribute it does not list whose VR can carry identity is removed (see the general rules). These were reviewed one by one as technical values that cannot identify anyone in practice.', '');
  out.push('| tag | keyword | VR | why | effect |', '|---|---|---|---|---|');
  for (const r of s.identitySafeList) out.push(`| ${r.tag} | ${r.keyword} | ${r.vr} | ${cell(r.reason)} | ${cell(r.effect)} |`);
  out.push('', ...iodChoicesMarkdown(s));
  return out.join('\n');
}

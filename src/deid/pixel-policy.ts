// Pixel safety (PS3.15 E.3.1 Clean Pixel Data; issue 16): per instance, from header attributes only, the
// one decision whether its pixels are kept byte-identical, redacted by a rule's rectangles, or withheld.
// Pure: no I/O. The QIDO census, the Part 10 rewriter, the metadata path, STOW and the CLI all ask this
// one function, so an instance is treated the same on every route.
//
// The types below are shared by deid/, pixel/ and dicomweb/; `compilePixelPolicy` builds the policy from
// a profile's `pixels` block (config/schema.ts). Conditions are redaction-rules.ts, CTP scripts
// ctp-pixel-script.ts.
import { parseCtpPixelScript } from './ctp-pixel-script.ts';
import { DeidPolicyError } from './errors.ts';
import { compileMatch, compileRectangle, numberOf, valueTexts, type Predicate } from './redaction-rules.ts';
import { tagForKeyword } from '../dicom/dictionary.ts';
import { OCR_RULE, type AttributeReader, type PixelVerdict, type Rectangle, type WithholdReason } from './pixel-verdict.ts';

export type { AttributeReader, PixelVerdict, Rectangle, WithholdReason } from './pixel-verdict.ts';
export { OCR_RULE } from './pixel-verdict.ts';

export const KEEP: PixelVerdict = Object.freeze({ action: 'keep' });

/** What the conformance statement lists: the criteria, filters and rules in force. */
export interface PixelPolicyDescription {
  readonly risky: readonly string[];
  readonly allowed: readonly string[];
  readonly filters: readonly string[];
  readonly rules: readonly { readonly name: string; readonly source: string; readonly match: string; readonly rectangles: readonly Rectangle[] }[];
  /** Issue 18: whether a risky instance no rule covers is OCR-redacted instead of withheld (`pixels.ocr`). */
  readonly ocr: boolean;
}

export interface PixelPolicy {
  /** False when nothing can be withheld or redacted: callers skip the census and every pixel check. */
  readonly active: boolean;
  /** Every tag `verdict` reads (a QIDO census asks the PACS for these, plus the frame geometry). */
  readonly attributeTags: readonly number[];
  /** Issue 18 (`pixels.ocr`): some verdicts may be withholds that OCR can replace (their `ocr` is true). */
  readonly ocr: boolean;
  verdict(read: AttributeReader): PixelVerdict;
  describe(): PixelPolicyDescription;
}

/**
 * The stricter of two verdicts on one instance, read from two sources (the PACS's QIDO census and the
 * file's own header, or its metadata): withhold beats redact beats keep; two redactions blank the union
 * of their rectangles. A source that lies or lags can therefore only make the outcome stricter.
 */
export function strictestVerdict(a: PixelVerdict, b: PixelVerdict): PixelVerdict {
  // Of two withholds, one OCR may not replace (a filter, an unredactable layout) beats one it may.
  if (a.action === 'withhold') return b.action === 'withhold' && a.ocr === true && b.ocr !== true ? b : a;
  if (b.action === 'withhold') return b;
  if (a.action === 'keep') return b;
  if (b.action === 'keep') return a;
  if (a.rule === b.rule) return a;
  return { action: 'redact', rule: `${a.rule} + ${b.rule}`, rectangles: [...a.rectangles, ...b.rectangles] };
}

/**
 * Issue 18: the verdict once OCR has found the text regions of an instance's pixels (every region found,
 * margin included, on the frames sampled). A withhold whose `ocr` is true (a risky instance no rule
 * covers, of a blankable layout, under `pixels.ocr: true`) becomes a redaction of exactly those regions,
 * rule `ocr` (none found: a redaction of nothing, Burned In Annotation NO all the same, since OCR ran and
 * found no text); any other verdict is returned as it is. Callers apply it to each view of the instance
 * before strictestVerdict, so a rule's rectangles and OCR's are unioned. It is the only path from
 * `withhold` to `redact`, and only a caller that has the regions takes it: without them (OCR failed,
 * timed out, was not run) the withhold stands. PS3.15 E.3.1 (Clean Pixel Data Option).
 */
export function withTextRegions(verdict: PixelVerdict, regions: readonly Rectangle[]): PixelVerdict {
  if (verdict.action !== 'withhold' || verdict.ocr !== true) return verdict;
  return redactVerdict(OCR_RULE, regions);
}

/** Whether OCR may replace this verdict (a withhold whose `ocr` is true): see withTextRegions. */
export function ocrMayRedact(verdict: PixelVerdict): boolean {
  return verdict.action === 'withhold' && verdict.ocr === true;
}

/** The policy that keeps everything (no criteria, filters or rules): `active` is false. */
export const KEEP_ALL: PixelPolicy = Object.freeze({
  active: false,
  attributeTags: Object.freeze([]) as readonly number[],
  ocr: false,
  verdict: () => KEEP,
  describe: () => ({ risky: [], allowed: [], filters: [], rules: [], ocr: false }),
});

// --- configuration (a profile's `pixels` block) --------------------------------------------------

/** A risky criterion is either withheld (the default) or allowed; "allow" is always written out. */
export type RiskyAction = 'withhold' | 'allow';

export interface RiskyConfig {
  /** Burned In Annotation (0028,0301) = YES. */
  readonly burnedInAnnotation?: RiskyAction;
  /** Recognizable Visual Features (0028,0302) = YES. */
  readonly recognizableVisualFeatures?: RiskyAction;
  /** Encapsulated PDF or CDA (when no filter excludes them first). */
  readonly encapsulatedDocument?: RiskyAction;
  /** Modality (0008,0060) values, merged over DEFAULT_RISKY_MODALITIES (withhold). */
  readonly modality?: Readonly<Record<string, RiskyAction>>;
  /** Image Type (0008,0008) values (any of the attribute's), merged over DEFAULT_RISKY_IMAGE_TYPES. */
  readonly imageType?: Readonly<Record<string, RiskyAction>>;
  readonly sopClass?: { readonly secondaryCapture?: RiskyAction; readonly video?: RiskyAction };
}

/** A series filter: instances matching `exclude` (a condition, or a list of conditions: any) are withheld. */
export interface PixelFilterConfig {
  readonly name: string;
  readonly exclude: unknown;
}

/** A redaction rule: instances matching `match` have `rectangles` blanked in every frame. */
export interface PixelRuleConfig {
  readonly name: string;
  readonly match: unknown;
  readonly rectangles: readonly unknown[];
}

export interface PixelPolicyConfig {
  /** False: every pixel is kept (an explicit choice, warned about at start). Default true. */
  readonly enabled?: boolean;
  readonly risky?: RiskyConfig;
  /** Absent: defaultPixelFilters (SR unless Clean Structured Content, PR, KO, Encapsulated Document). `[]`: none. */
  readonly filters?: readonly PixelFilterConfig[];
  /** Tried in order before the CTP scripts' signatures; the first that matches wins. */
  readonly rules?: readonly PixelRuleConfig[];
  /** CTP DicomPixelAnonymizer scripts, by the name the config gives (config/resolve.ts reads them). */
  readonly ctpScripts?: readonly string[];
  /** Issue 18: a risky instance no rule covers is OCR-redacted instead of withheld. Default false. */
  readonly ocr?: boolean;
}

export interface PixelPolicyContext {
  /** The profile's Clean Structured Content option: SR is then not among the default filters. */
  readonly cleanStructuredContent?: boolean;
  /** Each CTP script the config names: its text, or why it could not be read. */
  readonly scripts?: ReadonlyMap<string, string | { readonly error: string }>;
}

const SOP = '1.2.840.10008.5.1.4.1.1.';
// PS3.4 Annex B / PS3.6 Table A-1 (as dicom3tools' sopcl.tpl lists them, ../shared/standard/dicom3tools).
/** Secondary Capture Image Storage and the four Multi-frame Secondary Capture classes. */
export const SECONDARY_CAPTURE_SOP_CLASSES: readonly string[] = [`${SOP}7`, `${SOP}7.1`, `${SOP}7.2`, `${SOP}7.3`, `${SOP}7.4`];
/** Video Endoscopic, Video Microscopic and Video Photographic Image Storage. */
export const VIDEO_SOP_CLASSES: readonly string[] = [`${SOP}77.1.1.1`, `${SOP}77.1.2.1`, `${SOP}77.1.4.1`];
/** Encapsulated PDF and Encapsulated CDA Storage. */
export const ENCAPSULATED_DOCUMENT_SOP_CLASSES: readonly string[] = [`${SOP}104.1`, `${SOP}104.2`];
export const KEY_OBJECT_SELECTION_SOP_CLASS = `${SOP}88.59`;
export const DEFAULT_RISKY_MODALITIES: readonly string[] = ['US', 'SC', 'OT', 'XC', 'ES', 'DOC'];
export const DEFAULT_RISKY_IMAGE_TYPES: readonly string[] = ['SECONDARY', 'SCREEN SAVE'];

/**
 * The series filters used when a profile names none: Key Object Selection, SR (unless the Clean
 * Structured Content option is on), Presentation States and every Encapsulated Document class.
 */
export function defaultPixelFilters(cleanStructuredContent: boolean): PixelFilterConfig[] {
  return [
    { name: 'ko', exclude: [{ Modality: 'KO' }, { SOPClassUID: KEY_OBJECT_SELECTION_SOP_CLASS }] },
    ...(cleanStructuredContent ? [] : [{ name: 'sr', exclude: [{ Modality: 'SR' }, { SOPClassUID: { startsWith: `${SOP}88.` } }] }]),
    { name: 'pr', exclude: [{ Modality: 'PR' }, { SOPClassUID: { startsWith: `${SOP}11.` } }] },
    { name: 'encapsulated-document', exclude: [{ SOPClassUID: { startsWith: `${SOP}104.` } }] },
  ];
}

const tag = (keyword: string): number => tagForKeyword(keyword) as number;
const T = {
  SOPClassUID: tag('SOPClassUID'), Modality: tag('Modality'), ImageType: tag('ImageType'), SeriesDescription: tag('SeriesDescription'),
  Manufacturer: tag('Manufacturer'), ManufacturerModelName: tag('ManufacturerModelName'), BurnedInAnnotation: tag('BurnedInAnnotation'),
  RecognizableVisualFeatures: tag('RecognizableVisualFeatures'), Rows: tag('Rows'), Columns: tag('Columns'), SamplesPerPixel: tag('SamplesPerPixel'),
  BitsAllocated: tag('BitsAllocated'), BitsStored: tag('BitsStored'), HighBit: tag('HighBit'), PixelRepresentation: tag('PixelRepresentation'),
  PlanarConfiguration: tag('PlanarConfiguration'), PhotometricInterpretation: tag('PhotometricInterpretation'), NumberOfFrames: tag('NumberOfFrames'),
  FloatPixelData: tag('FloatPixelData'), DoubleFloatPixelData: tag('DoubleFloatPixelData'),
} as const;

/** What every active policy reads: the frame geometry and the attributes of the built-in criteria. */
const BASE_TAGS: readonly number[] = Object.values(T);

const RISKY_KEYS = ['burnedInAnnotation', 'recognizableVisualFeatures', 'encapsulatedDocument', 'modality', 'imageType', 'sopClass'] as const;
const ACTIONS: readonly string[] = ['withhold', 'allow'];
const MAX_LIST = 1024;

interface Criterion {
  /** As the conformance statement and a verdict's detail name it (`Modality US`). */
  readonly name: string;
  readonly withhold: boolean;
}

interface CompiledFilter {
  readonly name: string;
  readonly condition: Predicate;
  readonly verdict: PixelVerdict;
}

interface CompiledRule {
  readonly name: string;
  readonly source: string;
  readonly condition: Predicate;
  readonly verdict: PixelVerdict & { readonly action: 'redact' };
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** An empty result, after an issue was pushed. */
const none = (_pushed: number): [] => [];
const withheld = (reason: WithholdReason, detail: string): PixelVerdict => Object.freeze({ action: 'withhold', reason, detail });
const upper = (values: readonly unknown[] | undefined): string[] => valueTexts(values).map((v) => v.toUpperCase());

/** `action` for `key`, or an issue. */
function riskyAction(value: unknown, key: string, issues: string[]): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !ACTIONS.includes(value)) return void issues.push(`${key}: withhold or allow`);
  return value === 'withhold';
}

/** A value → action map merged over defaults (all withhold); keys compared in upper case, as CS values are. */
function valueCriteria(input: unknown, defaults: readonly string[], key: string, issues: string[]): Map<string, boolean> {
  const out = new Map(defaults.map((d) => [d, true]));
  if (input === undefined) return out;
  if (!isRecord(input) || Object.keys(input).length > MAX_LIST) {
    issues.push(`${key}: a map of values to withhold or allow`);
    return out;
  }
  for (const [value, action] of Object.entries(input)) {
    const name = value.trim().toUpperCase();
    if (name === '' || name.length > 16) issues.push(`${key}.${value}: a code string of 1 to 16 characters`);
    const on = riskyAction(action, `${key}.${value}`, issues);
    if (on !== undefined) out.set(name, on);
  }
  return out;
}

/** The risky criteria in force, checked; the order is the order of evaluation. */
function compileRisky(input: unknown, issues: string[]) {
  const risky = input === undefined ? {} : input;
  if (!isRecord(risky)) {
    issues.push(`pixels.risky: a map of criteria (${RISKY_KEYS.join(', ')})`);
    return undefined;
  }
  for (const k of Object.keys(risky)) if (!(RISKY_KEYS as readonly string[]).includes(k)) issues.push(`pixels.risky.${k}: not a criterion (${RISKY_KEYS.join(', ')})`);
  const flag = (k: string, value: unknown): boolean => riskyAction(value, `pixels.risky.${k}`, issues) ?? true;
  const sop = risky['sopClass'] ?? {};
  if (!isRecord(sop)) issues.push('pixels.risky.sopClass: { secondaryCapture, video }');
  const sopRecord = isRecord(sop) ? sop : {};
  for (const k of Object.keys(sopRecord)) if (k !== 'secondaryCapture' && k !== 'video') issues.push(`pixels.risky.sopClass.${k}: not a criterion (secondaryCapture, video)`);
  return {
    burnedInAnnotation: flag('burnedInAnnotation', risky['burnedInAnnotation']),
    recognizableVisualFeatures: flag('recognizableVisualFeatures', risky['recognizableVisualFeatures']),
    modality: valueCriteria(risky['modality'], DEFAULT_RISKY_MODALITIES, 'pixels.risky.modality', issues),
    secondaryCapture: flag('sopClass.secondaryCapture', sopRecord['secondaryCapture']),
    video: flag('sopClass.video', sopRecord['video']),
    imageType: valueCriteria(risky['imageType'], DEFAULT_RISKY_IMAGE_TYPES, 'pixels.risky.imageType', issues),
    encapsulatedDocument: flag('encapsulatedDocument', risky['encapsulatedDocument']),
  };
}
type Risky = NonNullable<ReturnType<typeof compileRisky>>;

function criteriaOf(r: Risky): Criterion[] {
  return [
    { name: 'BurnedInAnnotation', withhold: r.burnedInAnnotation },
    { name: 'RecognizableVisualFeatures', withhold: r.recognizableVisualFeatures },
    ...[...r.modality].map(([m, on]) => ({ name: `Modality ${m}`, withhold: on })),
    { name: 'SOPClass secondaryCapture', withhold: r.secondaryCapture },
    { name: 'SOPClass video', withhold: r.video },
    ...[...r.imageType].map(([t, on]) => ({ name: `ImageType ${t}`, withhold: on })),
    { name: 'SOPClass encapsulatedDocument', withhold: r.encapsulatedDocument },
  ];
}

/** The first risky criterion in force that holds, as a verdict detail; undefined when none does. */
function riskyDetail(r: Risky, read: AttributeReader): string | undefined {
  if (r.burnedInAnnotation && upper(read(T.BurnedInAnnotation)).includes('YES')) return 'BurnedInAnnotation';
  if (r.recognizableVisualFeatures && upper(read(T.RecognizableVisualFeatures)).includes('YES')) return 'RecognizableVisualFeatures';
  for (const m of upper(read(T.Modality))) if (r.modality.get(m)) return `Modality ${m}`;
  const sopClass = valueTexts(read(T.SOPClassUID))[0] ?? '';
  if (r.secondaryCapture && SECONDARY_CAPTURE_SOP_CLASSES.includes(sopClass)) return 'SOPClass secondaryCapture';
  if (r.video && VIDEO_SOP_CLASSES.includes(sopClass)) return 'SOPClass video';
  for (const t of upper(read(T.ImageType))) if (r.imageType.get(t)) return `ImageType ${t}`;
  if (r.encapsulatedDocument && ENCAPSULATED_DOCUMENT_SOP_CLASSES.includes(sopClass)) return 'SOPClass encapsulatedDocument';
  return undefined;
}

const REDACTABLE_BITS = new Set([1, 8, 16, 32]);

/**
 * Why the gateway cannot blank this instance's pixels (pixel/ decodes and blanks; these layouts it
 * cannot), or undefined: 1. Float / Double Float Pixel Data; 2. YBR_PARTIAL_420/422 (MPEG video);
 * 3. Bits Allocated other than 1, 8, 16, 32; 4. no Rows or Columns (no image to blank).
 */
function unredactable(read: AttributeReader): string | undefined {
  if (read(T.FloatPixelData) !== undefined) return 'FloatPixelData';
  if (read(T.DoubleFloatPixelData) !== undefined) return 'DoubleFloatPixelData';
  const pi = upper(read(T.PhotometricInterpretation))[0];
  if (pi === 'YBR_PARTIAL_420' || pi === 'YBR_PARTIAL_422') return `PhotometricInterpretation ${pi}`;
  const bits = numberOf(valueTexts(read(T.BitsAllocated))[0] ?? '');
  if (bits === undefined || !REDACTABLE_BITS.has(bits)) return bits === undefined ? 'BitsAllocated absent' : `BitsAllocated ${bits}`;
  for (const which of ['Rows', 'Columns'] as const) {
    const n = numberOf(valueTexts(read(T[which]))[0] ?? '');
    if (n === undefined || n < 1) return `${which} absent`;
  }
  return undefined;
}

function nameOf(input: unknown, key: string, names: Set<string>, issues: string[]): string | undefined {
  if (typeof input !== 'string' || !/^[\x21-\x7e][\x20-\x7e]{0,127}$/.test(input)) return void issues.push(`${key}: a name of 1 to 128 printable characters`);
  if (names.has(input)) return void issues.push(`${key}: "${input}" is used twice`);
  names.add(input);
  return input;
}

function compileFilters(input: unknown, cleanStructuredContent: boolean, issues: string[]): CompiledFilter[] {
  const list = input === undefined ? defaultPixelFilters(cleanStructuredContent) : input;
  if (!Array.isArray(list) || list.length > MAX_LIST) {
    issues.push('pixels.filters: a list of { name, exclude }');
    return [];
  }
  const names = new Set<string>();
  return list.flatMap((f: unknown, i) => {
    const key = `pixels.filters.${i}`;
    if (!isRecord(f)) return none(issues.push(`${key}: { name, exclude }`));
    for (const k of Object.keys(f)) if (k !== 'name' && k !== 'exclude') issues.push(`${key}.${k}: not a filter field (name, exclude)`);
    const name = nameOf(f['name'], `${key}.name`, names, issues);
    const condition = compileMatch(f['exclude'], `${key}.exclude`, issues);
    return name && condition ? [{ name, condition, verdict: withheld('filtered', `filter ${name}`) } satisfies CompiledFilter] : [];
  });
}

function redactVerdict(name: string, rectangles: readonly Rectangle[]): PixelVerdict & { readonly action: 'redact' } {
  return Object.freeze({ action: 'redact', rule: name, rectangles: Object.freeze([...rectangles]) });
}

function compileRules(input: unknown, names: Set<string>, issues: string[]): CompiledRule[] {
  if (input === undefined) return [];
  if (!Array.isArray(input) || input.length > MAX_LIST) {
    issues.push('pixels.rules: a list of { name, match, rectangles }');
    return [];
  }
  return input.flatMap((r: unknown, i) => {
    const key = `pixels.rules.${i}`;
    if (!isRecord(r)) return none(issues.push(`${key}: { name, match, rectangles }`));
    for (const k of Object.keys(r)) if (!['name', 'match', 'rectangles'].includes(k)) issues.push(`${key}.${k}: not a rule field (name, match, rectangles)`);
    const before = issues.length;
    const name = nameOf(r['name'], `${key}.name`, names, issues);
    const condition = compileMatch(r['match'], `${key}.match`, issues);
    const rects = r['rectangles'];
    if (!Array.isArray(rects) || rects.length === 0 || rects.length > 256) issues.push(`${key}.rectangles: a list of 1 to 256 { x, y, width, height }`);
    const rectangles = Array.isArray(rects) ? rects.map((rect, j) => compileRectangle(rect, `${key}.rectangles.${j}`, issues)) : [];
    if (issues.length > before || !name || !condition) return [];
    return [{ name, source: 'config', condition, verdict: redactVerdict(name, rectangles as Rectangle[]) }];
  });
}

function compileScripts(input: unknown, scripts: PixelPolicyContext['scripts'], names: Set<string>, issues: string[]): CompiledRule[] {
  if (input === undefined) return [];
  if (!Array.isArray(input) || input.length > MAX_LIST) {
    issues.push('pixels.ctpScripts: a list of script files');
    return [];
  }
  const seen = new Set<string>();
  return input.flatMap((file: unknown, i) => {
    const key = `pixels.ctpScripts.${i}`;
    if (typeof file !== 'string' || file === '') return none(issues.push(`${key}: a file name`));
    if (seen.has(file)) return none(issues.push(`${key}: ${file} is listed twice`));
    seen.add(file);
    const text = scripts?.get(file);
    if (text === undefined) return none(issues.push(`${key}: ${file} was not read`));
    if (typeof text !== 'string') return none(issues.push(`${key}: ${text.error}`));
    const script = parseCtpPixelScript(text);
    if (script.issues.length > 0) return none(issues.push(...script.issues.map((issue) => `${key}: ${file} ${issue}`)));
    return script.signatures.map((sig) => {
      const name = `ctp:${file}:${sig.line}`;
      names.add(name);
      return { name, source: `ctp:${file}`, condition: sig.condition, verdict: redactVerdict(name, sig.rectangles) };
    });
  });
}

/**
 * Checks a profile's `pixels` block and builds its policy; every problem is returned at once, each
 * naming its key (`pixels.rules.0.match.Modalty: not an attribute keyword or tag`).
 */
export function checkPixelPolicy(config: PixelPolicyConfig | undefined, context: PixelPolicyContext = {}): { policy: PixelPolicy | undefined; issues: string[] } {
  const issues: string[] = [];
  const input: Record<string, unknown> = config === undefined || !isRecord(config) ? {} : config;
  if (config !== undefined && !isRecord(config)) issues.push('pixels: { enabled, risky, filters, rules, ctpScripts, ocr }');
  for (const k of Object.keys(input)) if (!PIXELS_FIELDS.includes(k)) issues.push(`pixels.${k}: not a pixels field (${PIXELS_FIELDS.join(', ')})`);
  const enabled = input['enabled'] ?? true;
  if (typeof enabled !== 'boolean') issues.push('pixels.enabled: true or false');
  const ocr = input['ocr'] ?? false;
  if (typeof ocr !== 'boolean') issues.push('pixels.ocr: true or false');
  const risky = compileRisky(input['risky'], issues);
  const filters = compileFilters(input['filters'], context.cleanStructuredContent === true, issues);
  const names = new Set<string>();
  const rules = [...compileRules(input['rules'], names, issues), ...compileScripts(input['ctpScripts'], context.scripts, names, issues)];
  if (issues.length > 0 || risky === undefined) return { policy: undefined, issues };
  if (enabled === false) return { policy: KEEP_ALL, issues };
  return { policy: new CompiledPixelPolicy(risky, filters, rules, ocr === true), issues };
}

const PIXELS_FIELDS: readonly string[] = ['enabled', 'risky', 'filters', 'rules', 'ctpScripts', 'ocr'];

/** checkPixelPolicy, throwing DeidPolicyError with every issue. */
export function compilePixelPolicy(config: PixelPolicyConfig | undefined, context: PixelPolicyContext = {}): PixelPolicy {
  const { policy, issues } = checkPixelPolicy(config, context);
  if (policy === undefined) throw new DeidPolicyError(issues);
  return policy;
}

/**
 * The verdict, per instance, from its top-level header:
 *   1. a series filter that matches: withheld (`filtered`);
 *   2. the first redaction rule that matches (config rules, then CTP signatures): redacted, unless
 *      the gateway cannot blank that layout (`unredactable`: withheld, fail closed);
 *   3. a risky criterion in force that holds: withheld (`risky`); under `ocr: true`, and when the layout
 *      is one the gateway can blank, that withhold is marked `ocr` (withTextRegions may replace it);
 *   4. kept, pixels byte-identical.
 */
class CompiledPixelPolicy implements PixelPolicy {
  readonly active = true;
  readonly attributeTags: readonly number[];
  readonly ocr: boolean;
  readonly #risky: Risky;
  readonly #filters: readonly CompiledFilter[];
  readonly #rules: readonly CompiledRule[];
  readonly #riskyVerdicts = new Map<string, PixelVerdict>();

  constructor(risky: Risky, filters: readonly CompiledFilter[], rules: readonly CompiledRule[], ocr: boolean) {
    this.ocr = ocr;
    this.#risky = risky;
    this.#filters = filters;
    this.#rules = rules;
    const tags = new Set<number>(BASE_TAGS);
    for (const f of filters) for (const t of f.condition.tags) tags.add(t);
    for (const r of rules) for (const t of r.condition.tags) tags.add(t);
    this.attributeTags = Object.freeze([...tags].sort((a, b) => a - b));
    Object.freeze(this);
  }

  verdict(read: AttributeReader): PixelVerdict {
    for (const f of this.#filters) if (f.condition.test(read)) return f.verdict;
    for (const r of this.#rules) {
      if (!r.condition.test(read)) continue;
      const why = unredactable(read);
      return why === undefined ? r.verdict : withheld('unredactable', `rule ${r.name}: ${why}`);
    }
    const detail = riskyDetail(this.#risky, read);
    if (detail === undefined) return KEEP;
    // Issue 18: OCR may replace the withhold only where the gateway can blank the layout.
    const ocr = this.ocr && unredactable(read) === undefined;
    const key = `${ocr ? 'ocr' : ''}\u0000${detail}`;
    let v = this.#riskyVerdicts.get(key);
    if (v === undefined) {
      v = ocr ? Object.freeze({ action: 'withhold', reason: 'risky', detail, ocr: true }) : withheld('risky', detail);
      if (this.#riskyVerdicts.size < 1024) this.#riskyVerdicts.set(key, v);
    }
    return v;
  }

  describe(): PixelPolicyDescription {
    const criteria = criteriaOf(this.#risky);
    return {
      risky: criteria.filter((c) => c.withhold).map((c) => c.name),
      allowed: criteria.filter((c) => !c.withhold).map((c) => c.name),
      filters: this.#filters.map((f) => `${f.name}: ${f.condition.text}`),
      rules: this.#rules.map((r) => ({ name: r.name, source: r.source, match: r.condition.text, rectangles: r.verdict.rectangles })),
      ocr: this.ocr,
    };
  }
}




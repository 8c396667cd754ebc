// Generates src/deid/iod-table.generated.ts from David Clunie's dicom3tools PS3.3 tables in
// ../shared/standard/dicom3tools (see its README and COPYRIGHT): sopcl.tpl (SOP Class UID -> name),
// condn.tpl (the "<IOD>Instance" conditions that tie SOP Classes to an IOD), iodcomp/*.tpl (the modules of
// each composite IOD) and module/*.tpl (each module's and macro's attributes with their Type, sequences
// nesting their items).
//
//   node --import tsx scripts/generate-iod-table.ts [dicom3toolsDir]     (npm run generate:iod-table)
//
// The output is committed because a deployment has no ../shared; test/unit/deid/iod-table.test.ts
// regenerates it in memory and checks it still matches the committed file.
//
// Only what the engine asks is kept (PS3.15 E.1.1): the Type, per IOD and per sequence path, of
//   1. attributes whose Table E.1-1 Basic Profile code is compound (X/Z, X/D, Z/D, X/Z/D, X/Z/U*);
//   2. sequences whose Basic code is D (removed where Type 3, else given a dummy item);
//   3. attributes outside Table E.1-1 that the engine would remove or empty by their VR (Note 1), so
//      that a Type 1 one gets a dummy and a Type 2 one stays present, empty;
// and, for each sequence of 2 that some IOD requires, the Type 1 attributes of its item (the dummy item).
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { lookup, tagForKeyword } from '../src/dicom/dictionary.ts';
import { tagToHex } from '../src/dicom/tag.ts';
import { IDENTITY_VRS, identitySafeEntry } from '../src/deid/identity-safe-list.ts';
import { TABLE_E1_1 } from '../src/deid/profile-table.generated.ts';

const here = dirname(fileURLToPath(import.meta.url));
export const DEFAULT_DICOM3TOOLS_DIR = resolve(here, '../../shared/standard/dicom3tools');
export const OUTPUT_FILE = resolve(here, '../src/deid/iod-table.generated.ts');

// --- the .tpl files -------------------------------------------------------------------------------

/** One line of a .tpl file as its key="value" pairs, in order (a key may repeat only in conditions). */
type Fields = ReadonlyMap<string, string>;

function fieldsOf(line: string): Fields {
  const out = new Map<string, string>();
  const code = line.replace(/#.*$/, '');
  // The source has a few typos (Name=OphthalmicAxialLength", a doubled closing quote): the value is a
  // quoted string or, unquoted, the text up to the next quote or blank.
  for (const m of code.matchAll(/(\w+)=(?:"([^"]*)"|([^"\s]+)"?)/g)) if (!out.has(m[1]!)) out.set(m[1]!, m[2] ?? m[3]!);
  return out;
}

/** An attribute of a module or macro; `item` holds a sequence's item definition. */
export interface TplAttribute {
  readonly kind: 'attribute';
  readonly name: string;
  readonly type: string;
  readonly condition: string | undefined;
  /** The value is checked against an enumeration (StringEnumValues / BinaryEnumValues) or must not be zero. */
  readonly constrained: boolean;
  readonly item: readonly TplLine[] | undefined;
}
export interface TplInvoke {
  readonly kind: 'invoke';
  readonly macro: string;
  /** The invocation is conditional: Type 1/2 attributes of the macro are then 1C/2C. */
  readonly conditional: boolean;
}
export type TplLine = TplAttribute | TplInvoke;

export interface ModuleTables {
  readonly modules: ReadonlyMap<string, readonly TplLine[]>;
  readonly macros: ReadonlyMap<string, readonly TplLine[]>;
}

/** Parses module/*.tpl: `Module=` / `DefineMacro=` blocks of `Name=`, `Sequence=` … `SequenceEnd` and `InvokeMacro=`. */
export function parseModules(texts: readonly string[]): ModuleTables {
  const modules = new Map<string, TplLine[]>();
  const macros = new Map<string, TplLine[]>();
  for (const text of texts) {
    const stack: TplLine[][] = [];
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      const f = fieldsOf(line);
      if (f.has('Module') && stack.length === 0) {
        const lines: TplLine[] = [];
        modules.set(f.get('Module')!, lines);
        stack.push(lines);
      } else if (f.has('DefineMacro')) {
        if (stack.length !== 0) throw new Error(`macro ${f.get('DefineMacro')} inside a block`);
        const lines: TplLine[] = [];
        macros.set(f.get('DefineMacro')!, lines);
        stack.push(lines);
      } else if (/^(ModuleEnd|MacroEnd)\b/.test(line)) {
        // Both end a block (one macro in the source ends with ModuleEnd); a stray end after a block is harmless.
        if (stack.length > 1) throw new Error(`block ends inside a sequence: ${line}`);
        stack.length = 0;
      } else if (/^SequenceEnd\b/.test(line)) {
        if (stack.length < 2) throw new Error('SequenceEnd outside a sequence');
        stack.pop();
      } else if (f.has('Sequence') || f.has('Name')) {
        const top = stack.at(-1);
        if (top === undefined) throw new Error(`attribute outside a block: ${line}`);
        const item: TplLine[] | undefined = f.has('Sequence') ? [] : undefined;
        const constrained = f.has('StringEnumValues') || f.has('BinaryEnumValues') || f.has('NotZeroError');
        top.push({ kind: 'attribute', name: (f.get('Sequence') ?? f.get('Name'))!, type: f.get('Type') ?? '3', condition: f.get('Condition'), constrained, item });
        if (item) stack.push(item);
      } else if (f.has('InvokeMacro')) {
        const top = stack.at(-1);
        if (top === undefined) throw new Error(`macro invoked outside a block: ${line}`);
        top.push({ kind: 'invoke', macro: f.get('InvokeMacro')!, conditional: f.has('Condition') || /C$/.test(f.get('Type') ?? '') });
      } else if (!f.has('Verify')) {
        // Verify= lines add value checks to an attribute already listed: not a Type.
        throw new Error(`unrecognised module line: ${line}`);
      }
    }
    if (stack.length !== 0) throw new Error('a block is not ended');
  }
  return { modules, macros };
}

export interface IodDefinition {
  readonly name: string;
  /** The condn.tpl condition that recognises an instance of the IOD (e.g. CTImageInstance). */
  readonly condition: string;
  readonly modules: readonly { readonly name: string; readonly usage: 'M' | 'C' | 'U' }[];
}

/** Parses iodcomp/*.tpl. IODs with a `Profile=` (e.g. Dental) add constraints to another IOD and are skipped. */
export function parseIods(texts: readonly string[]): IodDefinition[] {
  const out: IodDefinition[] = [];
  for (const text of texts) {
    let current: { name: string; condition: string; modules: IodDefinition['modules'][number][]; skip: boolean } | undefined;
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      const f = fieldsOf(line);
      if (f.has('CompositeIOD')) {
        current = { name: f.get('CompositeIOD')!, condition: f.get('Condition') ?? '', modules: [], skip: f.has('Profile') };
      } else if (/^CompositeIODEnd\b/.test(line)) {
        if (current === undefined) throw new Error('CompositeIODEnd without an IOD');
        if (!current.skip) out.push({ name: current.name, condition: current.condition, modules: current.modules });
        current = undefined;
      } else if (f.has('Module')) {
        const usage = f.get('Usage');
        if (current === undefined || (usage !== 'M' && usage !== 'C' && usage !== 'U')) throw new Error(`bad module line: ${line}`);
        current.modules.push({ name: f.get('Module')!, usage });
      }
    }
  }
  return out;
}

/** sopcl.tpl: SOP Class name -> UIDs (storage classes; `Type="Instance"` well-known instances are skipped). */
export function parseSopClasses(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const raw of text.split('\n')) {
    const f = fieldsOf(raw);
    const name = f.get('Name');
    const uid = f.get('Uid');
    if (name === undefined || uid === undefined || f.get('Type') === 'Instance') continue;
    out.set(name, [...(out.get(name) ?? []), uid]);
  }
  return out;
}

/**
 * condn.tpl, the IOD-recognising conditions only: those made of `Element="SOPClassUID"
 * StringConstantFromRootAttribute="<Name>SOPClassUID"` alternatives (no Not, no And), as condition ->
 * SOP Class names. The Basic Directory IOD (DICOMDIR) is recognised by its File Meta instead; its dataset
 * has no SOP Class UID, so the engine could not tell it and it is left out.
 */
export function parseInstanceConditions(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let name: string | undefined;
  let names: string[] = [];
  let simple = true;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const f = fieldsOf(line);
    if (f.has('Condition')) {
      name = f.get('Condition');
      names = [];
      simple = true;
    } else if (/^ConditionEnd\b/.test(line)) {
      if (name !== undefined && simple && names.length > 0) out.set(name, names);
      name = undefined;
    } else if (name !== undefined && line !== '' && !line.startsWith('#')) {
      const constant = f.get('StringConstantFromRootAttribute');
      if (f.get('Element') === 'SOPClassUID' && constant?.endsWith('SOPClassUID') && !f.has('Modifier') && (f.get('Operator') ?? 'Or') === 'Or') {
        names.push(constant.slice(0, -'SOPClassUID'.length));
      } else simple = false;
    }
  }
  return out;
}

// --- expansion: (IOD, sequence path, tag) -> Type ---------------------------------------------------

/** PS3.3 5.4 attribute Types, strongest requirement first. */
export const TYPES = ['1', '1C', '2', '2C', '3'] as const;
export type AttributeType = (typeof TYPES)[number];
const strength = (t: AttributeType): number => TYPES.indexOf(t);

/** One attribute as it occurs in an IOD: its tag path (enclosing sequences, then itself) and Type. */
export interface IodAttribute {
  readonly path: readonly number[];
  readonly type: AttributeType;
  readonly module: string;
  readonly condition: string | undefined;
  readonly constrained: boolean;
}

/** A macro may invoke itself (SR content items nest): it is expanded at most this many times on one path. */
const MAX_MACRO_REENTRY = 2;

/**
 * Every attribute of an IOD with its Type, macros inlined. An attribute that occurs twice on one path (in
 * two modules, or a module and a macro) keeps its strongest Type. Module usage (M, C, U) is not weighed:
 * the engine decides on attributes that are present, and a present attribute stands for its module, so its
 * Type there holds. Attributes of a conditionally invoked macro count as conditional (1 -> 1C, 2 -> 2C).
 * `unknown` collects names the PS3.6 dictionary does not have by keyword (the repeating overlay and curve
 * groups, whose Types the engine does not need: their Table E.1-1 codes are not compound).
 */
export function expandIod(iod: IodDefinition, tables: ModuleTables, unknown: Set<string>): Map<string, IodAttribute> {
  const out = new Map<string, IodAttribute>();
  const visit = (lines: readonly TplLine[], path: readonly number[], module: string, conditional: boolean, stack: readonly string[]): void => {
    for (const line of lines) {
      if (line.kind === 'invoke') {
        const macro = tables.macros.get(line.macro);
        if (macro === undefined) throw new Error(`${module}: unknown macro ${line.macro}`);
        if (stack.filter((m) => m === line.macro).length >= MAX_MACRO_REENTRY) continue;
        visit(macro, path, module, conditional || line.conditional, [...stack, line.macro]);
        continue;
      }
      const tag = tagForKeyword(line.name);
      if (tag === undefined) {
        unknown.add(line.name);
        continue;
      }
      // One attribute is "3C" (an optional one with a note on when it is sent): optional is what matters.
      let type = (line.type === '3C' ? '3' : line.type) as AttributeType;
      if (!TYPES.includes(type)) throw new Error(`${module}: ${line.name} has Type ${line.type}`);
      if (conditional && (type === '1' || type === '2')) type = `${type}C` as AttributeType;
      const full = [...path, tag];
      const key = full.map(tagToHex).join('>');
      const had = out.get(key);
      if (had === undefined || strength(type) < strength(had.type)) out.set(key, { path: full, type, module, condition: line.condition, constrained: line.constrained });
      // The item's own attributes are required only when the sequence is present: Types stay as written.
      if (line.item) visit(line.item, full, module, false, stack);
    }
  };
  for (const { name } of iod.modules) {
    const lines = tables.modules.get(name);
    if (lines === undefined) throw new Error(`${iod.name}: unknown module ${name}`);
    visit(lines, [], name, false, []);
  }
  return out;
}

export interface Sources {
  readonly tables: ModuleTables;
  readonly iods: readonly IodDefinition[];
  readonly sopClasses: ReadonlyMap<string, readonly string[]>;
  readonly instanceConditions: ReadonlyMap<string, readonly string[]>;
  readonly conditionText: string;
}

export function readSources(dir: string = DEFAULT_DICOM3TOOLS_DIR): Sources {
  const tplTexts = (sub: string): string[] => readdirSync(join(dir, sub)).filter((f) => f.endsWith('.tpl')).sort().map((f) => readFileSync(join(dir, sub, f), 'latin1'));
  const conditionText = readFileSync(join(dir, 'condn.tpl'), 'latin1');
  return {
    tables: parseModules(tplTexts('module')),
    iods: parseIods(tplTexts('iodcomp')),
    sopClasses: parseSopClasses(readFileSync(join(dir, 'sopcl.tpl'), 'latin1')),
    instanceConditions: parseInstanceConditions(conditionText),
    conditionText,
  };
}

// --- condn.tpl conditions, evaluated where their terms are known ---------------------------------

/** One term of a condition: an `Element=` test or a parenthesised group, joined to the terms before it. */
interface ConditionTerm {
  readonly op: 'and' | 'or';
  readonly not: boolean;
  readonly atom?: Fields;
  readonly group?: readonly ConditionTerm[];
}

/**
 * Parses condn.tpl into condition name -> terms. Terms combine left to right; a term without `Operator`
 * joins with Or (e.g. BoundingBoxNeeded: top left present, or bottom right present, or no anchor point).
 */
export function parseConditions(text: string): Map<string, readonly ConditionTerm[]> {
  const out = new Map<string, ConditionTerm[]>();
  let name: string | undefined;
  let stack: ConditionTerm[][] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') continue;
    const f = fieldsOf(line);
    const op = f.get('Operator') === 'And' ? 'and' : 'or';
    const not = f.get('Modifier') === 'Not';
    if (f.has('Condition')) {
      name = f.get('Condition');
      stack = [[]];
    } else if (/^ConditionEnd\b/.test(line)) {
      if (name !== undefined && stack.length === 1) out.set(name, stack[0]!);
      name = undefined;
    } else if (name === undefined) {
      // between conditions: comments and blank lines only
    } else if (line.startsWith('(')) {
      stack.push([]);
    } else if (line.startsWith(')')) {
      const group = stack.pop();
      if (group === undefined || stack.length === 0) throw new Error(`${name}: unbalanced parenthesis`);
      stack.at(-1)!.push({ op, not, group });
    } else if (f.has('Element')) {
      stack.at(-1)!.push({ op, not, atom: f });
    }
  }
  return out;
}

/** What a condition may ask of the dataset; undefined = not known here. */
interface ConditionContext {
  present(keyword: string): boolean | undefined;
  /** The first value of an attribute; null when it is absent, undefined when not known. */
  value(keyword: string): string | null | undefined;
}

const ATOM_KEYS = new Set(['Element', 'Operator', 'Modifier']);

function evaluateAtom(f: Fields, ctx: ConditionContext): boolean | undefined {
  const keys = [...f.keys()].filter((k) => !ATOM_KEYS.has(k));
  const element = f.get('Element')!;
  if (keys.length === 1 && keys[0] === 'ElementPresent') return ctx.present(element);
  if (keys.length === 1 && keys[0] === 'StringValue') {
    const v = ctx.value(element);
    return v === undefined ? undefined : v === null ? false : v === f.get('StringValue');
  }
  return undefined; // within a sequence, from the root, binary values, value selectors …: not evaluated
}

/** Three-valued (Kleene) evaluation: undefined when the answer depends on something not known. */
export function evaluateCondition(terms: readonly ConditionTerm[], ctx: ConditionContext): boolean | undefined {
  let acc: boolean | undefined;
  terms.forEach((term, i) => {
    let v = term.group ? evaluateCondition(term.group, ctx) : evaluateAtom(term.atom!, ctx);
    if (term.not && v !== undefined) v = !v;
    if (i === 0) acc = v;
    else if (term.op === 'and') acc = acc === false || v === false ? false : acc === undefined || v === undefined ? undefined : true;
    else acc = acc === true || v === true ? true : acc === undefined || v === undefined ? undefined : false;
  });
  return acc;
}

// --- the compact table ------------------------------------------------------------------------------

/**
 * Type codes, one character per IOD: 1, 2, 3; A = 1C and B = 2C whose condition is not known from the
 * attribute alone; a = 1C and b = 2C whose condition holds whenever the attribute is present (e.g.
 * SeriesNeedReferencedPerformedProcedureStepSequence: "required if present"); '.' = not in the IOD.
 */
const TYPE_CODE: Readonly<Record<AttributeType, string>> = { '1': '1', '1C': 'A', '2': '2', '2C': 'B', '3': '3' };

/** One attribute of a dummy item: [tag (8 hex), VR, number of values (0: present, empty), fixed value ('' = the VR's dummy), nested item]. */
export type DummyAttribute = readonly [string, string, number, string, number?];

/**
 * Values for attributes of a dummy item that the tables check against an enumeration (or that must not be
 * zero): the tables name the enumeration, the values are PS3.3's. A dummy item that needs one not listed
 * here is not made (the sequence is then emptied, as the profile's D did before items were made).
 */
const FIXED_VALUES: ReadonlyMap<string, string> = new Map([
  // PS3.3 C.10.5 Graphic Annotation Module: Annotation Units are PIXEL, DISPLAY or MATRIX.
  ['BoundingBoxAnnotationUnits', 'PIXEL'],
  ['AnchorPointAnnotationUnits', 'PIXEL'],
  ['GraphicAnnotationUnits', 'PIXEL'],
  // PS3.3 C.10.5.1.1: LEFT, RIGHT or CENTER; Y or N.
  ['BoundingBoxTextHorizontalJustification', 'LEFT'],
  ['AnchorPointVisibility', 'N'],
]);

/** Sequences whose item the tables cannot describe well enough to invent one: D leaves them empty. */
export const NO_DUMMY_ITEM: ReadonlyMap<string, string> = new Map([
  [
    'ContentSequence',
    'an SR content item must fit the document template (PS3.16) and its relationship constraints (PS3.3 C.17.3), which the PS3.3 tables do not carry; a made-up clinical statement would be worse than none',
  ],
]);

const BINARY_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);

/** The fewest values the PS3.6 VM allows ("2-2n" -> 2, "1-n" -> 1). */
function minValues(vm: string | undefined): number {
  const n = Number.parseInt(vm ?? '1', 10);
  return Number.isFinite(n) && n > 0 ? n : 1;
}

export interface IodTableModel {
  readonly iods: readonly { readonly name: string; readonly sopClasses: readonly string[] }[];
  readonly rows: readonly { readonly path: readonly number[]; readonly types: string; readonly dummies: string }[];
  readonly dummyItems: readonly (readonly DummyAttribute[])[];
  /** Sequence keyword -> why no dummy item is made for it (in some IOD). */
  readonly noDummy: ReadonlyMap<string, string>;
  readonly unknownNames: readonly string[];
}

type Relevance = 'compound' | 'dsq' | 'outside';

/** Why an attribute is in the table (see the header of this file), or undefined. */
function relevance(tag: number, codes: ReadonlyMap<number, string>): Relevance | undefined {
  const code = codes.get(tag);
  const vrs = lookup(tag)?.vrs ?? [];
  if (code !== undefined) return code.includes('/') ? 'compound' : code === 'D' && vrs.includes('SQ') ? 'dsq' : undefined;
  return identitySafeEntry(tag) === undefined && vrs.some((vr) => IDENTITY_VRS.has(vr)) ? 'outside' : undefined;
}

export function buildIodTable(sources: Sources): IodTableModel {
  const { tables, sopClasses, instanceConditions } = sources;
  // Only IODs an instance's SOP Class UID (0008,0016) names: the engine knows an IOD by nothing else.
  const iods = sources.iods.filter((iod) => (instanceConditions.get(iod.condition) ?? []).some((n) => sopClasses.has(n)));
  const conditions = parseConditionsCached(sources);
  const codes = new Map<number, string>();
  for (const [text, kind, code] of TABLE_E1_1) {
    if (kind !== 'exact') continue;
    codes.set(Number.parseInt(text.slice(1, 5) + text.slice(6, 10), 16), code);
  }
  const unknown = new Set<string>();
  const iodList = iods.map((iod) => ({ name: iod.name, sopClasses: (instanceConditions.get(iod.condition) ?? []).flatMap((n) => sopClasses.get(n) ?? []) }));
  const typesOf = new Map<string, string[]>(); // key -> one code per IOD
  const dummiesOf = new Map<string, string[]>();
  const dummyItems: (readonly DummyAttribute[])[] = [];
  const dummyIndex = new Map<string, number>();
  const noDummy = new Map<string, string>();

  /** Whether a 1C/2C attribute's condition holds whenever the attribute itself is present. */
  const requiredWhenPresent = (a: IodAttribute, keyword: string): boolean => {
    const terms = a.condition === undefined ? undefined : conditions.get(a.condition);
    if (terms === undefined) return false;
    return evaluateCondition(terms, { present: (k) => (k === keyword ? true : undefined), value: () => undefined }) === true;
  };

  iods.forEach((iod, index) => {
    const attributes = expandIod(iod, tables, unknown);
    const children = new Map<string, IodAttribute[]>();
    for (const [key, a] of attributes) {
      const parent = key.slice(0, Math.max(0, key.lastIndexOf('>')));
      children.set(parent, [...(children.get(parent) ?? []), a]);
    }
    const keyOf = (path: readonly number[]): string => path.map(tagToHex).join('>');

    /** 1. Attributes in template order whose Type or condition (over the item made so far) requires them; 2. their values. */
    const makeItem = (sequence: IodAttribute): number | string => {
      const keyword = lookup(sequence.path.at(-1)!)?.keyword ?? '';
      const excluded = NO_DUMMY_ITEM.get(keyword);
      if (excluded !== undefined) return excluded;
      const candidates = children.get(keyOf(sequence.path)) ?? [];
      const included = new Set<IodAttribute>();
      const kw = (a: IodAttribute): string => lookup(a.path.at(-1)!)?.keyword ?? '';
      const byKeyword = new Map(candidates.map((a) => [kw(a), a]));
      const ctx: ConditionContext = {
        present: (k) => {
          const a = byKeyword.get(k);
          return a !== undefined && included.has(a);
        },
        value: (k) => {
          const a = byKeyword.get(k);
          if (a === undefined || !included.has(a)) return null;
          return FIXED_VALUES.get(k);
        },
      };
      for (let changed = true; changed; ) {
        changed = false;
        for (const a of candidates) {
          if (included.has(a)) continue;
          let required = a.type === '1' || a.type === '2';
          if (a.type === '1C' || a.type === '2C') {
            const terms = a.condition === undefined ? undefined : conditions.get(a.condition);
            required = terms !== undefined && evaluateCondition(terms, ctx) === true;
          }
          if (required) {
            included.add(a);
            changed = true;
          }
        }
      }
      const item: DummyAttribute[] = [];
      for (const a of candidates) {
        if (!included.has(a)) continue;
        const tag = a.path.at(-1)!;
        const entry = lookup(tag)!;
        const vr = entry.vrs[0] ?? '';
        const empty = a.type === '2' || a.type === '2C';
        if (vr === 'SQ') {
          if (empty) item.push([tagToHex(tag), vr, 0, '']);
          else {
            const nested = makeItem(a);
            if (typeof nested === 'string') return `${kw(a)}: ${nested}`;
            item.push([tagToHex(tag), vr, 1, '', nested]);
          }
          continue;
        }
        const fixed = FIXED_VALUES.get(kw(a));
        if (!empty && a.constrained && fixed === undefined) return `${kw(a)} takes enumerated (or non-zero) values that the tables do not give`;
        if (!empty && BINARY_VRS.has(vr)) return `${kw(a)} is binary (${vr})`;
        item.push([tagToHex(tag), vr, empty ? 0 : minValues(entry.vm), empty ? '' : (fixed ?? '')]);
      }
      if (item.length === 0) return 'its item has no attribute the tables require';
      const json = JSON.stringify(item);
      let at = dummyIndex.get(json);
      if (at === undefined) {
        at = dummyItems.length;
        dummyItems.push(item);
        dummyIndex.set(json, at);
      }
      return at;
    };

    for (const [key, a] of attributes) {
      const tag = a.path.at(-1)!;
      const why = relevance(tag, codes);
      if (why === undefined) continue;
      let code = TYPE_CODE[a.type];
      if ((a.type === '1C' || a.type === '2C') && requiredWhenPresent(a, lookup(tag)?.keyword ?? '')) code = a.type === '1C' ? 'a' : 'b';
      if (why === 'outside' && !'12ab'.includes(code)) continue;
      let types = typesOf.get(key);
      if (types === undefined) {
        types = iods.map(() => '.');
        typesOf.set(key, types);
      }
      types[index] = code;
      const sequenceWithD = lookup(tag)?.vrs.includes('SQ') === true && (why === 'dsq' || (why === 'compound' && codes.get(tag)!.includes('D')));
      if (sequenceWithD && code !== '3') {
        const made = makeItem(a);
        let dummies = dummiesOf.get(key);
        if (dummies === undefined) {
          dummies = iods.map(() => '');
          dummiesOf.set(key, dummies);
        }
        if (typeof made === 'number') dummies[index] = String(made);
        else noDummy.set(lookup(tag)?.keyword ?? key, made);
      }
    }
  });

  const rows = [...typesOf].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([key, types]) => {
    const dummies = dummiesOf.get(key);
    // One item for every IOD that has one: stored once; else per IOD, space-separated ('' = none).
    const distinct = new Set(dummies?.filter((d) => d !== ''));
    const encoded = dummies === undefined || distinct.size === 0 ? '' : distinct.size === 1 && dummies.every((d, i) => d !== '' || types[i] === '3' || types[i] === '.') ? [...distinct][0]! : dummies.join(' ');
    return { path: key.split('>').map((h) => Number.parseInt(h, 16)), types: types.join(''), dummies: encoded };
  });
  return { iods: iodList, rows, dummyItems, noDummy, unknownNames: [...unknown].sort() };
}

const conditionCache = new WeakMap<Sources, Map<string, readonly ConditionTerm[]>>();
function parseConditionsCached(sources: Sources): Map<string, readonly ConditionTerm[]> {
  let parsed = conditionCache.get(sources);
  if (parsed === undefined) {
    parsed = parseConditions(sources.conditionText);
    conditionCache.set(sources, parsed);
  }
  return parsed;
}

// --- the generated module --------------------------------------------------------------------------

/** Renders src/deid/iod-table.generated.ts; pure apart from reading the dicom3tools tables. */
export function renderIodTable(dir: string = DEFAULT_DICOM3TOOLS_DIR): string {
  const model = buildIodTable(readSources(dir));
  const copyright = readFileSync(join(dir, 'COPYRIGHT'), 'utf8').trimEnd().split('\n');
  const commit = /commit `([0-9a-f]{40})`/.exec(readFileSync(join(dir, 'README.md'), 'utf8'))?.[1] ?? 'unknown';
  const q = (s: string): string => JSON.stringify(s);
  return [
    '// Generated by scripts/generate-iod-table.ts from ../shared/standard/dicom3tools: David Clunie\'s dicom3tools',
    `// PS3.3 tables (libsrc/standard at ${commit}): sopcl.tpl, condn.tpl, iodcomp/*.tpl, module/*.tpl.`,
    '// Do not edit: run `npm run generate:iod-table`.',
    '//',
    '// The tables it is derived from carry this notice (../shared/standard/dicom3tools/COPYRIGHT):',
    '//',
    ...copyright.map((line) => (line === '' ? '//' : `//   ${line}`)),
    '',
    '/** The composite IODs, in the order of the type strings below: [name, its SOP Class UIDs, space-separated]. */',
    'export const IODS: readonly (readonly [string, string])[] = [',
    ...model.iods.map((iod) => `  [${q(iod.name)}, ${q(iod.sopClasses.join(' '))}],`),
    '];',
    '',
    '/**',
    ' * PS3.15 E.1.1: the Type of each attribute whose action depends on it, per IOD: [tag path (8 hex digits',
    ' * per tag, enclosing sequences first, joined by ">"), one Type code per IOD in IODS order, dummy items].',
    ' * Type codes: 1, 2, 3; A = 1C, B = 2C (condition not known from the attribute alone); a = 1C, b = 2C',
    ' * whose condition holds whenever the attribute is present; "." = not in the IOD. Dummy items: the index',
    ' * into DUMMY_ITEMS of the item a sequence replaced by D gets, the same for every IOD, or one per IOD',
    ' * (space-separated, empty = none); "" = none.',
    ' */',
    'export const IOD_TYPES: readonly (readonly [string, string, string])[] = [',
    ...model.rows.map((r) => `  [${q(r.path.map(tagToHex).join('>'))}, ${q(r.types)}, ${q(r.dummies)}],`),
    '];',
    '',
    '/**',
    ' * Dummy items: the attributes the item\'s macro requires (Type 1 and 2, and 1C / 2C whose condition holds',
    ' * over the item itself), each [tag, VR, number of values (0: present and empty), fixed value ("" = the',
    ' * dummy of the VR), the DUMMY_ITEMS index of a nested sequence\'s item].',
    ' */',
    'export const DUMMY_ITEMS: readonly (readonly (readonly [string, string, number, string, number?])[])[] = [',
    ...model.dummyItems.map((item) => `  [${item.map(([tag, vr, n, fixed, nested]) => `[${q(tag)}, ${q(vr)}, ${n}, ${q(fixed)}${nested === undefined ? '' : `, ${nested}`}]`).join(', ')}],`),
    '];',
    '',
    '/** Sequences no dummy item is made for (D then gives zero items), with the reason. */',
    'export const NO_DUMMY_ITEM: readonly (readonly [string, string])[] = [',
    ...[...model.noDummy].map(([keyword, reason]) => `  [${q(keyword)}, ${q(reason)}],`),
    '];',
    '',
  ].join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const dir = process.argv[2] !== undefined ? resolve(process.argv[2]) : DEFAULT_DICOM3TOOLS_DIR;
  const text = renderIodTable(dir);
  writeFileSync(OUTPUT_FILE, text);
  process.stdout.write(`wrote ${OUTPUT_FILE} (${Math.round(Buffer.byteLength(text) / 1024)} KiB)\n`);
}

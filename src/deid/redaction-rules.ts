// Conditions on header attributes, shared by the pixel policy's series filters and redaction rules
// (pixel-policy.ts) and by the CTP script parser (ctp-pixel-script.ts). A condition is written for a
// PACS administrator, in YAML:
//
//   { Modality: US, Manufacturer: { containsIgnoreCase: acuson }, Rows: [480, 600] }
//
// a map of attribute (keyword, ggggeeee or (gggg,eeee)) to a test, all of which must hold. A test is
//   - a string or number: equals, after trimming (a number also equals a value of the same number);
//   - a list of those: any of them;
//   - an object of operators, all of which must hold: equals, equalsIgnoreCase, contains,
//     containsIgnoreCase, startsWith, endsWith, matches (a regular expression the whole value must
//     match, checked at load; at most MAX_PATTERN_LENGTH characters, and tested against the first
//     MAX_TESTED_LENGTH characters of a value only, which bounds backtracking), present (true: the
//     attribute is in the header, even empty), lessThan, greaterThan (numbers).
// A multi-valued attribute passes a value test when any of its values does. Top-level attributes only,
// and only those before Pixel Data: group 7FE0 and above (Pixel Data, private groups 7FE1…, FFFA Digital
// Signatures …) is never in the header the rewriter decides on, so a condition on it is a config error.
// Pure: no I/O.
import { lookup, tagForKeyword } from '../dicom/dictionary.ts';
import { formatTag, parseTag } from '../dicom/tag.ts';
import type { AttributeReader, Rectangle } from './pixel-verdict.ts';

/** A compiled test over the header: the tags it reads and a readable form for the conformance statement. */
export interface Predicate {
  readonly tags: readonly number[];
  /** E.g. `Modality = "US" and Manufacturer containsIgnoreCase "acuson"`. */
  readonly text: string;
  test(read: AttributeReader): boolean;
}

export const OPERATORS = ['equals', 'equalsIgnoreCase', 'contains', 'containsIgnoreCase', 'startsWith', 'endsWith', 'matches', 'present', 'lessThan', 'greaterThan'] as const;
export type Operator = (typeof OPERATORS)[number];

export type ScalarTest = string | number;
export type AttributeTest = ScalarTest | readonly ScalarTest[] | { readonly [K in Operator]?: K extends 'present' ? boolean : ScalarTest };
/** `{ <attribute>: <test> }`: every test must hold. */
export type ConditionInput = Readonly<Record<string, AttributeTest>>;

/** The most values a list test or attributes a condition may hold (a config typo, not a policy). */
const MAX_ITEMS = 256;

/** The text of each value of an attribute (DICOM JSON "Value" array): strings trimmed, numbers in decimal, PN groups joined by "=". */
export function valueTexts(values: readonly unknown[] | undefined): string[] {
  if (values === undefined) return [];
  return values.map((v) => {
    if (typeof v === 'string') return v.replace(/\0+$/, '').trim();
    if (typeof v === 'number' || typeof v === 'bigint') return String(v);
    if (v !== null && typeof v === 'object') {
      const pn = v as Record<string, unknown>;
      const groups = [pn['Alphabetic'], pn['Ideographic'], pn['Phonetic']].map((g) => (typeof g === 'string' ? g.trim() : ''));
      return groups.join('=').replace(/=+$/, '');
    }
    return '';
  });
}

/** A number written in a value or a test, or undefined (an empty string is not 0). */
export function numberOf(text: string): number | undefined {
  if (text.trim() === '') return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

/** A condition key (keyword, ggggeeee or (gggg,eeee)) as a tag; undefined when it names no attribute. */
export function attributeTag(key: string): number | undefined {
  return tagForKeyword(key) ?? (/^[0-9A-Fa-f]{8}$|^\([0-9A-Fa-f]{4},[0-9A-Fa-f]{4}\)$/.test(key) ? parseTag(key) : undefined);
}

/** The attribute's name for texts: its keyword, else (gggg,eeee). */
export function attributeName(tag: number): string {
  return lookup(tag)?.keyword ?? formatTag(tag);
}

/** The first tag the header-only rewriter never sees: (7FE0,0000) and every tag after it (PS3.5 7.1). */
export const FIRST_UNSEEN_TAG = 0x7fe00000;

/** A condition on a tag at or after group 7FE0 could never be evaluated: the header ends at Pixel Data. */
export function isAfterHeader(tag: number): boolean {
  return tag >>> 0 >= FIRST_UNSEEN_TAG;
}

/** The longest `matches` pattern accepted (characters). */
export const MAX_PATTERN_LENGTH = 512;
/** `matches` tests only this many leading characters of a value (bounds regex backtracking per value). */
export const MAX_TESTED_LENGTH = 1024;

/** Whether `text` (its first MAX_TESTED_LENGTH characters) matches a wholeMatch expression. */
export function testMatch(re: RegExp, text: string): boolean {
  return re.test(text.length > MAX_TESTED_LENGTH ? text.slice(0, MAX_TESTED_LENGTH) : text);
}

/** A sequence cannot be tested: its value is items, not text. */
export function isSequenceAttribute(tag: number): boolean {
  const vrs = lookup(tag)?.vrs;
  return vrs !== undefined && vrs.length === 1 && vrs[0] === 'SQ';
}

/**
 * A regular expression the whole value must match (as CTP's `matches`, Java String.matches), checked
 * here so that a bad one is a config error, not a rule that never matches. A leading `(?i)` (Java's
 * inline flag, which JavaScript lacks) makes it case-insensitive. Undefined for an invalid pattern or
 * one longer than MAX_PATTERN_LENGTH; match with testMatch (value length capped).
 */
export function wholeMatch(source: string): RegExp | undefined {
  if (source.length > MAX_PATTERN_LENGTH) return undefined;
  const ignoreCase = source.startsWith('(?i)');
  try {
    return new RegExp(`^(?:${ignoreCase ? source.slice(4) : source})$`, ignoreCase ? 'si' : 's');
  } catch {
    return undefined;
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isScalar = (v: unknown): v is ScalarTest => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));
const quote = (v: ScalarTest): string => (typeof v === 'number' ? String(v) : JSON.stringify(v));

type ValueTest = (texts: readonly string[], present: boolean) => boolean;

function equalsTest(expected: ScalarTest): ValueTest {
  const wanted = String(expected).trim();
  const n = typeof expected === 'number' ? expected : undefined;
  return (texts) => texts.some((t) => t === wanted || (n !== undefined && numberOf(t) === n));
}

/** One operator of an object test; undefined (with an issue) when its operand is not what it takes. */
function operatorTest(op: string, operand: unknown, key: string, issues: string[]): { test: ValueTest; text: string } | undefined {
  if (op === 'present') {
    if (typeof operand !== 'boolean') return void issues.push(`${key}: true or false`);
    return { test: (_t, present) => present === operand, text: operand ? 'present' : 'absent' };
  }
  if (!(OPERATORS as readonly string[]).includes(op)) return void issues.push(`${key}: not a test (${OPERATORS.join(', ')})`);
  if (!isScalar(operand)) return void issues.push(`${key}: a string or number`);
  const text = `${op} ${quote(operand)}`;
  const s = String(operand);
  const lower = s.toLowerCase();
  const any = (f: (t: string) => boolean): ValueTest => (texts) => texts.some(f);
  switch (op as Operator) {
    case 'equals':
      return { test: equalsTest(operand), text };
    case 'equalsIgnoreCase':
      return { test: any((t) => t.toLowerCase() === lower.trim()), text };
    case 'contains':
      return { test: any((t) => t.includes(s)), text };
    case 'containsIgnoreCase':
      return { test: any((t) => t.toLowerCase().includes(lower)), text };
    case 'startsWith':
      return { test: any((t) => t.startsWith(s)), text };
    case 'endsWith':
      return { test: any((t) => t.endsWith(s)), text };
    case 'matches': {
      if (s.length > MAX_PATTERN_LENGTH) return void issues.push(`${key}: a regular expression of at most ${MAX_PATTERN_LENGTH} characters`);
      const re = wholeMatch(s);
      if (re === undefined) return void issues.push(`${key}: not a valid regular expression`);
      return { test: any((t) => testMatch(re, t)), text };
    }
    case 'lessThan':
    case 'greaterThan': {
      const bound = numberOf(s);
      if (bound === undefined) return void issues.push(`${key}: a number`);
      const less = op === 'lessThan';
      return { test: any((t) => { const n = numberOf(t); return n !== undefined && (less ? n < bound : n > bound); }), text };
    }
    default:
      return undefined; // 'present' is handled above
  }
}

/** One attribute's test. */
function attributeTest(input: unknown, key: string, issues: string[]): { test: ValueTest; text: string } | undefined {
  if (isScalar(input)) return { test: equalsTest(input), text: `= ${quote(input)}` };
  if (Array.isArray(input)) {
    if (input.length === 0 || input.length > MAX_ITEMS || !input.every(isScalar)) return void issues.push(`${key}: a list of 1 to ${MAX_ITEMS} strings or numbers (any of them)`);
    const tests = input.map(equalsTest);
    return { test: (texts, present) => tests.some((t) => t(texts, present)), text: `in [${input.map(quote).join(', ')}]` };
  }
  if (isRecord(input)) {
    const entries = Object.entries(input);
    if (entries.length === 0) return void issues.push(`${key}: give at least one test (${OPERATORS.join(', ')})`);
    const before = issues.length;
    const parts = entries.map(([op, operand]) => operatorTest(op, operand, `${key}.${op}`, issues));
    if (issues.length > before) return undefined;
    const ok = parts as { test: ValueTest; text: string }[];
    return { test: (texts, present) => ok.every((p) => p.test(texts, present)), text: ok.map((p) => p.text).join(' and ') };
  }
  return void issues.push(`${key}: a value, a list of values, or an object of tests (${OPERATORS.join(', ')})`);
}

/** `{ <attribute>: <test> }`, all of which must hold; undefined (issues pushed, each naming its key) when invalid. */
export function compileCondition(input: unknown, key: string, issues: string[]): Predicate | undefined {
  if (!isRecord(input) || Object.keys(input).length === 0 || Object.keys(input).length > MAX_ITEMS) {
    issues.push(`${key}: a map of 1 to ${MAX_ITEMS} attributes (keyword, ggggeeee or (gggg,eeee)) to tests`);
    return undefined;
  }
  const before = issues.length;
  const parts: { tag: number; test: ValueTest; text: string }[] = [];
  for (const [attribute, test] of Object.entries(input)) {
    const tag = attributeTag(attribute);
    if (tag === undefined) {
      issues.push(`${key}.${attribute}: not an attribute keyword or tag`);
      continue;
    }
    if (isSequenceAttribute(tag)) {
      issues.push(`${key}.${attribute}: a sequence cannot be tested (top-level attributes only)`);
      continue;
    }
    if (isAfterHeader(tag)) {
      issues.push(`${key}.${attribute}: group 7FE0 and above comes at or after Pixel Data and is never seen (attributes before Pixel Data only)`);
      continue;
    }
    const compiled = attributeTest(test, `${key}.${attribute}`, issues);
    if (compiled) parts.push({ tag, test: compiled.test, text: `${attributeName(tag)} ${compiled.text}` });
  }
  if (issues.length > before) return undefined;
  return {
    tags: [...new Set(parts.map((p) => p.tag))],
    text: parts.map((p) => p.text).join(' and '),
    test: (read) => parts.every((p) => {
      const values = read(p.tag);
      return p.test(valueTexts(values), values !== undefined);
    }),
  };
}

/** A condition or a list of conditions (any of them holds). */
export function compileMatch(input: unknown, key: string, issues: string[]): Predicate | undefined {
  if (!Array.isArray(input)) return compileCondition(input, key, issues);
  if (input.length === 0 || input.length > MAX_ITEMS) {
    issues.push(`${key}: a condition or a list of 1 to ${MAX_ITEMS} conditions`);
    return undefined;
  }
  const before = issues.length;
  const parts = input.map((c, i) => compileCondition(c, `${key}.${i}`, issues));
  if (issues.length > before) return undefined;
  return anyOf(parts as Predicate[]);
}

/** Any of the predicates holds. */
export function anyOf(parts: readonly Predicate[]): Predicate {
  if (parts.length === 1) return parts[0] as Predicate;
  return {
    tags: [...new Set(parts.flatMap((p) => p.tags))],
    text: parts.map((p) => (parts.length > 1 && p.text.includes(' and ') ? `(${p.text})` : p.text)).join(' or '),
    test: (read) => parts.some((p) => p.test(read)),
  };
}

/**
 * A rectangle to blank: x, y at least 0, width and height at least 1, all integers. One entirely
 * outside an image is allowed (nothing to blank); a negative or empty one is a config error.
 */
export function compileRectangle(input: unknown, key: string, issues: string[]): Rectangle | undefined {
  if (!isRecord(input)) return void issues.push(`${key}: { x, y, width, height } in pixels`);
  const before = issues.length;
  const unknown = Object.keys(input).filter((k) => !['x', 'y', 'width', 'height'].includes(k));
  for (const k of unknown) issues.push(`${key}.${k}: not a rectangle field (x, y, width, height)`);
  const field = (name: 'x' | 'y' | 'width' | 'height', min: number): number => {
    const v = input[name];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) issues.push(`${key}.${name}: an integer of at least ${min}`);
    return v as number;
  };
  const rect = { x: field('x', 0), y: field('y', 0), width: field('width', 1), height: field('height', 1) };
  return issues.length > before ? undefined : Object.freeze(rect);
}

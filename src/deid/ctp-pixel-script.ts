// RSNA CTP DicomPixelAnonymizer scripts, loaded as sites keep them (the CTP wiki, "The CTP DICOM Pixel
// Anonymizer"). Pure: the text comes in, signatures come out; config/resolve.ts reads the file.
//
// The format, as CTP reads it:
//   1. A signature is `{ expression }`; the text up to the next `{` holds its regions, each
//      `(left,top,width,height)` in pixels. Any other text outside braces is commentary (a library
//      file has headings and notes between signatures), and so is text before the first signature.
//   2. An expression (CTP's DicomFilter language): operands joined by `*` (and), `+` (or), `!` (not)
//      and parentheses; `!` binds tightest, then `*`, then `+`. `//` starts a comment to the end of
//      the line.
//   3. An operand is `true.`, `false.`, or `<attribute>.<method>("<value>")`: the attribute a keyword
//      or `[gggg,eeee]`; the method one of METHODS below, applied to the attribute's value as text
//      (values joined by `\`, "" when absent); `matches` is a Java regular expression the whole value
//      must match (at most MAX_PATTERN_LENGTH characters, tested against the first MAX_TESTED_LENGTH
//      characters of the value: redaction-rules.ts); isLessThan / isGreaterThan compare the digits and
//      dots of both sides as numbers.
//   4. The first signature that matches wins (PixelScript.getRegionsFor).
// Where CTP silently skips (an unknown method, a malformed region, an expression it cannot parse), a
// signature would never match, or blank the wrong place: here each is an error with its line, so the
// script is refused at start (fail closed). Sequence paths (`A::B`), `root:` and private-block names
// are refused too: the pixel policy reads top-level attributes only, before Pixel Data (an attribute of
// group 7FE0 and above, e.g. a 7FE1 private one or FFFA, is never in the header, so it is refused).
import { MAX_PATTERN_LENGTH, attributeName, isAfterHeader, isSequenceAttribute, testMatch, valueTexts, wholeMatch, type Predicate } from './redaction-rules.ts';
import type { AttributeReader, Rectangle } from './pixel-verdict.ts';
import { tagForKeyword } from '../dicom/dictionary.ts';
import { makeTag } from '../dicom/tag.ts';

export const METHODS = [
  'equals', 'equalsIgnoreCase', 'matches', 'contains', 'containsIgnoreCase', 'startsWith', 'startsWithIgnoreCase',
  'endsWith', 'endsWithIgnoreCase', 'isLessThan', 'isGreaterThan',
] as const;
export type CtpMethod = (typeof METHODS)[number];

export interface CtpSignature {
  /** The line of its opening `{` (1-based). */
  readonly line: number;
  readonly condition: Predicate;
  readonly rectangles: readonly Rectangle[];
}

export interface CtpScript {
  readonly signatures: readonly CtpSignature[];
  /** Every problem, each `line N: …`; the script is unusable unless this is empty. */
  readonly issues: readonly string[];
}

/** The most signatures and regions one script may hold (a runaway file, not a fleet). */
const MAX_SIGNATURES = 10_000;
const MAX_REGIONS = 256;

class ScriptSyntaxError extends Error {
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(message);
    this.offset = offset;
  }
}

/** Parses a whole script; never throws on bad input: every problem is in `issues`. */
export function parseCtpPixelScript(text: string): CtpScript {
  const lineAt = lineIndex(text);
  const issues: string[] = [];
  const signatures: CtpSignature[] = [];
  let at = text.indexOf('{');
  if (at < 0) issues.push('line 1: no signature ({ expression } followed by regions)');
  while (at >= 0) {
    const close = text.indexOf('}', at + 1);
    if (close < 0) {
      issues.push(`line ${lineAt(at)}: "{" is not closed`);
      break;
    }
    const next = text.indexOf('{', close + 1);
    const nested = text.indexOf('{', at + 1);
    if (nested >= 0 && nested < close) issues.push(`line ${lineAt(nested)}: "{" inside a signature`);
    const regionsEnd = next < 0 ? text.length : next;
    const before = issues.length;
    const condition = compileExpression(text, at + 1, close, lineAt, issues);
    const rectangles = parseRegions(text, close + 1, regionsEnd, lineAt, issues);
    if (issues.length === before) {
      if (rectangles.length === 0) issues.push(`line ${lineAt(at)}: the signature has no region ((left,top,width,height) after it)`);
      else if (condition) signatures.push(Object.freeze({ line: lineAt(at), condition, rectangles: Object.freeze(rectangles) }));
    }
    if (signatures.length > MAX_SIGNATURES) {
      issues.push(`line ${lineAt(at)}: more than ${MAX_SIGNATURES} signatures`);
      break;
    }
    at = next;
  }
  const strayClose = firstOutsideSignatures(text, '}');
  if (strayClose >= 0) issues.push(`line ${lineAt(strayClose)}: "}" without "{"`);
  return { signatures: Object.freeze(signatures), issues: Object.freeze(issues) };
}

/** Offset → 1-based line number. */
function lineIndex(text: string): (offset: number) => number {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) starts.push(i + 1);
  return (offset) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((starts[mid] as number) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
}

/** The first `char` outside `{…}` blocks, or -1. */
function firstOutsideSignatures(text: string, char: string): number {
  let inside = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{') inside = true;
    else if (c === '}') {
      if (!inside && c === char) return i;
      inside = false;
    }
  }
  return -1;
}

/**
 * The regions between a signature and the next: each `(…)` of four comma-separated integers. A group
 * that looks numeric but is not four integers is an error (CTP would skip it and blank nothing there);
 * any other parenthesised text is commentary, as CTP reads it.
 */
function parseRegions(text: string, start: number, end: number, lineAt: (o: number) => number, issues: string[]): Rectangle[] {
  const out: Rectangle[] = [];
  let i = text.indexOf('(', start);
  while (i >= 0 && i < end) {
    const close = text.indexOf(')', i + 1);
    const body = text.slice(i + 1, close < 0 || close > end ? end : close);
    const numeric = /^[\s\d,+-]*$/.test(body) || /^\s*[+-]?\d+\s*,/.test(body);
    if (close < 0 || close > end) {
      if (numeric) issues.push(`line ${lineAt(i)}: region "(" is not closed`);
      break;
    }
    const parts = body.split(',').map((p) => p.trim());
    if (parts.length === 4 && parts.every((p) => /^[+-]?\d+$/.test(p))) {
      const [x, y, width, height] = parts.map(Number) as [number, number, number, number];
      if (x < 0 || y < 0) issues.push(`line ${lineAt(i)}: region left and top must be at least 0`);
      else if (width < 1 || height < 1) issues.push(`line ${lineAt(i)}: region width and height must be at least 1`);
      else if (![x, y, width, height].every(Number.isSafeInteger)) issues.push(`line ${lineAt(i)}: region out of range`);
      else out.push(Object.freeze({ x, y, width, height }));
    } else if (numeric || parts.length === 4) {
      issues.push(`line ${lineAt(i)}: a region is (left,top,width,height), four integers`);
    }
    if (out.length > MAX_REGIONS) {
      issues.push(`line ${lineAt(i)}: more than ${MAX_REGIONS} regions`);
      break;
    }
    i = text.indexOf('(', close + 1);
  }
  return out;
}

// --- expressions --------------------------------------------------------------------------------

type Node =
  | { readonly kind: 'const'; readonly value: boolean }
  | { readonly kind: 'test'; readonly tag: number; readonly method: CtpMethod; readonly value: string; readonly regex?: RegExp }
  | { readonly kind: 'not'; readonly operand: Node }
  | { readonly kind: 'and' | 'or'; readonly left: Node; readonly right: Node };

/** A small tokenizer over text[start, end), tracking offsets for line numbers. */
class Cursor {
  pos: number;
  constructor(readonly text: string, start: number, readonly end: number) {
    this.pos = start;
  }
  /** Skips whitespace and `//` comments; returns the next character or '' at the end. */
  peek(): string {
    for (;;) {
      while (this.pos < this.end && /\s/.test(this.text[this.pos] as string)) this.pos++;
      if (this.text.startsWith('//', this.pos) && this.pos + 1 < this.end) {
        const nl = this.text.indexOf('\n', this.pos);
        this.pos = nl < 0 || nl > this.end ? this.end : nl + 1;
        continue;
      }
      return this.pos < this.end ? (this.text[this.pos] as string) : '';
    }
  }
  /** Reads up to (not including) `delim` outside double quotes; undefined when the end comes first. */
  field(delim: string): string | undefined {
    let quoted = false;
    const from = this.pos;
    while (this.pos < this.end) {
      const c = this.text[this.pos] as string;
      if (c === '"') quoted = !quoted;
      else if (!quoted && c === delim) {
        const out = this.text.slice(from, this.pos);
        this.pos++;
        return out;
      }
      this.pos++;
    }
    this.pos = from;
    return undefined;
  }
}

function compileExpression(text: string, start: number, end: number, lineAt: (o: number) => number, issues: string[]): Predicate | undefined {
  const cursor = new Cursor(text, start, end);
  try {
    if (cursor.peek() === '') throw new ScriptSyntaxError('empty signature', start);
    const node = orExpression(cursor);
    if (cursor.peek() !== '') throw new ScriptSyntaxError(`unexpected "${cursor.peek()}"`, cursor.pos);
    const tags = new Set<number>();
    collectTags(node, tags);
    return { tags: [...tags], text: text.slice(start, end).replace(/\/\/[^\n]*/g, ' ').replace(/\s+/g, ' ').trim(), test: (read) => evaluate(node, read) };
  } catch (error) {
    if (!(error instanceof ScriptSyntaxError)) throw error;
    issues.push(`line ${lineAt(error.offset)}: ${error.message}`);
    return undefined;
  }
}

function orExpression(c: Cursor): Node {
  let left = andExpression(c);
  while (c.peek() === '+') {
    c.pos++;
    left = { kind: 'or', left, right: andExpression(c) };
  }
  return left;
}

function andExpression(c: Cursor): Node {
  let left = unary(c);
  while (c.peek() === '*') {
    c.pos++;
    left = { kind: 'and', left, right: unary(c) };
  }
  return left;
}

function unary(c: Cursor): Node {
  const next = c.peek();
  if (next === '!') {
    c.pos++;
    return { kind: 'not', operand: unary(c) };
  }
  if (next === '(') {
    const open = c.pos;
    c.pos++;
    const inner = orExpression(c);
    if (c.peek() !== ')') throw new ScriptSyntaxError('"(" is not closed', open);
    c.pos++;
    return inner;
  }
  if (next === '[' || /[A-Za-z]/.test(next)) return operand(c);
  if (next === '') throw new ScriptSyntaxError('the expression ends where an operand is expected', c.pos);
  throw new ScriptSyntaxError(`unexpected "${next}" where an operand is expected`, c.pos);
}

/** `true.`, `false.` or `<attribute>.<method>("<value>")`. */
function operand(c: Cursor): Node {
  const at = c.pos;
  const bare = /^(true|false)\b\.?/.exec(c.text.slice(at, c.end));
  if (bare) {
    c.pos += (bare[0] as string).length;
    return { kind: 'const', value: bare[1] === 'true' };
  }
  const identifier = c.field('.');
  if (identifier === undefined) throw new ScriptSyntaxError('expected <attribute>.<method>("<value>")', at);
  const tag = attributeOf(identifier.trim(), at);
  const methodAt = c.pos;
  const method = c.field('(');
  if (method === undefined || !/^\s*[A-Za-z]+\s*$/.test(method)) throw new ScriptSyntaxError('expected .<method>("<value>") after the attribute', methodAt);
  const name = method.trim();
  if (!(METHODS as readonly string[]).includes(name)) throw new ScriptSyntaxError(`unknown method "${name}" (${METHODS.join(', ')})`, methodAt);
  const valueAt = c.pos;
  const raw = c.field(')');
  if (raw === undefined) throw new ScriptSyntaxError(`${name}( is not closed`, valueAt);
  const quoted = raw.trim();
  if (quoted.length < 2 || !quoted.startsWith('"') || !quoted.endsWith('"')) throw new ScriptSyntaxError(`${name} takes a quoted string`, valueAt);
  const value = quoted.slice(1, -1);
  if (name === 'matches') {
    if (value.length > MAX_PATTERN_LENGTH) throw new ScriptSyntaxError(`matches: a regular expression of at most ${MAX_PATTERN_LENGTH} characters`, valueAt);
    const regex = wholeMatch(value);
    if (regex === undefined) throw new ScriptSyntaxError('matches: not a valid regular expression', valueAt);
    return { kind: 'test', tag, method: name, value, regex };
  }
  return { kind: 'test', tag, method: name as CtpMethod, value };
}

/** A keyword or `[gggg,eeee]` / `[ggggeeee]`, top level only. */
function attributeOf(identifier: string, at: number): number {
  if (identifier.includes('::') || identifier.startsWith('root:')) throw new ScriptSyntaxError('sequence paths are not supported (top-level attributes only)', at);
  const bracket = /^\[\s*([0-9A-Fa-f]{4})\s*,?\s*([0-9A-Fa-f]{4})\s*\]$/.exec(identifier);
  let tag: number | undefined;
  if (bracket) tag = makeTag(Number.parseInt(bracket[1] as string, 16), Number.parseInt(bracket[2] as string, 16));
  else if (/^[A-Za-z][A-Za-z0-9]*$/.test(identifier)) tag = tagForKeyword(identifier);
  else if (/^\[?[0-9A-Fa-f]{1,4},?\[/.test(identifier)) throw new ScriptSyntaxError('private block names are not supported (use [gggg,eeee])', at);
  if (tag === undefined) throw new ScriptSyntaxError(`"${identifier.slice(0, 64)}" is not an attribute keyword or [gggg,eeee]`, at);
  if (isSequenceAttribute(tag)) throw new ScriptSyntaxError(`${attributeName(tag)} is a sequence (top-level values only)`, at);
  if (isAfterHeader(tag)) throw new ScriptSyntaxError(`${attributeName(tag)} is at or after Pixel Data (group 7FE0 and above is never seen)`, at);
  return tag;
}

function collectTags(node: Node, into: Set<number>): void {
  if (node.kind === 'test') into.add(node.tag);
  else if (node.kind === 'not') collectTags(node.operand, into);
  else if (node.kind === 'and' || node.kind === 'or') {
    collectTags(node.left, into);
    collectTags(node.right, into);
  }
}

function evaluate(node: Node, read: AttributeReader): boolean {
  switch (node.kind) {
    case 'const':
      return node.value;
    case 'not':
      return !evaluate(node.operand, read);
    case 'and':
      return evaluate(node.left, read) && evaluate(node.right, read);
    case 'or':
      return evaluate(node.left, read) || evaluate(node.right, read);
    case 'test':
      return applyMethod(node, valueTexts(read(node.tag)).join('\\'));
  }
}

/** CTP's string methods on the attribute's text (DicomObject's script operand). */
function applyMethod(node: Extract<Node, { kind: 'test' }>, element: string): boolean {
  const { value } = node;
  switch (node.method) {
    case 'equals':
      return element === value;
    case 'equalsIgnoreCase':
      return element.toLowerCase() === value.toLowerCase();
    case 'matches':
      return node.regex !== undefined && testMatch(node.regex, element);
    case 'contains':
      return element.includes(value);
    case 'containsIgnoreCase':
      return element.toLowerCase().includes(value.toLowerCase());
    case 'startsWith':
      return element.startsWith(value);
    case 'startsWithIgnoreCase':
      return element.toLowerCase().startsWith(value.toLowerCase());
    case 'endsWith':
      return element.endsWith(value);
    case 'endsWithIgnoreCase':
      return element.toLowerCase().endsWith(value.toLowerCase());
    case 'isLessThan':
    case 'isGreaterThan': {
      // Only the digits and dots of each side count; either not a number: false.
      const a = digitsNumber(element);
      const b = digitsNumber(value);
      if (a === undefined || b === undefined) return false;
      return node.method === 'isLessThan' ? a < b : a > b;
    }
  }
}

function digitsNumber(text: string): number | undefined {
  const kept = text.replace(/[^0-9.]/g, '');
  return /^(\d+\.?\d*|\.\d+)$/.test(kept) ? Number(kept) : undefined;
}

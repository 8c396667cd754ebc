// PS3.4 C.2.2.2 Attribute Matching, as a pure function of a key value and an element's values. Used
// where the gateway matches on values it produced itself (de-identified QIDO results), so that no
// condition on such a value is ever sent to the PACS.
//
// Every matcher here runs in time proportional to (key length × value length): wild cards are
// matched by a two-pointer scan that never backtracks further than the last `*`, never by a
// backtracking regular expression (a pattern of many `*` would take exponential time there).

import type { JsonElement } from './json-model.ts';

/** PS3.4 C.2.2.2.4: the VRs for which `*` and `?` are wild cards. */
const WILDCARD_VRS = new Set(['AE', 'CS', 'LO', 'LT', 'PN', 'SH', 'ST', 'UC', 'UR', 'UT']);
/** PS3.4 C.2.2.2.5: the VRs with range matching. */
const RANGE_VRS = new Set(['DA', 'TM', 'DT']);

interface TextAlternative {
  readonly kind: 'text';
  /** Upper-cased when the match is case-insensitive. */
  readonly pattern: string;
  readonly wildcard: boolean;
}
interface RangeAlternative {
  readonly kind: 'range';
  /** Inclusive bounds in the VR's digit form ('' = open); a single value has from === to. */
  readonly from: string;
  readonly to: string;
}
type Alternative = TextAlternative | RangeAlternative;

/** A validated matching key: one or more alternatives (PS3.4 C.2.2.2.8 multiple value matching). */
export interface MatchKey {
  readonly vr: string;
  readonly alternatives: readonly Alternative[];
  readonly caseInsensitive: boolean;
  /** PN with fuzzy matching: a key matches the start of a name component group. */
  readonly prefix: boolean;
}

export interface MatchKeyOptions {
  /** PS3.18 8.3.4.1 fuzzymatching=true. */
  readonly fuzzy?: boolean;
}

const NUMBER = /^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/;
/** PS3.5 6.2 value grammars of the VRs that are neither text nor dates: a key must be a valid value. */
const VALUE_GRAMMAR: Readonly<Record<string, RegExp>> = {
  IS: /^ *[+-]?[0-9]{1,11} *$/,
  DS: /^ *[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)? *$/,
  AS: /^[0-9]{3}[DWMY]$/,
  AT: /^[0-9A-Fa-f]{8}$/,
  US: NUMBER, SS: NUMBER, UL: NUMBER, SL: NUMBER, UV: NUMBER, SV: NUMBER, FL: NUMBER, FD: NUMBER,
};

const DA = /^(\d{4})(\d{2})(\d{2})$/;
const TM = /^([01]\d|2[0-3])(?:([0-5]\d)(?:([0-5]\d|60)(?:\.\d{1,6})?)?)?$/;
const DT = /^(\d{4})(?:(\d{2})(?:(\d{2})(?:([01]\d|2[0-3])(?:([0-5]\d)(?:([0-5]\d|60)(?:\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?$/;

function validDate(year: string, month: string | undefined, day: string | undefined): boolean {
  if (month === undefined) return true;
  const m = Number(month);
  if (m < 1 || m > 12) return false;
  if (day === undefined) return true;
  const d = Number(day);
  const days = new Date(Date.UTC(Number(year), m, 0)).getUTCDate();
  return d >= 1 && d <= days;
}

/** PS3.5 6.2 DA / TM / DT, as a comparable digit string (a DT's UTC offset is dropped); undefined if invalid. */
function temporalDigits(vr: string, value: string): string | undefined {
  if (vr === 'DA') {
    const m = DA.exec(value);
    return m && validDate(m[1] as string, m[2], m[3]) ? value : undefined;
  }
  if (vr === 'TM') return TM.test(value) ? value.replace('.', '') : undefined;
  const m = DT.exec(value);
  if (!m || !validDate(m[1] as string, m[2], m[3])) return undefined;
  return value.replace(/[+-]\d{4}$/, '').replace('.', '');
}

/**
 * A single value (from === to) or a range `from-to`, `-to`, `from-` (PS3.4 C.2.2.2.5), as digit strings.
 * A DT may itself contain `-` (a negative UTC offset), so each `-` is tried as the separator.
 */
function rangeBounds(vr: string, raw: string): [string, string] | undefined {
  const single = temporalDigits(vr, raw);
  if (single !== undefined) return [single, single];
  for (let i = raw.indexOf('-'); i >= 0; i = raw.indexOf('-', i + 1)) {
    const from = i === 0 ? '' : temporalDigits(vr, raw.slice(0, i));
    const to = i === raw.length - 1 ? '' : temporalDigits(vr, raw.slice(i + 1));
    if (from !== undefined && to !== undefined && (from !== '' || to !== '')) return [from, to];
  }
  return undefined;
}

/** Parses a key value (PS3.4 C.2.2.2); undefined when it is not valid for the VR. '' is universal: not a key. */
export function parseMatchKey(vr: string, value: string, options: MatchKeyOptions = {}): MatchKey | undefined {
  if (value === '') return undefined;
  const alternatives: Alternative[] = [];
  for (const raw of value.split('\\')) {
    if (raw === '') return undefined;
    if (RANGE_VRS.has(vr)) {
      const bounds = rangeBounds(vr, raw);
      if (bounds === undefined) return undefined;
      const [from, to] = bounds;
      if (from !== '' && to !== '' && from.slice(0, to.length) > to) return undefined;
      alternatives.push({ kind: 'range', from, to });
      continue;
    }
    if (/[\u0000-\u001f\u007f]/.test(raw)) return undefined;
    const grammar = VALUE_GRAMMAR[vr];
    if (grammar !== undefined && !grammar.test(raw)) return undefined;
    alternatives.push({ kind: 'text', pattern: raw, wildcard: WILDCARD_VRS.has(vr) && /[*?]/.test(raw) });
  }
  const caseInsensitive = vr === 'PN' || options.fuzzy === true;
  return {
    vr,
    caseInsensitive,
    prefix: vr === 'PN' && options.fuzzy === true,
    alternatives: caseInsensitive ? alternatives.map((a) => (a.kind === 'text' ? { ...a, pattern: a.pattern.toUpperCase() } : a)) : alternatives,
  };
}

/** The values of one DICOM JSON element as match strings (PN: each component group); none when absent. */
export function matchValues(element: JsonElement | undefined): string[] {
  if (!element?.Value) return [];
  return element.Value.flatMap((v) => {
    if (typeof v === 'string' || typeof v === 'number') return [String(v)];
    if (v && typeof v === 'object') {
      return ['Alphabetic', 'Ideographic', 'Phonetic'].map((k) => (v as Record<string, unknown>)[k]).filter((s): s is string => typeof s === 'string');
    }
    return [];
  });
}

/** Does any of `values` (an element's values as strings; PN: each component group) match the key? */
export function matchesKey(key: MatchKey, values: readonly string[]): boolean {
  for (const raw of values) {
    const value = key.caseInsensitive ? raw.trim().toUpperCase() : raw.trim();
    // A date, time or date-time value in comparable form, read once for all range alternatives.
    const digits = RANGE_VRS.has(key.vr) ? temporalDigits(key.vr, value) : undefined;
    for (const alternative of key.alternatives) {
      if (alternative.kind === 'range') {
        if (digits !== undefined && inRange(digits, alternative)) return true;
      } else if (alternative.wildcard) {
        if (globMatch(alternative.pattern, value, key.prefix)) return true;
      } else if (key.prefix ? value.startsWith(alternative.pattern) : value === alternative.pattern) {
        return true;
      }
    }
  }
  return false;
}

/** PS3.4 C.2.2.2.5: inclusive bounds, each compared at its own precision. */
function inRange(digits: string, range: RangeAlternative): boolean {
  if (range.from !== '' && digits.slice(0, range.from.length).padEnd(range.from.length, '0') < range.from) return false;
  if (range.to !== '' && digits.slice(0, range.to.length) > range.to) return false;
  return true;
}

/**
 * `*` matches any run of characters, `?` exactly one (PS3.4 C.2.2.2.4). Two pointers; on a mismatch
 * the scan resumes one character after where the last `*` started matching, so each (pattern, value)
 * position pair is visited at most once: O(|pattern| × |value|), without recursion.
 * `prefix`: the pattern need only match the start of the value. `count` (tests): loop iterations.
 */
export function globMatch(pattern: string, value: string, prefix = false, count?: { steps: number }): boolean {
  let p = 0;
  let v = 0;
  let star = -1;
  let resume = 0;
  while (v < value.length) {
    if (count) count.steps++;
    if (prefix && p === pattern.length) return true;
    const c = pattern[p];
    if (c === '*') {
      while (pattern[p] === '*') p++;
      if (p === pattern.length) return true;
      star = p;
      resume = v;
    } else if (p < pattern.length && (c === '?' || c === value[v])) {
      p++;
      v++;
    } else if (star >= 0) {
      p = star;
      v = ++resume;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

/**
 * A value as an index of values holds it (the de-identified study index): text trimmed and upper-cased,
 * a date, time or date-time as its comparable digits (undefined when invalid: no range matches it then).
 */
export function indexForm(vr: string, value: string): string | undefined {
  return RANGE_VRS.has(vr) ? temporalDigits(vr, value.trim()) : value.trim().toUpperCase();
}

/** A range of index forms: `from` inclusive, `below` exclusive ('' = open). */
export interface IndexFormRange {
  readonly from: string;
  readonly below: string;
}

/**
 * Ranges of index forms (indexForm) that together hold every value the key matches: a superset, each
 * candidate still matched by matchesKey. Undefined when some alternative has no such bound (a text
 * pattern that starts with a wild card, an open range).
 *  - text: the pattern's literal start (before any `*` or `?`), upper-cased, as a prefix range;
 *  - a range `from-to` (PS3.4 C.2.2.2.5, each bound at its own precision): digits from `from` without
 *    its trailing zeros (a value read at `from`'s precision, zero-padded, is at least `from` only if its
 *    digits are at least that) to below the prefix successor of `to`.
 */
export function indexRanges(key: MatchKey): IndexFormRange[] | undefined {
  const ranges: IndexFormRange[] = [];
  for (const alternative of key.alternatives) {
    if (alternative.kind === 'range') {
      const from = alternative.from.replace(/0+$/, '');
      const below = alternative.to === '' ? '' : prefixSuccessor(alternative.to);
      if (from === '' && below === '') return undefined;
      ranges.push({ from, below });
      continue;
    }
    const literal = (alternative.wildcard ? alternative.pattern.slice(0, alternative.pattern.search(/[*?]/)) : alternative.pattern).trim().toUpperCase();
    const below = prefixSuccessor(literal);
    if (literal === '' || below === '') return undefined;
    ranges.push({ from: literal, below });
  }
  return ranges;
}

/** The least string above every string that starts with `prefix` (code point order); '' when there is none. */
function prefixSuccessor(prefix: string): string {
  const points = Array.from(prefix, (c) => c.codePointAt(0) as number);
  while (points.length > 0) {
    let last = (points.pop() as number) + 1;
    if (last >= 0xd800 && last <= 0xdfff) last = 0xe000;
    if (last <= 0x10ffff) return String.fromCodePoint(...points, last);
  }
  return '';
}

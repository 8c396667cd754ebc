// Text cleaning for the Clean options (PS3.15 E.3.3 Clean Graphics, E.3.5 Clean Structured Content,
// E.3.11 Clean Descriptors; and the C of E.3.7 Retain Patient Characteristics): "C" on free text means
// "replace with values of similar meaning known not to contain identifying information" (Table E.1-1a).
// Here that is: keep the text, remove what identifies, each removal replaced by one fixed marker.
//
// What is removed from a text (in this order; each later step sees the earlier removals as gaps):
//   1. e-mail addresses and URLs;
//   2. record-number labels with their value ("MRN: 1234", "Patient ID AB-12", "ID: x", "SSN …");
//   3. the identifiers of the same dataset (Patient ID, Other Patient IDs, Accession Number, Study ID,
//      order and procedure step IDs, telephone numbers, device serial numbers …, IDENTITY_ROLES; 3 or
//      more letters and digits) and its places (institution name, address and department, patient and
//      person addresses …), wherever they occur, case-insensitively and with up to 3 separators between
//      their letters and digits ("AB-123456" is also "ab123456" and "AB 123 456");
//   4. UIDs and dotted numbers that look like them (and IP addresses);
//   5. dates in the common spellings (20190304, 2019-03-04, 04/03/2019, 4 Mar 2019, March 4, 2019,
//      03.04.19, and to the month: Mar 2019, 03/2019, 2019-03; a year alone is kept): removed; under Retain Longitudinal Temporal Information with Modified Dates
//      (E.3.6) shifted by the patient's day offset instead, in the same spelling, where the spelling
//      says unambiguously which day it is and it is not a date the profile removes (the birth date) or
//      one labelled as such ("DOB: …");
//   6. every name component (family, given and middle, ≥ 2 letters; prefixes and suffixes are not
//      names) of every person name (PN) of the same dataset, at any depth, in any order, case- and
//      accent-insensitively (NFKD, diacritics stripped, case folded, full-width forms and katakana
//      folded, German umlauts also as ae/oe/ue), in every component group (alphabetic, ideographic,
//      phonetic); CJK names also where written without spaces (family + given run together);
//   7. telephone numbers (7 to 15 digits in groups) and runs of 6 or more digits (record numbers).
// What is kept: everything else, clinical words and numbers included ("AX T1 MPRAGE POST 3.0 T").
// The result is cut to the VR's maximum length (PS3.5 6.2) if the markers made it longer.
//
// The identity values come from the whole dataset (IdentitySource), read before any of its text is
// cleaned; a caller that cannot supply them gets the VR's dummy instead (deidentify.ts, fail closed).
// Known limits: a name or ID that the dataset does not hold (a relative's name, a previous MRN without a
// label) is found only by the patterns; single-character CJK components are matched only run together
// with the other component; month names are English.
import { tagForKeyword } from '../dicom/dictionary.ts';
import { parseTag } from '../dicom/tag.ts';
import type { JsonDataset } from '../dicom/json-model.ts';
import { shiftDA } from './date-shift.ts';
import type { ProfileOption } from './profile.ts';

/** What a removal leaves in the text. */
export const TEXT_CLEAN_MARKER = '[REMOVED]';

/**
 * The options whose C cleans text: the three Clean options, and Retain Patient Characteristics (E.3.7),
 * whose C on Allergies, Patient State, Pre-Medication, Special Needs … means the same.
 */
export type TextCleaning = Extract<ProfileOption, 'cleanDescriptors' | 'cleanStructuredContent' | 'cleanGraphics' | 'retainPatientCharacteristics'>;
const TEXT_CLEANING_OPTIONS: ReadonlySet<string> = new Set<TextCleaning>(['cleanDescriptors', 'cleanStructuredContent', 'cleanGraphics', 'retainPatientCharacteristics']);

/**
 * The text VRs that are cleaned, with their PS3.5 6.2 maximum length in characters (UT and UC: none
 * that a marker can reach). Others under C keep today's treatment: CS (a defined term: the dummy), PN
 * (a name is identity in full: the dummy or pseudonym), AE, UR, dates, binary.
 */
export const CLEANED_TEXT_MAX_CHARS: ReadonlyMap<string, number> = new Map([
  ['SH', 16], ['LO', 64], ['ST', 1024], ['LT', 10240], ['UT', Number.POSITIVE_INFINITY], ['UC', Number.POSITIVE_INFINITY],
]);

function requireTag(keyword: string): number {
  const tag = tagForKeyword(keyword);
  if (tag === undefined) throw new Error(`text-clean: unknown keyword ${keyword}`);
  return tag;
}

const TEXT_VALUE = requireTag('TextValue');
const UNFORMATTED_TEXT_VALUE = requireTag('UnformattedTextValue');
const GRAPHIC_ANNOTATION_SEQUENCE = requireTag('GraphicAnnotationSequence');
const WAVEFORM_ANNOTATION_SEQUENCE = requireTag('WaveformAnnotationSequence');

/**
 * Which Clean option cleans the text of this element, if any. Only text VRs (CLEANED_TEXT_MAX_CHARS),
 * never in the curve (50xx) or overlay (60xx) groups (deidentify.ts removes those); an override always wins.
 *   1. C from Clean Descriptors, Clean Structured Content, Clean Graphics or Retain Patient
 *      Characteristics (Table E.1-1 columns; when two options have a cell, profile.ts says which wins).
 *   2. Text Value (0040,A160), the TEXT content item value, outside the table (profile.ts
 *      SUPPLEMENT_CLEAN): cleaned under Clean Structured Content (E.3.5), else the dummy.
 *   3. Unformatted Text Value (0070,0006), D in the Basic Profile: cleaned inside the sequence an
 *      option cleans item by item, Graphic Annotation Sequence (Clean Graphics, E.3.3: its Text Object
 *      Sequence) and Waveform Annotation Sequence (Clean Structured Content, E.3.5).
 */
export function textCleaningOf(
  rule: { readonly action: string; readonly source: string },
  ref: { readonly tag: number; readonly vr: string; readonly path: readonly number[] },
  options: Readonly<Record<ProfileOption, boolean>>,
): TextCleaning | undefined {
  if (!CLEANED_TEXT_MAX_CHARS.has(ref.vr) || rule.source === 'override') return undefined;
  // Curves (50xx, retired) and overlays (60xx) go whole: their text describes data that is removed.
  const group = ref.tag >>> 16;
  if ((group & 0xff00) === 0x5000 || (group & 0xff00) === 0x6000) return undefined;
  if (rule.action === 'C' && TEXT_CLEANING_OPTIONS.has(rule.source)) return rule.source as TextCleaning;
  if (ref.tag === TEXT_VALUE && rule.action === 'C' && options.cleanStructuredContent) return 'cleanStructuredContent';
  if (ref.tag === UNFORMATTED_TEXT_VALUE && (rule.action === 'D' || rule.action === 'C')) {
    if (options.cleanGraphics && ref.path.includes(GRAPHIC_ANNOTATION_SEQUENCE)) return 'cleanGraphics';
    if (options.cleanStructuredContent && ref.path.includes(WAVEFORM_ANNOTATION_SEQUENCE)) return 'cleanStructuredContent';
  }
  return undefined;
}

// --- the identity values of a dataset -------------------------------------------------------------

/** How a value identifies: a person name, an identifier, a place (institution, address). */
export type IdentityRole = 'name' | 'id' | 'place';

/**
 * The attributes (besides every PN, which is a name) whose values are searched in the dataset's text,
 * at any depth (e.g. Patient ID inside Other Patient IDs Sequence).
 */
export const IDENTITY_ROLES: Readonly<Record<IdentityRole, readonly string[]>> = {
  name: ['CameraOwnerName'],
  id: [
    'PatientID', 'OtherPatientIDs', 'IssuerOfPatientID', 'MedicalRecordLocator', 'AccessionNumber', 'StudyID', 'AdmissionID', 'IssuerOfAdmissionID',
    'ServiceEpisodeID', 'RequestedProcedureID', 'ScheduledProcedureStepID', 'PerformedProcedureStepID', 'PlacerOrderNumberImagingServiceRequest',
    'FillerOrderNumberImagingServiceRequest', 'PlacerOrderNumberImagingServiceRequestRetired', 'FillerOrderNumberImagingServiceRequestRetired',
    'PlacerOrderNumberProcedure', 'FillerOrderNumberProcedure', 'InsurancePlanIdentification', 'ClinicalTrialSubjectID', 'ClinicalTrialSubjectReadingID',
    'ClinicalTrialSiteID', 'UniversalEntityID', 'LocalNamespaceEntityID', 'ContainerIdentifier', 'SpecimenIdentifier', 'BarcodeValue',
    'DeviceSerialNumber', 'DeviceID', 'DetectorID', 'StationName', 'PatientTelephoneNumbers', 'PatientTelecomInformation',
    'ReferringPhysicianTelephoneNumbers', 'PersonTelephoneNumbers', 'PersonTelecomInformation',
  ],
  place: [
    'InstitutionName', 'InstitutionAddress', 'InstitutionalDepartmentName', 'ResponsibleOrganization', 'VerifyingOrganization', 'ClinicalTrialSiteName',
    'ClinicalTrialCoordinatingCenterName', 'PatientAddress', 'RegionOfResidence', 'PersonAddress', 'ReferringPhysicianAddress',
  ],
};

const ROLE_BY_TAG: ReadonlyMap<number, IdentityRole> = new Map(
  (Object.entries(IDENTITY_ROLES) as [IdentityRole, readonly string[]][]).flatMap(([role, keywords]) => keywords.map((k) => [requireTag(k), role] as const)),
);

/**
 * Feeds the identity values of one whole dataset to `visit`: every element, at every depth, for which
 * `wants(tag, vr)` holds, with its DICOM JSON "Value" array (PS3.18 F.2). Made by the caller that has
 * the whole dataset before its text is cleaned (rewrite-part10.ts: the parsed header; jsonIdentitySource).
 */
export type IdentitySource = (visit: (tag: number, vr: string, values: readonly unknown[]) => void, wants: (tag: number, vr: string) => boolean) => void;

/** The identity source of a whole DICOM JSON dataset (WADO-RS metadata of one instance). */
export function jsonIdentitySource(dataset: JsonDataset): IdentitySource {
  return (visit, wants) => {
    const walk = (level: JsonDataset): void => {
      if (typeof level !== 'object' || level === null || Array.isArray(level)) return;
      for (const [key, element] of Object.entries(level)) {
        const tag = key.length === 8 ? parseTag(key) : undefined;
        const value = (element as { Value?: unknown } | null)?.Value;
        if (tag === undefined || !Array.isArray(value) || typeof element?.vr !== 'string') continue;
        if (element.vr === 'SQ') for (const item of value) walk(item as JsonDataset);
        else if (wants(tag, element.vr)) visit(tag, element.vr, value);
      }
    };
    walk(dataset);
  };
}

export interface CollectOptions {
  /**
   * Modified Dates only: whether a DA/DT attribute's dates must be removed from text rather than
   * shifted, because the profile does not shift that attribute (Patient Birth Date). Absent: no date
   * is collected (every date in text is removed anyway).
   */
  readonly fixedDate?: (tag: number) => boolean;
}

/**
 * A searched identity: its parts (letters and digits) in order, with `minGap` to 3 separators between
 * them (in the folded text every separator is a space): 1 between the words of a name or place, 0
 * between the characters of an identifier (so "AB-123456" is found as "AB123456" and "ab 123 456").
 */
interface Needle {
  readonly parts: readonly string[];
  readonly minGap: 0 | 1;
}

const MAX_GAP = 3;

/** The identity values of one dataset, ready for searching. Make it with `collectIdentities`. */
export class IdentitySet {
  /** Searched before dates: identifiers and places. */
  readonly early: NeedleIndex;
  /** Searched after dates: person names. */
  readonly names: NeedleIndex;
  /** YYYYMMDD of the dates the profile removes. */
  readonly fixedDates: ReadonlySet<string>;
  /** How many distinct needles and dates (for tests; no values). */
  readonly size: number;

  /** @internal use collectIdentities */
  constructor(early: readonly Needle[], names: readonly Needle[], fixedDates: ReadonlySet<string>) {
    this.early = new NeedleIndex(early);
    this.names = new NeedleIndex(names);
    this.fixedDates = fixedDates;
    this.size = this.early.size + this.names.size + fixedDates.size;
    Object.freeze(this);
  }
}

/**
 * Needles by their first KEY letters and digits (fewer for a shorter needle): at each position of a text
 * only the needles that can start there are tried (no regular expression to compile per dataset).
 */
class NeedleIndex {
  readonly #byKey = new Map<string, Needle[]>();
  readonly size: number;

  constructor(needles: readonly Needle[]) {
    const seen = new Set<string>();
    for (const n of needles) {
      const key = `${n.minGap}|${n.parts.join(' ')}`;
      const prefix = n.parts.join('').slice(0, KEY);
      if (prefix === '' || seen.has(key)) continue;
      seen.add(key);
      const list = this.#byKey.get(prefix) ?? [];
      list.push(n);
      this.#byKey.set(prefix, list);
    }
    this.size = seen.size;
  }

  /** The needles that may start at `text[at]` (folded, separators as spaces). */
  candidates(text: string, at: number): Needle[] {
    let key = '';
    for (let pos = at; key.length < KEY && pos < text.length; ) {
      if (text[pos] === ' ') {
        let gap = 0;
        while (text[pos + gap] === ' ') gap++;
        if (key === '' || gap > MAX_GAP) break;
        pos += gap;
        continue;
      }
      key += text[pos];
      pos++;
    }
    const out: Needle[] = [];
    for (let k = key.length; k >= 1; k--) {
      const list = this.#byKey.get(key.slice(0, k));
      if (list !== undefined) out.push(...list);
    }
    return out;
  }

  /** Where `needle` ends if it starts at `at` in `text` (folded, separators as spaces); -1 if it does not. */
  static matchAt(text: string, at: number, needle: Needle): number {
    let pos = at;
    for (let k = 0; k < needle.parts.length; k++) {
      if (k > 0) {
        let gap = 0;
        while (text[pos + gap] === ' ' && gap <= MAX_GAP) gap++;
        if (gap < needle.minGap || gap > MAX_GAP) return -1;
        pos += gap;
      }
      const part = needle.parts[k] as string;
      if (!text.startsWith(part, pos)) return -1;
      pos += part.length;
    }
    return pos;
  }
}

const KEY = 4;
const length = (n: Needle): number => n.parts.reduce((sum, p) => sum + p.length, 0);

/** An empty set: patterns only (for callers that know the dataset has no identity values). */
export const NO_IDENTITIES = new IdentitySet([], [], new Set());

/** Reads every identity value from `source` (once per dataset) and compiles the search patterns. */
export function collectIdentities(source: IdentitySource, options: CollectOptions = {}): IdentitySet {
  const early: Needle[] = [];
  const names: Needle[] = [];
  const dates = new Set<string>();
  const { fixedDate } = options;
  const wants = (tag: number, vr: string): boolean =>
    vr === 'PN' || ROLE_BY_TAG.has(tag) || (fixedDate !== undefined && (vr === 'DA' || vr === 'DT') && fixedDate(tag));
  source((tag, vr, values) => {
    const role: IdentityRole | 'date' | undefined = vr === 'PN' ? 'name' : (ROLE_BY_TAG.get(tag) ?? (vr === 'DA' || vr === 'DT' ? 'date' : undefined));
    for (const v of values) {
      if (role === 'name') {
        for (const group of personNameGroups(v)) names.push(...namePatterns(group));
      } else if (typeof v !== 'string' || v.trim() === '') {
      } else if (role === 'id') {
        // A multi-valued text (LT telecom information) may hold several identifiers, one a line.
        for (const line of v.split(/[\r\n]+/)) {
          const p = idPattern(line);
          if (p !== undefined) early.push(p);
        }
      } else if (role === 'place') {
        early.push(...placePatterns(v));
      } else if (role === 'date') {
        for (const part of v.split('-')) {
          const m = /^\s*(\d{8})/.exec(part);
          if (m) dates.add(m[1] as string);
        }
      }
    }
  }, wants);
  return new IdentitySet(early, names, dates);
}

/** The component groups of a PN value (DICOM JSON object or Part 10 string "A=I=P"), as "^" strings. */
function personNameGroups(v: unknown): string[] {
  if (typeof v === 'string') return v.split('=');
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return [];
  const pn = v as Record<string, unknown>;
  return [pn['Alphabetic'], pn['Ideographic'], pn['Phonetic']].filter((g): g is string => typeof g === 'string');
}

// Name particles: not searched alone when part of a multi-word component ("van der Berg" is searched as
// a whole and as "berg"; "van" and "der" alone would remove ordinary words everywhere).
const PARTICLES = new Set(['al', 'bin', 'binti', 'da', 'das', 'de', 'del', 'della', 'den', 'der', 'di', 'do', 'dos', 'du', 'el', 'ibn', 'la', 'le', 'les', 'los', 'st', 'ten', 'ter', 'van', 'von', 'y', 'zu']);

/**
 * The patterns of one PN component group "family^given^middle^prefix^suffix" (PS3.5 6.2.1): each of
 * the first three components as a whole (its words in sequence) and each of its words with ≥ 2
 * letters; for a group in a CJK script, also family and given run together in both orders.
 */
function namePatterns(group: string): Needle[] {
  const written = group.split('^').slice(0, 3);
  // German umlauts are also written ae, oe, ue (Müller, Mueller): both spellings are searched.
  const variants = written.filter((c) => /[äöüÄÖÜ]/.test(c)).map((c) => c.replace(/[äöüÄÖÜ]/g, (u) => UMLAUT[u] ?? u));
  const components = written.map((c) => fold(c.trim()).text).filter((c) => c !== '');
  const out: Needle[] = [];
  for (const component of components) {
    const words = wordsOf(component);
    if (words.length === 0) continue;
    if (words.length > 1 || letterCount(component) >= 2) out.push({ parts: words, minGap: 1 });
    if (words.length > 1) {
      for (const w of words) if (letterCount(w) >= 2 && !PARTICLES.has(w)) out.push({ parts: [w], minGap: 1 });
    }
  }
  for (const v of variants) out.push(...namePatterns(v));
  const [family, given] = components;
  if (family !== undefined && given !== undefined && CJK.test(family + given)) {
    const [f, g] = [wordsOf(family).join(''), wordsOf(given).join('')];
    out.push({ parts: [f + g], minGap: 1 }, { parts: [g + f], minGap: 1 });
  }
  return out;
}

const UMLAUT: Readonly<Record<string, string>> = { ä: 'ae', ö: 'oe', ü: 'ue', Ä: 'Ae', Ö: 'Oe', Ü: 'Ue' };

/** An identifier: its letters and digits in order, any up to three separators between them (4 or more); else as written. */
function idPattern(value: string): Needle | undefined {
  const folded = fold(value.trim()).text;
  const chars = [...folded].filter((c) => WORD_CHAR.test(c));
  // One or two letters or digits (Study ID "1") identify nobody and would remove every such number.
  if (chars.length < 3) return undefined;
  if (chars.length < 4) return { parts: wordsOf(folded), minGap: 1 };
  return { parts: chars, minGap: 0 };
}

/** A place: the whole value and each of its comma-, semicolon- or line-separated parts (≥ 4 letters or digits), word by word in sequence. */
function placePatterns(value: string): Needle[] {
  const folded = fold(value).text;
  const out: Needle[] = [];
  for (const part of [folded, ...folded.split(/[,;\r\n^]+/)]) {
    const words = wordsOf(part);
    if (words.join('').length >= 4) out.push({ parts: words, minGap: 1 });
  }
  return out;
}

const WORD_CHAR = /[\p{L}\p{N}]/u;
const CJK = /[\p{sc=Han}\p{sc=Hiragana}\p{sc=Katakana}\p{sc=Hangul}]/u;

function wordsOf(text: string): string[] {
  return text.split(/[^\p{L}\p{N}]+/u).filter((w) => w !== '');
}

function letterCount(text: string): number {
  return (text.match(/\p{L}/gu) ?? []).length;
}


// --- folding: case, accents, widths ---------------------------------------------------------------

interface Folded {
  /** The folded text. */
  readonly text: string;
  /** For UTF-16 unit `i` of `text`: the start of the original code point it came from. */
  readonly start: (i: number) => number;
  /** … and that code point's end (exclusive). */
  readonly end: (i: number) => number;
}

// ASCII folds one to one.
const SAME = (i: number): number => i;
const NEXT = (i: number): number => i + 1;

/**
 * Case-, accent- and width-insensitive form of a text with a map back to it: per code point NFKD (so
 * full-width Latin and half-width kana become ordinary), combining marks dropped, katakana as hiragana,
 * case folded (upper then lower: ß → ss). Hangul syllables stay whole.
 */
function fold(text: string): Folded {
  if (/^[\x00-\x7f]*$/.test(text)) return { text: text.toLowerCase(), start: SAME, end: NEXT };
  let out = '';
  const start: number[] = [];
  const end: number[] = [];
  for (let i = 0; i < text.length; ) {
    const cp = text.codePointAt(i) as number;
    const width = cp > 0xffff ? 2 : 1;
    const ch = text.slice(i, i + width);
    let f: string;
    if (cp < 0x80) f = ch.toLowerCase();
    else if (cp >= 0xac00 && cp <= 0xd7a3) f = ch;
    else {
      f = ch.normalize('NFKD').replace(/\p{M}/gu, '');
      f = f.replace(/[\u30a1-\u30f6]/g, (k) => String.fromCharCode(k.charCodeAt(0) - 0x60));
      f = f.toUpperCase().toLowerCase();
      f = LETTERS_WITHOUT_DECOMPOSITION[f] ?? f;
    }
    for (let k = 0; k < f.length; k++) {
      start.push(i);
      end.push(i + width);
    }
    out += f;
    i += width;
  }
  return { text: out, start: (k) => start[k] as number, end: (k) => end[k] as number };
}

// Latin letters NFKD leaves whole, read as their base letters.
const LETTERS_WITHOUT_DECOMPOSITION: Readonly<Record<string, string>> = { ø: 'o', æ: 'ae', œ: 'oe', ł: 'l', đ: 'd', ð: 'd', þ: 'th', ı: 'i', ħ: 'h', ŧ: 't' };

type CharClass = 'letter' | 'digit' | 'cjk' | 'other';

function classOf(ch: string | undefined): CharClass {
  if (ch === undefined || ch === '') return 'other';
  const code = ch.charCodeAt(0);
  if (code < 0x80) return code >= 0x61 && code <= 0x7a ? 'letter' : code >= 0x30 && code <= 0x39 ? 'digit' : code >= 0x41 && code <= 0x5a ? 'letter' : 'other';
  if (CJK.test(ch)) return 'cjk';
  if (/\p{L}/u.test(ch)) return 'letter';
  if (/\p{N}/u.test(ch)) return 'digit';
  return 'other';
}

/**
 * Whether a match may stand at this edge: a CJK edge needs no boundary (no spaces between words);
 * otherwise the neighbour must not be a letter or digit, or, for a match of 3 or more letters and
 * digits, not of the edge's own class ("MRN12345678" holds the ID 12345678; "Smithson" does not hold
 * "Smith"; "T1" does not hold the ID "1").
 */
function boundary(neighbour: string | undefined, edge: string | undefined, short: boolean): boolean {
  const e = classOf(edge);
  if (e === 'cjk') return true;
  const n = classOf(neighbour);
  if (n === 'other') return true;
  if (short) return false;
  return n !== e;
}

// --- cleaning ---------------------------------------------------------------------------------------

export interface CleanTextOptions {
  /** The element's VR: its maximum length (CLEANED_TEXT_MAX_CHARS) caps the result. */
  readonly vr?: string;
  /** Modified Dates (E.3.6): the patient's day offset; dates are shifted instead of removed. */
  readonly shiftDays?: number;
}

interface Span {
  readonly start: number;
  readonly end: number;
  /** A shifted date; undefined: the marker. */
  readonly replacement?: string;
}

const EMAIL = /(?<![\p{L}\p{N}._%+'-])[\p{L}\p{N}._%+'-]+@[\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)+/gu;
const URL = /(?<![\p{L}\p{N}])(?:(?:https?|ftp|file):\/\/|www\.)[^\s<>"]+/giu;
// A strong record-number label; its value may follow after a space, and must then hold a digit.
const STRONG_LABEL =
  /(?<![\p{L}\p{N}])(?:MRN|MR\s?(?:#|No\.?|Nr\.?)|med(?:ical)?\.?\s?rec(?:ord)?\.?(?:\s?(?:#|no\.?|nr\.?|number))?|(?:patient|pat\.?)[\s-]?(?:id|#|no\.?|nr\.?|number)|PID|SSN|NHS(?:\s?(?:#|no\.?|number))?|hosp(?:ital)?\.?\s?(?:#|no\.?|nr\.?|number)|chart\s?(?:#|no\.?|number)|acc(?:ession)?\.?\s?(?:#|no\.?|nr\.?|number)|accession|case\s?(?:#|no\.?|number))(?:\s*[:#=]\s*(?=[\p{L}\p{N}])|\s*(?=[\p{L}\p{N}/._-]*\d))[\p{L}\p{N}](?:[\p{L}\p{N}/._-]*[\p{L}\p{N}])?/giu;
// A weak label counts only with a separator: "ID" with a colon, hash or equals sign; "No" and "Nr" with
// a colon or equals sign ("no #2" is not a label).
const WEAK_LABEL = /(?<![\p{L}\p{N}])(?:(?:ID|I\.D\.)\s*[:#=]|(?:No|Nr)\.?\s*[:=])\s*[\p{L}\p{N}](?:[\p{L}\p{N}/._-]*[\p{L}\p{N}])?/giu;
// UIDs (PS3.5 9.1) and IP addresses: 4 or more dotted numbers, or 3 in 8 or more characters.
const DOTTED = /(?<![\p{N}.])\d+(?:\.\d+){2,}(?![\p{N}]|\.\d)/gu;
const PHONE = /(?<![\p{L}\p{N}+])(?:(?:\+|00)\d{1,3}[\s./-]?)?(?:\(\d{1,5}\)[\s./-]?)?\d{2,5}(?:[\s./-]\d{2,5}){1,5}(?![\p{L}\p{N}])/gu;
const DIGIT_RUN = /\d{6,}/g;
// A birth date label just before a date: the date is removed, never shifted.
const BIRTH_LABEL = /(?:(?<![\p{L}])DOB|D\.O\.B\.?|date\s+of\s+birth|birth\s?date|(?<![\p{L}])born|geb(?:oren|\.|urtsdatum)|n[ée]e?\s+le)\W{0,3}$/iu;

const MONTHS = ['january', 'february', 'march', 'april', 'may', 'june', 'july', 'august', 'september', 'october', 'november', 'december'];
const MONTH = '(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)';

type DateForm = 'ymd' | 'compact' | 'dmy' | 'numeric-month-year' | 'numeric-year-month' | 'day-month' | 'month-day' | 'month-year';
const DATE_FORMS: readonly (readonly [DateForm, RegExp])[] = [
  ['ymd', /(?<![\p{N}./-])(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?![\p{N}]|[./-]\d)/dgu],
  ['compact', /(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)/dg],
  ['dmy', /(?<![\p{N}./-])(\d{1,2})([-/.])(\d{1,2})\2(\d{4}|\d{2})(?![\p{N}]|[./-]\d)/dgu],
  // A month and year in digits (03/2019, 2019-03): a date too, to the month.
  ['numeric-month-year', /(?<![\p{N}./-])(\d{1,2})([-/.])(\d{4})(?![\p{N}]|[./-]\d)/dgu],
  ['numeric-year-month', /(?<![\p{N}./-])(\d{4})([-/])(\d{1,2})(?![\p{N}]|[./-]\d)/dgu],
  // Month first before day first: in "2 July 19, 1965" the date is July 19, 1965.
  ['month-day', new RegExp(`(?<![\\p{L}])${MONTH}\\.?(?![\\p{L}])\\s*(\\d{1,2})(?:st|nd|rd|th)?,?\\s*(\\d{4})(?![\\p{N}])`, 'dgiu')],
  ['day-month', new RegExp(`(?<![\\p{L}\\p{N}])(\\d{1,2})(?:st|nd|rd|th)?[\\s.\\/-]*${MONTH}\\.?(?![\\p{L}])[\\s.,\\/-]*('?\\d{4}|'?\\d{2}(?!,?\\s*\\d))(?![\\p{N}])`, 'dgiu')],
  ['month-year', new RegExp(`(?<![\\p{L}])${MONTH}\\.?(?![\\p{L}])[\\s,\\/-]*(\\d{4})(?![\\p{N}])`, 'dgiu')],
];

/**
 * Cleans one text value: the removals listed at the top of this file, each replaced by
 * TEXT_CLEAN_MARKER (neighbouring removals joined into one), dates shifted where options say so, and
 * the result cut to the VR's maximum length.
 */
export function cleanText(text: string, identities: IdentitySet, options: CleanTextOptions = {}): string {
  const spans: Span[] = [];
  // Digits and Latin written full-width are read as ASCII (one UTF-16 unit each, so offsets hold); each
  // removal is blanked out of what later steps see.
  // Blanked once per step (not per removal), so a long text with many removals stays linear.
  let work = text.replace(/[\uff01-\uff5e]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0xfee0));
  let blanked = 0; // spans already blanked out of `work`
  const view = (): string => {
    if (blanked === spans.length) return work;
    const fresh = spans.slice(blanked).sort((a, b) => a.start - b.start);
    let out = '';
    let cursor = 0;
    for (const { start, end } of fresh) {
      if (end <= cursor) continue;
      const from = Math.max(start, cursor);
      out += work.slice(cursor, from) + '\0'.repeat(end - from);
      cursor = end;
    }
    work = out + work.slice(cursor);
    blanked = spans.length;
    return work;
  };
  const take = (start: number, end: number, replacement?: string): void => {
    if (end > start) spans.push(replacement === undefined ? { start, end } : { start, end, replacement });
  };
  const byPattern = (re: RegExp, accept: (m: RegExpExecArray) => boolean = () => true): void => {
    const s = view();
    for (const m of s.matchAll(re)) if (accept(m)) take(m.index, m.index + m[0].length);
  };
  const byIdentity = (index: NeedleIndex): void => {
    if (index.size === 0) return;
    const s = view();
    const f = fold(s);
    // Every character that is not a letter or digit is a separator, searched as a space.
    const searchable = f.text.replace(/^[\x00-\x7f]*$/.test(f.text) ? /[^a-z0-9]+/g : /[^\p{L}\p{N}]+/gu, (gap) => ' '.repeat(gap.length));
    for (let from = 0; from < searchable.length; from++) {
      if (searchable[from] === ' ') continue;
      // Inside a word (a letter after a letter, a digit after a digit) no needle may start: see boundary.
      const here = classOf(searchable[from]);
      if (here !== 'cjk' && from > 0 && classOf(searchable[from - 1]) === here) continue;
      let to = -1; // the longest needle that matches here with its boundaries
      for (const needle of index.candidates(searchable, from)) {
        const end = NeedleIndex.matchAt(searchable, from, needle);
        if (end <= to) continue;
        const short = length(needle) < 3;
        if (boundary(searchable[from - 1], searchable[from], short) && boundary(searchable[end], searchable[end - 1], short)) to = end;
      }
      if (to < 0) continue;
      let start = f.start(from);
      if (/\d/.test(searchable[from] as string) && /[+(]/.test(s[start - 1] ?? '')) start--; // "+44 …", "(555) …"
      let end = f.end(to - 1);
      while (end < s.length && /\p{M}/u.test(s[end] as string)) end++; // combining marks of the last letter
      take(start, end);
      from = to - 1;
    }
  };

  if (text.includes('@')) byPattern(EMAIL);
  if (/:\/\/|www\./i.test(text)) byPattern(URL);
  if (/[#:=]|mrn|mr|rec|pat|pid|ssn|nhs|hosp|chart|acc|case/i.test(text)) byPattern(STRONG_LABEL);
  if (/[#:=]/.test(text)) byPattern(WEAK_LABEL);
  byIdentity(identities.early);
  byPattern(DOTTED, (m) => m[0].split('.').length >= 4 || m[0].length >= 8);
  for (const [form, re] of /\d/.test(text) ? DATE_FORMS : []) {
    const s = view();
    for (const m of s.matchAll(re)) {
      const date = readDate(form, m);
      if (date === undefined) continue;
      const start = m.index;
      const end = start + m[0].length;
      const replacement = options.shiftDays === undefined ? undefined : shiftedDate(form, date, m, text, identities.fixedDates, options.shiftDays);
      take(start, end, replacement);
    }
  }
  byIdentity(identities.names);
  byPattern(PHONE, (m) => {
    const digits = m[0].replace(/\D/g, '').length;
    return digits >= 7 && digits <= 15;
  });
  byPattern(DIGIT_RUN);
  return limit(assemble(text, spans), CLEANED_TEXT_MAX_CHARS.get(options.vr ?? '') ?? Number.POSITIVE_INFINITY);
}

interface ReadDate {
  /** Candidate days (one unless the spelling is ambiguous); month-year: day undefined. */
  readonly candidates: readonly { year: number; month: number; day?: number }[];
  /** A 2-digit year, or day and month interchangeable: cannot be shifted. */
  readonly ambiguous: boolean;
}

function validDay(year: number, month: number, day: number): boolean {
  return year >= 1000 && year <= 2999 && month >= 1 && month <= 12 && day >= 1 && day <= new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function monthOf(name: string): number {
  const lower = name.toLowerCase();
  return MONTHS.findIndex((m) => m.startsWith(lower.slice(0, 3))) + 1;
}

function yearOf(text: string): { year: number; twoDigit: boolean } {
  const digits = text.replace(/\D/g, '');
  return { year: Number(digits), twoDigit: digits.length === 2 };
}

/** The day(s) a date spelling can mean; undefined when it is not a date at all (left to later steps). */
function readDate(form: DateForm, m: RegExpExecArray): ReadDate | undefined {
  const g = (i: number): string => m[i] ?? '';
  switch (form) {
    case 'ymd':
    case 'compact': {
      const [y, mo, d] = form === 'ymd' ? [g(1), g(3), g(4)] : [g(1), g(2), g(3)];
      const c = { year: Number(y), month: Number(mo), day: Number(d) };
      return validDay(c.year, c.month, c.day) ? { candidates: [c], ambiguous: false } : undefined;
    }
    case 'dmy': {
      const a = Number(g(1));
      const b = Number(g(3));
      const { year, twoDigit } = yearOf(g(4));
      const probe = twoDigit ? 2000 + year : year;
      const dm = validDay(probe, b, a) ? [{ year, month: b, day: a }] : [];
      const md = a !== b && validDay(probe, a, b) ? [{ year, month: a, day: b }] : [];
      const candidates = [...dm, ...md];
      if (candidates.length === 0) return undefined;
      return { candidates, ambiguous: twoDigit || candidates.length > 1 || a === b };
    }
    case 'day-month':
    case 'month-day': {
      const [d, name, y] = form === 'day-month' ? [g(1), g(2), g(3)] : [g(2), g(1), g(3)];
      const { year, twoDigit } = yearOf(y);
      const c = { year, month: monthOf(name), day: Number(d) };
      if (!validDay(twoDigit ? 2000 + year : year, c.month, c.day)) return undefined;
      return { candidates: [c], ambiguous: twoDigit };
    }
    case 'month-year':
    case 'numeric-month-year':
    case 'numeric-year-month': {
      const [y, mo] = form === 'numeric-year-month' ? [g(1), g(3)] : form === 'numeric-month-year' ? [g(3), g(1)] : [g(2), g(1)];
      const year = Number(y);
      const month = form === 'month-year' ? monthOf(mo) : Number(mo);
      // In digits only years 1800-2199 count ("1/1000" is a dilution, not January 1000).
      if (form !== 'month-year' && (year < 1800 || year > 2199)) return undefined;
      return validDay(year, month, 1) ? { candidates: [{ year, month }], ambiguous: false } : undefined;
    }
  }
}

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

type DatePart = 'year' | 'month' | 'day' | 'month-name';
/** Which regular expression group of each date form holds which part. */
const DATE_LAYOUT: Readonly<Record<DateForm, readonly (readonly [group: number, part: DatePart])[]>> = {
  ymd: [[1, 'year'], [3, 'month'], [4, 'day']],
  compact: [[1, 'year'], [2, 'month'], [3, 'day']],
  dmy: [[1, 'day'], [3, 'month'], [4, 'year']],
  'numeric-month-year': [[1, 'month'], [3, 'year']],
  'numeric-year-month': [[1, 'year'], [3, 'month']],
  'day-month': [[1, 'day'], [2, 'month-name'], [3, 'year']],
  'month-day': [[1, 'month-name'], [2, 'day'], [3, 'year']],
  'month-year': [[1, 'month-name'], [2, 'year']],
};

/**
 * The date shifted by `days` in the spelling it was written in (PS3.15 E.3.6), or undefined (removed)
 * when the spelling is ambiguous, the day is one the profile removes (fixedDates) or a birth date label
 * precedes it.
 */
function shiftedDate(form: DateForm, date: ReadDate, m: RegExpExecArray, original: string, fixedDates: ReadonlySet<string>, days: number): string | undefined {
  if (date.ambiguous || date.candidates.length !== 1) return undefined;
  const c = date.candidates[0] as { year: number; month: number; day?: number };
  const ymd = `${pad(c.year, 4)}${pad(c.month, 2)}${c.day === undefined ? '' : pad(c.day, 2)}`;
  if ([...fixedDates].some((f) => f.startsWith(ymd))) return undefined;
  if (BIRTH_LABEL.test(original.slice(Math.max(0, m.index - 24), m.index))) return undefined;
  const moved = shiftDA(ymd, days);
  if (moved === undefined) return undefined;
  const year = Number(moved.slice(0, 4));
  const month = Number(moved.slice(4, 6));
  const day = moved.length === 8 ? Number(moved.slice(6, 8)) : undefined;
  const indices = m.indices as RegExpIndicesArray;
  // Each group is replaced in place, as wide as written; separators and suffixes stay as written.
  const at = (i: number): [number, number] => (indices[i] as [number, number]) ?? [0, 0];
  const named = (written: string, n: number): string => {
    const full = MONTHS[n - 1] as string;
    const long = written.length > 3 && MONTHS.includes(written.toLowerCase()) ? full : written.length === 4 && n === 9 ? 'sept' : full.slice(0, 3);
    return written === written.toUpperCase() ? long.toUpperCase() : written === written.toLowerCase() ? long : long[0]!.toUpperCase() + long.slice(1);
  };
  // "dmy" read month first (03/25/2019): its first two groups swap roles.
  const monthFirst = form === 'dmy' && Number(m[1]) !== c.day;
  const value: Record<DatePart, (written: string) => string> = {
    year: (w) => pad(year, w.length),
    month: (w) => pad(month, w.length),
    day: (w) => pad(day ?? 1, w.length),
    'month-name': (w) => named(w, month),
  };
  const replace: [number, string][] = DATE_LAYOUT[form].map(([i, part]) => {
    const role = monthFirst && part !== 'year' ? (part === 'day' ? 'month' : 'day') : part;
    const [s, e] = at(i);
    return [i, value[role](original.slice(s, e))];
  });
  let out = '';
  let cursor = m.index;
  for (const [i, value] of replace.sort((a, b) => at(a[0])[0] - at(b[0])[0])) {
    const [s, e] = at(i);
    out += original.slice(cursor, s) + value;
    cursor = e;
  }
  return out + original.slice(cursor, m.index + m[0].length);
}

/** The text with each span replaced; marker spans with only blanks or punctuation between them become one. */
function assemble(text: string, spans: readonly Span[]): string {
  const sorted = [...spans].sort((a, b) => a.start - b.start);
  const merged: Span[] = [];
  for (const span of sorted) {
    const last = merged.at(-1);
    const gap = last === undefined ? '' : text.slice(last.end, span.start);
    const joinable = last !== undefined && last.replacement === undefined && span.replacement === undefined && /^[\s,;:./&+^=_-]{0,3}$/.test(gap);
    if (last !== undefined && (span.start < last.end || joinable)) {
      merged[merged.length - 1] = { start: last.start, end: Math.max(last.end, span.end) }; // an overlap is removed
    } else merged.push(span);
  }
  let out = '';
  let cursor = 0;
  for (const span of merged) {
    out += text.slice(cursor, span.start) + (span.replacement ?? TEXT_CLEAN_MARKER);
    cursor = span.end;
  }
  return out + text.slice(cursor);
}

/** Cut to `max` characters (code points), never splitting one. */
function limit(text: string, max: number): string {
  if (text.length <= max) return text;
  const points = [...text];
  return points.length <= max ? text : points.slice(0, max).join('');
}

// --- the conformance statement's words (conformance.ts) ---------------------------------------------

/** What text cleaning removes from a text, in the order it does (the top of this file, for people). */
export const TEXT_CLEANING_REMOVES: readonly string[] = [
  'e-mail addresses and URLs',
  'record-number labels with their value ("MRN: …", "Patient ID …", "ID: …", "SSN …", "Accession No …")',
  `the identifiers of the same dataset wherever they occur, case-insensitively and with any separators (${IDENTITY_ROLES.id.join(', ')}; 3 or more letters or digits), and its places, whole or by comma-separated part (${IDENTITY_ROLES.place.join(', ')})`,
  'UIDs and IP addresses (4 or more dotted numbers, or 3 in 8 or more characters)',
  'dates in the common spellings (20190304, 2019-03-04, 04/03/2019, 3/4/2019, 4 Mar 2019, March 4, 2019, 03.04.19; to the month: Mar 2019, 03/2019, 2019-03; English month names); a year alone is kept',
  'every name component (family, given, middle; 2 or more letters) of every person name (PN) of the same dataset at any depth, and of Camera Owner Name, in any order, case- and accent-insensitively (NFKD, diacritics, full width, katakana/hiragana, ä = ae), in every component group; CJK family and given names also run together',
  'telephone numbers (7 to 15 digits in groups) and runs of 6 or more digits',
];

/** What text cleaning keeps, and how it marks and bounds what it removed. */
export const TEXT_CLEANING_KEEPS: readonly string[] = [
  'every other word and number of the text, as written (clinical terms, sequence names, measurements, short numbers, years on their own)',
  `each removal replaced by ${TEXT_CLEAN_MARKER}; removals separated only by blanks or punctuation become one`,
  'under Retain Longitudinal Temporal Information with Modified Dates (E.3.6): a date whose spelling names one day (or a month and year) is shifted by the patient day offset in the same spelling instead of removed; a 2-digit year, a day and month that could be swapped, a date the profile removes (Patient Birth Date) and one after a birth label (DOB, born …) are removed',
  'the result cut to the VR maximum length (SH 16, LO 64, ST 1024, LT 10240 characters) when the markers made it longer',
];

/** Where the dataset's identity values are known, and where text gets the dummy instead (fail closed). */
export const TEXT_CLEANING_WHERE: readonly string[] = [
  'Part 10 (WADO-RS retrieval, STOW-RS uploads, the CLI): the whole header is parsed (under the header size cap) before any element is decided, so its identity values are known to every text, whatever the tag order',
  'WADO-RS metadata: each instance is a whole dataset (PS3.18: every attribute but bulk data); its identity values come from it. A PACS that answers metadata from a subset of the attributes must not be used with these options',
  'QIDO-RS results (and DIMSE C-FIND, answered from them): a result holds only some attributes, so an identity held elsewhere in the instance could not be removed: the text is replaced by the VR dummy (fail closed); a search on a cleaned attribute matches that dummy',
  'Not cleaned as text, under any option: CS (a defined term: the dummy), PN (a name is identity in full: dummy or pseudonym, e.g. PNAME content items), dates (shifted or dummies as the table says), UIDs (keyed UIDs, e.g. UIDREF items), binary values and the curve (50xx) and overlay (60xx) groups (removed)',
];

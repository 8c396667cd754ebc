// PS3.4 C.4.1 C-FIND on the research face (issue 19 part 2), for the Study Root and Patient Root
// Query/Retrieve Information Models (PS3.4 C.6.2.1, C.6.1.1). The Identifier becomes a QIDO-RS search
// (PS3.18 10.6) of the caller's de-identified view (view-client.ts), so every check of the researcher's
// HTTP path applies (project membership, reverse mapping of pseudonyms, no query oracle, the pixel policy,
// the audit trail), and each result of the search becomes one pending response as it is read.
//
//   1. The model and the Query/Retrieve Level (0008,0052) choose the resource: STUDY /studies, SERIES
//      /series, IMAGE /instances (PS3.4 C.6.2.1.1); PATIENT (Patient Root only, C.6.1.1.2) is served from
//      /studies, one match per distinct patient-level answer, and takes Patient IE keys only.
//   2. Each key with a value becomes a QIDO matching key, each empty one an `includefield` (PS3.4 C.2.2.2;
//      PS3.18 8.3.4: the matching syntax is the same). Keys are the dictionary's tags, never the caller's
//      text; values are the caller's, validated for their VR by the view (400: A900).
//   3. A sequence key is a return key only: zero items, or one item of empty keys (PS3.4 C.2.2.2.6
//      universal matching); a value in it (sequence matching) is refused (A900), as is a value on a key
//      the view cannot match (private, unknown, binary). Such a key left empty is not returned and the
//      pending responses say so (FF01, PS3.4 C.4.1.1.4).
//   4. Each match carries only the requested keys, with Query/Retrieve Level, Specific Character Set
//      (ISO_IR 192: DICOM JSON is UTF-8) and Retrieve AE Title (PS3.4 C.4.1.1.3.2).
//   5. At most `dimse.maxFindResults` matches; past that the rest are cut (a warning in the log) and the
//      final status is still 0000. A C-CANCEL stops reading the view: final FE00 (PS3.7 9.3.2.3).
//   6. Back-pressure: when a response fills the association's socket buffer, the next result of the view
//      is read only once it drained (Operation.drained): a peer that stops reading holds the view back.
// Nothing here logs an attribute value: keys are named by tag, failures by code.
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';
import dimse from 'dcmjs-dimse';
import { lookup } from '../dicom/dictionary.ts';
import type { JsonDataset, JsonElement } from '../dicom/json-model.ts';
import { formatTag, groupOf, isPrivate, parseTag, tagToHex, type Tag } from '../dicom/tag.ts';
import { isVr, vrInfo } from '../dicom/vr.ts';
import { jsonArrayItems } from '../dicomweb/json-array-stream.ts';
import { QUERY_RETRIEVE, type Operation, type ResearchFaceOptions } from './research-face.ts';
import { statusHex } from './store-status.ts';

const { Dataset } = dimse;
const { CFindResponse } = dimse.responses;
type CFindRequest = InstanceType<typeof dimse.requests.CFindRequest>;
type FindResponse = InstanceType<typeof dimse.responses.CFindResponse>;

/** A naturalized dcmjs dataset: dictionary names as keys, `_vrMap` for the VRs the dictionary leaves open. */
export type NaturalDataset = Record<string, unknown>;

/** PS3.4 C.4.1.1.4 Table C.4-1 (and PS3.7 C.5.8 for 0122): the statuses a C-FIND of the research face ends with. */
export const FindStatus = Object.freeze({
  /** Matching is complete. */
  success: 0x0000,
  /** Matching terminated due to Cancel request. */
  cancel: 0xfe00,
  /** Matches are continuing: the current match is supplied, every optional key supported. */
  pending: 0xff00,
  /** Matches are continuing: one or more optional keys were not supported for existence or matching. */
  pendingWarning: 0xff01,
  /** Refused: Out of Resources (the listener's answer to a second operation while one runs, PS3.7 D.3.3.3). */
  outOfResources: 0xa700,
  /** Identifier does not match SOP Class: a level, key or value this model or the view does not take. */
  identifierDoesNotMatch: 0xa900,
  /** Unable to process (Cxxx): the view failed or could not be reached. */
  unableToProcess: 0xc001,
  /** Refused: SOP Class not supported (a C-FIND on a C-GET or C-MOVE model). */
  sopClassNotSupported: 0x0122,
});

export type QueryLevel = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';

/** PS3.4 C.6.1.1 (Patient Root) and C.6.2.1 (Study Root): the levels of each C-FIND model. */
const MODEL_LEVELS: ReadonlyMap<string, readonly QueryLevel[]> = new Map([
  [QUERY_RETRIEVE.patientRootFind, ['PATIENT', 'STUDY', 'SERIES', 'IMAGE']],
  [QUERY_RETRIEVE.studyRootFind, ['STUDY', 'SERIES', 'IMAGE']],
]);

/** The QIDO-RS resource searched for each level (PS3.18 10.6.1); QIDO has no patient level. */
const LEVEL_PATH: Readonly<Record<QueryLevel, '/studies' | '/series' | '/instances'>> = { PATIENT: '/studies', STUDY: '/studies', SERIES: '/series', IMAGE: '/instances' };

/**
 * PS3.4 C.6.1.1.2 Table C.6-1: the Patient level's keys, all attributes of the Patient IE (PS3.3 C.7.1.1
 * Patient, C.7.1.3 Clinical Trial Subject, C.2.3 Patient Demographic). Hierarchical search (PS3.4
 * C.4.1.3.1.1): a PATIENT-level Identifier holds keys of that level only. Number of Patient Related
 * Studies / Series / Instances are counts over a patient's studies, which a stream of studies cannot give
 * before the patient's first answer: not supported (FF01 when asked, A900 as a matching key).
 */
const PATIENT_LEVEL_KEYWORDS = [
  'PatientName', 'PatientID', 'IssuerOfPatientID', 'IssuerOfPatientIDQualifiersSequence', 'TypeOfPatientID', 'ReferencedPatientSequence',
  'PatientBirthDate', 'PatientBirthTime', 'PatientSex', 'QualityControlSubject', 'OtherPatientIDsSequence', 'OtherPatientNames',
  'PatientBirthName', 'PatientMotherBirthName', 'EthnicGroup', 'PatientComments', 'PatientSpeciesDescription', 'PatientSpeciesCodeSequence',
  'PatientBreedDescription', 'PatientBreedCodeSequence', 'BreedRegistrationSequence', 'ResponsiblePerson', 'ResponsiblePersonRole',
  'ResponsibleOrganization', 'PatientIdentityRemoved', 'DeidentificationMethod', 'DeidentificationMethodCodeSequence',
  'ClinicalTrialSponsorName', 'ClinicalTrialProtocolID', 'ClinicalTrialProtocolName', 'ClinicalTrialSiteID', 'ClinicalTrialSiteName',
  'ClinicalTrialSubjectID', 'ClinicalTrialSubjectReadingID', 'ClinicalTrialProtocolEthicsCommitteeName',
  'ClinicalTrialProtocolEthicsCommitteeApprovalNumber',
];
const PATIENT_COUNTS = ['NumberOfPatientRelatedStudies', 'NumberOfPatientRelatedSeries', 'NumberOfPatientRelatedInstances'];

/** Values the view cannot match and a response cannot carry as text (PS3.5 6.2 binary VRs; AT). */
const UNSUPPORTED_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN', 'AT', 'SV', 'UV']);

/** Filled in here, not asked of the view (PS3.4 C.4.1.1.3.1-2). */
const FILLED_HERE = new Set(['QueryRetrieveLevel', 'SpecificCharacterSet', 'RetrieveAETitle']);

/** The largest DICOM JSON dataset read from the view for one match (json-array-stream.ts cap). */
const MAX_MATCH_BYTES = 4 * 1024 * 1024;

interface DcmjsEntry {
  readonly tag: string;
  readonly name: string;
}
/**
 * The dictionary of the dcmjs that dcmjs-dimse encodes datasets with (its own dependency, resolved from
 * its own folder). It writes only elements named in it: any other it drops and logs with its value, so
 * every name given to it comes from here.
 */
const DCMJS = (() => {
  const own = createRequire(import.meta.url);
  const dcmjs = createRequire(own.resolve('dcmjs-dimse'))('dcmjs') as {
    data: { DicomMetaDictionary: { dictionary: Record<string, DcmjsEntry | undefined>; nameMap: Record<string, DcmjsEntry | undefined> } };
  };
  return dcmjs.data.DicomMetaDictionary;
})();

/** One attribute a response carries: a requested key, with the item keys of a sequence. */
export interface ReturnKey {
  /** The dcmjs name the response element is written under. */
  readonly name: string;
  readonly tag: Tag;
  readonly vr: string;
  /** SQ only: the keys of its item, or `all` (PS3.4 C.2.2.2.6: zero items, or an item with no keys). */
  readonly items?: readonly ReturnKey[] | 'all';
}

export interface FindPlan {
  readonly level: QueryLevel;
  /** The QIDO-RS resource, below the DICOMweb base. */
  readonly path: '/studies' | '/series' | '/instances';
  readonly query: URLSearchParams;
  readonly keys: readonly ReturnKey[];
  /** An optional key was not supported for return: pending responses are FF01, not FF00. */
  readonly warning: boolean;
  /** PATIENT level: one match per distinct answer (the view answers per study). */
  readonly distinct: boolean;
}

export interface FindRefusal {
  readonly status: number;
  /** A stable code for the log (and the Error Comment): never a value. */
  readonly reason: string;
  /** Error Comment (0000,0902), PS3.7 C.4: at most 64 characters, names tags, never values. */
  readonly comment: string;
}

export type PlannedFind = { readonly plan: FindPlan } | { readonly refusal: FindRefusal };

const refuse = (status: number, reason: string, comment: string): { refusal: FindRefusal } => ({ refusal: { status, reason, comment: comment.slice(0, 64) } });

type Resolved = { readonly key: ReturnKey; readonly supported: true } | { readonly tag: Tag | undefined; readonly supported: false };

/** A naturalized element name as its tag and VR; unsupported when the view cannot take it. */
function resolve(name: string, vrMap: Record<string, unknown> | undefined): Resolved {
  const tag = /^[0-9A-Fa-f]{8}$/.test(name) ? parseTag(name) : parseTag(DCMJS.nameMap[name]?.tag ?? '');
  if (tag === undefined || /^[0-9A-Fa-f]{8}$/.test(name)) return { tag, supported: false };
  const entry = lookup(tag);
  // Private, unknown, File Meta / command / directory groups, and VRs the view cannot match by value.
  if (!entry || isPrivate(tag) || groupOf(tag) < 0x0008 || entry.vrs.length === 0) return { tag, supported: false };
  const given = vrMap?.[name];
  const vr = typeof given === 'string' && entry.vrs.includes(given) ? given : (entry.vrs[0] as string);
  if (UNSUPPORTED_VRS.has(vr)) return { tag, supported: false };
  return { key: { name, tag, vr }, supported: true };
}

const isItem = (v: unknown): v is NaturalDataset => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof ArrayBuffer) && !ArrayBuffer.isView(v);
const PN_GROUPS = new Set(['Alphabetic', 'Ideographic', 'Phonetic']);
/** dcmjs's Person Name value: an object of component groups and nothing else (a sequence item is not one). */
const isPersonName = (v: unknown): v is NaturalDataset => isItem(v) && Object.keys(v).every((k) => PN_GROUPS.has(k));

/** One naturalized value as query text: '' for none, undefined when it is no text (binary). */
function valueText(v: unknown): string | undefined {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v.trim();
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : undefined;
  if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) return v.byteLength === 0 ? '' : undefined;
  if (isPersonName(v)) {
    // PS3.5 6.2.1.1: a Person Name's component groups, joined by '='.
    const groups = [v['Alphabetic'], v['Ideographic'], v['Phonetic']];
    if (groups.some((g) => g !== undefined && typeof g !== 'string')) return undefined;
    return groups.map((g) => (g as string | undefined) ?? '').join('=').replace(/=+$/, '').trim();
  }
  return undefined;
}

/** A key's value as QIDO text: values joined by '\' (PS3.4 C.2.2.2.8), a UID list by ','; '' for universal matching. */
function keyText(raw: unknown, vr: string): string | undefined {
  const values = Array.isArray(raw) ? raw : [raw];
  const texts = values.map(valueText);
  if (texts.some((t) => t === undefined)) return undefined;
  if (texts.every((t) => t === '')) return '';
  return texts.join(vr === 'UI' ? ',' : '\\');
}

/**
 * The item keys of a sequence key (PS3.4 C.2.2.2.6): return keys only. Undefined when one holds a value
 * (sequence matching, which QIDO cannot express) or a sequence has more than one item.
 */
function itemKeys(raw: unknown): { keys: readonly ReturnKey[] | 'all'; warning: boolean } | undefined {
  const items = raw === null || raw === undefined || raw === '' ? [] : Array.isArray(raw) ? raw : [raw];
  if (items.length === 0) return { keys: 'all', warning: false };
  if (items.length > 1 || !isItem(items[0])) return undefined;
  const item = items[0];
  const names = Object.keys(item).filter((n) => n !== '_vrMap' && n !== '_meta');
  if (names.length === 0) return { keys: 'all', warning: false };
  const keys: ReturnKey[] = [];
  let warning = false;
  for (const name of names) {
    const resolved = resolve(name, item['_vrMap'] as Record<string, unknown> | undefined);
    if (!resolved.supported) {
      if (keyText(item[name], 'UN') !== '') return undefined;
      warning = true;
      continue;
    }
    const { key } = resolved;
    if (key.vr === 'SQ') {
      const nested = itemKeys(item[name]);
      if (!nested) return undefined;
      warning ||= nested.warning;
      keys.push({ ...key, items: nested.keys });
      continue;
    }
    if (keyText(item[name], key.vr) !== '') return undefined;
    keys.push(key);
  }
  return { keys, warning };
}

/**
 * PS3.4 C.4.1.3.1.1 (hierarchical search) and C.2.2.2: the Identifier of a C-FIND on `sopClassUid` as a
 * QIDO-RS search of the view, or the status it is refused with. Pure.
 */
export function planFind(identifier: NaturalDataset | undefined, sopClassUid: string, maxResults: number): PlannedFind {
  const levels = MODEL_LEVELS.get(sopClassUid);
  if (!levels) return refuse(FindStatus.sopClassNotSupported, 'DIMSE_FIND_MODEL', 'not a C-FIND information model');
  if (!identifier) return refuse(FindStatus.identifierDoesNotMatch, 'DIMSE_FIND_NO_IDENTIFIER', 'no Identifier');
  // 1. The level (PS3.4 C.4.1.1.3.1: required in every Identifier).
  const levelValue = identifier['QueryRetrieveLevel'];
  const level = typeof levelValue === 'string' ? levelValue.trim() : undefined;
  if (level === undefined || !(levels as readonly string[]).includes(level)) {
    return refuse(FindStatus.identifierDoesNotMatch, 'DIMSE_FIND_BAD_LEVEL', '(0008,0052) is not a level of this model');
  }
  const queryLevel = level as QueryLevel;
  const vrMap = identifier['_vrMap'] as Record<string, unknown> | undefined;
  const query = new URLSearchParams();
  const keys: ReturnKey[] = [];
  let warning = false;
  // 2. Every key: a matching key or an includefield, by tag.
  for (const [name, raw] of Object.entries(identifier)) {
    if (name === '_vrMap' || name === '_meta' || FILLED_HERE.has(name)) continue;
    const resolved = resolve(name, vrMap);
    const counted = queryLevel === 'PATIENT' && PATIENT_COUNTS.includes(name);
    if (!resolved.supported || counted) {
      const tag = resolved.supported ? resolved.key.tag : resolved.tag;
      // 3. Not matched, not returned: refused with a value (never widened silently), else a warning.
      if (keyText(raw, 'UN') !== '') return refuse(FindStatus.identifierDoesNotMatch, 'DIMSE_FIND_UNSUPPORTED_KEY', `${tag === undefined ? 'a key' : formatTag(tag)} cannot be matched`);
      warning = true;
      continue;
    }
    const { key } = resolved;
    if (queryLevel === 'PATIENT' && !PATIENT_LEVEL_KEYWORDS.includes(name)) {
      return refuse(FindStatus.identifierDoesNotMatch, 'DIMSE_FIND_KEY_NOT_OF_LEVEL', `${formatTag(key.tag)} is not a PATIENT-level key`);
    }
    const hex = tagToHex(key.tag);
    if (key.vr === 'SQ') {
      const items = itemKeys(raw);
      if (!items) return refuse(FindStatus.identifierDoesNotMatch, 'DIMSE_FIND_SEQUENCE_MATCHING', `${formatTag(key.tag)}: sequence matching is not supported`);
      warning ||= items.warning;
      keys.push({ ...key, items: items.keys });
      query.append('includefield', hex);
      continue;
    }
    const text = keyText(raw, key.vr);
    if (text === undefined) return refuse(FindStatus.identifierDoesNotMatch, 'DIMSE_FIND_UNSUPPORTED_KEY', `${formatTag(key.tag)} cannot be matched`);
    keys.push(key);
    if (text === '') query.append('includefield', hex);
    else query.set(hex, text);
  }
  // One more than the cap, to tell a cut answer from a full one.
  query.set('limit', String(maxResults + 1));
  return { plan: { level: queryLevel, path: LEVEL_PATH[queryLevel], query, keys, warning, distinct: queryLevel === 'PATIENT' } };
}

/** PS3.5 6.2 DS: at most 16 characters; a number JSON gave in more is rounded until it fits. */
function decimalString(n: number): string | undefined {
  if (!Number.isFinite(n)) return undefined;
  let text = String(n);
  for (let digits = 15; text.length > 16 && digits > 0; digits--) {
    const [mantissa = '', exponent] = n.toPrecision(digits).split('e');
    const trimmed = mantissa.includes('.') ? mantissa.replace(/0+$/, '').replace(/\.$/, '') : mantissa;
    text = exponent === undefined ? trimmed : `${trimmed}e${exponent}`;
  }
  return text.length <= 16 ? text : undefined;
}

/** One element's values as dcmjs writes them, or null (zero length) when they cannot be written as they are. */
function naturalValues(vr: string, values: readonly unknown[] | undefined): unknown[] | null {
  if (!values || values.length === 0 || !isVr(vr)) return null;
  const info = vrInfo(vr);
  const fits = (s: string) => info.maxLength === undefined || s.length <= info.maxLength;
  const out: unknown[] = [];
  for (const v of values) {
    if (info.kind === 'person-name') {
      if (v === null) {
        out.push({ Alphabetic: '' });
        continue;
      }
      if (!isItem(v)) return null;
      const name: Record<string, string> = {};
      for (const group of ['Alphabetic', 'Ideographic', 'Phonetic']) {
        const g = v[group];
        if (g === undefined) continue;
        if (typeof g !== 'string' || !fits(g)) return null;
        name[group] = g;
      }
      out.push(name);
    } else if (vr === 'DS' || vr === 'IS') {
      if (v === null || v === '') out.push('');
      else if (typeof v === 'number' || (typeof v === 'string' && v.trim() !== '')) {
        const n = Number(v);
        const text = vr === 'DS' ? decimalString(n) : Number.isSafeInteger(n) && Math.abs(n) <= 2 ** 31 - 1 ? String(n) : undefined;
        if (text === undefined) return null;
        out.push(text);
      } else return null;
    } else if (info.kind === 'number') {
      if (typeof v !== 'number' || !Number.isFinite(v)) return null;
      out.push(v);
    } else if (info.kind === 'string' || info.kind === 'text') {
      const s = v === null ? '' : v;
      if (typeof s !== 'string' || !fits(s)) return null;
      out.push(s);
    } else return null;
  }
  return out;
}

/** A JSON item of a sequence returned whole: every element dcmjs can name and write as text. */
function wholeItem(item: JsonDataset): NaturalDataset {
  const out: NaturalDataset = { _vrMap: {} };
  for (const [hex, element] of Object.entries(item)) {
    const tag = parseTag(hex);
    if (tag === undefined || isPrivate(tag) || !element || !isVr(element.vr) || UNSUPPORTED_VRS.has(element.vr)) continue;
    const name = DCMJS.dictionary[formatTag(tag)]?.name;
    const entry = lookup(tag);
    if (name === undefined || !entry?.vrs.includes(element.vr)) continue;
    (out['_vrMap'] as Record<string, string>)[name] = element.vr;
    out[name] = element.vr === 'SQ' ? sequenceItems(element, 'all') : naturalValues(element.vr, element.Value);
  }
  return out;
}

function sequenceItems(element: JsonElement | undefined, keys: readonly ReturnKey[] | 'all'): NaturalDataset[] {
  const items = element?.vr === 'SQ' && Array.isArray(element.Value) ? element.Value : [];
  return items.filter((i): i is JsonDataset => isItem(i)).map((item) => (keys === 'all' ? wholeItem(item) : pick(item, keys)));
}

/** The requested keys of a JSON dataset as a naturalized one; a key the view left out is zero length. */
function pick(dataset: JsonDataset, keys: readonly ReturnKey[]): NaturalDataset {
  const vrMap: Record<string, string> = {};
  const out: NaturalDataset = { _vrMap: vrMap };
  for (const key of keys) {
    const element = dataset[tagToHex(key.tag)];
    if (key.vr === 'SQ') {
      vrMap[key.name] = 'SQ';
      out[key.name] = sequenceItems(element, key.items ?? 'all');
      continue;
    }
    // A VR the dictionary allows for this tag ("US or SS"), else the key's own with no value.
    const vr = element && element.vr !== 'SQ' && lookup(key.tag)?.vrs.includes(element.vr) ? element.vr : key.vr;
    vrMap[key.name] = vr;
    out[key.name] = element && vr === element.vr ? naturalValues(vr, element.Value) : null;
  }
  return out;
}

/** PS3.4 C.4.1.1.3.2: one match's response Identifier, from a result of the view. Pure. */
export function responseIdentifier(match: JsonDataset, plan: FindPlan, aeTitle: string): NaturalDataset {
  const picked = pick(match, plan.keys);
  const vrMap = picked['_vrMap'] as Record<string, string>;
  Object.assign(vrMap, { QueryRetrieveLevel: 'CS', SpecificCharacterSet: 'CS', RetrieveAETitle: 'AE' });
  return { ...picked, QueryRetrieveLevel: [plan.level], SpecificCharacterSet: ['ISO_IR 192'], RetrieveAETitle: [aeTitle.trim()] };
}

/** The final status for a view's non-200 answer: PS3.4 C.4.1.1.4, A900 for a query it refused, Cxxx else. */
export function viewStatus(httpStatus: number): number {
  return httpStatus === 400 ? FindStatus.identifierDoesNotMatch : FindStatus.unableToProcess;
}

/** The error code of a view's error answer (`{ error: { code } }`), read within a small cap; never its message. */
async function errorCode(body: Readable): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 16 * 1024) break;
    chunks.push(chunk);
  }
  try {
    const code = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error?: { code?: unknown } } | null)?.error?.code;
    return typeof code === 'string' && /^[A-Z0-9_]{1,48}$/.test(code) ? code : undefined;
  } catch {
    return undefined;
  }
}

/** A failure's code for the log: the gateway's own codes, else the error's class name; never its message. */
function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[A-Z0-9_]{1,48}$/.test(code)) return code;
  const name = (error as { name?: unknown } | null)?.name;
  return typeof name === 'string' && /^[A-Za-z]{1,48}$/.test(name) ? name : 'INTERNAL_ERROR';
}

/** PS3.4 C.4.1 C-FIND of a researcher caller, answered from its de-identified view. */
export async function findOnView(op: Operation<CFindRequest>, options: Pick<ResearchFaceOptions, 'config' | 'client' | 'log'>): Promise<void> {
  const { request, caller, signal } = op;
  const { config, client, log } = options;
  const entry = { association: op.association, callingAe: caller.aeTitle };
  const final = (status: number, comment?: string): void => {
    const response = CFindResponse.fromRequest(request);
    response.setStatus(status);
    if (comment) response.setErrorComment(comment.slice(0, 64));
    op.respond(response);
  };
  // The Identifier's transfer syntax is Implicit or Explicit VR Little Endian: the listener accepts a
  // Query/Retrieve context in no other (the ones dcmjs-dimse reads), and serves a C-FIND only on one.
  const dataset = request.getDataset();
  const syntax = dataset?.getTransferSyntaxUid() ?? '';
  const planned = planFind(dataset?.getElements(), String(request.getAffectedSopClassUid() ?? ''), config.maxFindResults);
  if ('refusal' in planned) {
    const { status, reason, comment } = planned.refusal;
    final(status, comment);
    log.info({ ...entry, matches: 0, status: statusHex(status), reason }, 'DIMSE C-FIND');
    return;
  }
  const { plan } = planned;
  let matches = 0;
  let status: number = FindStatus.success;
  let reason: string | undefined;
  let cut = false;
  let body: Readable | undefined;
  try {
    const res = await client.get(caller, `${plan.path}?${plan.query}`, 'application/dicom+json', signal);
    body = res.body;
    if (res.statusCode === 204) res.body.resume();
    else if (res.statusCode !== 200) {
      status = viewStatus(res.statusCode);
      reason = (await errorCode(res.body)) ?? `HTTP_${res.statusCode}`;
    } else {
      const seen = plan.distinct ? new Set<string>() : undefined;
      let read = 0;
      for await (const item of jsonArrayItems(res.body, MAX_MATCH_BYTES)) {
        if (++read > config.maxFindResults) {
          cut = true;
          break;
        }
        const identifier = responseIdentifier(item as JsonDataset, plan, config.aeTitle);
        if (seen) {
          const answer = JSON.stringify(identifier);
          if (seen.has(answer)) continue;
          seen.add(answer);
        }
        if (signal.aborted) break;
        const response: FindResponse = CFindResponse.fromRequest(request);
        response.setDataset(new Dataset(identifier, syntax));
        response.setStatus(plan.warning ? FindStatus.pendingWarning : FindStatus.pending);
        op.respond(response); // sent now, before the next result is read
        matches++;
        await op.drained(); // 6.
      }
      if (signal.aborted) status = FindStatus.cancel;
    }
  } catch (error) {
    if (signal.aborted) status = FindStatus.cancel;
    else {
      status = FindStatus.unableToProcess;
      reason = codeOf(error);
      log.warn({ ...entry, level: plan.level, err: reason }, 'DIMSE C-FIND view failed');
    }
  } finally {
    body?.destroy();
  }
  if (cut) log.warn({ ...entry, level: plan.level, maxFindResults: config.maxFindResults }, 'DIMSE C-FIND answer cut at dimse.maxFindResults');
  final(status, status === FindStatus.identifierDoesNotMatch || status === FindStatus.unableToProcess ? reason : undefined);
  log.info({ ...entry, level: plan.level, matches, status: statusHex(status), ...(reason ? { reason } : {}), ...(cut ? { cut } : {}) }, 'DIMSE C-FIND');
}

// What a QIDO-RS request asked, for the audit trail (ATNA ParticipantObjectQuery, PS3.15 A.5.3.12):
// each key as a PS3.6 keyword with its PS3.4 C.2.2.2 matching mode, and the PS3.18 8.3.4 control
// parameters. The caller's values are not kept: a researcher may try originals against the PACS (a
// query oracle), and the trail must not become a copy of them. The one exception is the UIDs of the
// instance hierarchy, kept only once the store confirms they are pseudonyms the gateway issued.
import { lookup, tagForAttributeId } from '../dicom/dictionary.ts';
import { isUid } from '../dicom/uid.ts';
import { INVALID, NOT_ISSUED, type MatchingMode, type QueryDescription, type QueryKey } from '../store/audit-trail.ts';

/** Keys listed per request, and UIDs per key; the rest are counted, not listed (a record stays small). */
export const MAX_QUERY_KEYS = 64;
export const MAX_QUERY_UIDS = 16;

/** The keys whose values are pseudonyms for a researcher, and so may be kept once confirmed as issued. */
const PSEUDONYMOUS_UID_KEYS: ReadonlySet<string> = new Set(['StudyInstanceUID', 'SeriesInstanceUID', 'SOPInstanceUID']);

/** PS3.4 C.2.2.2.4: the VRs for which `*` and `?` are wild cards. */
const WILDCARD_VRS = new Set(['AE', 'CS', 'LO', 'LT', 'PN', 'SH', 'ST', 'UC', 'UR', 'UT']);
/** PS3.4 C.2.2.2.5: the VRs with range matching. */
const RANGE_VRS = new Set(['DA', 'TM', 'DT']);
/** A single DT with a negative UTC offset contains `-` without being a range. */
const DT_WITH_OFFSET = /^\d{4,14}(\.\d{1,6})?[+-]\d{4}$/;
/** PS3.18 8.3.4.1: sequence paths are keys joined by `.`; deeper than this is not a query anyone means. */
const MAX_PATH = 8;

/** Tells whether `uid` is a pseudonym the gateway issued (the store's reverse map has it). */
export type IsIssued = (uid: string) => Promise<boolean>;

/**
 * Describes a raw query string (without `?`). `isIssued` absent: no UID value is kept at all.
 * Pure but for the look-ups.
 */
export async function describeQuery(query: string, isIssued?: IsIssued): Promise<QueryDescription> {
  const keys: QueryKey[] = [];
  let keysOmitted = 0;
  let limit: number | typeof INVALID | undefined;
  let offset: number | typeof INVALID | undefined;
  let fuzzymatching: boolean | typeof INVALID | undefined;
  const includefield = new Set<string>();
  for (const [name, value] of new URLSearchParams(query)) {
    if (name === 'limit' || name === 'offset') {
      const n = /^[0-9]{1,9}$/.test(value) ? Number(value) : INVALID;
      if (name === 'limit') limit = n;
      else offset = n;
      continue;
    }
    if (name === 'fuzzymatching') {
      fuzzymatching = value === 'true' ? true : value === 'false' ? false : INVALID;
      continue;
    }
    if (name === 'includefield') {
      for (const field of value.split(',')) includefield.add(field === 'all' ? 'all' : attributeOf(field).keyword);
      continue;
    }
    if (keys.length >= MAX_QUERY_KEYS) {
      keysOmitted++;
      continue;
    }
    const { keyword, vr } = attributeOf(name);
    const key: QueryKey = { keyword, mode: modeOf(vr, value) };
    keys.push(isIssued && PSEUDONYMOUS_UID_KEYS.has(keyword) && value !== '' ? { ...key, ...(await uidValues(value, isIssued)) } : key);
  }
  return {
    keys,
    ...(keysOmitted > 0 ? { keysOmitted } : {}),
    ...(limit !== undefined ? { limit } : {}),
    ...(offset !== undefined ? { offset } : {}),
    ...(fuzzymatching !== undefined ? { fuzzymatching } : {}),
    ...(includefield.size > 0 ? { includefield: [...includefield].slice(0, MAX_QUERY_KEYS) } : {}),
  };
}

/** A key (keyword, 8 hex digits, or a dotted sequence path of them) as keywords, and the VR it matches on. */
function attributeOf(key: string): { keyword: string; vr: string | undefined } {
  const parts = key.split('.');
  if (parts.length > MAX_PATH) return { keyword: INVALID, vr: undefined };
  const keywords: string[] = [];
  let vr: string | undefined;
  for (const [i, part] of parts.entries()) {
    const tag = tagForAttributeId(part);
    const entry = tag === undefined ? undefined : lookup(tag);
    if (!entry?.keyword) return { keyword: INVALID, vr: undefined };
    vr = entry.vrs[0];
    // Every step of a path but the last is a sequence.
    if (i < parts.length - 1 && vr !== 'SQ') return { keyword: INVALID, vr: undefined };
    keywords.push(entry.keyword);
  }
  return { keyword: keywords.join('.'), vr };
}

/** PS3.4 C.2.2.2: how a key value matches, from its form only (whether it is valid is the search's business). */
export function modeOf(vr: string | undefined, value: string): MatchingMode {
  if (value === '') return 'universal';
  // PS3.18 8.3.4.1: a UID list may also be separated by commas.
  if (value.includes('\\') || (vr === 'UI' && value.includes(','))) return 'list';
  if (vr !== undefined && RANGE_VRS.has(vr) && value.includes('-') && !(vr === 'DT' && DT_WITH_OFFSET.test(value))) return 'range';
  if ((vr === undefined || WILDCARD_VRS.has(vr)) && /[*?]/.test(value)) return 'wildcard';
  return 'single';
}

/** The UIDs a key asks for: each kept only if it is a pseudonym the gateway issued. */
async function uidValues(value: string, isIssued: IsIssued): Promise<Pick<QueryKey, 'values' | 'valuesOmitted'>> {
  const asked = value.split(/[,\\]/);
  const values: string[] = [];
  for (const uid of asked.slice(0, MAX_QUERY_UIDS)) {
    if (!isUid(uid)) values.push(INVALID);
    else values.push((await isIssued(uid)) ? uid : NOT_ISSUED);
  }
  return { values, ...(asked.length > MAX_QUERY_UIDS ? { valuesOmitted: asked.length - MAX_QUERY_UIDS } : {}) };
}

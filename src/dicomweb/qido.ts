// PS3.18 10.6 Search (QIDO-RS) for a restricted role.
//
// The rule (SECURITY.md, "query oracles"): no condition derived from a caller's value on an attribute
// whose de-identified value differs from the original ever reaches the PACS — not widened, not
// transformed, not at all. Whether the PACS found something is observable (timing, counts, paging)
// whatever the gateway filters afterwards. So, per matching key:
//   1. the profile keeps the attribute unchanged: the key goes upstream, re-encoded;
//   2. the researcher sees the attribute absent or empty: only universal matching could match it
//      (PS3.4 C.2.2.2.3), so the answer is empty and the PACS is not asked;
//   3. a pseudonymous UID, Patient ID or Accession Number: mapped back through the store (an unknown
//      pseudonym gives an empty answer, the PACS not asked);
//   4. anything else (shifted dates, pseudonymous names, dummies, wild cards on pseudonyms): matched
//      here on the de-identified values (src/dicom/matching.ts), the PACS asked only to include the
//      attribute. Datasets filtered out leave no pseudonym behind.
// Every value is validated for its VR first (400 when malformed) and capped in length and in the
// number of alternatives, so a query's cost is bounded by its length.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createSession, deidentifyJson, type DicomJsonDataset } from '../deid/deidentify.ts';
import { lookup, tagForAttributeId } from '../dicom/dictionary.ts';
import { matchesKey, matchValues, parseMatchKey, type MatchKey } from '../dicom/matching.ts';
import { tagToHex } from '../dicom/tag.ts';
import { TAG } from '../dicom/tags.ts';
import { identityAttribute } from '../deid/pseudonym.ts';
import { originalPath, originalUid, refuseUpstreamError, requireStudy, savingSession, uidPath, unusable, type DeidentifiedView, type Membership, type ResourcePath } from './deidentified-view.ts';
import { BadRequestError, UnknownResourceError } from './errors.ts';
import { jsonArrayItems } from './json-array-stream.ts';
import { endBody, writeChunk } from './response-writer.ts';
import { acceptFor, OFFERED } from './content-negotiation.ts';
import { withStreamLifetime, type StreamLifetime } from './stream-lifetime.ts';
import { isUid } from '../dicom/uid.ts';
import { UID_LIST_CHUNK } from './project-view.ts';

type QueryLevel = 'study' | 'series' | 'instance';

const STUDY_UID = tagToHex(TAG.StudyInstanceUID);
const SERIES_UID = tagToHex(TAG.SeriesInstanceUID);
const SOP_UID = tagToHex(TAG.SOPInstanceUID);
const UPSTREAM_PAGE = 200;
const MAX_LIMIT = 10_000;
/** Caps that bound a query's cost: its whole text, one key's value, one key's alternatives. */
export const QUERY_LIMITS = Object.freeze({ queryChars: 8_192, valueChars: 1_024, alternatives: 64 });
/** PS3.4 C.2.2.2.4 wild cards and the C.2.2.2.8 list separator: a value holding one is no single value. */
const WILDCARD_OR_LIST = /[*?\\]/;
/** Values that cannot be matched as text (PS3.4 C.2.2.2: no matching is defined for them). */
const UNMATCHABLE_VRS = new Set(['SQ', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);

interface Predicate {
  tag: number;
  key: MatchKey;
}

export interface SearchRequest {
  level: QueryLevel;
  path: ResourcePath;
  /** The raw query string without '?'. */
  query: string;
  publicBase: string;
}

interface PlannedQuery {
  upstreamParams: URLSearchParams;
  gatewaySide: Predicate[];
  limit: number | undefined;
  offset: number;
  /** Nothing can match (an attribute the researcher sees empty, an unknown pseudonym): the PACS is not asked. */
  empty: boolean;
}

/** Resolves a QIDO attribute key (keyword or 8 hex digits, PS3.18 8.3.4.1). Sequence paths are refused. */
function resolveKey(key: string): { tag: number; vr: string } {
  const tag = tagForAttributeId(key);
  if (tag === undefined) throw new BadRequestError('QIDO_BAD_KEY', 'a query key is neither a keyword nor a tag');
  const vr = lookup(tag)?.vrs[0] ?? 'UN';
  return { tag, vr };
}

const badValue = (tag: number) => new BadRequestError('QIDO_BAD_VALUE', `the value of ${tagToHex(tag)} is not valid for its VR`);

/**
 * Plans the upstream query and the gateway-side predicates. Pure but for the store look-ups. A key on
 * a `reserved` tag (one the project's membership query sends upstream itself) is matched here,
 * on the de-identified values, whatever the profile does with it.
 */
async function plan(view: DeidentifiedView, query: string, reserved: ReadonlySet<number>): Promise<PlannedQuery> {
  if (query.length > QUERY_LIMITS.queryChars) throw new BadRequestError('QIDO_QUERY_TOO_LONG', `the query is longer than ${QUERY_LIMITS.queryChars} characters`);
  const params = new URLSearchParams(query);
  const upstreamParams = new URLSearchParams();
  const gatewaySide: Predicate[] = [];
  const seen = new Set<string>();
  let limit: number | undefined;
  let offset = 0;
  let empty = false;
  const fuzzyValues = params.getAll('fuzzymatching');
  if (fuzzyValues.some((v) => v !== 'true' && v !== 'false')) throw new BadRequestError('QIDO_BAD_PARAMETER', 'fuzzymatching must be true or false');
  const fuzzy = fuzzyValues.includes('true');
  const probe = createSession(view.policy);
  probe.beginDataset('probe');
  const added = probe.attributesToAdd();

  for (const [key, value] of params) {
    if (key === 'fuzzymatching') continue;
    if (key === 'includefield') {
      for (const field of value.split(',')) {
        if (field === 'all') upstreamParams.append('includefield', 'all');
        else upstreamParams.append('includefield', tagToHex(resolveKey(field).tag));
      }
      continue;
    }
    if (seen.has(key)) throw new BadRequestError('QIDO_DUPLICATE_KEY', 'a query key appears more than once');
    seen.add(key);
    if (key === 'limit' || key === 'offset') {
      if (!/^[0-9]{1,9}$/.test(value)) throw new BadRequestError('QIDO_BAD_PARAMETER', `${key} must be a non-negative integer`);
      if (key === 'limit') limit = Math.min(Number(value), MAX_LIMIT);
      else offset = Number(value);
      continue;
    }
    const { tag, vr } = resolveKey(key);
    const hex = tagToHex(tag);
    if (seen.has(hex) && hex !== key) throw new BadRequestError('QIDO_DUPLICATE_KEY', 'a query key appears more than once');
    seen.add(hex);
    if (value === '') continue; // PS3.4 C.2.2.2.3 universal matching: no condition at all
    if (value.length > QUERY_LIMITS.valueChars || value.split('\\').length > QUERY_LIMITS.alternatives) {
      throw new BadRequestError('QIDO_VALUE_TOO_LONG', `a query value is longer than ${QUERY_LIMITS.valueChars} characters or has more than ${QUERY_LIMITS.alternatives} alternatives`);
    }
    if (UNMATCHABLE_VRS.has(vr)) throw new BadRequestError('QIDO_BAD_KEY', `${hex} cannot be matched by value`);
    // 1. Validate for the VR, whatever happens next: a malformed value is 400 on every path.
    const uids = vr === 'UI' ? value.split(/[,\\]/) : undefined;
    if (uids && !uids.every(isUid)) throw badValue(tag);
    const matchKey = vr === 'UI' ? undefined : parseMatchKey(vr, value, { fuzzy });
    if (vr !== 'UI' && matchKey === undefined) throw badValue(tag);
    // 2. What does the researcher see of this attribute? The profile's one decision says.
    const decision = probe.decide({ tag, vr, path: [] }, [value]);
    // Set or rebuilt by the gateway on every result, whatever the original held: the E.1.1 attributes
    // (Patient Identity Removed, …) and URLs (Retrieve URL). Matched here, on what the researcher sees.
    if (vr === 'UR' || hex in added || (reserved.has(tag) && decision.op !== 'remove' && !(decision.op === 'replace' && decision.value.length === 0))) {
      gatewaySide.push({ tag, key: matchKey as MatchKey });
      upstreamParams.append('includefield', hex);
      continue;
    }
    if (decision.op === 'keep') {
      upstreamParams.set(hex, uids ? uids.join(',') : value); // the de-identified value is the original one
      continue;
    }
    if (decision.op === 'remove' || (decision.op === 'replace' && decision.value.length === 0)) {
      empty = true; // absent or empty for the researcher: no key value matches it (PS3.4 C.2.2.2)
      continue;
    }
    if (uids) {
      // UID list matching (PS3.4 C.2.2.2.2): each pseudonym back to its original; unknown ones drop out.
      const originals: string[] = [];
      for (const uid of uids) {
        try {
          originals.push(await originalUid(view, uid));
        } catch (error) {
          if (!(error instanceof UnknownResourceError)) throw error;
        }
      }
      if (originals.length === 0) empty = true;
      else upstreamParams.set(hex, originals.join(','));
      continue;
    }
    const identity = identityAttribute(tag);
    if (identity?.mapsBack && !WILDCARD_OR_LIST.test(value)) {
      const original = await view.store.originalOf(identity.kind, value);
      if (original === undefined) {
        empty = true;
        continue;
      }
      // PS3.4 C.2.2.2.4 has no escape: an original holding `*`, `?` or `\` would be a wild card or a
      // list upstream (a condition on other patients' originals). Such a key is matched here instead.
      if (!WILDCARD_OR_LIST.test(original)) {
        upstreamParams.set(hex, original);
        continue;
      }
    }
    gatewaySide.push({ tag, key: matchKey as MatchKey });
    upstreamParams.append('includefield', hex);
  }
  if (fuzzy) upstreamParams.set('fuzzymatching', 'true');
  // The date shift and the name pseudonym are keyed on the original Patient ID (PS3.15 E.3.6): ask for it
  // at every level, so a PACS that leaves it out of series or instance results cannot change either.
  upstreamParams.append('includefield', tagToHex(TAG.PatientID));
  // Membership and the hierarchy are checked per result by its study (project-view.ts, requireStudy).
  upstreamParams.append('includefield', STUDY_UID);
  return { upstreamParams, gatewaySide, limit, offset, empty };
}

/** PS3.4 C.2.2.2 on the de-identified values (src/dicom/matching.ts: linear in the key's length). */
function matches(dataset: DicomJsonDataset, p: Predicate): boolean {
  return matchesKey(p.key, matchValues(dataset[tagToHex(p.tag)]));
}

/**
 * The gateway's own Retrieve URL (PS3.18 10.6.3), built from pseudonymous UIDs. The PACS's URLs, which
 * name originals, were removed by the profile (deid/profile.ts SUPPLEMENT_REMOVE), as in every representation.
 */
function fixUrls(dataset: DicomJsonDataset, level: QueryLevel, publicBase: string): DicomJsonDataset {
  const study = dataset[STUDY_UID]?.Value?.[0];
  const series = dataset[SERIES_UID]?.Value?.[0];
  const sop = dataset[SOP_UID]?.Value?.[0];
  let url: string | undefined;
  if (typeof study === 'string') {
    url = `${publicBase}/studies/${study}`;
    if (level !== 'study') url = typeof series === 'string' ? `${url}/series/${series}` : undefined;
    if (url && level === 'instance') url = typeof sop === 'string' ? `${url}/instances/${sop}` : undefined;
  }
  if (url) dataset[tagToHex(TAG.RetrieveURL)] = { vr: 'UR', Value: [url] };
  return dataset;
}

const LEVEL_PATH: Record<QueryLevel, string> = { study: '/studies', series: '/series', instance: '/instances' };

/**
 * PS3.18 10.6 for a restricted role, in DICOM JSON only (PS3.18 10.6.3.2; the XML model is 406). Every
 * upstream page is asked within the caller's stream lifetime: a caller who leaves stops the paging at
 * once, the page in flight aborted (PS3.18 has no partial QIDO answer to finish).
 */
export function searchDeidentified(view: DeidentifiedView, req: IncomingMessage, res: ServerResponse, r: SearchRequest): Promise<void> {
  return withStreamLifetime(res, (lifetime) => search(view, req, res, r, lifetime));
}

async function search(view: DeidentifiedView, req: IncomingMessage, res: ServerResponse, r: SearchRequest, lifetime: StreamLifetime) {
  const { chosen: mediaType } = acceptFor(req, OFFERED.json);
  const original = await originalPath(view, r.path); // a study in the path is checked for membership there
  const { membership } = view;
  // Membership goes upstream where DICOM allows it and it costs less than it saves (study level: the
  // project's conditions, and an explicit list of at most LIST_PUSH_DOWN studies as PS3.4 C.2.2.2.2
  // UID lists); what the PACS is not asked is checked here, per result.
  const pushDown = r.level === 'study' && !membership.project.allStudies && membership.listedCount <= LIST_PUSH_DOWN;
  const q = await plan(view, r.query, new Set(pushDown ? membership.conditions.map((c) => c.tag) : []));
  const { session, flush, makeDurable } = savingSession(view);
  let written = 0;
  const finish = async () => {
    await makeDurable(); // PS3.15 pseudonyms the caller saw stay resolvable after any restart
    if (written === 0) {
      res.statusCode = 200;
      res.setHeader('content-type', mediaType);
      endBody(res, '[]');
    } else endBody(res, ']');
  };
  if (q.empty) return finish();

  // Every result is already a member: the study in the path was admitted, or the project holds every
  // study and no patient withdrew. Then limit and offset go upstream as asked, when nothing else is
  // matched here.
  const allMembers = original.study !== undefined || (membership.project.allStudies && !membership.anyWithdrawn);
  const passThrough = allMembers && q.gatewaySide.length === 0;
  let skipped = 0;
  const show = async (item: DicomJsonDataset): Promise<void> => {
    requireStudy(original, item[STUDY_UID]?.Value?.[0]);
    const mark = session.pairCount;
    const deidentified = fixUrls(deidentifyJson(session, item), r.level, r.publicBase);
    let shown = q.gatewaySide.every((p) => matches(deidentified, p));
    if (shown && !passThrough && skipped < q.offset) {
      skipped++;
      shown = false;
    }
    if (shown && q.limit !== undefined && written >= q.limit) shown = false;
    if (!shown) {
      session.discardPairsSince(mark); // never shown: nothing of it is saved
      return;
    }
    await flush();
    if (written === 0) {
      res.statusCode = 200;
      res.setHeader('content-type', mediaType);
    }
    await writeChunk(res, Buffer.from(`${written === 0 ? '[' : ','}${JSON.stringify(deidentified)}`));
    written++;
  };
  const full = () => q.limit !== undefined && written >= q.limit;

  const base = `${uidPath(original)}${LEVEL_PATH[r.level]}`;
  try {
    for await (const source of upstreamSources(membership, q, pushDown)) {
      let upstreamOffset = 0;
      for (;;) {
        const params = new URLSearchParams(source.params);
        if (passThrough) {
          if (q.limit !== undefined) params.set('limit', String(q.limit));
          if (q.offset) params.set('offset', String(q.offset));
        } else {
          params.set('limit', String(UPSTREAM_PAGE));
          params.set('offset', String(upstreamOffset));
        }
        const upstreamRes = await lifetime.send(view.upstream, {
          method: 'GET',
          pathAndQuery: `${base}?${params}`,
          headers: { accept: 'application/dicom+json' },
        });
        if (upstreamRes.statusCode === 204) {
          upstreamRes.body.resume();
          break;
        }
        if (upstreamRes.statusCode >= 300) refuseUpstreamError(upstreamRes);
        if (passThrough) {
          for await (const item of jsonArrayItems(upstreamRes.body, view.maxJsonDatasetBytes)) await show(item as DicomJsonDataset);
          break;
        }
        // One page at a time: membership is decided for the page at once (one facts query per study chunk).
        const page: DicomJsonDataset[] = [];
        for await (const item of jsonArrayItems(upstreamRes.body, view.maxJsonDatasetBytes)) page.push(item as DicomJsonDataset);
        const admitted = allMembers ? page.map(() => true) : await membership.admits(page, r.level);
        for (const [i, item] of page.entries()) {
          if (admitted[i] && !source.shownBefore?.(item)) await show(item);
          if (full()) break;
        }
        if (page.length < UPSTREAM_PAGE || full()) break;
        upstreamOffset += UPSTREAM_PAGE;
      }
      if (full()) break;
    }
  } catch (error) {
    throw unusable(error);
  }
  await finish();
}

/** One upstream query of a search, paged through; `shownBefore`: a result an earlier query already gave. */
interface UpstreamSource {
  readonly params: URLSearchParams;
  readonly shownBefore?: (dataset: DicomJsonDataset) => boolean;
}

/**
 * The longest explicit list sent upstream as UID lists (LIST_PUSH_DOWN / UID_LIST_CHUNK queries at
 * most). A longer list is checked here instead, a page of results at a time against the store (one
 * indexed query per page): one UID-list query per 50 members would cost more than the PACS's own
 * paging (measured in `npm run bench`: 10,000 members, 200 queries, 20× the latency). The price is
 * that the researcher's kept keys then reach the PACS over every study, not only the project's; only
 * member studies are ever shown.
 */
export const LIST_PUSH_DOWN = 500;

/**
 * The upstream queries of one search, in order. Without push-down: the planned query. At study level
 * for a project that does not hold every study:
 *   1. its membership query: the planned keys and the project's conditions (PS3.4 C.2.2.2);
 *   2. its explicit list, a UID-list query per chunk (PS3.4 C.2.2.2.2), intersected with the
 *      StudyInstanceUIDs the researcher asked for; a study that (1) already gave is not given twice.
 * The PACS is never asked about a study outside the project but for (1)'s conditions, which are the
 * project's, not the caller's.
 */
async function* upstreamSources(membership: Membership, q: PlannedQuery, pushDown: boolean): AsyncGenerator<UpstreamSource> {
  const { conditions } = membership;
  if (!pushDown) {
    // Admitted here on each dataset's own values (project-view.ts admits), so the PACS includes them.
    const params = new URLSearchParams(q.upstreamParams);
    if (!membership.project.allStudies) for (const c of conditions) params.append('includefield', c.hex);
    yield { params };
    return;
  }
  if (conditions.length > 0) {
    const params = new URLSearchParams(q.upstreamParams);
    for (const c of conditions) {
      params.set(c.hex, c.value);
      params.append('includefield', c.hex); // admitted here on the dataset's own values
    }
    yield { params };
  }
  const asked = q.upstreamParams.get(STUDY_UID)?.split(',');
  const matchedByQuery = (d: DicomJsonDataset) => conditions.length > 0 && conditions.every((c) => matchesKey(c.key, matchValues(d[c.hex])));
  for (let index = 0; ; index++) {
    const chunk = await membership.listedChunk(index);
    if (chunk.length === 0) return;
    const uids = asked ? chunk.filter((uid) => asked.includes(uid)) : chunk;
    if (uids.length > 0) {
      const params = new URLSearchParams(q.upstreamParams);
      params.set(STUDY_UID, uids.join(','));
      for (const c of conditions) params.append('includefield', c.hex);
      yield { params, shownBefore: matchedByQuery };
    }
    if (chunk.length < UID_LIST_CHUNK) return;
  }
}

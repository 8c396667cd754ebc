// The de-identified study index (issue 20, goal 5): study-level QIDO-RS at PACS scale.
//
// A key the gateway must match itself (a pseudonymous name, a shifted date: qido.ts rule 4) cannot go to
// the PACS, so without an index the gateway pages through every study of the archive to answer it: the
// cost grows with the PACS, not with the answer. The index keeps, per pseudonym scope, what the
// researcher sees of each study's indexed attributes (INDEXED_KEYWORDS), de-identified by the same
// decision function as every QIDO result (deid/deidentify.ts), keyed by the pseudonymous
// StudyInstanceUID. A query is then answered in three steps:
//   1. the index gives the candidate studies: a key range on one predicate (dicom/matching.ts
//      indexRanges, a superset), then every predicate on each candidate's indexed values (matchesKey);
//   2. qido.ts asks the PACS for the candidates only, by their original UIDs (a UID-list query,
//      PS3.4 C.2.2.2.2) with the researcher's other keys: no condition on a value the researcher cannot
//      see, as everywhere;
//   3. each answer is de-identified and matched again on its fresh values, so a stale entry (a study
//      since changed or deleted) shows nothing the PACS does not hold now.
// The index holds de-identified values only. It answers only when it is complete for the policy it was
// built under (a fingerprint of that policy's output) and current: a full scan of the PACS's studies
// in the background, then Orthanc's change feed (`/changes`, its NewStudy events) read before each
// answer; without a change feed, for `rescanSeconds` after the scan. With Orthanc, the scan reads its
// list of studies and asks QIDO-RS by UID (no page re-reads the rows before it); otherwise it pages
// QIDO-RS by offset. When the index cannot answer, and for a key on an attribute it does not hold,
// qido.ts pages through the PACS as before: slower, never different.
import { createHash } from 'node:crypto';
import { createSession, deidentifyJson, type DeidPolicy, type DeidSession, type DicomJsonDataset } from '../deid/deidentify.ts';
import { lookup, tagForAttributeId } from '../dicom/dictionary.ts';
import { indexForm, indexRanges, matchesKey, matchValues } from '../dicom/matching.ts';
import { tagToHex } from '../dicom/tag.ts';
import { TAG } from '../dicom/tags.ts';
import type { StudyIndexEntry, StudyIndexState, StudyIndexStore } from '../store/study-index-store.ts';
import { refuseUpstreamError, savingSession, type DeidentifiedView, type IndexPredicate, type StudyCandidates } from './deidentified-view.ts';
import { UpstreamJsonError } from './errors.ts';
import { jsonArrayItems } from './json-array-stream.ts';
import { isPathIdentifier } from './routes.ts';
import type { Upstream, UpstreamResponse } from './upstream.ts';

/** The study-level attributes the index holds (Orthanc's patient and study main tags, so a scan reads no file). */
const INDEXED_KEYWORDS = [
  'PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex', 'StudyDate', 'StudyTime', 'AccessionNumber', 'StudyID',
  'ReferringPhysicianName', 'StudyDescription',
];
const INDEXED: ReadonlyArray<{ tag: number; hex: string; vr: string }> = INDEXED_KEYWORDS.map((keyword) => {
  const tag = tagForAttributeId(keyword);
  if (tag === undefined) throw new Error(`unknown keyword ${keyword}`);
  return { tag, hex: tagToHex(tag), vr: lookup(tag)?.vrs[0] ?? 'UN' };
});
export const INDEXED_TAGS: ReadonlySet<number> = new Set(INDEXED.map((a) => a.tag));

const STUDY_UID = tagToHex(TAG.StudyInstanceUID);
/** Studies per upstream page of a full scan: a QIDO-RS page, or a page of Orthanc's study list. */
const SCAN_PAGE = 500;
const RESOURCE_PAGE = 1_000;
/** UIDs per UID-list query when changed studies are read (as project-view.ts UID_LIST_CHUNK). */
const UID_CHUNK = 50;
/**
 * Changes per page of the feed (Orthanc answers with fewer when it caps it), and the most pages read
 * before one answer: every instance stored makes a change, and every study a few more a minute later
 * (Stable…), so a burst of ingest is many pages; past the bound the answer pages through the PACS and
 * the next one reads on.
 */
const CHANGES_PAGE = 5_000;
const MAX_CHANGE_PAGES_PER_ANSWER = 20;
/** How long after a failed full scan the next may start. */
const RETRY_FAILED_BUILD_MS = 300_000;
/** Orthanc REST look-ups of new studies' UIDs in flight at once. */
const STUDY_LOOKUPS_AT_ONCE = 8;
/** Orthanc's resource IDs (SHA-1 in five groups): the only change IDs that go into a PACS path. */
const ORTHANC_ID = /^[0-9a-f]{8}(-[0-9a-f]{8}){4}$/;
/** The largest Orthanc REST answer read (a page of changes, one study). */
const MAX_REST_JSON_BYTES = 16 * 1024 * 1024;

export interface StudyIndexOptions {
  readonly store: StudyIndexStore;
  /** Orthanc's REST root, for its change feed (`/changes`, `/studies/{id}`); absent: no change feed. */
  readonly changes?: Upstream;
  /** A full scan is this old: scanned again (and, without a change feed, the index no longer answers until then). */
  readonly rescanSeconds: number;
  readonly log: { info(entry: object, message: string): void; warn(entry: object, message: string): void };
  readonly now?: () => number;
}

interface CatchUp {
  readonly current: boolean;
  readonly changed: boolean;
}

export interface StudyIndex extends StudyCandidates {
  /** Stops the builds under way (at the page in hand). */
  close(): void;
}

/** The index's entry for one study-level QIDO result: its de-identified indexed values. Undefined without a StudyInstanceUID. */
export function indexEntryOf(session: DeidSession, dataset: DicomJsonDataset): StudyIndexEntry | undefined {
  const deidentified = deidentifyJson(session, dataset, { bulkDataURI: () => undefined });
  const study = deidentified[STUDY_UID]?.Value?.[0];
  if (typeof study !== 'string') return undefined;
  const doc: Record<string, string[]> = {};
  const keys: Array<[number, string]> = [];
  for (const { tag, hex, vr } of INDEXED) {
    const values = matchValues(deidentified[hex]);
    doc[hex] = values;
    for (const value of values) {
      const form = indexForm(vr, value);
      if (form !== undefined) keys.push([tag, form]);
    }
  }
  return { study, doc: JSON.stringify(doc), keys };
}

/** Does an entry's doc (indexEntryOf) match every key (by tag hex)? The same matcher as qido.ts uses on results. */
function docMatches(doc: string, keys: ReadonlyArray<readonly [hex: string, key: IndexPredicate['key']]>): boolean {
  const values = JSON.parse(doc) as Record<string, string[]>;
  return keys.every(([hex, key]) => matchesKey(key, values[hex] ?? []));
}

/** A fixed study (no patient's): what the policy makes of it identifies the policy's keys, shifts and actions. */
const PROBE: DicomJsonDataset = {
  [STUDY_UID]: { vr: 'UI', Value: ['1.2.826.0.1.3680043.10.1387.1'] },
  ...Object.fromEntries(
    INDEXED.map(({ hex, vr }) => [
      hex,
      vr === 'PN' ? { vr, Value: [{ Alphabetic: 'PROBE^INDEX' }] } : { vr, Value: [vr === 'DA' ? '20000131' : vr === 'TM' ? '120000' : vr === 'CS' ? 'O' : 'PROBE'] },
    ]),
  ),
};
const fingerprints = new WeakMap<DeidPolicy, string>();

/** The policy's fingerprint: a digest of what it makes of PROBE, and of what the index holds. */
function fingerprintOf(policy: DeidPolicy): string {
  let known = fingerprints.get(policy);
  if (known === undefined) {
    const probe = JSON.stringify(deidentifyJson(createSession(policy), structuredClone(PROBE), { bulkDataURI: () => undefined }));
    known = createHash('sha256').update(`${INDEXED_KEYWORDS.join(',')}\n${probe}`).digest('hex');
    fingerprints.set(policy, known);
  }
  return known;
}

/**
 * Which views the index serves: a project of every study (a project with a membership rule is asked
 * about its member studies only, at a cost that grows with the project, not the PACS), keyed
 * pseudonyms (fresh ones differ per response, so no index can hold them).
 */
function served(view: DeidentifiedView): boolean {
  return view.membership.project.allStudies && view.policy.pseudonymMode === 'deterministic';
}

export function createStudyIndex(options: StudyIndexOptions): StudyIndex {
  const { store, changes, log } = options;
  const now = options.now ?? Date.now;
  const builds = new Map<string, Promise<void>>();
  const failedAt = new Map<string, number>();
  const catchUps = new Map<string, Promise<CatchUp>>();
  const stop = new AbortController();

  const getJson = async (upstream: Upstream, pathAndQuery: string): Promise<unknown> => {
    const res = await upstream.send({ method: 'GET', pathAndQuery, headers: { accept: 'application/json' }, signal: stop.signal });
    if (res.statusCode === 404) {
      res.body.resume();
      return undefined;
    }
    if (res.statusCode !== 200) refuseUpstreamError(res);
    return parseCapped(res);
  };

  /** Indexes the QIDO results of one upstream query (a page of a scan, or changed studies by UID). */
  const indexQuery = async (view: DeidentifiedView, params: URLSearchParams): Promise<number> => {
    for (const { hex } of INDEXED) params.append('includefield', hex);
    const res = await view.upstream.send({ method: 'GET', pathAndQuery: `/studies?${params}`, headers: { accept: 'application/dicom+json' }, signal: stop.signal });
    if (res.statusCode === 204) {
      res.body.resume();
      return 0;
    }
    if (res.statusCode !== 200) refuseUpstreamError(res);
    // One saving session per page: the pseudonyms an entry holds are durable before the entry is.
    const { session, makeDurable } = savingSession(view);
    const entries: StudyIndexEntry[] = [];
    let read = 0;
    for await (const item of jsonArrayItems(res.body, view.maxJsonDatasetBytes)) {
      read++;
      const entry = indexEntryOf(session, item as DicomJsonDataset);
      if (entry) entries.push(entry);
    }
    await makeDurable();
    await store.putStudyIndexEntries(view.store.scope, entries);
    return read;
  };

  /** The feed's newest change, read before a scan: the scan reflects at least everything up to it. */
  const lastChange = async (): Promise<number | null> => {
    if (!changes) return null;
    const answer = (await getJson(changes, '/changes?last')) as { Last?: unknown } | undefined;
    if (typeof answer?.Last !== 'number') throw new UpstreamJsonError('a change feed answer without Last');
    return answer.Last;
  };

  /** Indexes the studies of these original UIDs, UID_CHUNK per UID-list query; how many the PACS answered. */
  const indexStudies = async (view: DeidentifiedView, uids: readonly string[]): Promise<number> => {
    let studies = 0;
    for (let i = 0; i < uids.length; i += UID_CHUNK) studies += await indexQuery(view, new URLSearchParams({ [STUDY_UID]: uids.slice(i, i + UID_CHUNK).join(',') }));
    return studies;
  };

  /**
   * A full scan through QIDO-RS paged by offset: what any PACS offers. Orthanc 1.10 answers a page by
   * reading the rows before it again, so this grows faster than the PACS; it runs in the background.
   */
  const scanByOffset = async (view: DeidentifiedView): Promise<number> => {
    let studies = 0;
    for (let offset = 0; ; offset += SCAN_PAGE) {
      const read = await indexQuery(view, new URLSearchParams({ limit: String(SCAN_PAGE), offset: String(offset) }));
      studies += read;
      if (read < SCAN_PAGE) return studies;
    }
  };

  /**
   * A full scan without re-reading: Orthanc's own list of studies (`/studies?expand&since&limit`, in the
   * order it stored them, a page of UIDs at a time), then QIDO-RS for each chunk of UIDs. A UID goes
   * into a condition only as a plain identifier (routes.ts: Orthanc holds studies whose "UIDs" are
   * hashes, and answers for them), never with a `,`, `\`, `*` or `?` that would make it a list or a wild card.
   */
  const scanByResource = async (view: DeidentifiedView, feed: Upstream): Promise<number> => {
    let studies = 0;
    for (let since = 0; ; since += RESOURCE_PAGE) {
      const listed = await getJson(feed, `/studies?expand&since=${since}&limit=${RESOURCE_PAGE}`);
      if (!Array.isArray(listed)) throw new UpstreamJsonError('a study list that is not an array');
      const uids = (listed as Array<{ MainDicomTags?: { StudyInstanceUID?: unknown } } | null>)
        .map((study) => study?.MainDicomTags?.StudyInstanceUID)
        .filter((uid): uid is string => typeof uid === 'string' && isPathIdentifier(uid, 'original'));
      studies += await indexStudies(view, uids);
      if (listed.length < RESOURCE_PAGE) return studies;
    }
  };

  const build = (view: DeidentifiedView, fingerprint: string, clear: boolean): void => {
    const scope = view.store.scope;
    if (builds.has(scope)) return;
    // A scan that failed (the PACS unreachable, a study that cannot be de-identified) is not retried by
    // every search that finds no index: at most once per RETRY_FAILED_BUILD_MS.
    if (now() - (failedAt.get(scope) ?? -Infinity) < RETRY_FAILED_BUILD_MS) return;
    const started = now();
    const run = (async () => {
      const changeSeq = await lastChange();
      if (clear) await store.setStudyIndexState(scope, undefined, { clear: true });
      const studies = changes ? await scanByResource(view, changes) : await scanByOffset(view);
      await store.setStudyIndexState(scope, { fingerprint, changeSeq, builtAt: new Date(now()).toISOString() });
      log.info({ scope, studies, seconds: (now() - started) / 1000 }, 'study index built');
    })()
      .catch((error: unknown) => {
        failedAt.set(scope, now());
        if (!stop.signal.aborted) log.warn({ scope, err: error }, 'study index build failed; searches page through the PACS');
      })
      .finally(() => builds.delete(scope));
    builds.set(scope, run);
  };

  /**
   * Applies the feed's changes since the state's. `current`: false when more are pending than one answer
   * may wait for, or the feed could not be read; `changed`: studies were indexed.
   */
  const catchUp = (view: DeidentifiedView, state: StudyIndexState, feed: Upstream): Promise<CatchUp> => {
    const scope = view.store.scope;
    const running = catchUps.get(scope);
    if (running) return running;
    const run = (async () => {
      let since = state.changeSeq as number;
      let changed = false;
      for (let page = 0; page < MAX_CHANGE_PAGES_PER_ANSWER; page++) {
        const answer = (await getJson(feed, `/changes?since=${since}&limit=${CHANGES_PAGE}`)) as { Changes?: unknown; Done?: unknown; Last?: unknown } | undefined;
        if (!Array.isArray(answer?.Changes) || typeof answer.Done !== 'boolean' || typeof answer.Last !== 'number') throw new UpstreamJsonError('a change feed answer of another shape');
        const ids = (answer.Changes as Array<{ ChangeType?: unknown; ID?: unknown }>)
          .filter((c) => c.ChangeType === 'NewStudy' && typeof c.ID === 'string' && ORTHANC_ID.test(c.ID))
          .map((c) => c.ID as string);
        const uids: string[] = [];
        // A few at a time: a burst of new studies is one REST request each.
        for (let i = 0; i < ids.length; i += STUDY_LOOKUPS_AT_ONCE) {
          const studies = await Promise.all(ids.slice(i, i + STUDY_LOOKUPS_AT_ONCE).map((id) => getJson(feed, `/studies/${id}`)));
          for (const study of studies as Array<{ MainDicomTags?: { StudyInstanceUID?: unknown } } | undefined>) {
            const uid = study?.MainDicomTags?.StudyInstanceUID; // undefined: deleted since
            if (typeof uid === 'string' && isPathIdentifier(uid, 'original')) uids.push(uid);
          }
        }
        await indexStudies(view, uids);
        changed ||= uids.length > 0;
        if (answer.Last > since) {
          since = answer.Last;
          await store.setStudyIndexState(scope, { ...state, changeSeq: since });
        }
        if (answer.Done) return { current: true, changed };
      }
      return { current: false, changed };
    })()
      .catch((error: unknown): CatchUp => {
        log.warn({ scope, err: error }, 'the change feed could not be read; this search pages through the PACS');
        return { current: false, changed: false };
      })
      .finally(() => catchUps.delete(scope));
    catchUps.set(scope, run);
    return run;
  };

  /** 1. A range look-up on the first predicate that has one (a superset), else every entry; 2. every predicate on each. */
  const lookUp = async (scope: string, predicates: readonly IndexPredicate[]): Promise<readonly string[]> => {
    let studies: readonly string[] | undefined;
    for (const p of predicates) {
      const ranges = indexRanges(p.key);
      if (ranges === undefined) continue;
      studies = await store.studyIndexMatches(scope, ranges.map((r) => ({ tag: p.tag, ...r })));
      break;
    }
    const docs = await store.studyIndexDocs(scope, studies);
    const keys = predicates.map((p) => [tagToHex(p.tag), p.key] as const);
    return docs.filter((d) => docMatches(d.doc, keys)).map((d) => d.study);
  };

  return {
    async candidates(view, predicates) {
      if (!served(view) || predicates.length === 0 || predicates.some((p) => !INDEXED_TAGS.has(p.tag))) return undefined;
      const scope = view.store.scope;
      const fingerprint = fingerprintOf(view.policy);
      const state = await store.studyIndexState(scope);
      // Built under this policy, and with the change feed this gateway has (or without, as it has none).
      if (state === undefined || state.fingerprint !== fingerprint || (state.changeSeq === null) !== (changes === undefined)) {
        build(view, fingerprint, true);
        return undefined;
      }
      if (now() - Date.parse(state.builtAt) > options.rescanSeconds * 1000) {
        build(view, fingerprint, false); // entries are replaced in place; the old ones answer meanwhile only with a feed
        if (!changes) return undefined;
      }
      // The change feed is read while the index is looked up; if it brought studies, the look-up is redone.
      // catchUp never rejects (a feed failure is logged and answers not current), so it may wait here.
      const caughtUp = changes ? catchUp(view, state, changes) : Promise.resolve({ current: true, changed: false });
      const found = await lookUp(scope, predicates);
      const { current, changed } = await caughtUp;
      if (!current) return undefined;
      return changed ? lookUp(scope, predicates) : found;
    },
    close() {
      stop.abort();
    },
  };
}

/** An Orthanc REST answer, read whole under a cap. */
async function parseCapped(res: UpstreamResponse): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_REST_JSON_BYTES) {
      res.body.destroy();
      throw new UpstreamJsonError('a change feed answer larger than its cap');
    }
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new UpstreamJsonError('a change feed answer that is not JSON');
  }
}

// A project's de-identified view, per request (issue: projects). The project, its membership rule and
// its withdrawals are read from the store keyed on `projectsVersion`, which every change increments:
// a study removed or a consent withdrawn through any replica is in force on the next request.
//
// Membership is decided per original study (projects/project.ts isMember) from facts the PACS gives
// about the study (its PatientID and the attributes the project's query names), cached per study.
// Every resource outside the project answers exactly as an unknown UID does (404), and the project's
// own pseudonym scope means another project's pseudonyms are unknown here.
import type { DeidPolicy } from '../deid/deidentify.ts';
import { tagToHex } from '../dicom/tag.ts';
import { TAG } from '../dicom/tags.ts';
import type { JsonDataset } from '../dicom/json-model.ts';
import { ProjectUnknownError, ProjectUnusableError } from '../projects/errors.ts';
import { conditionsOf, isMember, projectScope, type Condition, type StudyFacts } from '../projects/project.ts';
import type { ProjectRecord, ProjectStore, StoredProfile } from '../store/project-store.ts';
import { scopedPseudonyms, type PseudonymStore } from '../store/pseudonym-store.ts';
import { boundedCache } from '../store/cached-store.ts';
import type { DeidentifiedView, Membership, ResourcePath, StudyCandidates } from './deidentified-view.ts';
import { encodeSegment } from './routes.ts';
import { UpstreamUnusableError } from './errors.ts';
import { censusSource } from './pixel-census.ts';
import { jsonArrayItems } from './json-array-stream.ts';
import type { Upstream } from './upstream.ts';
import type { TextRegionSource } from './text-regions.ts';

const STUDY_UID = tagToHex(TAG.StudyInstanceUID);
const SERIES_UID = tagToHex(TAG.SeriesInstanceUID);
const SOP_UID = tagToHex(TAG.SOPInstanceUID);
const PATIENT_ID = tagToHex(TAG.PatientID);
/** UIDs per upstream UID-list query (PS3.4 C.2.2.2.2): short enough for any PACS's URL limit. */
export const UID_LIST_CHUNK = 50;
/** Entries each cache holds at most (study facts; explicit-list answers per project and version). */
const MAX_CACHED = 100_000;

export interface ProjectViewOptions {
  readonly upstream: Upstream;
  readonly store: PseudonymStore;
  readonly projects: ProjectStore;
  readonly scopedPolicy: (profile: StoredProfile | undefined, scope: string) => DeidPolicy;
  readonly maxHeaderBytes: number;
  readonly maxJsonDatasetBytes: number;
  readonly allowRendered: boolean;
  /** How long facts about a study (its PatientID, the attributes conditions name) are trusted. */
  readonly factsTtlSeconds?: number;
  /** OCR's text regions (issue 18) for the projects whose pixel policy enables OCR. */
  readonly textRegions?: TextRegionSource;
  /** The de-identified study index (issue 20), for every project it can serve. */
  readonly studyIndex?: StudyCandidates;
}

export interface ProjectViews {
  /** The view of `name` for one request, as the store holds it now; ProjectUnknownError if it holds none. */
  viewFor(name: string): Promise<DeidentifiedView>;
}

/** What is read once per project and store version. */
interface ProjectState {
  readonly version: number;
  readonly project: ProjectRecord;
  readonly conditions: readonly Condition[];
  readonly policy: DeidPolicy;
  readonly withdrawn: ReadonlySet<string>;
  /** Original study UID → on the explicit list (filled as asked). */
  readonly listed: Map<string, boolean>;
  readonly chunks: Map<number, readonly string[]>;
}

export function projectViews(options: ProjectViewOptions): ProjectViews {
  const states = new Map<string, ProjectState>();
  // Facts about a study are the PACS's, not the project's: shared by every project, keyed by the
  // attributes asked. Bounded; misses are asked again.
  const facts = boundedCache<StudyFacts[]>({ ttlSeconds: options.factsTtlSeconds ?? 60, maxKeys: MAX_CACHED });
  // The pixel census (issue 16): attributes per study, as PACS facts shared by every project; each
  // project's own pixel policy decides from them per request. Trusted as long as the study facts.
  const census = censusSource({ maxJsonDatasetBytes: options.maxJsonDatasetBytes, ttlSeconds: options.factsTtlSeconds ?? 60 });

  async function stateOf(name: string): Promise<ProjectState> {
    const version = await options.projects.projectsVersion();
    const known = states.get(name);
    if (known && known.version === version) return known;
    const project = await options.projects.project(name);
    if (!project) throw new ProjectUnknownError();
    let conditions: readonly Condition[];
    let policy: DeidPolicy;
    try {
      conditions = conditionsOf(project.query);
      policy = options.scopedPolicy(project.profile, projectScope(name));
    } catch (cause) {
      // Fail closed, and tell the researcher nothing of the definition (the cause goes to the log).
      throw new ProjectUnusableError({ cause });
    }
    const state: ProjectState = {
      version,
      project,
      conditions,
      policy,
      withdrawn: await options.projects.withdrawnPatients(name),
      listed: new Map(),
      chunks: new Map(),
    };
    states.set(name, state);
    return state;
  }

  async function studyFacts(uids: readonly string[], conditions: readonly Condition[]): Promise<Map<string, StudyFacts[]>> {
    const asked = [PATIENT_ID, ...conditions.map((c) => c.hex)];
    const suffix = `\u0000${asked.join(',')}`;
    const out = new Map<string, StudyFacts[]>();
    const missing: string[] = [];
    for (const uid of new Set(uids)) {
      const hit = facts.get(uid + suffix);
      if (hit) out.set(uid, hit);
      else missing.push(uid);
    }
    for (let i = 0; i < missing.length; i += UID_LIST_CHUNK) {
      const chunk = missing.slice(i, i + UID_LIST_CHUNK);
      const params = new URLSearchParams({ [STUDY_UID]: chunk.join(',') });
      for (const hex of asked) params.append('includefield', hex);
      const res = await options.upstream.send({ method: 'GET', pathAndQuery: `/studies?${params}`, headers: { accept: 'application/dicom+json' } });
      const found = new Map<string, StudyFacts[]>(chunk.map((uid) => [uid, []]));
      if (res.statusCode === 204) res.body.resume();
      else if (res.statusCode !== 200) {
        res.body.resume();
        throw new UpstreamUnusableError(`study facts: status ${res.statusCode}`);
      } else {
        for await (const item of jsonArrayItems(res.body, options.maxJsonDatasetBytes)) {
          const dataset = item as JsonDataset;
          const f = factsOf(dataset);
          if (f) found.get(f.studyUid)?.push(f);
        }
      }
      for (const [uid, list] of found) {
        facts.set(uid + suffix, list);
        out.set(uid, list);
      }
    }
    return out;
  }

  // Where series and instances lie (PACS facts, shared by every project): `study/series[/instance]` keys.
  const located = boundedCache<true>({ ttlSeconds: 300, maxKeys: MAX_CACHED });
  const locate = (key: string) => located.set(key, true);
  const keyOf = (study: unknown, series: unknown, instance?: unknown) =>
    typeof study === 'string' && typeof series === 'string' ? `${study}/${series}${typeof instance === 'string' ? `/${instance}` : ''}` : undefined;
  function learn(dataset: JsonDataset): void {
    const [study, series, instance] = [STUDY_UID, SERIES_UID, SOP_UID].map((hex) => dataset[hex]?.Value?.[0]);
    const seriesKey = keyOf(study, series);
    if (seriesKey === undefined) return;
    locate(seriesKey);
    const instanceKey = keyOf(study, series, instance);
    if (instanceKey !== seriesKey && instanceKey !== undefined) locate(instanceKey);
  }
  /** PS3.18 10.6: the series (or instance) asked below its study, with the UIDs that place it. */
  async function locates(path: ResourcePath): Promise<boolean> {
    const key = keyOf(path.study, path.series, path.instance);
    if (key === undefined) return true; // nothing below a study named
    if (located.get(key)) return true;
    const params = new URLSearchParams();
    for (const hex of [STUDY_UID, SERIES_UID]) params.append('includefield', hex);
    let below = `/studies/${encodeSegment(path.study as string)}/series`;
    if (path.instance !== undefined) {
      below += `/${encodeSegment(path.series as string)}/instances`;
      params.set(SOP_UID, path.instance);
    } else params.set(SERIES_UID, path.series as string);
    const res = await options.upstream.send({ method: 'GET', pathAndQuery: `${below}?${params}`, headers: { accept: 'application/dicom+json' } });
    if (res.statusCode === 204 || res.statusCode === 404) {
      res.body.resume();
      return false;
    }
    if (res.statusCode !== 200) {
      res.body.resume();
      throw new UpstreamUnusableError(`locating a series or instance: status ${res.statusCode}`);
    }
    for await (const item of jsonArrayItems(res.body, options.maxJsonDatasetBytes)) learn(item as JsonDataset);
    return located.get(key) === true;
  }

  async function listedAmong(state: ProjectState, uids: readonly string[]): Promise<void> {
    const unknown = [...new Set(uids)].filter((uid) => !state.listed.has(uid));
    if (unknown.length === 0) return;
    if (state.listed.size + unknown.length > MAX_CACHED) state.listed.clear();
    const members = await options.projects.membersAmong(state.project.name, unknown);
    for (const uid of unknown) state.listed.set(uid, members.has(uid));
  }

  /** Every dataset the PACS has for the study must be admitted (Orthanc: one per PatientID). */
  const admitsAll = (state: ProjectState, list: readonly StudyFacts[] | undefined): boolean =>
    list !== undefined && list.length > 0 && list.every((f) => isMember(state.project, state.conditions, f, state.listed.get(f.studyUid) === true, state.withdrawn));

  return {
    async viewFor(name) {
      const state = await stateOf(name);
      const needsFacts = state.withdrawn.size > 0 || !(state.project.allStudies || state.conditions.length === 0);
      const membership: Membership = {
        project: state.project,
        conditions: state.conditions,
        anyWithdrawn: state.withdrawn.size > 0,
        async admitsStudy(uid) {
          if (!state.project.allStudies) await listedAmong(state, [uid]);
          if (!needsFacts) return state.project.allStudies || state.listed.get(uid) === true;
          return admitsAll(state, (await studyFacts([uid], state.conditions)).get(uid));
        },
        async admits(datasets, level) {
          const uids = datasets.map((d) => stringValue(d, STUDY_UID));
          const present = uids.filter((u): u is string => u !== undefined);
          if (!state.project.allStudies) await listedAmong(state, present);
          if (level === 'study') {
            return datasets.map((d) => {
              const f = factsOf(d);
              return f !== undefined && isMember(state.project, state.conditions, f, state.listed.get(f.studyUid) === true, state.withdrawn);
            });
          }
          if (!needsFacts) return uids.map((u) => u !== undefined && (state.project.allStudies || state.listed.get(u) === true));
          const known = await studyFacts(present, state.conditions);
          return uids.map((u) => u !== undefined && admitsAll(state, known.get(u)));
        },
        locates,
        learn,
        async listedChunk(index) {
          let chunk = state.chunks.get(index);
          if (chunk === undefined) {
            chunk = await options.projects.studies(state.project.name, { limit: UID_LIST_CHUNK, offset: index * UID_LIST_CHUNK });
            state.chunks.set(index, chunk);
          }
          return chunk;
        },
      };
      return {
        policy: state.policy,
        store: scopedPseudonyms(options.store, projectScope(name)),
        upstream: options.upstream,
        maxHeaderBytes: options.maxHeaderBytes,
        maxJsonDatasetBytes: options.maxJsonDatasetBytes,
        allowRendered: options.allowRendered,
        census,
        ...(options.textRegions ? { textRegions: options.textRegions } : {}),
        ...(options.studyIndex ? { studyIndex: options.studyIndex } : {}),
        membership,
      };
    },
  };
}

function stringValue(dataset: JsonDataset, hex: string): string | undefined {
  const v = dataset[hex]?.Value?.[0];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function factsOf(dataset: JsonDataset): StudyFacts | undefined {
  const studyUid = stringValue(dataset, STUDY_UID);
  if (studyUid === undefined) return undefined;
  // Present but empty (Type 2, no Value): ''. Missing from the PACS's answer: unknown.
  const patientId = PATIENT_ID in dataset ? (stringValue(dataset, PATIENT_ID) ?? '') : undefined;
  return { studyUid, patientId, dataset };
}

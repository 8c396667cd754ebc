import type { DeidPolicy, DeidSession, SessionOptions } from '../deid/deidentify.ts';
import { createSession } from '../deid/deidentify.ts';
import type { ScopedPseudonyms } from '../store/pseudonym-store.ts';
import type { JsonDataset } from '../dicom/json-model.ts';
import type { Condition } from '../projects/project.ts';
import type { ProjectRecord } from '../store/project-store.ts';
import type { CensusSource, PixelObserver } from './pixel-census.ts';
import type { TextRegionSource } from './text-regions.ts';
import type { MatchKey } from '../dicom/matching.ts';
import { ClientGoneError, UnknownResourceError, UpstreamStatusError, UpstreamUnusableError } from './errors.ts';
import { encodeSegment, isPathIdentifier } from './routes.ts';
import { classify, type Upstream, type UpstreamResponse } from './upstream.ts';

/** Everything a de-identified transaction needs: one project's, for one request (project-view.ts). */
export interface DeidentifiedView {
  readonly policy: DeidPolicy;
  /** The project's pseudonym scope. */
  readonly store: ScopedPseudonyms;
  /** Which original studies the project holds: everything else is unknown (404). */
  readonly membership: Membership;
  readonly upstream: Upstream;
  readonly maxHeaderBytes: number;
  readonly maxJsonDatasetBytes: number;
  readonly allowRendered: boolean;
  /** The pixel census (pixel-census.ts), shared by every project; read only when `policy.pixels.active`. */
  readonly census: CensusSource;
  /** OCR's text regions (issue 18), shared by every project; absent: no instance is OCR-redacted (they stay withheld). */
  readonly textRegions?: TextRegionSource;
  /** The de-identified study index (issue 20; study-index.ts), shared by every project; absent: searches page through the PACS. */
  readonly studyIndex?: StudyCandidates;
  /** Told how many instances a response withheld or redacted (metrics, audit trail); set per request by http/. */
  readonly observePixels?: PixelObserver;
}

/** A gateway-side matching key of a search (qido.ts), on a tag. */
export interface IndexPredicate {
  readonly tag: number;
  readonly key: MatchKey;
}

/** What a search asks of the de-identified study index (study-index.ts). */
export interface StudyCandidates {
  /**
   * The pseudonymous StudyInstanceUIDs of the view's studies whose indexed values match every
   * predicate, or undefined when the index cannot answer (a predicate on an attribute it does not hold,
   * a policy it cannot serve, not built yet or not current). Starts a build when one is needed.
   */
  candidates(view: DeidentifiedView, predicates: readonly IndexPredicate[]): Promise<readonly string[] | undefined>;
}

/** What a de-identified transaction asks of the project it serves. */
export interface Membership {
  readonly project: ProjectRecord;
  readonly conditions: readonly Condition[];
  /** Whether any patient withdrew: then results must be checked even where the upstream query is exact. */
  readonly anyWithdrawn: boolean;
  /** Is the original study a member? (404 on the caller's side when not: exactly as unknown.) */
  admitsStudy(studyUid: string): Promise<boolean>;
  /**
   * Which original datasets (QIDO results, any level) belong to member studies, in order. At study
   * level the facts are read from each dataset itself (the upstream query included what the
   * conditions name); at other levels from the study's cached facts.
   */
  admits(datasets: readonly JsonDataset[], level: 'study' | 'series' | 'instance'): Promise<boolean[]>;
  /** The explicit study list, a chunk at a time (UID order), for UID-list queries upstream. */
  listedChunk(index: number): Promise<readonly string[]>;
  /**
   * Do the series (and instance) a path names lie in the study it names? The PACS is asked by original
   * UIDs from the store, and one that does not check the hierarchy (Orthanc does) would serve a series
   * of a study outside the project (removed, withdrawn) under a member study's path. Asked of the PACS
   * once per series or instance, unless `learn` saw it.
   */
  locates(path: ResourcePath): Promise<boolean>;
  /** Notes where a dataset the PACS gave lies (its study, series and instance UIDs). */
  learn(dataset: JsonDataset): void;
}

/** The caller-facing identifiers of a resource, pseudonymous, and the originals behind them. */
export interface ResourcePath {
  study?: string;
  series?: string;
  instance?: string;
}

/**
 * Maps pseudonymous UIDs in a request path to the originals through the project's scope of the store.
 * An unknown UID, an original UID presented as if it were a pseudonym, another project's pseudonym and
 * a study outside the project (removed from it, or its patient withdrawn) all give the same 404, and
 * none is sent upstream but for the membership check of a study this project's scope issued.
 */
export async function originalPath(view: DeidentifiedView, path: ResourcePath): Promise<ResourcePath> {
  const out: ResourcePath = {};
  for (const level of ['study', 'series', 'instance'] as const) {
    const uid = path[level];
    if (uid === undefined) continue;
    out[level] = await originalUid(view, uid, level);
  }
  if (out.study !== undefined && !(await view.membership.admitsStudy(out.study))) throw new UnknownResourceError('study');
  if (out.series !== undefined && !(await view.membership.locates(out))) throw new UnknownResourceError(out.instance === undefined ? 'series' : 'instance');
  return out;
}

export async function originalUid(view: DeidentifiedView, uid: string, what = 'UID'): Promise<string> {
  // PS3.15 E.3.9 Retain UIDs: the UIDs shown are the originals.
  if (view.policy.options.retainUIDs) return uid;
  const original = await view.store.originalOf('uid', uid);
  if (original === undefined) throw new UnknownResourceError(what);
  // The store holds whatever an instance (or an upload) carried as its UID. Before it goes into a PACS
  // path or condition it must be a plain identifier (RFC 3986 unreserved, never `.`/`..`): a stored
  // `../../patients/…` would otherwise walk the PACS's API, and a stored `*` or `\` would become a wild
  // card or a list. Such a pseudonym is as unknown as one never issued.
  if (!isPathIdentifier(original, 'original')) throw new UnknownResourceError(what);
  return original;
}

/**
 * Every dataset the PACS answers for a path below a study must belong to that study: the PACS is asked
 * by original UIDs the store mapped, and a PACS that does not check the hierarchy (Orthanc does) would
 * otherwise serve a series or instance of a study outside the project under a member study's path.
 * Fail closed: the response is refused, whatever was sent of it.
 */
export function requireStudy(path: ResourcePath, studyUid: unknown): void {
  if (path.study !== undefined && studyUid !== path.study) throw new UpstreamUnusableError('a dataset of another study than the path names');
}

/** The PACS path of a resource, each UID (an original from the store) encoded as `fillPath` encodes segments. */
export function uidPath(path: ResourcePath): string {
  let out = '';
  if (path.study) out += `/studies/${encodeSegment(path.study)}`;
  if (path.series) out += `/series/${encodeSegment(path.series)}`;
  if (path.instance) out += `/instances/${encodeSegment(path.instance)}`;
  return out;
}

/**
 * A session that saves what it made: `flush()` persists the pairs not yet saved, before the bytes
 * that show them go out; `makeDurable()` makes them durable on disk, before the response completes
 * (or, for STOW, before the PACS receives them).
 */
export interface SavingSession {
  readonly session: DeidSession;
  flush(): Promise<void>;
  makeDurable(): Promise<void>;
}

/**
 * One per response or upload: keyed, or fresh when the policy says so (PS3.15 E.1.1 pseudonyms);
 * `options` overrides that (the DIMSE ingress: fresh with one salt per study, kept across batches).
 */
export function savingSession(view: { readonly policy: DeidPolicy; readonly store: ScopedPseudonyms }, options: SessionOptions = {}): SavingSession {
  const session = createSession(view.policy, options);
  let saved = 0;
  let unsynced = 0; // of those saved, how many the store says may not yet be durable
  const flush = async () => {
    const count = session.pairCount;
    if (count === saved) return;
    unsynced += await view.store.save(session.pairsSince(saved));
    saved = count;
  };
  return {
    session,
    flush,
    async makeDurable() {
      await flush();
      if (unsynced > 0) await view.store.sync();
    },
  };
}

/**
 * An upstream error status for a restricted role: the status is passed on, the body is not (an
 * error body can quote identifiers). 404 stays 404; other statuses keep their class.
 */
export function refuseUpstreamError(res: UpstreamResponse): never {
  res.body.resume();
  throw new UpstreamStatusError(res.statusCode);
}

/**
 * Anything that goes wrong while reading the PACS's answer: the caller gets an error, never raw bytes.
 * A caller that went away stays what it is: neither the PACS's failure nor UPSTREAM_UNUSABLE.
 */
export function unusable(error: unknown): unknown {
  if (error instanceof ClientGoneError) return error;
  const classified = classify(error);
  if (classified !== error) return classified;
  if (error instanceof Error && 'code' in error && /^(UPSTREAM_|DICOMWEB_|STORE_)/.test(String(error.code))) return error;
  return new UpstreamUnusableError(error instanceof Error && 'code' in error ? String(error.code) : 'unreadable', { cause: error });
}

import type { DeidPolicy, DeidSession } from '../deid/deidentify.ts';
import { createSession } from '../deid/deidentify.ts';
import type { PseudonymStore } from '../store/pseudonym-store.ts';
import { ClientGoneError, UnknownResourceError, UpstreamStatusError, UpstreamUnusableError } from './errors.ts';
import { encodeSegment, isPathIdentifier } from './routes.ts';
import { classify, type Upstream, type UpstreamResponse } from './upstream.ts';

/** Everything a de-identified transaction needs. */
export interface DeidentifiedView {
  readonly policy: DeidPolicy;
  readonly store: PseudonymStore;
  readonly upstream: Upstream;
  readonly maxHeaderBytes: number;
  readonly maxJsonDatasetBytes: number;
  readonly allowRendered: boolean;
}

/** The caller-facing identifiers of a resource, pseudonymous, and the originals behind them. */
export interface ResourcePath {
  study?: string;
  series?: string;
  instance?: string;
}

/**
 * Maps pseudonymous UIDs in a request path to the originals through the store. An unknown UID, and an
 * original UID presented as if it were a pseudonym, give 404 and are never sent upstream.
 */
export async function originalPath(view: DeidentifiedView, path: ResourcePath): Promise<ResourcePath> {
  const out: ResourcePath = {};
  for (const level of ['study', 'series', 'instance'] as const) {
    const uid = path[level];
    if (uid === undefined) continue;
    out[level] = await originalUid(view, uid, level);
  }
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

/** One per response or upload: keyed, or fresh when the policy says so (PS3.15 E.1.1 pseudonyms). */
export function savingSession(view: { readonly policy: DeidPolicy; readonly store: PseudonymStore }): SavingSession {
  const session = createSession(view.policy);
  let saved = 0;
  const flush = async () => {
    const count = session.pairCount;
    if (count === saved) return;
    await view.store.save(session.pairsSince(saved));
    saved = count;
  };
  return {
    session,
    flush,
    async makeDurable() {
      await flush();
      if (saved > 0) await view.store.sync();
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

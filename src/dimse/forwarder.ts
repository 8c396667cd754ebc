// De-identify and forward (issue 19, steps 3 to 5): each spooled study goes, instance by instance, through
// the uploader's STOW path (dicomweb/stow.ts storePart: the Part 10 engine into <dataDir>/tmp, then one
// STOW-RS request per instance to the upstream PACS), and its originals are deleted only once the PACS
// confirmed every one of them. A study is forwarded when the last association adding to it ends, or
// once it has been idle for `idleTimeoutMs` (an association left open), or in batches of `batchInstances`
// while a large one is still arriving; it stays open for `idleTimeoutMs` after its last instance, so a
// study spread over associations lands as one (fresh mode keeps its salt).
//
// Exactly once across a crash: each confirmed instance is journalled (fsynced) before the next step, so a
// restart sends only what was not confirmed. The one instance whose answer was lost with the process is
// sent again with the same pseudonymous UIDs (keyed, or the study's saved fresh salt), so the PACS holds it
// once. Failures that may pass (PACS down, 5xx, store) retry with backoff; then, or for an instance the
// engine or the PACS refuses, the originals go to quarantine with the reason.
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { EVENT_ID } from '../audit/atna.ts';
import type { SessionOptions } from '../deid/deidentify.ts';
import { DeidError, PixelWithheldError } from '../deid/errors.ts';
import { DicomError } from '../dicom/errors.ts';
import { savingSession, type SavingSession } from '../dicomweb/deidentified-view.ts';
import { StowPartError, UpstreamStoreFailedError } from '../dicomweb/errors.ts';
import { storePart, type StowView } from '../dicomweb/stow.ts';
import type { AuditTrail, EventOutcomeIndicator } from '../store/audit-trail.ts';
import type { Uploader } from './callers.ts';
import type { InstanceIdentity } from './intake.ts';
import { studyKey, type Journal, type Spool, type SpoolWriter, type StudyState } from './spool.ts';

/** The logger methods used here (pino's, structurally). */
export interface DimseLog {
  info(entry: object, message: string): void;
  warn(entry: object, message: string): void;
  error(entry: object, message: string): void;
}

/** What the metrics see of forwarding. */
export interface ForwardObserver {
  /** Instances by outcome: stored (confirmed by the PACS), refused (quarantined), resent (retry of a batch). */
  instances(outcome: 'stored' | 'refused', count: number): void;
  /** Studies by outcome of a batch: forwarded, partial (some quarantined), retrying, quarantined. */
  study(outcome: 'forwarded' | 'partial' | 'retrying' | 'quarantined'): void;
}

export interface ForwarderOptions {
  readonly spool: Spool;
  /** The uploader's STOW view (policy, store, upstream, temp dir, failure reasons). */
  readonly view: StowView;
  readonly audit: AuditTrail;
  readonly log: DimseLog;
  readonly idleTimeoutMs: number;
  readonly maxAttempts: number;
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
  /** Instances of one study in flight to the PACS at once. */
  readonly concurrency: number;
  /** A study still receiving is forwarded once it holds this many originals (0: only at the end). */
  readonly batchInstances: number;
  readonly observe?: ForwardObserver;
  /** The clock (tests pass their own). */
  readonly now?: () => Date;
}

/** The status endpoint's and the gauges' view. */
export interface ForwardStatus {
  /** Studies holding originals not yet forwarded, not in flight (receiving, waiting, or waiting to retry). */
  readonly queued: number;
  readonly inFlight: number;
  /** Study folders in quarantine. */
  readonly quarantined: number;
  /** Originals received and not yet forwarded (in flight included). */
  readonly instancesPending: number;
}

/** How the destination route reads in the audit trail: the transaction used, never a URL. */
const DESTINATION_ROUTE = 'DIMSE C-STORE → STOW-RS POST /studies';

interface Study {
  readonly key: string;
  /** Associations that added to it and have not ended. */
  readonly live: Set<string>;
  /** Originals not yet forwarded. */
  pending: number;
  /** Its folder and state file exist (committed to, or found at start). */
  open: boolean;
  lastReceived: number;
  queued: boolean;
  inFlight: boolean;
  /** Instances arrived (or a retry fell due) while in flight: forward again after. */
  again: boolean;
  retryAt?: number;
  idleTimer?: NodeJS.Timeout;
  retryTimer?: NodeJS.Timeout;
  /** Serialises commit, close and a batch's clean-up on the study's folder. */
  lock: Promise<unknown>;
}

/** An instance refused for good: its code (never a message) and the STOW Failure Reason. */
interface Refused {
  readonly name: string;
  readonly code: string;
  readonly reason: number;
  /** Withheld by the pixel policy: why and which criterion or filter (PixelWithheldError; never a value). */
  readonly withheld?: { readonly reason: string; readonly detail: string };
}

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]{0,47}$/.test(code) ? code : 'INTERNAL_ERROR';
}

/** A failure worth retrying: the PACS down or overloaded, the store or the disk; not a refusal of the data. */
function mayPass(error: unknown): boolean {
  if (error instanceof UpstreamStoreFailedError) return error.status >= 500 || error.status === 408 || error.status === 429;
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof DicomError || e instanceof DeidError || e instanceof StowPartError) return false;
  }
  return true;
}

/** The session options of a study: keyed, or fresh with the study's own salt (one per study, never split). */
function sessionOptions(state: StudyState): SessionOptions {
  return state.pseudonyms === 'fresh' ? { fresh: true, salt: Buffer.from(state.salt as string, 'hex') } : { fresh: false };
}

export class Forwarder {
  readonly #o: ForwarderOptions;
  readonly #now: () => Date;
  readonly #studies = new Map<string, Study>();
  readonly #queue: string[] = [];
  readonly #abort = new AbortController();
  readonly #running = new Set<Promise<void>>();
  #quarantined = 0;
  #closed = false;

  constructor(options: ForwarderOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => new Date());
  }

  /** At start: every study a previous run left is forwarded (exactly once: its journal says what was confirmed). */
  async recover(): Promise<void> {
    this.#quarantined = await this.#o.spool.quarantined();
    for (const key of await this.#o.spool.studyKeys()) {
      const study = this.#study(key);
      study.pending = (await this.#o.spool.instances(key)).length;
      study.open = true;
      if (study.pending > 0) this.#enqueue(study);
      else this.#armIdle(study);
    }
  }

  status(): ForwardStatus {
    let queued = 0;
    let inFlight = 0;
    let instancesPending = 0;
    for (const study of this.#studies.values()) {
      if (study.inFlight) inFlight++;
      else if (study.pending > 0) queued++;
      instancesPending += study.pending;
    }
    return { queued, inFlight, quarantined: this.#quarantined, instancesPending };
  }

  /**
   * Keeps a checked instance: moved into its study (opened now if new) and synced before this resolves,
   * so the C-STORE success that follows holds across a crash.
   */
  async accept(writer: SpoolWriter, identity: InstanceIdentity, caller: Uploader, association: string): Promise<void> {
    const key = studyKey(caller.aeTitle, identity.study);
    const study = this.#study(key);
    study.live.add(association);
    await this.#locked(study, async () => {
      await this.#o.spool.commit(
        writer,
        key,
        () => ({
          version: 1,
          callingAe: caller.aeTitle,
          profile: caller.profile,
          pseudonyms: caller.pseudonyms,
          ...(caller.pseudonyms === 'fresh' ? { salt: randomBytes(16).toString('hex') } : {}),
          openedAt: this.#now().toISOString(),
          attempts: 0,
        }),
        study.open,
      );
      study.open = true;
    });
    study.pending++;
    study.lastReceived = this.#now().getTime();
    if (study.inFlight) study.again = true;
    else if (this.#batchDue(study)) this.#enqueue(study);
    this.#armIdle(study);
  }

  /** A large study still being received: forwarded in batches, so receiving and forwarding overlap. */
  #batchDue(study: Study): boolean {
    return this.#o.batchInstances > 0 && study.pending >= this.#o.batchInstances;
  }

  /** An association ended (released, aborted or dropped): its studies are forwarded unless another association still adds to them. */
  associationEnded(association: string): void {
    for (const study of this.#studies.values()) {
      if (!study.live.delete(association)) continue;
      if (study.live.size === 0 && study.pending > 0) this.#enqueue(study);
    }
  }

  /** Stops: no new batch starts, the one under way is abandoned where it is (its journal keeps its progress). */
  async close(): Promise<void> {
    this.#closed = true;
    this.#abort.abort();
    for (const study of this.#studies.values()) {
      clearTimeout(study.idleTimer);
      clearTimeout(study.retryTimer);
    }
    await Promise.allSettled([...this.#running]);
  }

  #study(key: string): Study {
    let study = this.#studies.get(key);
    if (!study) {
      study = { key, live: new Set(), pending: 0, open: false, lastReceived: this.#now().getTime(), queued: false, inFlight: false, again: false, lock: Promise.resolve() };
      this.#studies.set(key, study);
    }
    return study;
  }

  #locked<T>(study: Study, work: () => Promise<T>): Promise<T> {
    const run = study.lock.then(work, work);
    study.lock = run.catch(() => undefined);
    return run;
  }

  /** After `idleTimeoutMs` without a new instance: forward what waits (an association left open), or close the study. */
  #armIdle(study: Study): void {
    clearTimeout(study.idleTimer);
    if (this.#closed) return;
    const wait = Math.max(0, study.lastReceived + this.#o.idleTimeoutMs - this.#now().getTime());
    study.idleTimer = setTimeout(() => this.#idle(study), wait);
    study.idleTimer.unref();
  }

  #idle(study: Study): void {
    if (study.inFlight || study.queued || study.retryTimer) return; // the batch's end re-arms it
    if (study.pending > 0) {
      this.#enqueue(study);
      return;
    }
    if (study.live.size > 0) return; // nothing held; the association's end or its next instance decides
    void this.#locked(study, async () => {
      if (study.inFlight || study.pending > 0 || study.live.size > 0) return;
      if ((await this.#o.spool.instances(study.key)).length > 0) return;
      await this.#o.spool.removeStudy(study.key);
      study.open = false;
      // An instance that arrived meanwhile waits on this lock: it opens the study anew (a new salt).
      if (study.live.size === 0) this.#studies.delete(study.key);
    }).catch((error: unknown) => this.#o.log.error({ err: codeOf(error), study: study.key }, 'a DIMSE study could not be closed'));
  }

  #enqueue(study: Study): void {
    if (this.#closed) return;
    if (study.inFlight) {
      study.again = true;
      return;
    }
    if (study.queued || study.retryTimer) return;
    study.queued = true;
    this.#queue.push(study.key);
    this.#pump();
  }

  /** One study at a time; its instances go `concurrency` at a time. */
  #pump(): void {
    if (this.#closed || this.#running.size > 0) return;
    const key = this.#queue.shift();
    if (key === undefined) return;
    const study = this.#studies.get(key);
    if (!study) {
      this.#pump();
      return;
    }
    study.queued = false;
    study.inFlight = true;
    study.again = false;
    const run = this.#forward(study)
      .catch((error: unknown) => this.#o.log.error({ err: codeOf(error), study: study.key }, 'a DIMSE study could not be forwarded'))
      .finally(() => {
        this.#running.delete(run);
        study.inFlight = false;
        if (!this.#closed) {
          // More arrived meanwhile: forwarded now if no association still adds to the study (or enough for
          // a batch arrived), else at the association's end.
          if (study.again && !study.retryTimer && study.pending > 0 && (study.live.size === 0 || this.#batchDue(study))) this.#enqueue(study);
          else this.#armIdle(study);
        }
        this.#pump();
      });
    this.#running.add(run);
  }

  /** One batch of a study: every original not yet confirmed, then the clean-up, the audit record and the log. */
  async #forward(study: Study): Promise<void> {
    const { spool, view } = this.#o;
    const signal = this.#abort.signal;
    let state: StudyState;
    try {
      state = await spool.readState(study.key);
    } catch (error) {
      // No state to forward with (hand-edited, or lost): nothing is guessed; the originals wait for an operator.
      await this.#quarantine(study, await spool.instances(study.key), { code: codeOf(error) });
      return;
    }
    const requestId = `dimse-${randomBytes(8).toString('hex')}`;
    const names = await spool.instances(study.key);
    if (names.length === 0) {
      study.pending = 0; // forwarded by the batch before this one
      return;
    }
    const journal = await spool.journal(study.key);
    const earlier = names.filter((n) => journal.confirmed.has(n)).length;
    const todo = names.filter((n) => !journal.confirmed.has(n));
    const refused: Refused[] = [];
    let transient: string | undefined;
    let pseudonymousStudy: string | undefined;
    let next = 0;
    const worker = async (saving: SavingSession): Promise<void> => {
      for (let name = todo[next++]; name !== undefined && transient === undefined && !signal.aborted; name = todo[next++]) {
        const outcome = await this.#forwardOne(study.key, name, saving, journal, signal);
        if ('study' in outcome) pseudonymousStudy ??= outcome.study;
        else if ('refused' in outcome) refused.push(outcome.refused);
        else transient ??= outcome.transient;
      }
    };
    try {
      // One session per worker: a session tracks the current dataset's patient, so it is never shared by
      // two rewrites at once; the study's salt makes their pseudonyms the same.
      const workers = Math.min(this.#o.concurrency, Math.max(todo.length, 1));
      await Promise.all(Array.from({ length: workers }, () => worker(savingSession(view, sessionOptions(state)))));
    } finally {
      await journal.close();
    }
    if (signal.aborted) return; // stopping: the journal holds the progress; the next start resumes
    const stored = journal.confirmed.size;
    await this.#locked(study, async () => {
      if (transient !== undefined) {
        const attempts = state.attempts + 1;
        if (attempts < this.#o.maxAttempts) {
          await spool.writeState(study.key, { ...state, attempts });
          this.#retryLater(study, attempts);
          this.#o.observe?.study('retrying');
          this.#o.log.warn({ requestId, study: study.key, err: transient, attempts }, 'a DIMSE study could not be forwarded; retrying');
          return;
        }
        await spool.deleteConfirmed(study.key, journal.confirmed);
        // What this batch tried and could not forward; instances that arrived since wait for their own batch.
        const left = todo.filter((n) => !journal.confirmed.has(n));
        await this.#quarantine(study, left, { code: 'DIMSE_FORWARD_FAILED', cause: transient, attempts });
        if (state.attempts > 0) await spool.writeState(study.key, { ...state, attempts: 0 });
        study.pending = (await spool.instances(study.key)).length;
        await this.#record(study, state, { requestId, stored, refused: left.length, earlier, pseudonymousStudy });
        return;
      }
      await spool.deleteConfirmed(study.key, journal.confirmed);
      if (refused.length > 0) {
        await this.#quarantine(study, refused.map((r) => r.name), { code: 'DIMSE_INSTANCES_REFUSED', refused: refused.map(({ code, reason, withheld }) => ({ code, reason, ...(withheld ? { withheld } : {}) })) });
      }
      if (state.attempts > 0) await spool.writeState(study.key, { ...state, attempts: 0 });
      study.pending = (await spool.instances(study.key)).length;
      this.#o.observe?.study(refused.length === 0 ? 'forwarded' : 'partial');
      await this.#record(study, state, { requestId, stored, refused: refused.length, earlier, pseudonymousStudy });
    });
  }

  /** One original through the engine and STOW-RS; journalled once the PACS confirmed it. */
  async #forwardOne(
    key: string,
    name: string,
    saving: SavingSession,
    journal: Journal,
    signal: AbortSignal,
  ): Promise<{ study: string } | { refused: Refused } | { transient: string }> {
    let refusal: unknown;
    // The refusal's own error (storePart returns only its Failure Reason): retry, or quarantine.
    const view: StowView = {
      ...this.#o.view,
      observeRefusal: (error) => {
        refusal = error;
        this.#o.view.observeRefusal?.(error);
      },
    };
    try {
      const result = await storePart(view, saving, { body: createReadStream(this.#o.spool.instancePath(key, name)) }, undefined, signal);
      if (result.stored) {
        await journal.append(name);
        this.#o.observe?.instances('stored', 1);
        return { study: result.stored.study };
      }
      if (mayPass(refusal)) return { transient: codeOf(refusal) };
      this.#o.observe?.instances('refused', 1);
      // A withheld instance (the pixel policy changed since its intake check, e.g. across a restart) is a
      // refusal like any other of the engine: quarantined alone, with its reason, never retried or sent raw.
      const withheld = refusal instanceof PixelWithheldError ? { reason: refusal.reason, detail: refusal.detail } : undefined;
      return { refused: { name, code: codeOf(refusal), reason: result.failed?.reason ?? 0x0110, ...(withheld ? { withheld } : {}) } };
    } catch (error) {
      // The PACS unreachable or too slow, or this process stopping: nothing was confirmed.
      return { transient: codeOf(error) };
    }
  }

  #retryLater(study: Study, attempts: number): void {
    const delay = Math.min(this.#o.maxBackoffMs, this.#o.backoffMs * 2 ** (attempts - 1));
    clearTimeout(study.retryTimer);
    study.retryTimer = setTimeout(() => {
      study.retryTimer = undefined;
      this.#enqueue(study);
    }, delay);
    study.retryTimer.unref();
  }

  async #quarantine(study: Study, names: readonly string[], reason: Record<string, unknown>): Promise<void> {
    if (names.length === 0) return;
    const folder = await this.#o.spool.quarantine(study.key, names, reason, this.#now());
    this.#quarantined++;
    study.pending = Math.max(0, study.pending - names.length);
    this.#o.observe?.study('quarantined');
    this.#o.log.error({ study: study.key, folder, instances: names.length, ...reason }, 'DIMSE originals quarantined');
  }

  /**
   * The audit record of one batch (PS3.15 A.5.3.2 DICOM Instances Transferred): who sent it (calling AE),
   * when, where it went, how many instances, the outcome.
   */
  async #record(
    study: Study,
    state: StudyState,
    batch: { requestId: string; stored: number; refused: number; earlier: number; pseudonymousStudy: string | undefined },
  ): Promise<void> {
    const outcome: EventOutcomeIndicator = batch.refused === 0 ? 0 : batch.stored > 0 ? 4 : 8;
    // PS3.18 10.5.3: all stored 200, some 202, none 409, as the uploader's STOW answers.
    const httpStatus = batch.refused === 0 ? 200 : batch.stored > 0 ? 202 : 409;
    this.#o.log.info(
      { requestId: batch.requestId, study: study.key, callingAe: state.callingAe, destination: 'upstream', instances: batch.stored, resumed: batch.earlier, refused: batch.refused, outcome },
      'DIMSE study forwarded',
    );
    try {
      await this.#o.audit.append({
        eventDateTime: this.#now(),
        eventId: EVENT_ID.instancesTransferred,
        eventActionCode: 'C',
        eventOutcomeIndicator: outcome,
        userId: state.callingAe,
        roleId: state.profile,
        route: DESTINATION_ROUTE,
        httpStatus,
        ...(batch.pseudonymousStudy ? { participantObjectId: batch.pseudonymousStudy, participantObjectIdTypeCode: 'StudyInstanceUID' } : {}),
        requestId: batch.requestId,
        numberOfInstances: batch.stored,
      });
    } catch (error) {
      this.#o.log.error({ requestId: batch.requestId, err: codeOf(error) }, 'audit record not written');
    }
  }
}

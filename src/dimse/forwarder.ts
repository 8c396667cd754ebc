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
// once. Failures that may pass (PACS down, 5xx, store, the destination refusing the gateway's credentials)
// retry with backoff; then, or for an instance the engine or the PACS refuses, the originals go to
// quarantine with the reason. An operator sends a quarantined study again (`retryQuarantined`) once the
// cause is fixed: its originals go back into the study's folder and are forwarded like any others.
//
// Where studies go: the upstream PACS (the uploader's StowView), or `dimse.forward.destination`, whose
// client (destination.ts) the ingress puts in the view it gives here.
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { EVENT_ID } from '../audit/atna.ts';
import type { SessionOptions } from '../deid/deidentify.ts';
import { DeidError, PixelWithheldError } from '../deid/errors.ts';
import type { Rectangle } from '../deid/pixel-policy.ts';
import { DicomError } from '../dicom/errors.ts';
import { savingSession, type SavingSession } from '../dicomweb/deidentified-view.ts';
import { OcrBusyError, StowPartError, UpstreamStoreFailedError } from '../dicomweb/errors.ts';
import { storePart, type StowView } from '../dicomweb/stow.ts';
import type { AuditTrail, CodedValue, EventOutcomeIndicator } from '../store/audit-trail.ts';
import type { Uploader } from './callers.ts';
import { DestinationAuthError, QuarantineError } from './errors.ts';
import type { CheckedInstance } from './intake.ts';
import { isQuarantineId, studyKey, type Journal, type QuarantinedStudy, type Spool, type SpoolWriter, type StudyState } from './spool.ts';

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
  /** Operators' retries of quarantined studies: queued again, or refused (and why). */
  retry?(outcome: 'queued' | 'refused'): void;
}

/** Who asked for a quarantined study to be sent again (the operator route's credential), for the audit trail. */
export interface Operator {
  readonly userId: string;
  /** `operator` (the metrics token, or a loopback peer) or `steward` (a steward's JWT; `userId` is its subject). */
  readonly roleId?: 'operator' | 'steward';
  /** The HTTP request's id, which its log line carries. */
  readonly requestId?: string;
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
  /** Where `view.upstream` sends studies, for the audit trail and the log: the upstream PACS (default) or `dimse.forward.destination`. */
  readonly destination?: 'upstream' | 'destination';
  /** The destination's token can be renewed (OAuth 2.0): an instance answered 401 is sent once more at once, with a new token. */
  readonly renewsAuthorization?: boolean;
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
const DESTINATION_ROUTE = {
  upstream: 'DIMSE C-STORE → STOW-RS POST /studies',
  destination: 'DIMSE C-STORE → destination STOW-RS POST /studies',
} as const;

/** The operator route an audit record of a retry names (http/dimse-status.ts serves it). */
const RETRY_ROUTE = 'POST /dimse/quarantine/:id/retry';

/**
 * CID 400 has no event for an operator releasing held originals back into a transfer: a local EventID
 * (a `99` private coding scheme, PS3.16 8.2, as audit/atna.ts's REIDENTIFICATION), EventActionCode E.
 */
export const QUARANTINE_RETRY: CodedValue = { code: 'DIMSE_QUARANTINE_RETRY', codingScheme: '99DEIDGW', meaning: 'Quarantined DIMSE Study Sent Again' };

/** Who sent a study whose state file cannot be read: unknown (the calling AE title is in that file). */
const UNKNOWN_CALLER = '(unknown: state unreadable)';

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
  // The destination's own answer to the gateway's credentials: named as such in the quarantine reason.
  if (error instanceof UpstreamStoreFailedError && (error.status === 401 || error.status === 403)) {
    return error.status === 401 ? 'DIMSE_DESTINATION_UNAUTHORIZED' : 'DIMSE_DESTINATION_FORBIDDEN';
  }
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]{0,47}$/.test(code) ? code : 'INTERNAL_ERROR';
}

/** Why a file could not be read, for the log and reason.json: its errno code or its error's name, never its message. */
function causeOf(error: unknown): string {
  const cause = (error as { cause?: unknown } | null)?.cause;
  const code = (cause as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{0,47}$/.test(code)) return code;
  const name = cause instanceof Error ? cause.name : undefined;
  return name && /^[A-Za-z]{1,40}$/.test(name) ? name : 'unknown';
}

/** The destination answered 401 to the token the request carried (which the client has dropped by now). */
function unauthorized(error: unknown): boolean {
  return error instanceof UpstreamStoreFailedError && error.status === 401;
}

/**
 * A failure worth retrying: the PACS down or overloaded, the store or the disk, the destination refusing
 * the gateway's credentials (401, 403: never the instance's fault), OCR's detector full or out of time (an
 * instance read by OCR again after a restart); not a refusal of the data.
 */
function mayPass(error: unknown): boolean {
  if (error instanceof OcrBusyError) return true;
  if (error instanceof UpstreamStoreFailedError) return error.status >= 500 || error.status === 408 || error.status === 429 || error.status === 401 || error.status === 403;
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof DicomError || e instanceof DeidError || e instanceof StowPartError) return false;
  }
  return true;
}

/** The session options of a study: keyed, or fresh with the study's own salt (one per study, never split). */
function sessionOptions(state: StudyState): SessionOptions {
  return state.pseudonyms === 'fresh' ? { fresh: true, salt: Buffer.from(state.salt as string, 'hex') } : { fresh: false };
}

/** Instances whose intake OCR regions are kept for forwarding; beyond, OCR runs again when forwarded. */
const MAX_KEPT_REGIONS = 100_000;

export class Forwarder {
  readonly #o: ForwarderOptions;
  /**
   * The text regions OCR found at intake (dimse/intake.ts), by study key and spooled name: the instance is
   * forwarded with them (stow.ts PartSource.textRegions), not read by OCR again. In memory only: after a
   * restart, or for an instance past MAX_KEPT_REGIONS, storePart runs OCR itself, and if that fails the
   * instance is refused and quarantined like any other the engine refuses.
   */
  readonly #textRegions = new Map<string, readonly Rectangle[]>();
  readonly #now: () => Date;
  readonly #studies = new Map<string, Study>();
  readonly #queue: string[] = [];
  readonly #abort = new AbortController();
  readonly #running = new Set<Promise<void>>();
  /** Quarantine ids an operator's retry is moving back now (a second retry of one is refused). */
  readonly #retrying = new Set<string>();
  #quarantined = 0;
  #closed = false;

  constructor(options: ForwarderOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => new Date());
  }

  get #destination(): 'upstream' | 'destination' {
    return this.#o.destination ?? 'upstream';
  }

  /** At start: every study a previous run left is forwarded (exactly once: its journal says what was confirmed). */
  async recover(): Promise<void> {
    this.#quarantined = await this.#o.spool.quarantinedCount();
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
  async accept(writer: SpoolWriter, identity: CheckedInstance, caller: Uploader, association: string): Promise<void> {
    const key = studyKey(caller.aeTitle, identity.study);
    const study = this.#study(key);
    study.live.add(association);
    await this.#locked(study, async () => {
      const { name } = await this.#o.spool.commit(
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
      if (identity.textRegions !== undefined && this.#textRegions.size < MAX_KEPT_REGIONS) this.#textRegions.set(`${key}/${name}`, identity.textRegions);
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

  /** The quarantine folders, oldest first: id, reason (codes and counts), originals held, when. */
  quarantine(): Promise<QuarantinedStudy[]> {
    return this.#o.spool.listQuarantine();
  }

  /**
   * An operator sends a quarantined study again, once its cause is fixed: its originals move back into
   * the study's folder (opened with the quarantined state, so its pseudonyms are the ones it would have
   * had; attempts start again from 0), the quarantine folder is removed, and the study is queued like
   * any other, so each original is forwarded once (or quarantined again, with a new reason). Refused
   * when its state file cannot be read (the pseudonym mode is unknown), when the same study is open under
   * another fresh salt, or while the same id is being retried. Every outcome is on the audit trail.
   */
  async retryQuarantined(id: string, operator: Operator): Promise<{ readonly id: string; readonly instances: number }> {
    if (!isQuarantineId(id)) throw new QuarantineError('DIMSE_QUARANTINE_NOT_FOUND');
    if (this.#closed || this.#retrying.has(id)) throw new QuarantineError('DIMSE_QUARANTINE_BUSY');
    this.#retrying.add(id);
    let key: string | undefined;
    try {
      const held = await this.#o.spool.quarantined(id);
      if (held === undefined) throw new QuarantineError('DIMSE_QUARANTINE_NOT_FOUND');
      // The study the folder came from is written inside it (the id is random: it names no study).
      if (held.key === undefined) throw new QuarantineError('DIMSE_QUARANTINE_STATE_INVALID');
      key = held.key;
      const study = this.#study(key);
      const instances = await this.#locked(study, async () => {
        if (held.state === undefined) throw new QuarantineError('DIMSE_QUARANTINE_STATE_INVALID');
        const state: StudyState = { ...held.state, attempts: 0 };
        if (study.open) {
          // Open now (more arrived, or not yet closed): the same pseudonyms, or not merged.
          const current = await this.#o.spool.readState(study.key).catch(() => undefined);
          if (current === undefined || current.pseudonyms !== state.pseudonyms || current.salt !== state.salt) throw new QuarantineError('DIMSE_QUARANTINE_STUDY_OPEN');
        }
        const moved = await this.#o.spool.restore(id, study.key, study.open ? undefined : state);
        study.open = true;
        return moved;
      });
      this.#quarantined = await this.#o.spool.quarantinedCount();
      study.pending += instances;
      study.lastReceived = this.#now().getTime();
      if (instances > 0) {
        if (study.inFlight) study.again = true;
        else if (study.live.size === 0) this.#enqueue(study);
      }
      this.#armIdle(study);
      this.#o.observe?.retry?.('queued');
      this.#o.log.info({ requestId: operator.requestId, quarantineId: id, study: study.key, instances }, 'a quarantined DIMSE study was queued again');
      await this.#recordRetry(id, operator, { outcome: 0, httpStatus: 202, instances });
      return { id, instances };
    } catch (error) {
      const study = key === undefined ? undefined : this.#studies.get(key);
      // Made for this retry and left empty: forgotten again.
      if (study && !study.open && study.pending === 0 && study.live.size === 0 && !study.inFlight && !study.queued) this.#studies.delete(study.key);
      if (error instanceof QuarantineError && error.code === 'DIMSE_QUARANTINE_NOT_FOUND') throw error; // nothing there to account for
      this.#o.observe?.retry?.('refused');
      this.#o.log.warn({ requestId: operator.requestId, quarantineId: id, err: codeOf(error) }, 'a quarantined DIMSE study was not queued again');
      await this.#recordRetry(id, operator, { outcome: error instanceof QuarantineError ? 4 : 8, httpStatus: error instanceof QuarantineError ? 409 : 500, instances: 0 });
      throw error;
    } finally {
      this.#retrying.delete(id);
    }
  }

  /** The audit record of an operator's retry: who, when, which quarantine folder, how many originals, the outcome. */
  async #recordRetry(id: string, operator: Operator, result: { outcome: EventOutcomeIndicator; httpStatus: number; instances: number }): Promise<void> {
    try {
      await this.#o.audit.append({
        eventDateTime: this.#now(),
        eventId: QUARANTINE_RETRY,
        eventActionCode: 'E',
        eventOutcomeIndicator: result.outcome,
        userId: operator.userId,
        roleId: operator.roleId ?? 'operator',
        route: RETRY_ROUTE,
        httpStatus: result.httpStatus,
        participantObjectId: id,
        participantObjectIdTypeCode: 'DimseQuarantineId',
        ...(operator.requestId ? { requestId: operator.requestId } : {}),
        numberOfInstances: result.instances,
      });
    } catch (error) {
      this.#o.log.error({ requestId: operator.requestId, err: codeOf(error) }, 'audit record not written');
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
    const requestId = `dimse-${randomBytes(8).toString('hex')}`;
    let state: StudyState;
    let journal: Journal;
    try {
      state = await spool.readState(study.key);
    } catch (error) {
      // No state to forward with (hand-edited, or lost): nothing is guessed; the originals wait for an operator.
      await this.#unreadable(study, requestId, error);
      return;
    }
    const names = await spool.instances(study.key);
    if (names.length === 0) {
      study.pending = 0; // forwarded by the batch before this one
      return;
    }
    try {
      journal = await spool.journal(study.key);
    } catch (error) {
      // What the destination already confirmed is unknown: nothing is sent twice or guessed; an operator decides.
      await this.#unreadable(study, requestId, error, state);
      return;
    }
    const earlier = names.filter((n) => journal.confirmed.has(n)).length;
    const todo = names.filter((n) => !journal.confirmed.has(n));
    const refused: Refused[] = [];
    let transient: string | undefined;
    let transientDetail: object | undefined;
    let pseudonymousStudy: string | undefined;
    let next = 0;
    const worker = async (saving: SavingSession): Promise<void> => {
      for (let name = todo[next++]; name !== undefined && transient === undefined && !signal.aborted; name = todo[next++]) {
        const outcome = await this.#forwardOne(study.key, name, saving, journal, signal);
        if ('study' in outcome) pseudonymousStudy ??= outcome.study;
        else if ('refused' in outcome) refused.push(outcome.refused);
        else if (transient === undefined) {
          transient = outcome.transient;
          transientDetail = outcome.detail;
        }
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
          this.#o.log.warn({ requestId, study: study.key, err: transient, ...(transientDetail ? { detail: transientDetail } : {}), attempts }, 'a DIMSE study could not be forwarded; retrying');
          return;
        }
        await spool.deleteConfirmed(study.key, journal.confirmed);
        // What this batch tried and could not forward; instances that arrived since wait for their own batch.
        const left = todo.filter((n) => !journal.confirmed.has(n));
        await this.#quarantine(study, left, { code: 'DIMSE_FORWARD_FAILED', cause: transient, ...(transientDetail ? { causeDetail: transientDetail } : {}), attempts });
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
  ): Promise<{ study: string } | { refused: Refused } | { transient: string; detail?: object }> {
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
      const textRegions = this.#textRegions.get(`${key}/${name}`);
      const send = () => storePart(view, saving, { body: createReadStream(this.#o.spool.instancePath(key, name)), ...(textRegions ? { textRegions } : {}) }, undefined, signal);
      let result = await send();
      // RFC 6750 3.1 invalid_token: the destination's client dropped the token; once more, with a new one
      // (the original is read again from the spool, and the same pseudonyms come out).
      if (!result.stored && this.#o.renewsAuthorization && unauthorized(refusal) && !signal.aborted) {
        refusal = undefined;
        result = await send();
      }
      if (result.stored) {
        this.#textRegions.delete(`${key}/${name}`);
        await journal.append(name);
        this.#o.observe?.instances('stored', 1);
        return { study: result.stored.study };
      }
      if (mayPass(refusal)) return { transient: codeOf(refusal), ...(refusal instanceof DestinationAuthError ? { detail: refusal.detail } : {}) };
      this.#textRegions.delete(`${key}/${name}`);
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

  async #quarantine(study: Study, names: readonly string[], reason: Record<string, unknown>): Promise<string | undefined> {
    if (names.length === 0) return undefined;
    const folder = await this.#o.spool.quarantine(study.key, names, reason, this.#now());
    this.#quarantined++;
    study.pending = Math.max(0, study.pending - names.length);
    this.#o.observe?.study('quarantined');
    this.#o.log.error({ study: study.key, folder, instances: names.length, ...reason }, 'DIMSE originals quarantined');
    return folder;
  }

  /**
   * A study whose state file or forwarding journal cannot be read: every original it holds goes to
   * quarantine as it is (nothing guessed: neither its pseudonym mode nor what was confirmed), with the
   * reason, and the audit trail records the batch as not transferred (outcome 8), naming the folder.
   */
  async #unreadable(study: Study, requestId: string, error: unknown, state?: StudyState): Promise<void> {
    const names = await this.#o.spool.instances(study.key);
    const code = codeOf(error);
    const file = code === 'DIMSE_SPOOL_JOURNAL_UNREADABLE' ? 'journal' : 'state';
    const folder = await this.#locked(study, async () => {
      const moved = await this.#quarantine(study, names, { code, file, err: causeOf(error) });
      // The unreadable file goes too (its copy, if any, is in the quarantine folder): an instance that
      // arrives next opens the study anew instead of meeting it again.
      await this.#o.spool.discardMeta(study.key, file);
      if (file === 'state') study.open = false;
      return moved;
    });
    study.pending = (await this.#o.spool.instances(study.key)).length;
    if (folder === undefined) return; // no original held: nothing was not transferred
    try {
      await this.#o.audit.append({
        eventDateTime: this.#now(),
        eventId: EVENT_ID.instancesTransferred,
        eventActionCode: 'C',
        eventOutcomeIndicator: 8,
        userId: state?.callingAe ?? UNKNOWN_CALLER,
        roleId: state?.profile ?? 'uploader',
        route: DESTINATION_ROUTE[this.#destination],
        httpStatus: 409,
        participantObjectId: folder,
        participantObjectIdTypeCode: 'DimseQuarantineId',
        requestId,
        numberOfInstances: 0,
      });
    } catch (auditError) {
      this.#o.log.error({ requestId, err: codeOf(auditError) }, 'audit record not written');
    }
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
      { requestId: batch.requestId, study: study.key, callingAe: state.callingAe, destination: this.#destination, instances: batch.stored, resumed: batch.earlier, refused: batch.refused, outcome },
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
        route: DESTINATION_ROUTE[this.#destination],
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

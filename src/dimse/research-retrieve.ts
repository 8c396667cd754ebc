// The research face's C-GET (PS3.4 C.4.3) and C-MOVE (PS3.4 C.4.2): the instances a researcher caller
// asks for are listed by the de-identified view's QIDO-RS and each retrieved by its WADO-RS, as the
// caller (view-client.ts): membership, reverse mapping, the pixel policy and the audit trail apply as on
// HTTP, and an unknown or original UID finds nothing. Each instance streams from the view's answer into
// one C-STORE sub-operation (store-sender.ts): back on the C-GET's association, or to an allow-listed
// C-MOVE destination over an association of our own (scu-association.ts). One instance is in flight at
// a time; of it, the File Meta and at most two PDV fragments are in memory.
import { randomBytes } from 'node:crypto';
import dimse from 'dcmjs-dimse';
import { EVENT_ID } from '../audit/atna.ts';
import { boundaryFrom, readMultipart } from '../dicom/multipart.ts';
import { isUid } from '../dicom/uid.ts';
import type { UpstreamResponse } from '../dicomweb/upstream.ts';
import type { EventOutcomeIndicator } from '../store/audit-trail.ts';
import type { Researcher } from './callers.ts';
import { AssociationLostError, DimseError, StoreIncompleteError, StoreTimeoutError, SubOperationError } from './errors.ts';
import { splitFileMeta } from './file-meta.ts';
import { isStorageSopClass } from './listener.ts';
import type { GetChannel, Operation, ResearchFaceOptions } from './research-face.ts';
import { RetrieveStatus, SubOperations, subOutcomeOf, type SubOutcome } from './retrieve-status.ts';
import { instancePath, instanceSearches, patientStudiesSearch, QIDO_PAGE, retrieveTarget, type RetrieveTarget, type Search } from './retrieve-target.ts';
import { EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN } from '../dicom/transfer-syntax.ts';
import { openStorageAssociation, storageContexts, type StorageContext } from './scu-association.ts';
import { channelOf, nextMessageId, sendStore, type DimseChannel } from './store-sender.ts';
import { statusHex } from './store-status.ts';

const { Dataset } = dimse;
const { CGetResponse, CMoveResponse } = dimse.responses;
type CGetRequest = InstanceType<typeof dimse.requests.CGetRequest>;
type CMoveRequest = InstanceType<typeof dimse.requests.CMoveRequest>;
type RetrieveResponse = InstanceType<typeof CGetResponse> | InstanceType<typeof CMoveResponse>;

/** More instances than this in one C-GET or C-MOVE: A701, before any sub-operation (the list is held: UIDs only). */
export const MAX_SUB_OPERATIONS = 100_000;
/** A QIDO-RS page (JSON) longer than this is refused. */
const MAX_SEARCH_BYTES = 32 * 1024 * 1024;
const SEARCH_ACCEPT = 'application/dicom+json';

/** One instance to send, as the view lists it (pseudonymous UIDs). */
export interface InstanceRef {
  readonly study: string;
  readonly series: string;
  readonly sopInstanceUid: string;
  readonly sopClassUid: string;
}

/** The listing ended early: too many instances (A701). */
class TooManyInstances {}

/** Where the sub-operations of one retrieval go, and how they are told apart. */
interface SubOperationTarget {
  readonly channel: DimseChannel;
  readonly contexts: ReadonlyMap<string, readonly StorageContext[]>;
  readonly moveOriginator?: { readonly aeTitle: string; readonly messageId: number };
}

/** PS3.4 C.4.3.3: C-GET, the instances back on the caller's association. */
export async function getFromView(op: Operation<CGetRequest>, channel: GetChannel, options: ResearchFaceOptions): Promise<void> {
  const record = new RetrieveRecord(op, options, 'C-GET', op.caller.aeTitle);
  try {
    const ch = channelOf(channel);
    const listed = await list(op, options, record);
    if (listed === undefined) return;
    // The listener accepted storage contexts from a researcher only in the SCP role (PS3.7 D.3.3.4).
    const contexts = storageContexts(ch.association, isStorageSopClass);
    await run(op, options, record, listed, async (subOps) => {
      const outcome = await subOperations(op, options, listed, subOps, { channel: ch, contexts });
      if (outcome === 'broken') abortAssociation(ch);
      return outcome;
    });
  } finally {
    await record.write();
  }
}

/**
 * PS3.4 C.4.2.3: C-MOVE, the instances to a destination of `dimse.moveDestinations` that the caller may
 * name (`dimse.callers[].moveDestinations`), over an association of our own.
 */
export async function moveFromView(op: Operation<CMoveRequest>, options: ResearchFaceOptions): Promise<void> {
  const { config, log } = options;
  const asked = String(op.request.getCommandDataset().getElement('MoveDestination') ?? '').trim();
  const record = new RetrieveRecord(op, options, 'C-MOVE', printable(asked));
  try {
    const destination = op.caller.moveDestinations.includes(asked) ? config.moveDestinations.find((d) => d.aeTitle.trim() === asked) : undefined;
    if (!destination) {
      // PS3.4 C.4.2.1.5: Refused: Move Destination unknown, whether no destination has that title or this
      // caller may not name it (one answer: the reply does not tell which titles exist); nothing is asked of the view.
      record.status = RetrieveStatus.moveDestinationUnknown;
      op.respond(response(op.request, RetrieveStatus.moveDestinationUnknown));
      log.warn(
        { association: op.association, requestId: record.requestId, callingAe: op.caller.aeTitle, destination: printable(asked), status: statusHex(RetrieveStatus.moveDestinationUnknown) },
        'DIMSE C-MOVE refused',
      );
      return;
    }
    const listed = await list(op, options, record);
    if (listed === undefined) return;
    await run(op, options, record, listed, async (subOps) => {
      if (listed.length === 0) return 'done';
      const sopClassUids = [...new Set(listed.map((r) => r.sopClassUid))];
      let association: Awaited<ReturnType<typeof openStorageAssociation>>;
      try {
        association = await openStorageAssociation({
          host: destination.host,
          port: destination.port,
          callingAeTitle: config.aeTitle.trim(),
          calledAeTitle: destination.aeTitle.trim(),
          sopClassUids,
          transferSyntaxUids: [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN],
          maxPduBytes: config.maxPduBytes,
          timeoutMs: config.pduTimeoutMs,
        });
      } catch (error) {
        // No sub-operation could be initiated: each is failed (PS3.4 C.4.2.3.1).
        log.warn({ association: op.association, requestId: record.requestId, callingAe: op.caller.aeTitle, destination: destination.aeTitle, err: codeOf(error) }, 'DIMSE C-MOVE destination unavailable');
        for (const ref of listed) subOps.count('failed', ref.sopInstanceUid);
        return 'done';
      }
      const moveOriginator = { aeTitle: op.caller.aeTitle, messageId: op.request.getMessageId() as number };
      try {
        const outcome = await subOperations(op, options, listed, subOps, { channel: association.channel, contexts: association.contexts, moveOriginator });
        if (outcome === 'broken') {
          association.abort();
          // The rest cannot be initiated on this association: failed (the requester gets its final response).
          for (const ref of listed.slice(listed.length - subOps.remaining)) subOps.count('failed', ref.sopInstanceUid);
          return 'done';
        }
        await association.release().catch(() => association.abort());
        return outcome;
      } catch (error) {
        association.abort();
        throw error;
      }
    });
  } finally {
    await record.write();
  }
}

type RunOutcome = 'done' | 'cancelled' | 'broken';

/**
 * The audit record of one C-GET or C-MOVE (PS3.15 A.5.3.2 DICOM Instances Transferred), written once it
 * ended, whatever the outcome (a refusal included): who asked (`dimse:<calling AE>`, the researcher role,
 * its project), where the instances went (the Move Destination, or the C-GET's caller), how many were
 * transferred and the outcome; `requestId` joins the log line that has every count and the DIMSE status.
 * The view's own records (one per QIDO-RS and WADO-RS request, as `dimse:<AE>`) are written beside it.
 */
class RetrieveRecord {
  readonly requestId = `dimse-${randomBytes(8).toString('hex')}`;
  /** The final status answered, `aborted` (the C-GET's association), or unset: the operation failed (C000). */
  status: number | 'aborted' | undefined;
  subOps: SubOperations | undefined;

  constructor(
    private readonly op: Operation<CGetRequest | CMoveRequest>,
    private readonly options: ResearchFaceOptions,
    readonly operation: 'C-GET' | 'C-MOVE',
    /** The AE the instances go to, as the log shows it (printable). */
    readonly destination: string,
  ) {}

  async write(): Promise<void> {
    const { outcome, httpStatus } = auditOutcome(this.status);
    try {
      await this.options.audit.append({
        eventDateTime: this.options.now?.() ?? new Date(),
        eventId: EVENT_ID.instancesTransferred,
        // R: the gateway reads the instances for the receiver (what the receiver held before is not known here).
        eventActionCode: 'R',
        eventOutcomeIndicator: outcome,
        userId: `dimse:${this.op.caller.aeTitle}`,
        roleId: this.op.caller.role,
        route: `DIMSE ${this.operation} → WADO-RS`,
        httpStatus,
        participantObjectId: this.destination || '(none)',
        participantObjectIdTypeCode: 'DestinationAETitle',
        requestId: this.requestId,
        project: this.op.caller.project,
        numberOfInstances: this.subOps ? this.subOps.completed + this.subOps.warning : 0,
      });
    } catch (error) {
      this.options.log.error({ association: this.op.association, requestId: this.requestId, err: codeOf(error) }, 'audit record not written');
    }
  }
}

/**
 * A retrieve's final status as the audit trail records it (EventOutcomeIndicator, and the HTTP status the
 * same outcome of the view's transactions would have): 0000 → 0, 200; B000 (some failed) and FE00
 * (cancelled, the rest not sent) → 4, 202; A801 (destination refused) → 4, 403; A900 and A701 (the
 * Identifier refused) → 4, 400; A702 (none transferred) → 8, 409; aborted or failed → 8, 500.
 */
export function auditOutcome(status: number | 'aborted' | undefined): { outcome: EventOutcomeIndicator; httpStatus: number } {
  switch (status) {
    case RetrieveStatus.success:
      return { outcome: 0, httpStatus: 200 };
    case RetrieveStatus.someFailed:
    case RetrieveStatus.cancel:
      return { outcome: 4, httpStatus: 202 };
    case RetrieveStatus.moveDestinationUnknown:
      return { outcome: 4, httpStatus: 403 };
    case RetrieveStatus.identifierDoesNotMatch:
    case RetrieveStatus.unableToCalculateMatches:
      return { outcome: 4, httpStatus: 400 };
    case RetrieveStatus.unableToPerformSubOperations:
      return { outcome: 8, httpStatus: 409 };
    default:
      return { outcome: 8, httpStatus: 500 };
  }
}

/**
 * Runs the sub-operations (`send`) and answers the final response (PS3.4 C.4.2.1.4 / C.4.3.1.3): the
 * counts, and the Failed SOP Instance UID List when any failed. Cancelled: FE00 with the counts and the
 * Remaining not initiated. Broken (the C-GET's association aborted): nothing more is sent.
 */
async function run<R extends CGetRequest | CMoveRequest>(
  op: Operation<R>,
  options: ResearchFaceOptions,
  record: RetrieveRecord,
  listed: readonly InstanceRef[],
  send: (subOps: SubOperations) => Promise<RunOutcome>,
): Promise<void> {
  const subOps = new SubOperations(listed.length);
  record.subOps = subOps;
  const outcome = await send(subOps);
  const status = outcome === 'cancelled' ? RetrieveStatus.cancel : subOps.finalStatus();
  record.status = outcome === 'broken' ? 'aborted' : status;
  if (outcome !== 'broken') op.respond(response(op.request, status, subOps, { remaining: outcome === 'cancelled' }));
  const entry = {
    association: op.association,
    requestId: record.requestId,
    callingAe: op.caller.aeTitle,
    ...(record.operation === 'C-MOVE' ? { destination: record.destination } : {}),
    instances: listed.length,
    completed: subOps.completed,
    warning: subOps.warning,
    failed: subOps.failed,
  };
  if (outcome === 'broken') options.log.warn({ ...entry, status: 'aborted' }, `DIMSE ${record.operation} aborted the association`);
  else options.log.info({ ...entry, status: statusHex(status) }, `DIMSE ${record.operation} done`);
}

/**
 * The instances of the Identifier, through the view; or undefined once a refusal was answered (A900 for
 * an Identifier that does not match the model, A701 past MAX_SUB_OPERATIONS, FE00 when cancelled while
 * listing). A view that answers 404 lists nothing: an unknown, an original or another project's UID
 * retrieves nothing and is told nothing more (final 0000, zero sub-operations).
 */
async function list<R extends CGetRequest | CMoveRequest>(op: Operation<R>, options: ResearchFaceOptions, record: RetrieveRecord): Promise<InstanceRef[] | undefined> {
  const model = String(op.request.getAffectedSopClassUid() ?? '');
  const entry = { association: op.association, requestId: record.requestId, callingAe: op.caller.aeTitle, ...(record.operation === 'C-MOVE' ? { destination: record.destination } : {}) };
  const target = retrieveTarget(model, op.request.getDataset()?.getElements());
  if (!target) {
    record.status = RetrieveStatus.identifierDoesNotMatch;
    op.respond(response(op.request, RetrieveStatus.identifierDoesNotMatch));
    options.log.warn({ ...entry, status: statusHex(RetrieveStatus.identifierDoesNotMatch) }, `DIMSE ${record.operation} refused`);
    return undefined;
  }
  try {
    return await listInstances(op.caller, options, target, op.signal);
  } catch (error) {
    if (error instanceof TooManyInstances) {
      record.status = RetrieveStatus.unableToCalculateMatches;
      op.respond(response(op.request, RetrieveStatus.unableToCalculateMatches));
      options.log.warn({ ...entry, max: MAX_SUB_OPERATIONS, status: statusHex(RetrieveStatus.unableToCalculateMatches) }, `DIMSE ${record.operation} refused`);
      return undefined;
    }
    if (op.signal.aborted) {
      record.status = RetrieveStatus.cancel;
      op.respond(response(op.request, RetrieveStatus.cancel, new SubOperations(0)));
      return undefined;
    }
    throw error;
  }
}

async function listInstances(caller: Researcher, options: ResearchFaceOptions, target: RetrieveTarget, signal: AbortSignal): Promise<InstanceRef[]> {
  const out: InstanceRef[] = [];
  const seen = new Set<string>();
  const searches: Search[] = [];
  if (target.level === 'PATIENT') {
    const studies = new Set<string>();
    for await (const item of pages(caller, options, patientStudiesSearch(target.patientId), signal)) {
      const study = uidOf(item, '0020000D');
      if (study) studies.add(study);
      if (studies.size > MAX_SUB_OPERATIONS) throw new TooManyInstances();
    }
    if (studies.size > 0) searches.push(...instanceSearches({ level: 'STUDY', studies: [...studies] }));
  } else {
    searches.push(...instanceSearches(target));
  }
  for (const search of searches) {
    for await (const item of pages(caller, options, search, signal)) {
      // The study and series of each result: the search's own, or (study level) the result's series.
      const ref = {
        study: search.study,
        series: search.series ?? uidOf(item, '0020000E'),
        sopInstanceUid: uidOf(item, '00080018'),
        sopClassUid: uidOf(item, '00080016'),
      };
      if (!ref.study || !ref.series || !ref.sopInstanceUid || !ref.sopClassUid || seen.has(ref.sopInstanceUid)) continue;
      seen.add(ref.sopInstanceUid);
      out.push(ref as InstanceRef);
      if (out.length > MAX_SUB_OPERATIONS) throw new TooManyInstances();
    }
  }
  return out;
}

/** The results of a QIDO-RS search, page by page (PS3.18 8.3.4.4); 404 and 204 are no results. */
async function* pages(caller: Researcher, options: ResearchFaceOptions, search: Search, signal: AbortSignal): AsyncGenerator<Record<string, { Value?: unknown[] }>> {
  for (let offset = 0; ; offset += QIDO_PAGE) {
    const res = await options.client.get(caller, `${search.path}?${search.query}&limit=${QIDO_PAGE}&offset=${offset}`, SEARCH_ACCEPT, signal);
    if (res.statusCode === 404 || res.statusCode === 204) {
      release(res);
      return;
    }
    if (res.statusCode !== 200) {
      release(res);
      throw new SubOperationError('DIMSE_VIEW_REFUSED', 'the view refused a search', res.statusCode);
    }
    const page = await readJson(res);
    if (!Array.isArray(page)) throw new SubOperationError('DIMSE_VIEW_MISMATCH', 'a search answer is not a JSON array');
    yield* page as Record<string, { Value?: unknown[] }>[];
    if (page.length < QIDO_PAGE) return;
  }
}

async function readJson(res: UpstreamResponse): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > MAX_SEARCH_BYTES) {
      release(res);
      throw new SubOperationError('DIMSE_VIEW_MISMATCH', `a search answer is longer than ${MAX_SEARCH_BYTES} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new SubOperationError('DIMSE_VIEW_MISMATCH', 'a search answer is not JSON');
  }
}

/** Lets go of a view answer, read or not: a body destroyed unread may report an error, which is expected here. */
function release(res: UpstreamResponse): void {
  res.body.on('error', () => undefined);
  if (!res.body.destroyed) res.body.destroy();
}

function uidOf(item: Record<string, { Value?: unknown[] }>, tag: string): string | undefined {
  const value = item[tag]?.Value?.[0];
  return typeof value === 'string' && isUid(value) ? value : undefined;
}

/**
 * The sub-operations, in order, one at a time, with a pending response after each while some remain
 * (PS3.4 C.4.3.3: the counts of Remaining, Completed, Failed and Warning). A C-CANCEL stops before the
 * next one ('cancelled'); a failure after a C-STORE-RQ went out leaves the association unusable
 * ('broken'); any other failure fails that sub-operation only.
 */
async function subOperations<R extends CGetRequest | CMoveRequest>(
  op: Operation<R>,
  options: ResearchFaceOptions,
  listed: readonly InstanceRef[],
  subOps: SubOperations,
  target: SubOperationTarget,
): Promise<RunOutcome> {
  const { socket } = target.channel;
  // The view's answer for the instance in flight is dropped when the association goes; a C-CANCEL waits for it.
  const inflight = new AbortController();
  const gone = () => inflight.abort(new AssociationLostError());
  socket.once('close', gone);
  try {
    for (const ref of listed) {
      if (op.signal.aborted) return 'cancelled';
      let outcome: SubOutcome;
      try {
        outcome = await subOperation(op.caller, options, ref, target, inflight.signal);
      } catch (error) {
        if (error instanceof StoreIncompleteError || error instanceof StoreTimeoutError || error instanceof AssociationLostError || socket.destroyed) {
          options.log.warn({ association: op.association, callingAe: op.caller.aeTitle, err: codeOf(error) }, 'DIMSE sub-operation broke the association');
          subOps.count('failed', ref.sopInstanceUid);
          return 'broken';
        }
        const status = error instanceof SubOperationError ? error.status : undefined;
        options.log.warn({ association: op.association, callingAe: op.caller.aeTitle, err: codeOf(error), ...(status ? { viewStatus: status } : {}) }, 'DIMSE sub-operation failed');
        outcome = 'failed';
      }
      subOps.count(outcome, ref.sopInstanceUid);
      if (subOps.remaining > 0 && !op.signal.aborted) op.respond(response(op.request, RetrieveStatus.pending, subOps, { remaining: true }));
    }
    return 'done';
  } finally {
    socket.off('close', gone);
    inflight.abort();
  }
}

/**
 * One C-STORE sub-operation: the instance asked of the view in a transfer syntax the peer accepted for
 * its SOP Class (best first; the next one when the view cannot give it, 406), its File Meta read and
 * checked (the UIDs listed, the transfer syntax of the context), then its dataset streamed. Nothing is
 * sent for an instance that fails before its first fragment is read; the C-STORE-RSP status decides.
 */
async function subOperation(caller: Researcher, options: ResearchFaceOptions, ref: InstanceRef, target: SubOperationTarget, signal: AbortSignal): Promise<SubOutcome> {
  const candidates = target.contexts.get(ref.sopClassUid) ?? [];
  // PS3.4 C.4.3.3: a sub-operation is Failed when the SCU offered no presentation context for it.
  if (candidates.length === 0) throw new SubOperationError('DIMSE_NO_STORAGE_CONTEXT', 'no storage context accepted for the SOP Class');
  let refusal: SubOperationError | undefined;
  for (const context of candidates) {
    const accept = `multipart/related; type="application/dicom"; transfer-syntax=${context.transferSyntaxUid}`;
    const res = await options.client.get(caller, instancePath(ref), accept, signal);
    try {
      if (res.statusCode === 406) {
        refusal = new SubOperationError('DIMSE_VIEW_REFUSED', 'the view cannot give the instance in an accepted transfer syntax', 406);
        continue;
      }
      if (res.statusCode !== 200) throw new SubOperationError('DIMSE_VIEW_REFUSED', 'the view refused the instance', res.statusCode);
      const parts = readMultipart(res.body, boundaryFrom(res.headers['content-type'] as string | undefined), { maxParts: 1 })[Symbol.asyncIterator]();
      const first = await parts.next();
      if (first.done) throw new SubOperationError('DIMSE_VIEW_MISMATCH', 'the view gave no instance');
      if (!/^application\/dicom(\s*;|$)/i.test(first.value.headers['content-type'] ?? 'application/dicom')) throw new SubOperationError('DIMSE_VIEW_MISMATCH', 'the view gave a part that is not application/dicom');
      const { meta, dataset } = await splitFileMeta(first.value.body);
      // Never bytes in a transfer syntax the context did not accept (PS3.8 9.3.3.2): another context, or failed.
      if (meta.transferSyntaxUid !== context.transferSyntaxUid) {
        refusal = new SubOperationError('DIMSE_VIEW_MISMATCH', 'the view gave another transfer syntax than asked');
        continue;
      }
      if (meta.sopInstanceUid !== ref.sopInstanceUid || meta.sopClassUid !== ref.sopClassUid) throw new SubOperationError('DIMSE_VIEW_MISMATCH', 'the view gave another instance than listed');
      const status = await sendStore(
        target.channel,
        {
          messageId: nextMessageId(target.channel),
          sopClassUid: meta.sopClassUid,
          sopInstanceUid: meta.sopInstanceUid,
          ...(target.moveOriginator ? { moveOriginator: target.moveOriginator } : {}),
        },
        dataset,
        { contextId: context.contextId, timeoutMs: options.config.pduTimeoutMs },
      );
      return subOutcomeOf(status);
    } finally {
      release(res);
    }
  }
  throw refusal ?? new SubOperationError('DIMSE_VIEW_REFUSED', 'the view refused the instance');
}

/**
 * A C-GET or C-MOVE response on the request's context: its own SOP Class (the library writes Study Root),
 * the counts, the Remaining when asked, and the Failed SOP Instance UID List (0008,0058) in the Identifier
 * of a final response when any failed (PS3.4 C.4.2.1.4, C.4.3.1.3).
 */
function response(request: CGetRequest | CMoveRequest, status: number, subOps?: SubOperations, options: { remaining?: boolean } = {}): RetrieveResponse {
  const r = request instanceof dimse.requests.CGetRequest ? CGetResponse.fromRequest(request) : CMoveResponse.fromRequest(request as CMoveRequest);
  r.setAffectedSopClassUid(request.getAffectedSopClassUid());
  r.setStatus(status);
  if (subOps) {
    if (options.remaining) r.setRemaining(subOps.remaining);
    r.setCompleted(subOps.completed);
    r.setFailures(subOps.failed);
    r.setWarnings(subOps.warning);
    if (status !== RetrieveStatus.pending && subOps.failedUids.length > 0) {
      r.setDataset(new Dataset({ FailedSOPInstanceUIDList: [...subOps.failedUids] }, identifierSyntax(request)));
    }
  }
  return r;
}

/** The Identifier of a response goes in the transfer syntax the request's own context accepted. */
function identifierSyntax(request: CGetRequest | CMoveRequest): string {
  return request.getDataset()?.getTransferSyntaxUid() ?? IMPLICIT_VR_LITTLE_ENDIAN;
}

/** PS3.8 7.3: A-ABORT by the service user, then the connection is closed (a half-sent C-STORE-RQ cannot be taken back). */
function abortAssociation(channel: DimseChannel): void {
  if (channel.socket.destroyed) return;
  (channel as unknown as { sendAbort(source: number, reason: number): void }).sendAbort(0, 0);
  channel.socket.end();
  setTimeout(() => channel.socket.destroy(), 1_000).unref();
}

function codeOf(error: unknown): string {
  if (error instanceof DimseError) return error.code;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? code : 'INTERNAL_ERROR';
}

/** An AE title from the wire, for the log: printable ASCII, 16 characters at most. */
function printable(title: string): string {
  return title.replace(/[^\x20-\x7e]/g, '?').slice(0, 16);
}

// The research face's C-GET (PS3.4 C.4.3) and C-MOVE (PS3.4 C.4.2): the instances a researcher caller
// asks for are listed by the de-identified view's QIDO-RS and each retrieved by its WADO-RS, as the
// caller (view-client.ts): membership, reverse mapping, the pixel policy and the audit trail apply as on
// HTTP, and an unknown or original UID finds nothing. Each instance streams from the view's answer into
// one C-STORE sub-operation (store-sender.ts): back on the C-GET's association, or to an allow-listed
// C-MOVE destination over an association of our own (scu-association.ts). One instance is in flight at
// a time; of it, the File Meta and at most two PDV fragments are in memory.
import dimse from 'dcmjs-dimse';
import { boundaryFrom, readMultipart } from '../dicom/multipart.ts';
import { isUid } from '../dicom/uid.ts';
import type { UpstreamResponse } from '../dicomweb/upstream.ts';
import type { Researcher } from './callers.ts';
import { AssociationLostError, DimseError, StoreIncompleteError, StoreTimeoutError, SubOperationError } from './errors.ts';
import { splitFileMeta } from './file-meta.ts';
import { isStorageSopClass } from './listener.ts';
import type { GetChannel, Operation, ResearchFaceOptions } from './research-face.ts';
import { RetrieveStatus, SubOperations, subOutcomeOf, type SubOutcome } from './retrieve-status.ts';
import { instancePath, instanceSearches, patientStudiesSearch, QIDO_PAGE, retrieveTarget, type RetrieveTarget, type Search } from './retrieve-target.ts';
import { EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, openStorageAssociation, storageContexts, type StorageContext } from './scu-association.ts';
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
  const ch = channelOf(channel);
  const listed = await list(op, options, 'C-GET');
  if (listed === undefined) return;
  // The listener accepted storage contexts from a researcher only in the SCP role (PS3.7 D.3.3.4).
  const contexts = storageContexts(ch.association, isStorageSopClass);
  await run(op, options, 'C-GET', listed, async (subOps) => {
    const outcome = await subOperations(op, options, listed, subOps, { channel: ch, contexts });
    if (outcome === 'broken') abortAssociation(ch);
    return outcome;
  });
}

/** PS3.4 C.4.2.3: C-MOVE, the instances to an allow-listed destination over an association of our own. */
export async function moveFromView(op: Operation<CMoveRequest>, options: ResearchFaceOptions): Promise<void> {
  const { config, log } = options;
  const asked = String(op.request.getCommandDataset().getElement('MoveDestination') ?? '').trim();
  const destination = config.moveDestinations.find((d) => d.aeTitle.trim() === asked);
  if (!destination) {
    // PS3.4 C.4.2.1.5: Refused: Move Destination unknown; nothing is asked of the view.
    op.respond(response(op.request, RetrieveStatus.moveDestinationUnknown));
    log.warn({ association: op.association, callingAe: op.caller.aeTitle, destination: printable(asked), status: statusHex(RetrieveStatus.moveDestinationUnknown) }, 'DIMSE C-MOVE refused');
    return;
  }
  const listed = await list(op, options, 'C-MOVE');
  if (listed === undefined) return;
  await run(op, options, 'C-MOVE', listed, async (subOps) => {
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
      log.warn({ association: op.association, callingAe: op.caller.aeTitle, destination: destination.aeTitle, err: codeOf(error) }, 'DIMSE C-MOVE destination unavailable');
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
}

type RunOutcome = 'done' | 'cancelled' | 'broken';

/**
 * Runs the sub-operations (`send`) and answers the final response (PS3.4 C.4.2.1.4 / C.4.3.1.3): the
 * counts, and the Failed SOP Instance UID List when any failed. Cancelled: FE00 with the counts and the
 * Remaining not initiated. Broken (the C-GET's association aborted): nothing more is sent.
 */
async function run<R extends CGetRequest | CMoveRequest>(
  op: Operation<R>,
  options: ResearchFaceOptions,
  operation: 'C-GET' | 'C-MOVE',
  listed: readonly InstanceRef[],
  send: (subOps: SubOperations) => Promise<RunOutcome>,
): Promise<void> {
  const subOps = new SubOperations(listed.length);
  const outcome = await send(subOps);
  const status = outcome === 'cancelled' ? RetrieveStatus.cancel : subOps.finalStatus();
  if (outcome !== 'broken') op.respond(response(op.request, status, subOps, { remaining: outcome === 'cancelled' }));
  const entry = { association: op.association, callingAe: op.caller.aeTitle, instances: listed.length, completed: subOps.completed, warning: subOps.warning, failed: subOps.failed };
  if (outcome === 'broken') options.log.warn({ ...entry, status: 'aborted' }, `DIMSE ${operation} aborted the association`);
  else options.log.info({ ...entry, status: statusHex(status) }, `DIMSE ${operation} done`);
}

/**
 * The instances of the Identifier, through the view; or undefined once a refusal was answered (A900 for
 * an Identifier that does not match the model, A701 past MAX_SUB_OPERATIONS, FE00 when cancelled while
 * listing). A view that answers 404 lists nothing: an unknown, an original or another project's UID
 * retrieves nothing and is told nothing more (final 0000, zero sub-operations).
 */
async function list<R extends CGetRequest | CMoveRequest>(op: Operation<R>, options: ResearchFaceOptions, operation: string): Promise<InstanceRef[] | undefined> {
  const model = String(op.request.getAffectedSopClassUid() ?? '');
  const target = retrieveTarget(model, op.request.getDataset()?.getElements());
  if (!target) {
    op.respond(response(op.request, RetrieveStatus.identifierDoesNotMatch));
    options.log.warn({ association: op.association, callingAe: op.caller.aeTitle, status: statusHex(RetrieveStatus.identifierDoesNotMatch) }, `DIMSE ${operation} refused`);
    return undefined;
  }
  try {
    return await listInstances(op.caller, options, target, op.signal);
  } catch (error) {
    if (error instanceof TooManyInstances) {
      op.respond(response(op.request, RetrieveStatus.unableToCalculateMatches));
      options.log.warn({ association: op.association, callingAe: op.caller.aeTitle, max: MAX_SUB_OPERATIONS, status: statusHex(RetrieveStatus.unableToCalculateMatches) }, `DIMSE ${operation} refused`);
      return undefined;
    }
    if (op.signal.aborted) {
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

/** Lets go of a view answer, read or not: undici reports a body dropped unread as an error, which is expected here. */
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

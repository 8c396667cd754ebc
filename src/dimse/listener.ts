// The DICOM listener (PS3.8 upper layer, PS3.7 DIMSE) on dcmjs-dimse: associations from allowed callers
// only, C-ECHO (PS3.7 9.1.5) and C-STORE (PS3.7 9.1.1) for the Storage SOP Classes (PS3.4 B.5) in the
// transfer syntaxes the engine reads. Each C-STORE dataset streams PDV by PDV into the spool (the
// library's default SCP would hold it in memory), is checked by the engine, then committed and synced;
// only then does the response say 0000. The socket is paused while the disk is behind.
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import dimse from 'dcmjs-dimse';
import type { DeidPolicy } from '../deid/deidentify.ts';
import { PixelWithheldError } from '../deid/errors.ts';
import { encodeFileMeta } from '../dicom/part10-writer.ts';
import { EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, transferSyntax } from '../dicom/transfer-syntax.ts';
import { OcrBusyError } from '../dicomweb/errors.ts';
import { callerCheck, type Caller, type Uploader } from './callers.ts';
import { SopClassNotAcceptedError } from './errors.ts';
import type { DimseLog, Forwarder } from './forwarder.ts';
import type { UploadOcr } from '../dicomweb/upload-ocr.ts';
import { checkInstance } from './intake.ts';
import { PduGuard } from './pdu-guard.ts';
import { commandOfModel, isQueryRetrieveModel, type Operation, type QueryRetrieveCommand, type ResearchFace } from './research-face.ts';
import { FindStatus } from './research-find.ts';
import { RetrieveStatus } from './retrieve-status.ts';
import type { Spool, SpoolWriter } from './spool.ts';
import { acceptablePeerMaxLength, messageBoundary, sendingMaxLength } from './store-sender.ts';
import { StoreStatus, statusHex, storeStatusOf } from './store-status.ts';
import type { GatewayConfig } from '../config/schema.ts';

const { Scp, Dataset } = dimse;
const { CEchoResponse, CStoreResponse, CFindResponse, CGetResponse, CMoveResponse } = dimse.responses;
const { PresentationContextResult, RejectResult, RejectSource, RejectReason, SopClass } = dimse.constants;
type Association = InstanceType<typeof dimse.association.Association>;
type PresentationContext = InstanceType<typeof dimse.association.PresentationContext>;
type CStoreRequest = InstanceType<typeof dimse.requests.CStoreRequest>;
type CEchoRequest = InstanceType<typeof dimse.requests.CEchoRequest>;
type CFindRequest = InstanceType<typeof dimse.requests.CFindRequest>;
type CGetRequest = InstanceType<typeof dimse.requests.CGetRequest>;
type CMoveRequest = InstanceType<typeof dimse.requests.CMoveRequest>;
type CCancelRequest = InstanceType<typeof dimse.requests.CCancelRequest>;
type StoreResponse = InstanceType<typeof dimse.responses.CStoreResponse>;
type EchoResponse = InstanceType<typeof dimse.responses.CEchoResponse>;

// The library logs to the console; this listener logs through the gateway's logger instead.
dimse.log.setLevel('silent');

/** PS3.4 B.5: the Storage SOP Classes live under this root (private and non-storage SOP classes are refused). */
const STORAGE_ROOT = '1.2.840.10008.5.1.4.1.1.';

export function isStorageSopClass(uid: string): boolean {
  return uid.startsWith(STORAGE_ROOT) && /^[0-9.]+$/.test(uid);
}

/**
 * Associations one researcher caller may hold at once. Each runs one operation at a time (no asynchronous
 * operations are negotiated, PS3.7 D.3.3.3), each asking the view; more are refused (A-ASSOCIATE-RJ
 * transient, local limit exceeded).
 */
export const MAX_RESEARCH_ASSOCIATIONS = 4;

/**
 * PS3.7 D.3.3.3: without the Asynchronous Operations Window negotiated (this listener never accepts it),
 * one operation is outstanding at a time. A second one while one runs is refused with the model's
 * "Refused: Out of Resources" (PS3.4 C.4.1.1.4 Table C.4-1 A700; C.4.2.1.5 / C.4.3.1.4 A702).
 */
const BUSY_STATUS: Readonly<Record<QueryRetrieveCommand, number>> = {
  'C-FIND': FindStatus.outOfResources,
  'C-GET': RetrieveStatus.unableToPerformSubOperations,
  'C-MOVE': RetrieveStatus.unableToPerformSubOperations,
};

/** The presentation context each request came on (dcmjs-dimse hands its handlers the request alone). */
const requestContexts = new WeakMap<object, PresentationContext>();

/** dcmjs-dimse's Network method that dispatches a message read from a PDV, with the PDV's context. */
interface Dispatch {
  _performDimse(context: PresentationContext, message: object): void;
}

/** Resolves once `socket` has room (its 'drain'), at once if it has; also when it closes or `signal` aborts. */
function drained(socket: Socket, signal: AbortSignal): Promise<void> {
  if (!socket.writableNeedDrain || socket.destroyed || signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    socket.once('drain', done);
    socket.once('close', done);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** PS3.5 A.1, A.2: Implicit and Explicit VR Little Endian, the syntaxes a Query/Retrieve context is accepted in. */
const IDENTIFIER_SYNTAXES: ReadonlySet<string> = new Set([IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN]);

/** The engine reads it (PS3.5 Annex A; dicom/transfer-syntax.ts refuses the rest). */
function engineReads(uid: string): boolean {
  try {
    transferSyntax(uid);
    return true;
  } catch {
    return false;
  }
}

/** What the metrics see of the listener. */
export interface ListenerObserver {
  association(outcome: 'accepted' | 'rejected' | 'aborted'): void;
  /** One C-STORE answered, by its status. */
  instance(status: number): void;
}

export interface ListenerOptions {
  readonly config: GatewayConfig['dimse'];
  readonly spool: Spool;
  readonly forwarder: Forwarder;
  /** The uploader policy the intake check runs the engine with. */
  readonly policy: DeidPolicy;
  /** OCR for the uploader profile's `pixels.ocr` (intake.ts): absent, an instance OCR might redact is refused as withheld. */
  readonly ocr?: UploadOcr;
  readonly maxHeaderBytes: number;
  readonly log: DimseLog;
  readonly observe?: ListenerObserver;
  /** The research face (C-FIND, C-GET, C-MOVE for researcher callers); absent, their associations are refused. */
  readonly research?: ResearchFace;
}

export interface DimseListener {
  readonly port: number;
  /** Stops accepting, drops open associations (what they acknowledged is in the spool), settles work under way. */
  close(): Promise<void>;
}

/** AE titles from the wire, for the log: printable ASCII only, 16 characters at most (PS3.5 6.2). */
function printable(title: string): string {
  return title.replace(/[^\x20-\x7e]/g, '?').trim().slice(0, 16);
}

interface Received {
  readonly writer?: SpoolWriter;
  readonly refusal?: Error;
  readonly affected: { readonly sopClass: string; readonly sopInstance: string };
}

export async function startDimseListener(options: ListenerOptions): Promise<DimseListener> {
  const { config, spool, forwarder, log, observe } = options;
  const check = callerCheck(config);
  /** Researcher associations open now, by calling AE title (MAX_RESEARCH_ASSOCIATIONS). */
  const researchAssociations = new Map<string, number>();
  const work = new Set<Promise<unknown>>();
  const track = <T>(promise: Promise<T>): Promise<T> => {
    work.add(promise);
    void promise.finally(() => work.delete(promise)).catch(() => undefined);
    return promise;
  };

  class GatewayScp extends Scp {
    readonly id = `assoc-${randomBytes(6).toString('hex')}`;
    caller: Caller | undefined;
    /** Datasets received (or being received), by their request, until the C-STORE is answered. */
    readonly received = new Map<CStoreRequest, Received>();
    receiving: SpoolWriter | undefined;
    /** Work under way on this association (not `pending`: the library's own list of requests awaiting a response). */
    readonly underway = new Set<Promise<unknown>>();
    /** The research face's operations under way, by Message ID (a C-CANCEL names one, PS3.7 9.3.2.3). */
    readonly operations = new Map<number, AbortController>();
    readonly conn: Socket;
    /** The researcher AE title this association counts against MAX_RESEARCH_ASSOCIATIONS, until it ends. */
    counted: string | undefined;

    constructor(socket: Socket, opts: ConstructorParameters<typeof Scp>[1]) {
      super(socket, opts);
      this.conn = socket;
      // Each request is remembered with the context its PDVs came on, which the operation checks (PS3.7 9.1.2.1 / 9.1.3.1 / 9.1.4.1).
      const network = this as unknown as Dispatch;
      const perform = network._performDimse.bind(this);
      network._performDimse = (context, message) => {
        requestContexts.set(message, context);
        perform(context, message);
      };
      const guard = new PduGuard({ maxPduBytes: config.maxPduBytes, dataAllowed: () => this.caller !== undefined });
      // Before the library reads a chunk: refuse what it would buffer without bound.
      let dropped = false;
      socket.prependListener('data', (chunk: Buffer) => {
        if (dropped) return;
        try {
          guard.feed(chunk);
        } catch (error) {
          dropped = true;
          log.warn({ association: this.id, err: (error as { code?: string }).code }, 'DIMSE connection dropped');
          observe?.association('aborted');
          socket.destroy();
        }
      });
      // After it: the library writes PDVs without waiting, so the socket is paused until the spool catches up.
      socket.on('data', () => {
        const writer = this.receiving;
        if (!writer?.writableNeedDrain || socket.isPaused()) return;
        socket.pause();
        const resume = (): void => void socket.resume();
        writer.once('drain', resume);
        writer.once('close', resume);
      });
      this.on('close', () => void this.ended());
      this.on('networkError', () => socket.destroy());
    }

    override associationRequested(association: Association): void {
      const calling = association.getCallingAeTitle();
      const called = association.getCalledAeTitle();
      const peer = this.conn.remoteAddress;
      const result = check(called, calling, peer);
      if ('refusal' in result) {
        // PS3.8 9.3.4: rejected-permanent by the service user, reason 3 (calling AE) or 7 (called AE).
        const reason = result.refusal === 'called-ae-not-recognized' ? RejectReason.CalledAeNotRecognized : RejectReason.CallingAeNotRecognized;
        this.sendAssociationReject(RejectResult.Permanent, RejectSource.ServiceUser, reason);
        this.conn.end();
        observe?.association('rejected');
        log.warn({ association: this.id, callingAe: printable(calling), calledAe: printable(called), peer, reason: result.refusal }, 'DIMSE association rejected');
        return;
      }
      if (result.caller.role === 'researcher' && !options.research) {
        // A researcher caller with no research face: as unknown (the listener serves only C-STORE here).
        this.sendAssociationReject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CallingAeNotRecognized);
        this.conn.end();
        observe?.association('rejected');
        log.warn({ association: this.id, callingAe: result.caller.aeTitle, peer, reason: 'research-face-off' }, 'DIMSE association rejected');
        return;
      }
      // PS3.8 D.1: the Maximum Length this listener sends with; 0 (no limit) or at least MIN_PEER_MAX_LENGTH.
      const peerMaxPduLength = association.getMaxPduLength();
      if (!acceptablePeerMaxLength(peerMaxPduLength)) {
        // PS3.8 9.3.4: rejected-permanent by the service user, no reason given (the standard names none for this).
        this.sendAssociationReject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.NoReasonGiven);
        this.conn.end();
        observe?.association('rejected');
        log.warn({ association: this.id, callingAe: result.caller.aeTitle, peer, maxLength: peerMaxPduLength, reason: 'max-length-below-floor' }, 'DIMSE association rejected');
        return;
      }
      if (result.caller.role === 'researcher' && (researchAssociations.get(result.caller.aeTitle) ?? 0) >= MAX_RESEARCH_ASSOCIATIONS) {
        // PS3.8 9.3.4: rejected-transient by the service provider (presentation), local limit exceeded.
        this.sendAssociationReject(RejectResult.Transient, RejectSource.ServiceProviderPresentation, RejectReason.LocalLimitExceeded);
        this.conn.end();
        observe?.association('rejected');
        log.warn({ association: this.id, callingAe: result.caller.aeTitle, peer, max: MAX_RESEARCH_ASSOCIATIONS, reason: 'too-many-associations' }, 'DIMSE association rejected');
        return;
      }
      this.caller = result.caller;
      const researcher = result.caller.role === 'researcher';
      for (const { id } of association.getPresentationContexts() as { id: number }[]) {
        const context = association.getPresentationContext(id) as PresentationContext;
        const abstract = context.getAbstractSyntaxUid();
        // An uploader stores; a researcher queries and retrieves, and takes storage contexts only in the
        // SCP role, for the C-STORE sub-operations of its C-GET (PS3.4 C.4.3.3, PS3.7 D.3.3.4).
        const served =
          abstract === SopClass.Verification ||
          (researcher ? isQueryRetrieveModel(abstract) || (isStorageSopClass(abstract) && context.getProviderRole() === true) : isStorageSopClass(abstract));
        if (!served) {
          context.setResult(PresentationContextResult.RejectAbstractSyntaxNotSupported);
          continue;
        }
        // PS3.8 9.3.3.2: one of the proposed transfer syntaxes, the first the engine reads; a Query/Retrieve
        // Identifier is read by dcmjs-dimse itself, which reads the uncompressed little-endian ones only.
        const syntax = context.getTransferSyntaxUids().find(isQueryRetrieveModel(abstract) ? (uid) => IDENTIFIER_SYNTAXES.has(uid) : engineReads);
        if (syntax === undefined) context.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported);
        else context.setResult(PresentationContextResult.Accept, syntax);
      }
      // PS3.8 D.1: the Maximum Length this listener receives; the guard enforces it. The library sends with
      // the association's value, so once the A-ASSOCIATE-AC is written it holds what this listener sends
      // with: the peer's own, capped and even (store-sender.ts sendingMaxLength), what the C-GET
      // sub-operations and long responses must fit in.
      association.setMaxPduLength(config.maxPduBytes);
      this.sendAssociationAccept();
      association.setMaxPduLength(sendingMaxLength(peerMaxPduLength));
      if (researcher) {
        this.counted = result.caller.aeTitle;
        researchAssociations.set(this.counted, (researchAssociations.get(this.counted) ?? 0) + 1);
      }
      observe?.association('accepted');
      log.info({ association: this.id, callingAe: result.caller.aeTitle, peer }, 'DIMSE association accepted');
    }

    override associationReleaseRequested(): void {
      this.sendAssociationReleaseResponse();
    }

    override cEchoRequest(request: CEchoRequest, callback: (response: EchoResponse) => void): void {
      const response = CEchoResponse.fromRequest(request);
      response.setStatus(StoreStatus.success);
      // Not between the PDVs of a C-STORE-RQ a C-GET is sending (PS3.8 E.1).
      void messageBoundary(this.conn).then(() => {
        if (!this.conn.destroyed) callback(response);
      });
    }

    /** The C-STORE dataset goes to a spool file as it arrives, after the Part 10 header made from the command. */
    override createStoreWritableStream(context: PresentationContext | undefined, request: CStoreRequest): Writable {
      const affected = { sopClass: String(request.getAffectedSopClassUid() ?? ''), sopInstance: String(request.getAffectedSopInstanceUid() ?? '') };
      // PS3.7 9.1.1.1: the request's SOP Class is the one its presentation context accepted.
      if (this.caller?.role !== 'uploader' || !context || context.getResult() !== PresentationContextResult.Accept || context.getAbstractSyntaxUid() !== affected.sopClass || !isStorageSopClass(affected.sopClass)) {
        this.received.set(request, { affected, refusal: new SopClassNotAcceptedError() });
        return new Writable({ write: (_chunk, _encoding, done) => done() });
      }
      // PS3.10 7.1: preamble, "DICM" and File Meta from the command and the accepted transfer syntax.
      const head = encodeFileMeta({ transferSyntaxUID: context.getAcceptedTransferSyntaxUid() ?? '', mediaStorageSOPClassUID: affected.sopClass, mediaStorageSOPInstanceUID: affected.sopInstance });
      const writer = spool.incoming(head);
      writer.on('error', () => undefined); // settled carries it
      this.received.set(request, { affected, writer });
      this.receiving = writer;
      return writer;
    }

    /** The dataset is on disk (not in memory): the request carries an empty Dataset; cStoreRequest reads the file. */
    override createDatasetFromStoreWritableStream(_writable: Writable, _context: PresentationContext, callback: (dataset: InstanceType<typeof Dataset>) => void): void {
      this.receiving = undefined;
      callback(new Dataset());
    }

    override cStoreRequest(request: CStoreRequest, callback: (response: StoreResponse) => void): void {
      const received = this.received.get(request);
      this.received.delete(request);
      const done = track(this.store(received)).then((status) => {
        const response = CStoreResponse.fromRequest(request);
        response.setStatus(status);
        observe?.instance(status);
        if (!this.conn.destroyed) callback(response);
      });
      this.underway.add(done);
      void done.finally(() => this.underway.delete(done));
    }

    /** PS3.4 B.2.3: 0000 only once the instance is checked, committed and synced; otherwise its failure status. */
    async store(received: Received | undefined): Promise<number> {
      const caller = this.caller as Uploader | undefined;
      if (!received?.writer || caller?.role !== 'uploader') return storeStatusOf(received?.refusal);
      const { writer, affected } = received;
      try {
        await writer.settled;
        if (writer.overQuota) {
          await spool.discard(writer);
          return StoreStatus.outOfResources;
        }
        const identity = await checkInstance(writer.path, affected, options.policy, options.maxHeaderBytes, options.ocr);
        await forwarder.accept(writer, identity, caller, this.id);
        return StoreStatus.success;
      } catch (error) {
        await spool.discard(writer).catch(() => undefined);
        const status = storeStatusOf(error);
        const code = (error as { code?: unknown }).code;
        const entry = { association: this.id, callingAe: caller.aeTitle, err: typeof code === 'string' ? code : 'INTERNAL_ERROR', status: statusHex(status) };
        // Withheld by the pixel policy: a policy outcome, logged at info with its reason and criterion (never a value).
        if (error instanceof PixelWithheldError) log.info({ ...entry, withheld: error.reason, detail: error.detail }, 'DIMSE C-STORE refused');
        // OCR's detector full or out of time (A700): the withhold it stood for names the OCR failure.
        else if (error instanceof OcrBusyError) log.warn({ ...entry, detail: error.withheld.detail }, 'DIMSE C-STORE refused');
        else log.warn(entry, 'DIMSE C-STORE refused');
        return status;
      }
    }

    override cFindRequest(request: CFindRequest, callback: (responses: InstanceType<typeof CFindResponse>[]) => void): void {
      this.operate(request, callback, CFindResponse, 'C-FIND', (face, op) => face.find(op));
    }

    override cGetRequest(request: CGetRequest, callback: (responses: InstanceType<typeof CGetResponse>[]) => void): void {
      this.operate(request, callback, CGetResponse, 'C-GET', (face, op) => face.get(op, this));
    }

    override cMoveRequest(request: CMoveRequest, callback: (responses: InstanceType<typeof CMoveResponse>[]) => void): void {
      this.operate(request, callback, CMoveResponse, 'C-MOVE', (face, op) => face.move(op));
    }

    override cCancelRequest(request: CCancelRequest): void {
      const id = (request as unknown as { getMessageIdBeingRespondedTo(): number }).getMessageIdBeingRespondedTo();
      this.operations.get(id)?.abort(new Error('C-CANCEL'));
    }

    /**
     * One research-face operation: refused (0122) unless the caller is a researcher and the request came on
     * a context accepted for the model of its command that names its Affected SOP Class; refused (A700 /
     * A702) while another runs on the association; a Message ID in use aborts the association. A failure
     * the operation did not answer is C000.
     */
    operate<R extends CFindRequest | CGetRequest | CMoveRequest>(
      request: R,
      callback: (responses: never[]) => void,
      Response: { fromRequest(request: R): { setStatus(status: number): void } },
      command: QueryRetrieveCommand,
      run: (face: ResearchFace, op: Operation<R>) => Promise<void>,
    ): void {
      // The library's callback sends once (async-event-emitter2 wraps it; a second call throws) and an
      // operation answers many times: every response goes through the library's sender, on the request's
      // own presentation context; the callback only where no context is found, and only once.
      let calledBack = false;
      const own = requestContexts.get(request);
      const send = (list: readonly unknown[]) => {
        if (list.length === 0 || this.conn.destroyed) return;
        const network = this as unknown as {
          association: { getAcceptedPresentationContextFromRequest(r: unknown): PresentationContext | undefined };
          _sendDimse(message: { context: PresentationContext; command: unknown }): void;
        };
        const context = own?.getResult() === PresentationContextResult.Accept ? own : network.association.getAcceptedPresentationContextFromRequest(request);
        if (context) for (const message of list) network._sendDimse({ context, command: message });
        else if (!calledBack) {
          calledBack = true;
          callback(list as never[]);
        }
      };
      // A refusal may come while a C-GET of this association is sending a C-STORE-RQ: after its last PDV (PS3.8 E.1).
      const refuse = (status: number, reason: string) => {
        const response = Response.fromRequest(request);
        response.setStatus(status);
        void messageBoundary(this.conn).then(() => send([response]));
        log.warn({ association: this.id, callingAe: this.caller?.aeTitle, command, status: statusHex(status), reason }, 'DIMSE research operation refused');
      };
      const face = options.research;
      const caller = this.caller;
      if (!face || caller?.role !== 'researcher') {
        refuse(StoreStatus.sopClassNotSupported, 'not-a-researcher');
        return;
      }
      // PS3.7 9.1.2.1 / 9.1.3.1 / 9.1.4.1: the Affected SOP Class is the request's model, on a context accepted for it.
      const abstract = own?.getResult() === PresentationContextResult.Accept ? own.getAbstractSyntaxUid() : undefined;
      if (abstract === undefined || abstract !== String(request.getAffectedSopClassUid() ?? '') || commandOfModel(abstract) !== command) {
        refuse(StoreStatus.sopClassNotSupported, 'not-the-model-of-the-command');
        return;
      }
      const id = request.getMessageId() as number;
      if (this.operations.has(id)) {
        // PS3.7 9.1.1.1 (Message ID unique among the requests outstanding): any answer to it would read as
        // the running operation's own (PS3.7 C 0210 Duplicate invocation could not be told apart), so the
        // association is aborted (PS3.8 7.3, A-ABORT by the service user).
        log.warn({ association: this.id, callingAe: caller.aeTitle, command, reason: 'duplicate-message-id' }, 'DIMSE association aborted');
        observe?.association('aborted');
        this.abortAssociation();
        return;
      }
      if (this.operations.size > 0) {
        refuse(BUSY_STATUS[command], 'operation-under-way');
        return;
      }
      const controller = new AbortController();
      this.operations.set(id, controller);
      let answered = false;
      const op: Operation<R> = {
        caller,
        association: this.id,
        request,
        signal: controller.signal,
        respond: (responses) => {
          const list = Array.isArray(responses) ? responses : [responses];
          if (list.some((r) => !isPending((r as { getStatus(): number }).getStatus()))) answered = true;
          send(list);
        },
        drained: () => drained(this.conn, controller.signal),
      };
      const done = track(run(face, op))
        .catch((error: unknown) => {
          log.warn({ association: this.id, callingAe: caller.aeTitle, err: (error as { code?: unknown }).code ?? 'INTERNAL_ERROR' }, 'DIMSE research operation failed');
          if (!answered) {
            const response = Response.fromRequest(request);
            response.setStatus(StoreStatus.cannotUnderstand);
            send([response]);
          }
        })
        .finally(() => {
          // Only its own entry: never another operation's that took the same Message ID.
          if (this.operations.get(id) === controller) this.operations.delete(id);
        });
      this.underway.add(done);
      void done.finally(() => this.underway.delete(done));
    }

    /** PS3.8 7.3: A-ABORT by the service user, then the connection is closed. */
    abortAssociation(): void {
      if (this.conn.destroyed) return;
      (this as unknown as { sendAbort(source: number, reason: number): void }).sendAbort(0, 0);
      this.conn.end();
      setTimeout(() => this.conn.destroy(), 1_000).unref();
    }

    /** The association is over (released, aborted, dropped): partial instances go, its studies may be forwarded. */
    async ended(): Promise<void> {
      if (this.counted !== undefined) {
        const left = (researchAssociations.get(this.counted) ?? 1) - 1;
        if (left > 0) researchAssociations.set(this.counted, left);
        else researchAssociations.delete(this.counted);
        this.counted = undefined;
      }
      for (const controller of this.operations.values()) controller.abort(new Error('association ended'));
      for (const { writer } of this.received.values()) {
        if (!writer) continue;
        writer.destroy();
        await writer.settled.catch(() => undefined);
        await spool.discard(writer).catch(() => undefined);
      }
      this.received.clear();
      await Promise.allSettled([...this.underway]);
      forwarder.associationEnded(this.id);
    }

    override abort(): void {
      this.conn.destroy();
    }
  }

  const sockets = new Set<Socket>();
  const opts = { pduTimeout: config.pduTimeoutMs, associationTimeout: config.pduTimeoutMs, connectTimeout: config.pduTimeoutMs };
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    // Each C-STORE-RSP is one small PDU the peer waits for: Nagle's delay (against its delayed ACK) would cost ~40 ms per instance.
    socket.setNoDelay(true);
    const scp = new GatewayScp(socket, opts);
    (scp as unknown as { connected: boolean }).connected = true;
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  log.info({ port, aeTitle: config.aeTitle }, 'DIMSE listener listening');
  return {
    port,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      await Promise.allSettled([...work]);
    },
  };
}

/** PS3.7 C: FF00 and FF01 are Pending; every other status ends the operation. */
function isPending(status: number): boolean {
  return status === 0xff00 || status === 0xff01;
}

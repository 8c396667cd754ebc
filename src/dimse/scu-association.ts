// Storage associations this gateway opens as the requestor (PS3.8 7.1, 9.3.2): to a C-MOVE destination,
// for the C-STORE sub-operations (PS3.4 C.4.2.3). dcmjs-dimse's Network frames the association PDUs and
// parses the answers (A-ASSOCIATE-AC/RJ, C-STORE-RSP, A-RELEASE-RP); store-sender.ts writes the
// C-STORE-RQs. What the peer sends is watched by the listener's PduGuard before the library buffers it.
import { connect, type Socket } from 'node:net';
import dimse from 'dcmjs-dimse';
import { EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN } from '../dicom/transfer-syntax.ts';
import { AssociationLostError, DestinationUnavailableError } from './errors.ts';
import { PduGuard } from './pdu-guard.ts';
import { acceptablePeerMaxLength, channelOf, sendingMaxLength, type DimseChannel } from './store-sender.ts';

const { Association } = dimse.association;
const { PresentationContextResult } = dimse.constants;
type AssociationType = InstanceType<typeof Association>;

/** PS3.8 9.3.2.2: Presentation Context IDs are odd integers 1-255, so at most 128 contexts. */
export const MAX_PRESENTATION_CONTEXTS = 128;

/** dcmjs-dimse's Network (what its Scp and Client build on), which the package does not export by name. */
type Network = InstanceType<typeof dimse.Scp>;
type NetworkOptions = { connectTimeout: number; associationTimeout: number; pduTimeout: number };
const NetworkClass = Object.getPrototypeOf(dimse.Scp) as new (socket: Socket, options: NetworkOptions) => Network;

/** A context accepted for a storage SOP Class, and its one transfer syntax (PS3.8 9.3.3.2). */
export interface StorageContext {
  readonly contextId: number;
  readonly transferSyntaxUid: string;
}

/**
 * The contexts of `association` accepted for each storage SOP Class, best first: Explicit VR Little
 * Endian, Implicit VR Little Endian (what the view always has or can transcode to), then the others in
 * the order proposed. `usable` filters (the C-GET listener accepted storage only in the SCP role).
 */
export function storageContexts(association: AssociationType, usable: (abstractSyntaxUid: string) => boolean): Map<string, StorageContext[]> {
  const rank = (ts: string) => (ts === EXPLICIT_VR_LITTLE_ENDIAN ? 0 : ts === IMPLICIT_VR_LITTLE_ENDIAN ? 1 : 2);
  const out = new Map<string, StorageContext[]>();
  for (const { id } of association.getPresentationContexts() as { id: number }[]) {
    const context = association.getPresentationContext(id);
    const abstract = context.getAbstractSyntaxUid();
    const ts = context.getAcceptedTransferSyntaxUid();
    if (context.getResult() !== PresentationContextResult.Accept || !ts || !usable(abstract)) continue;
    const list = out.get(abstract) ?? [];
    list.push({ contextId: id, transferSyntaxUid: ts });
    out.set(abstract, list);
  }
  for (const list of out.values()) list.sort((a, b) => rank(a.transferSyntaxUid) - rank(b.transferSyntaxUid));
  return out;
}

export interface StorageAssociationOptions {
  readonly host: string;
  readonly port: number;
  readonly callingAeTitle: string;
  readonly calledAeTitle: string;
  /** One context per SOP Class (the first MAX_PRESENTATION_CONTEXTS), each proposing `transferSyntaxUids`. */
  readonly sopClassUids: readonly string[];
  readonly transferSyntaxUids: readonly string[];
  /** The Maximum Length offered (PS3.8 D.1) and enforced on what the destination sends. */
  readonly maxPduBytes: number;
  /** Connection, association, PDU and release timeouts. */
  readonly timeoutMs: number;
}

export interface StorageAssociation {
  readonly channel: DimseChannel;
  readonly contexts: ReadonlyMap<string, readonly StorageContext[]>;
  /** PS3.8 7.2 A-RELEASE; then the connection is closed. */
  release(): Promise<void>;
  /** PS3.8 7.3 A-ABORT (service user); then the connection is closed. */
  abort(): void;
}

/** Opens an association to a storage SCP; rejects with DestinationUnavailableError when it cannot be had. */
export async function openStorageAssociation(options: StorageAssociationOptions): Promise<StorageAssociation> {
  const socket = connect({ host: options.host, port: options.port });
  socket.setNoDelay(true);
  socket.on('error', () => undefined); // the Network reports it as networkError
  const network = new NetworkClass(socket, { connectTimeout: options.timeoutMs, associationTimeout: options.timeoutMs, pduTimeout: options.timeoutMs });
  let accepted = false;
  const guard = new PduGuard({ maxPduBytes: options.maxPduBytes, dataAllowed: () => accepted });
  socket.prependListener('data', (chunk: Buffer) => {
    if (socket.destroyed) return;
    try {
      guard.feed(chunk);
    } catch {
      socket.destroy();
    }
  });
  const close = () => {
    socket.end();
    setTimeout(() => socket.destroy(), 1_000).unref();
  };

  const association = new Association(options.callingAeTitle, options.calledAeTitle);
  association.setMaxPduLength(options.maxPduBytes);
  for (const uid of options.sopClassUids.slice(0, MAX_PRESENTATION_CONTEXTS)) {
    const id = association.addPresentationContext(uid);
    for (const ts of options.transferSyntaxUids) association.addTransferSyntaxToPresentationContext(id, ts);
  }

  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new DestinationUnavailableError('timeout')), options.timeoutMs);
      const fail = (error: Error) => {
        clearTimeout(timer);
        reject(error);
      };
      network.once('connect', () => network.sendAssociationRequest(association));
      network.once('associationAccepted', () => {
        clearTimeout(timer);
        resolve();
      });
      network.once('associationRejected', () => fail(new DestinationUnavailableError('rejected')));
      network.once('abort', () => fail(new DestinationUnavailableError('aborted')));
      network.once('networkError', (error: unknown) => fail(new DestinationUnavailableError('unreachable', { cause: error })));
      network.once('close', () => fail(new DestinationUnavailableError('unreachable')));
    });
  } catch (error) {
    socket.destroy();
    throw error;
  }
  // PS3.8 D.1: the A-ASSOCIATE-AC gave the destination's Maximum Length; below the floor nothing is sent.
  const peerMaxPduLength = association.getMaxPduLength();
  if (!acceptablePeerMaxLength(peerMaxPduLength)) {
    network.sendAbort(0, 0);
    close();
    throw new DestinationUnavailableError('max-length');
  }
  association.setMaxPduLength(sendingMaxLength(peerMaxPduLength));
  accepted = true;
  network.on('networkError', () => socket.destroy());
  network.on('abort', () => socket.destroy());

  return {
    channel: channelOf(network),
    contexts: storageContexts(association, () => true),
    async release() {
      if (socket.destroyed) return;
      try {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new AssociationLostError()), options.timeoutMs);
          const done = () => {
            clearTimeout(timer);
            resolve();
          };
          network.once('associationReleaseResponse', done);
          socket.once('close', done);
          network.sendAssociationReleaseRequest();
        });
      } finally {
        close();
      }
    },
    abort() {
      if (socket.destroyed) return;
      // PS3.8 9.3.8: source 0 (service user), reason 0.
      network.sendAbort(0, 0);
      close();
    },
  };
}

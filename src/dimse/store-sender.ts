// C-STORE-RQ sent as it streams (PS3.7 9.3.1.1, PS3.8 9.3.5): the command set encoded here, the dataset
// cut into P-DATA-TF PDVs as its bytes arrive, each PDU written when the socket has room. dcmjs-dimse's
// own sender re-encodes a whole in-memory dataset (and sends a C-GET's sub-operations on the C-GET's
// context); this one holds at most two fragments of one instance. The C-STORE-RSP comes back through the
// library's parser, which hands a response to the entry of its `pending` list with the same Message ID.
import type { Socket } from 'node:net';
import type dimse from 'dcmjs-dimse';
import { encodeElementHeader } from '../dicom/part10-writer.ts';
import { padValue } from '../dicom/vr.ts';
import { AssociationLostError, PeerMaxLengthError, StoreIncompleteError, StoreTimeoutError, SubOperationError } from './errors.ts';

const IMPLICIT_LE = { explicitVr: false, littleEndian: true } as const;
/** PS3.7 E.1: CommandField C-STORE-RQ; CommandDataSetType other than 0101H: a dataset follows. */
const C_STORE_RQ = 0x0001;
const DATASET_PRESENT = 0x0001;
/** PS3.7 9.1.1.1: Priority MEDIUM. */
const PRIORITY_MEDIUM = 0x0000;
/** PS3.8 9.3.1: the P-DATA-TF PDU type; PS3.8 9.3.5.1: a PDV item's own header is 6 bytes. */
const P_DATA_TF = 0x04;
const PDU_HEADER = 6;
const PDV_HEADER = 6;
/** A peer that sets no Maximum Length (0, PS3.8 D.1) still gets PDUs no longer than this. */
export const UNLIMITED_PDU_FALLBACK = 256 * 1024;
/**
 * No PDU this gateway sends is longer than this, whatever the peer allows: a fragment is held in memory
 * (two of them while one is sent), so a peer's Maximum Length of up to 4 GiB never becomes a buffer that large.
 */
export const MAX_PDU_SENT = 1024 * 1024;
/**
 * PS3.8 D.1 sets no minimum Maximum Length; a peer asking for less than this (other than 0, no limit) is
 * refused at association (listener.ts, scu-association.ts): a 6-byte PDV header per few bytes of data
 * would multiply every write, and below 8 no even fragment fits at all. 4 KiB is DCMTK's own floor
 * (ASC_MINIMUMPDUSIZE) for what it offers; dcmjs-dimse loops without end below 7.
 */
export const MIN_PEER_MAX_LENGTH = 4096;

/** One C-STORE-RQ's command fields (PS3.7 Table 9.3-1). */
export interface StoreCommand {
  readonly messageId: number;
  readonly sopClassUid: string;
  readonly sopInstanceUid: string;
  /** A C-MOVE's sub-operation names the C-MOVE's requester and request (PS3.7 9.3.1.1, PS3.4 C.4.2.3). */
  readonly moveOriginator?: { readonly aeTitle: string; readonly messageId: number };
}

/** PS3.7 6.3.1 / E.1: the command set of a C-STORE-RQ, Implicit VR Little Endian, group 0000 in tag order. */
export function encodeStoreCommand(command: StoreCommand): Buffer {
  const us = (value: number) => {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(value, 0);
    return b;
  };
  const text = (value: string, vr: 'UI' | 'AE') => padValue(Buffer.from(value, 'latin1'), vr);
  const elements: [number, string, Buffer][] = [
    [0x00000002, 'UI', text(command.sopClassUid, 'UI')], // Affected SOP Class UID
    [0x00000100, 'US', us(C_STORE_RQ)], // Command Field
    [0x00000110, 'US', us(command.messageId)], // Message ID
    [0x00000700, 'US', us(PRIORITY_MEDIUM)], // Priority
    [0x00000800, 'US', us(DATASET_PRESENT)], // Command Data Set Type
    [0x00001000, 'UI', text(command.sopInstanceUid, 'UI')], // Affected SOP Instance UID
  ];
  if (command.moveOriginator) {
    elements.push([0x00001030, 'AE', text(command.moveOriginator.aeTitle, 'AE')]); // Move Originator Application Entity Title
    elements.push([0x00001031, 'US', us(command.moveOriginator.messageId)]); // Move Originator Message ID
  }
  const body = Buffer.concat(elements.flatMap(([tag, vr, value]) => [encodeElementHeader(tag, vr, value.length, IMPLICIT_LE), value]));
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(body.length, 0);
  return Buffer.concat([encodeElementHeader(0x00000000, 'UL', 4, IMPLICIT_LE), groupLength, body]);
}

/**
 * PS3.8 9.3.5 and 9.3.5.1: the P-DATA-TF PDU header and its one PDV item header for a fragment of
 * `length` bytes; the message control header says command or dataset, and whether it is the last fragment.
 */
export function pdvHeader(contextId: number, length: number, command: boolean, last: boolean): Buffer {
  const head = Buffer.alloc(PDU_HEADER + PDV_HEADER);
  head.writeUInt8(P_DATA_TF, 0);
  head.writeUInt32BE(PDV_HEADER + length, 2); // the variable field: one PDV item (4-byte length, 2 header bytes, fragment)
  head.writeUInt32BE(length + 2, 6);
  head.writeUInt8(contextId, 10);
  head.writeUInt8((command ? 0x01 : 0x00) | (last ? 0x02 : 0x00), 11);
  return head;
}

/** The peer's Maximum Length (PS3.8 D.1) is one this gateway sends to: 0 (no limit), or at least MIN_PEER_MAX_LENGTH. */
export function acceptablePeerMaxLength(peerMaxPduLength: number): boolean {
  return Number.isSafeInteger(peerMaxPduLength) && (peerMaxPduLength === 0 || peerMaxPduLength >= MIN_PEER_MAX_LENGTH);
}

/**
 * The largest fragment a PDU to a peer may carry: its Maximum Length (PS3.8 D.1, the P-DATA-TF variable
 * field; 0 means no limit, which gets UNLIMITED_PDU_FALLBACK), at most MAX_PDU_SENT, less the PDV item
 * header, rounded down to even (PS3.8 E.1: every fragment has an even number of bytes; messages are even,
 * PS3.5 7.1, so the last one is too). Plain arithmetic: the value is up to 2^32 - 1, past 32-bit bitwise
 * operators. A Maximum Length the association should have refused (acceptablePeerMaxLength) throws.
 */
export function maxFragmentBytes(peerMaxPduLength: number): number {
  if (!acceptablePeerMaxLength(peerMaxPduLength)) throw new PeerMaxLengthError();
  const fragment = Math.min(peerMaxPduLength > 0 ? peerMaxPduLength : UNLIMITED_PDU_FALLBACK, MAX_PDU_SENT) - PDV_HEADER;
  return fragment - (fragment % 2);
}

/**
 * The Maximum Length this gateway sends with on an association whose peer gave `peerMaxPduLength`: the
 * longest PDU maxFragmentBytes allows. dcmjs-dimse's own sender (C-FIND, C-GET and C-MOVE responses)
 * fragments by the association's value; given this one, its fragments are even and within both limits.
 */
export function sendingMaxLength(peerMaxPduLength: number): number {
  return maxFragmentBytes(peerMaxPduLength) + PDV_HEADER;
}

export interface Fragment {
  readonly bytes: Buffer;
  readonly last: boolean;
}

/**
 * `source` cut into fragments of exactly `max` bytes (the last shorter). One full fragment is held until
 * the next byte or the end shows whether it is the last (PS3.8 E.2: the last fragment is marked), so at
 * most two fragments are in memory; a source that ends with no byte yields nothing.
 */
export async function* fragments(source: AsyncIterable<Buffer>, max: number): AsyncGenerator<Fragment> {
  let filling = Buffer.allocUnsafe(max);
  let filled = 0;
  let held: Buffer | undefined;
  for await (const chunk of source) {
    let at = 0;
    while (at < chunk.length) {
      const take = Math.min(max - filled, chunk.length - at);
      chunk.copy(filling, filled, at, at + take);
      filled += take;
      at += take;
      if (filled === max) {
        if (held) yield { bytes: held, last: false };
        held = filling;
        filling = Buffer.allocUnsafe(max);
        filled = 0;
      }
    }
  }
  if (filled > 0) {
    if (held) yield { bytes: held, last: false };
    yield { bytes: filling.subarray(0, filled), last: true };
  } else if (held) {
    yield { bytes: held, last: true };
  }
}

/** A library response routed to a `pending` entry (dcmjs-dimse's `_performDimse`). */
interface RoutedResponse {
  getStatus(): number;
}

/** What dcmjs-dimse's `_performDimse` looks for in `pending`: a request-like entry by Message ID. */
interface PendingEntry {
  getMessageId(): number;
  raiseResponseEvent(response: RoutedResponse): void;
  raiseDoneEvent(): void;
}

/**
 * An association as this sender uses it: a dcmjs-dimse Network (the listener's Scp, or an SCU's) gives
 * its socket, its association (the peer's Maximum Length once negotiated) and its `pending` list.
 */
export interface DimseChannel {
  readonly socket: Socket;
  readonly association: InstanceType<typeof dimse.association.Association>;
  readonly pending: PendingEntry[];
}

/** The library's Network fields this sender needs (JavaScript fields its typings do not declare). */
export function channelOf(network: object): DimseChannel {
  const n = network as Partial<DimseChannel>;
  if (!n.socket || !n.association || !Array.isArray(n.pending)) throw new AssociationLostError();
  return n as DimseChannel;
}

const messageIds = new WeakMap<object, number>();

/** The C-STORE-RQ part-way out on each socket: settles once its last fragment is written (or it failed). */
const partWay = new WeakMap<Socket, Promise<void>>();

/**
 * Resolves once no C-STORE-RQ is part-way out on `socket`: another message (a response the listener
 * sends on its own, e.g. a refusal) waits for this boundary, as PDVs of two messages may not interleave
 * (PS3.8 E.1).
 */
export function messageBoundary(socket: Socket): Promise<void> {
  return partWay.get(socket) ?? Promise.resolve();
}

/** A Message ID for a request this gateway sends on `channel` (PS3.7 9.1.1.1: unique among its requests there). */
export function nextMessageId(channel: DimseChannel): number {
  const next = ((messageIds.get(channel.socket) ?? 0) % 0xffff) + 1;
  messageIds.set(channel.socket, next);
  return next;
}

export interface StoreSendOptions {
  /** The context the peer accepted for this SOP Class in the dataset's transfer syntax. */
  readonly contextId: number;
  /** No C-STORE-RSP, or no room on the socket, for this long: StoreTimeoutError. */
  readonly timeoutMs: number;
}

/**
 * Sends one C-STORE-RQ and its dataset on `channel` and resolves with the C-STORE-RSP's Status. Its PDVs
 * go out one after another with nothing between them (PS3.8 E.1: no interleaving of messages): the only
 * other writer on the association is the operation that calls this, between sub-operations, as no
 * asynchronous operations are negotiated (PS3.7 D.3.3.3).
 * The first fragment is read before anything is sent: a source that fails that early, or is empty (no
 * dataset: SubOperationError DIMSE_DATASET_EMPTY), leaves the association as it was and fails this
 * sub-operation only. A failure after the command went out (StoreIncompleteError,
 * StoreTimeoutError, AssociationLostError) leaves a message half sent: the caller aborts the association.
 */
export async function sendStore(channel: DimseChannel, command: StoreCommand, dataset: AsyncIterable<Buffer>, options: StoreSendOptions): Promise<number> {
  const { socket } = channel;
  const max = maxFragmentBytes(channel.association.getMaxPduLength());
  const pieces = fragments(dataset, max)[Symbol.asyncIterator]();
  let next = await pieces.next();
  if (next.done) throw new SubOperationError('DIMSE_DATASET_EMPTY', 'the instance has no dataset after its File Meta');
  if (socket.destroyed) throw new AssociationLostError();

  let settle: { resolve(status: number): void; reject(error: Error): void } | undefined;
  const response = new Promise<number>((resolve, reject) => {
    settle = { resolve, reject };
  });
  response.catch(() => undefined);
  const entry: PendingEntry = {
    getMessageId: () => command.messageId,
    raiseResponseEvent: (rsp) => settle?.resolve(rsp.getStatus()),
    raiseDoneEvent: () => undefined,
  };
  const lost = () => settle?.reject(new AssociationLostError());
  channel.pending.push(entry);
  socket.once('close', lost);
  let timer: NodeJS.Timeout | undefined;
  let boundary: () => void = () => undefined;
  const writing = new Promise<void>((resolve) => {
    boundary = () => {
      if (partWay.get(socket) === writing) partWay.delete(socket);
      resolve();
    };
  });
  partWay.set(socket, writing);
  try {
    const encoded = encodeStoreCommand(command);
    for (let at = 0; at < encoded.length; at += max) {
      const part = encoded.subarray(at, at + max);
      await writeAll(socket, [pdvHeader(options.contextId, part.length, true, at + max >= encoded.length), part], options.timeoutMs);
    }
    for (;;) {
      const { bytes, last } = next.value;
      await writeAll(socket, [pdvHeader(options.contextId, bytes.length, false, last), bytes], options.timeoutMs);
      if (last) break;
      try {
        next = await pieces.next();
      } catch (error) {
        throw new StoreIncompleteError({ cause: error });
      }
      if (next.done) throw new StoreIncompleteError();
    }
    boundary();
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StoreTimeoutError()), options.timeoutMs);
    });
    return await Promise.race([response, timeout]);
  } finally {
    boundary();
    clearTimeout(timer);
    socket.off('close', lost);
    const at = channel.pending.indexOf(entry);
    if (at >= 0) channel.pending.splice(at, 1);
    await pieces.return?.(undefined);
  }
}

/** Writes `buffers` as one unit; when the socket's buffer is full, waits for it to drain (back-pressure), at most `timeoutMs`. */
async function writeAll(socket: Socket, buffers: readonly Buffer[], timeoutMs: number): Promise<void> {
  if (socket.destroyed || !socket.writable) throw new AssociationLostError();
  socket.cork();
  let room = true;
  for (const b of buffers) room = socket.write(b) && room;
  socket.uncork();
  if (room) return;
  await new Promise<void>((resolve, reject) => {
    const done = (error?: Error) => {
      clearTimeout(timer);
      socket.off('drain', drained);
      socket.off('close', closed);
      if (error) reject(error);
      else resolve();
    };
    const drained = () => done();
    const closed = () => done(new AssociationLostError());
    const timer = setTimeout(() => done(new StoreTimeoutError()), timeoutMs);
    socket.once('drain', drained);
    socket.once('close', closed);
  });
}

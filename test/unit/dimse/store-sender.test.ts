import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import dimse from 'dcmjs-dimse';
import { AssociationLostError, PeerMaxLengthError, StoreIncompleteError, StoreTimeoutError, SubOperationError } from '../../../src/dimse/errors.ts';
import {
  acceptablePeerMaxLength,
  channelOf,
  encodeStoreCommand,
  fragments,
  MAX_PDU_SENT,
  maxFragmentBytes,
  MIN_PEER_MAX_LENGTH,
  pdvHeader,
  sendingMaxLength,
  sendStore,
  UNLIMITED_PDU_FALLBACK,
  type DimseChannel,
} from '../../../src/dimse/store-sender.ts';

// The library logs to the console; the listener silences it the same way.
dimse.log.setLevel('silent');

const CT = '1.2.840.10008.5.1.4.1.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const SOP = '2.25.98765432109876543210';

async function* chunked(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

/** PS3.7 6.3.1: an Implicit VR Little Endian command set with its group length. */
function command(elements: [number, Buffer][]): Buffer {
  const body = Buffer.concat(
    elements.flatMap(([element, value]) => {
      const head = Buffer.alloc(8);
      head.writeUInt16LE(0x0000, 0);
      head.writeUInt16LE(element, 2);
      head.writeUInt32LE(value.length, 4);
      return [head, value];
    }),
  );
  const length = Buffer.alloc(12);
  length.writeUInt32LE(4, 4);
  length.writeUInt32LE(body.length, 8);
  return Buffer.concat([length, body]);
}
const us = (v: number) => Buffer.from([v & 0xff, v >> 8]);
const ui = (v: string) => Buffer.from(v.length % 2 ? `${v}\0` : v, 'latin1');

/** A C-STORE-RSP (PS3.7 9.3.1.2) in one P-DATA-TF PDU on context 1. */
function storeResponse(messageId: number, status: number): Buffer {
  const cmd = command([
    [0x0002, ui(CT)],
    [0x0100, us(0x8001)],
    [0x0120, us(messageId)],
    [0x0800, us(0x0101)],
    [0x0900, us(status)],
    [0x1000, ui(SOP)],
  ]);
  return Buffer.concat([pdvHeader(1, cmd.length, true, true), cmd]);
}

/** What a peer (a storage SCP) saw of one C-STORE-RQ: every PDU's length, the command set and the dataset (or its length). */
interface Seen {
  pduLengths: number[];
  command: Buffer;
  dataset: Buffer;
  datasetBytes: number;
  done: Promise<void>;
}

/**
 * A minimal storage SCP on loopback: reads P-DATA-TF PDUs (PS3.8 9.3.5), collects the command and the
 * dataset, and answers with `status` once the last dataset fragment came (or never, `status` undefined).
 */
function peer(socket: Socket, status: number | undefined, keep = true): Seen {
  let held = Buffer.alloc(0);
  const command: Buffer[] = [];
  const dataset: Buffer[] = [];
  const seen = { pduLengths: [] as number[], command: Buffer.alloc(0), dataset: Buffer.alloc(0), datasetBytes: 0 } as Seen;
  let finish: () => void = () => undefined;
  seen.done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  socket.on('data', (chunk: Buffer) => {
    held = Buffer.concat([held, chunk]);
    while (held.length >= 6 && held.length >= 6 + held.readUInt32BE(2)) {
      const length = held.readUInt32BE(2);
      assert.equal(held.readUInt8(0), 0x04, 'P-DATA-TF');
      seen.pduLengths.push(length);
      let at = 6;
      while (at < 6 + length) {
        const item = held.readUInt32BE(at);
        const control = held.readUInt8(at + 5);
        const value = held.subarray(at + 6, at + 4 + item);
        if (control & 1) command.push(Buffer.from(value));
        else {
          seen.datasetBytes += value.length;
          if (keep) dataset.push(Buffer.from(value));
        }
        at += 4 + item;
        if ((control & 3) === 2) {
          seen.command = Buffer.concat(command);
          seen.dataset = Buffer.concat(dataset);
          const id = new dimse.Dataset(seen.command).getElements()['MessageID'] as number;
          if (status !== undefined) socket.write(storeResponse(id, status));
          finish();
        }
      }
      held = held.subarray(6 + length);
    }
  });
  return seen;
}

/** dcmjs-dimse's Network (the Scp's base) on the requestor's socket, with context 1 accepted for CT in Explicit VR LE. */
function requestor(socket: Socket, maxPduLength: number): DimseChannel {
  const Network = Object.getPrototypeOf(dimse.Scp) as new (s: Socket, o: object) => object;
  const network = new Network(socket, {}) as { association?: unknown };
  const association = new dimse.association.Association('GATEWAY', 'PEER');
  const id = association.addPresentationContext(CT);
  association.getPresentationContext(id).setResult(dimse.constants.PresentationContextResult.Accept, EXPLICIT_LE);
  association.setMaxPduLength(maxPduLength);
  network.association = association;
  return channelOf(network);
}

describe('store-sender: a C-STORE-RQ streamed as PDVs (PS3.7 9.3.1.1, PS3.8 9.3.5)', () => {
  test('the command set is Implicit VR Little Endian group 0000, in tag order, with the Move Originator only for a C-MOVE', () => {
    const get = encodeStoreCommand({ messageId: 7, sopClassUid: CT, sopInstanceUid: SOP });
    const elements = new dimse.Dataset(get).getElements();
    assert.equal(elements['CommandGroupLength'], get.length - 12);
    assert.equal(elements['AffectedSOPClassUID'], CT);
    assert.equal(elements['AffectedSOPInstanceUID'], SOP);
    assert.equal(elements['CommandField'], 0x0001);
    assert.equal(elements['MessageID'], 7);
    assert.equal(elements['Priority'], 0);
    assert.notEqual(elements['CommandDataSetType'], 0x0101);
    assert.equal(elements['MoveOriginatorApplicationEntityTitle'], undefined);
    const move = new dimse.Dataset(encodeStoreCommand({ messageId: 8, sopClassUid: CT, sopInstanceUid: SOP, moveOriginator: { aeTitle: 'RESEARCH_WS', messageId: 3 } })).getElements();
    assert.equal(String(move['MoveOriginatorApplicationEntityTitle']).trim(), 'RESEARCH_WS');
    assert.equal(move['MoveOriginatorMessageID'], 3);
    // Tags ascend (PS3.5 7.1): read them back in order.
    const tags: number[] = [];
    for (let at = 0; at < get.length; at += 8 + get.readUInt32LE(at + 4)) tags.push(get.readUInt16LE(at + 2));
    assert.deepEqual(tags, [0x0000, 0x0002, 0x0100, 0x0110, 0x0700, 0x0800, 0x1000]);
    assert.equal(get.length % 2, 0);
  });

  test('a PDV header: the PDU length counts the item, the item length its header bytes and fragment, the control byte command and last', () => {
    const head = pdvHeader(5, 100, false, true);
    assert.equal(head.readUInt8(0), 0x04);
    assert.equal(head.readUInt32BE(2), 106);
    assert.equal(head.readUInt32BE(6), 102);
    assert.equal(head.readUInt8(10), 5);
    assert.equal(head.readUInt8(11), 0x02);
    assert.equal(pdvHeader(1, 0, true, false).readUInt8(11), 0x01);
    assert.equal(maxFragmentBytes(16_384), 16_378);
    assert.equal(maxFragmentBytes(0), UNLIMITED_PDU_FALLBACK - 6, 'no limit still gets a bounded PDU');
    assert.equal(maxFragmentBytes(4097), 4090, 'fragments are even (PS3.8 E.1)');
  });

  test('the fragment at the edges of the peer\'s Maximum Length (PS3.8 D.1): 0 is no limit, never past 1 MiB, always even; below the floor refused', () => {
    assert.equal(maxFragmentBytes(0), UNLIMITED_PDU_FALLBACK - 6);
    assert.equal(maxFragmentBytes(MIN_PEER_MAX_LENGTH), MIN_PEER_MAX_LENGTH - 6);
    assert.equal(maxFragmentBytes(MIN_PEER_MAX_LENGTH + 1), MIN_PEER_MAX_LENGTH - 6);
    assert.equal(maxFragmentBytes(MAX_PDU_SENT - 1), MAX_PDU_SENT - 8);
    assert.equal(maxFragmentBytes(MAX_PDU_SENT), MAX_PDU_SENT - 6);
    // Past 2^31, 32-bit bitwise arithmetic gave 2-byte (0x80000006) or ~2 GiB (0x7FFFFFFF) fragments.
    for (const huge of [MAX_PDU_SENT + 1, 0x7ffffffe, 0x7fffffff, 0x80000000, 0x80000006, 0x80000007, 0xfffffffe, 0xffffffff]) {
      assert.equal(maxFragmentBytes(huge), MAX_PDU_SENT - 6, `0x${huge.toString(16)}`);
    }
    for (const odd of [4097, 65_537, 0x7fffffff - 1_000_000]) assert.equal(maxFragmentBytes(odd) % 2, 0);
    for (const refused of [1, 6, 7, 8, 12, MIN_PEER_MAX_LENGTH - 1, -1, 1.5, Number.NaN, 2 ** 53]) {
      assert.equal(acceptablePeerMaxLength(refused), false, String(refused));
      assert.throws(() => maxFragmentBytes(refused), PeerMaxLengthError);
    }
    // What the association sends with (dcmjs-dimse fragments by it): within the peer's limit and the cap, even fragments, stable.
    for (const peer of [0, MIN_PEER_MAX_LENGTH, 4097, 16_384, MAX_PDU_SENT + 1, 0xffffffff]) {
      const sending = sendingMaxLength(peer);
      assert.ok(sending <= (peer || UNLIMITED_PDU_FALLBACK) && sending <= MAX_PDU_SENT && sending % 2 === 0, `${peer} → ${sending}`);
      assert.equal(maxFragmentBytes(sending), maxFragmentBytes(peer));
    }
  });

  test('fragments: exactly the maximum each but the last, only the last marked, every byte once, whatever the input chunks', async () => {
    const data = Buffer.from(Array.from({ length: 10_000 }, (_, i) => (i * 31) & 0xff));
    for (const max of [8, 100, 4096, 10_000, 20_000]) {
      for (const size of [1, 99, 100, 4097, 10_000]) {
        const out: { bytes: Buffer; last: boolean }[] = [];
        for await (const f of fragments(chunked(data, size), max)) out.push({ bytes: Buffer.from(f.bytes), last: f.last });
        assert.ok(Buffer.concat(out.map((f) => f.bytes)).equals(data), `max ${max}, chunks of ${size}`);
        assert.deepEqual(out.map((f) => f.last), out.map((_, i) => i === out.length - 1));
        assert.ok(out.slice(0, -1).every((f) => f.bytes.length === max));
        assert.ok((out.at(-1)?.bytes.length ?? 0) > 0 && (out.at(-1)?.bytes.length ?? 0) <= max);
      }
    }
    const none: unknown[] = [];
    for await (const f of fragments(chunked(Buffer.alloc(0), 1), 10)) none.push(f);
    assert.deepEqual(none, []);
  });

  describe('over a loopback association', () => {
    let server: Server;
    let accepted: Promise<Socket>;
    let next: (socket: Socket) => void;
    const sockets: Socket[] = [];

    before(async () => {
      server = createServer((s) => {
        sockets.push(s);
        next(s);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    });
    after(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    /** A fresh connection: the requestor's channel and the peer's socket. */
    async function pair(maxPduLength: number): Promise<{ channel: DimseChannel; remote: Socket }> {
      accepted = new Promise<Socket>((resolve) => {
        next = resolve;
      });
      const socket = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
      sockets.push(socket);
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      return { channel: requestor(socket, maxPduLength), remote: await accepted };
    }

    test('sends the command and the dataset in PDUs within the peer\'s Maximum Length and returns the C-STORE-RSP status', async () => {
      const { channel, remote } = await pair(4096);
      const seen = peer(remote, 0xb000);
      const data = Buffer.from(Array.from({ length: 1_000_000 }, (_, i) => (i * 7) & 0xff));
      const status = await sendStore(channel, { messageId: 42, sopClassUid: CT, sopInstanceUid: SOP, moveOriginator: { aeTitle: 'RESEARCH_WS', messageId: 9 } }, chunked(data, 1000), {
        contextId: 1,
        timeoutMs: 5_000,
      });
      await seen.done;
      assert.equal(status, 0xb000);
      assert.ok(seen.dataset.equals(data));
      assert.ok(seen.pduLengths.every((l) => l <= 4096), `largest PDU ${Math.max(...seen.pduLengths)}`);
      assert.equal(seen.pduLengths.length, 1 + Math.ceil(data.length / 4090));
      assert.equal(new dimse.Dataset(seen.command).getElements()['MoveOriginatorMessageID'], 9);
      assert.deepEqual(channel.pending, [], 'its pending entry is gone');
      channel.socket.destroy();
    });

    test('a peer that allows PDUs of 4 GiB still gets PDUs of at most 1 MiB: the sender holds two of them, not the instance', async () => {
      const { channel, remote } = await pair(0xffffffff);
      const seen = peer(remote, 0x0000, false);
      const data = Buffer.alloc(3 * MAX_PDU_SENT + 10, 3);
      assert.equal(await sendStore(channel, { messageId: 5, sopClassUid: CT, sopInstanceUid: SOP }, chunked(data, 64 * 1024), { contextId: 1, timeoutMs: 5_000 }), 0x0000);
      await seen.done;
      assert.equal(seen.datasetBytes, data.length);
      assert.ok(seen.pduLengths.every((l) => l <= MAX_PDU_SENT), `largest PDU ${Math.max(...seen.pduLengths)}`);
      assert.equal(seen.pduLengths.length, 1 + 4);
      channel.socket.destroy();
    });

    test('back-pressure: with a peer that stops reading, the source is not read ahead beyond the socket buffers', async (t) => {
      const { channel, remote } = await pair(16_384);
      remote.pause();
      let produced = 0;
      const total = 64 * 1024 * 1024;
      const source = (async function* () {
        const chunk = Buffer.alloc(64 * 1024, 1);
        while (produced < total) {
          produced += chunk.length;
          yield chunk;
        }
      })();
      const heap = process.memoryUsage().heapUsed;
      const sending = sendStore(channel, { messageId: 1, sopClassUid: CT, sopInstanceUid: SOP }, source, { contextId: 1, timeoutMs: 30_000 });
      sending.catch(() => undefined);
      await new Promise((r) => setTimeout(r, 300));
      const stalled = produced;
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(produced, stalled, 'no byte is read while the socket is full');
      // Kernel loopback buffers hold a few MiB; the sender itself holds two fragments and one PDU in the socket's buffer.
      assert.ok(stalled < 32 * 1024 * 1024, `${stalled} bytes read of ${total} while the peer did not read`);
      assert.ok(channel.socket.writableLength <= 2 * 16_384 + 64 * 1024, `${channel.socket.writableLength} bytes queued in the socket`);
      const grown = process.memoryUsage().heapUsed - heap;
      assert.ok(grown < 16 * 1024 * 1024, 'the heap did not take the stream');
      t.diagnostic(`peer stopped: ${stalled} of ${total} bytes read from the source, ${channel.socket.writableLength} queued in the socket, heap +${grown}`);
      const seen = peer(remote, 0x0000, false);
      remote.resume();
      assert.equal(await sending, 0x0000);
      await seen.done;
      assert.equal(seen.datasetBytes, total);
      channel.socket.destroy();
    });

    test('a source that fails in its first fragment sends nothing; one that fails later is StoreIncompleteError (the association is then aborted)', async () => {
      const { channel, remote } = await pair(4096);
      let received = 0;
      remote.on('data', (c: Buffer) => {
        received += c.length;
      });
      const early = (async function* () {
        yield Buffer.alloc(100);
        throw new Error('view failed');
      })();
      await assert.rejects(sendStore(channel, { messageId: 1, sopClassUid: CT, sopInstanceUid: SOP }, early, { contextId: 1, timeoutMs: 1_000 }), /view failed/);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(received, 0, 'not a byte on the wire');
      // No dataset at all: that sub-operation fails, nothing went out, the association stays usable.
      await assert.rejects(
        sendStore(channel, { messageId: 2, sopClassUid: CT, sopInstanceUid: SOP }, chunked(Buffer.alloc(0), 1), { contextId: 1, timeoutMs: 1_000 }),
        (e: unknown) => e instanceof SubOperationError && e.code === 'DIMSE_DATASET_EMPTY',
      );
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(received, 0, 'not a byte on the wire');
      const late = (async function* () {
        yield Buffer.alloc(50_000);
        throw new Error('view failed');
      })();
      await assert.rejects(sendStore(channel, { messageId: 3, sopClassUid: CT, sopInstanceUid: SOP }, late, { contextId: 1, timeoutMs: 1_000 }), StoreIncompleteError);
      assert.deepEqual(channel.pending, []);
      channel.socket.destroy();
    });

    test('no C-STORE-RSP in time is StoreTimeoutError; a peer that closes is AssociationLostError', async () => {
      const quiet = await pair(4096);
      peer(quiet.remote, undefined);
      await assert.rejects(sendStore(quiet.channel, { messageId: 1, sopClassUid: CT, sopInstanceUid: SOP }, chunked(Buffer.alloc(10), 10), { contextId: 1, timeoutMs: 200 }), StoreTimeoutError);
      quiet.channel.socket.destroy();
      const closing = await pair(4096);
      const seen = peer(closing.remote, undefined);
      const sending = sendStore(closing.channel, { messageId: 1, sopClassUid: CT, sopInstanceUid: SOP }, chunked(Buffer.alloc(10), 10), { contextId: 1, timeoutMs: 5_000 });
      await seen.done;
      closing.remote.destroy();
      await assert.rejects(sending, AssociationLostError);
    });
  });
});

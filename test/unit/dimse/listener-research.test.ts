// The listener's side of the research face (listener.ts): what it refuses before an operation reaches the
// face, and what it gives the face. A real listener on loopback with a scripted face (no view, no PACS);
// the requestor is dcmjs-dimse's own Network, which lets a test put any request on any context.
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import dimse from 'dcmjs-dimse';
import type { GatewayConfig } from '../../../src/config/schema.ts';
import type { DeidPolicy } from '../../../src/deid/deidentify.ts';
import type { DimseLog, Forwarder } from '../../../src/dimse/forwarder.ts';
import { MAX_RESEARCH_ASSOCIATIONS, startDimseListener, type DimseListener } from '../../../src/dimse/listener.ts';
import { QUERY_RETRIEVE, type Operation, type ResearchFace } from '../../../src/dimse/research-face.ts';
import type { Spool } from '../../../src/dimse/spool.ts';

dimse.log.setLevel('silent');

const { CFindRequest, CGetRequest } = dimse.requests;
const { CFindResponse, CGetResponse } = dimse.responses;
const { RejectResult, RejectSource, RejectReason } = dimse.constants;
const IMPLICIT_LE = '1.2.840.10008.1.2';
const CT = '1.2.840.10008.5.1.4.1.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

type Network = InstanceType<typeof dimse.Scp>;
type PresentationContext = InstanceType<typeof dimse.association.PresentationContext>;
const NetworkClass = Object.getPrototypeOf(dimse.Scp) as new (socket: Socket, options: object) => Network;

interface Answer {
  readonly messageId: number;
  readonly status: number;
  readonly context: number;
}

/** A requestor association to the listener: the answers it got, and a way to send any request on any context. */
interface Requestor {
  readonly socket: Socket;
  readonly answers: Answer[];
  /** Resolves once an answer to `messageId` with a final (non-pending) status came. */
  final(messageId: number): Promise<Answer>;
  send(request: { setMessageId(id: number): void }, messageId: number, contextId: number): void;
  readonly closed: Promise<void>;
  close(): void;
}

type Outcome = { readonly accepted: Requestor } | { readonly rejected: { result: number; source: number; reason: number } };

/** Opens an association as RESEARCH_WS proposing `contexts` (abstract syntax, and the SCP role for storage). */
async function associate(port: number, contexts: readonly (readonly [string, boolean?])[], maxPduLength = 16_384): Promise<Outcome> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  const network = new NetworkClass(socket, { connectTimeout: 5_000, associationTimeout: 5_000, pduTimeout: 5_000 });
  const association = new dimse.association.Association('RESEARCH_WS', 'DEID_GATEWAY');
  association.setMaxPduLength(maxPduLength);
  for (const [abstract, scp] of contexts) {
    const id = association.addPresentationContext(abstract);
    association.addTransferSyntaxToPresentationContext(id, IMPLICIT_LE);
    if (scp) association.getPresentationContext(id).setProviderRole(true);
  }
  const answers: Answer[] = [];
  const waiting: (() => void)[] = [];
  // Every message from the listener is recorded with the context it came on.
  (network as unknown as { _performDimse(context: PresentationContext, message: { getMessageIdBeingRespondedTo(): number; getStatus(): number }): void })._performDimse = (context, message) => {
    answers.push({ messageId: message.getMessageIdBeingRespondedTo(), status: message.getStatus(), context: context.getPresentationContextId() });
    for (const w of waiting.splice(0)) w();
  };
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return new Promise<Outcome>((resolve, reject) => {
    network.once('connect', () => network.sendAssociationRequest(association));
    network.once('associationRejected', (rejected: { result: number; source: number; reason: number }) => resolve({ rejected }));
    network.once('networkError', reject);
    network.once('associationAccepted', () =>
      resolve({
        accepted: {
          socket,
          answers,
          closed,
          final: (messageId) =>
            new Promise<Answer>((done) => {
              const check = () => {
                const a = answers.find((x) => x.messageId === messageId && x.status !== 0xff00 && x.status !== 0xff01);
                if (a) done(a);
                else waiting.push(check);
              };
              check();
            }),
          send(request, messageId, contextId) {
            request.setMessageId(messageId);
            (network as unknown as { _sendDimse(m: { context: PresentationContext; command: unknown }): void })._sendDimse({ context: association.getPresentationContext(contextId), command: request });
          },
          close: () => socket.destroy(),
        },
      }),
    );
  });
}

const find = () => CFindRequest.createStudyFindRequest({ StudyInstanceUID: '' });
const get = (model: string = QUERY_RETRIEVE.studyRootGet) => {
  const r = CGetRequest.createStudyGetRequest('2.25.1');
  r.setAffectedSopClassUid(model);
  return r;
};

describe('the listener in front of the research face', () => {
  let listener: DimseListener;
  const faced: { command: string; messageId: number }[] = [];
  /** Operations the face holds until a test lets them end. */
  const held = new Map<number, () => void>();
  let onFind: (op: Operation<InstanceType<typeof CFindRequest>>) => Promise<void> = async () => undefined;
  const lines: string[] = [];
  const log: DimseLog = {
    info: (entry, message) => void lines.push(`${message} ${JSON.stringify(entry)}`),
    warn: (entry, message) => void lines.push(`${message} ${JSON.stringify(entry)}`),
    error: (entry, message) => void lines.push(`${message} ${JSON.stringify(entry)}`),
  };
  const hold = async (op: Operation, respond: () => void) => {
    const id = op.request.getMessageId() as number;
    await new Promise<void>((resolve) => held.set(id, resolve));
    held.delete(id);
    respond();
  };

  before(async () => {
    const face: ResearchFace = {
      find: async (op) => {
        faced.push({ command: 'C-FIND', messageId: op.request.getMessageId() as number });
        await onFind(op);
        await hold(op, () => {
          const r = CFindResponse.fromRequest(op.request);
          r.setStatus(0);
          op.respond(r);
        });
      },
      get: async (op) => {
        faced.push({ command: 'C-GET', messageId: op.request.getMessageId() as number });
        await hold(op, () => {
          const r = CGetResponse.fromRequest(op.request);
          r.setStatus(0);
          op.respond(r);
        });
      },
      move: async (op) => {
        faced.push({ command: 'C-MOVE', messageId: op.request.getMessageId() as number });
      },
    };
    const config = {
      aeTitle: 'DEID_GATEWAY',
      host: '127.0.0.1',
      port: 0,
      callers: [{ aeTitle: 'RESEARCH_WS', hosts: ['127.0.0.1'], role: 'researcher', profile: 'uploader', project: 'alpha', moveDestinations: [] }],
      moveDestinations: [],
      maxFindResults: 10,
      pseudonyms: 'keyed',
      maxPduBytes: 256 * 1024,
      pduTimeoutMs: 10_000,
    } as unknown as GatewayConfig['dimse'];
    listener = await startDimseListener({
      config,
      // A researcher's association never stores: the ingress is not reached.
      spool: {} as Spool,
      forwarder: { associationEnded: () => undefined } as unknown as Forwarder,
      policy: {} as DeidPolicy,
      maxHeaderBytes: 0,
      log,
      research: face,
    });
  });
  after(async () => {
    for (const release of held.values()) release();
    await listener?.close();
  });

  const release = async (messageId: number) => {
    while (!held.has(messageId)) await new Promise((r) => setTimeout(r, 5));
    held.get(messageId)?.();
  };

  test('one operation at a time (PS3.7 D.3.3.3): a second while one runs is refused A700 and never reaches the face; the same Message ID again aborts the association', async () => {
    faced.length = 0;
    const outcome = await associate(listener.port, [[QUERY_RETRIEVE.studyRootFind]]);
    assert.ok('accepted' in outcome);
    const a = outcome.accepted;
    a.send(find(), 1, 1);
    // The first is held by the face.
    while (!held.has(1)) await new Promise((r) => setTimeout(r, 5));
    a.send(find(), 2, 1);
    assert.deepEqual(await a.final(2), { messageId: 2, status: 0xa700, context: 1 });
    await release(1);
    assert.equal((await a.final(1)).status, 0x0000);
    // Done: the next one is served.
    a.send(find(), 3, 1);
    while (!held.has(3)) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(faced, [
      { command: 'C-FIND', messageId: 1 },
      { command: 'C-FIND', messageId: 3 },
    ]);
    // A request with the Message ID of the one running: any answer would read as that one's; aborted.
    a.send(find(), 3, 1);
    await a.closed;
    assert.equal(faced.length, 2);
    assert.ok(lines.some((l) => l.includes('DIMSE association aborted') && l.includes('duplicate-message-id')));
    held.get(3)?.();
  });

  test('a C-GET on a C-FIND context, a C-FIND on a C-GET context and a request naming another model than its context are refused 0122 before the face', async () => {
    faced.length = 0;
    const outcome = await associate(listener.port, [[QUERY_RETRIEVE.studyRootFind], [QUERY_RETRIEVE.studyRootGet], [CT, true]]);
    assert.ok('accepted' in outcome);
    const a = outcome.accepted;
    a.send(get(), 11, 1); // the GET model, on the FIND context
    assert.equal((await a.final(11)).status, 0x0122);
    a.send(get(QUERY_RETRIEVE.studyRootFind), 12, 1); // a C-GET naming the FIND model, on its context
    assert.equal((await a.final(12)).status, 0x0122);
    a.send(find(), 13, 3); // a C-FIND on the GET context
    assert.equal((await a.final(13)).status, 0x0122);
    const move = get(QUERY_RETRIEVE.studyRootMove);
    a.send(move, 14, 3); // a C-GET naming the MOVE model on the GET context
    assert.equal((await a.final(14)).status, 0x0122);
    assert.deepEqual(faced, [], 'none reached the face');
    a.send(get(), 15, 3);
    await release(15);
    assert.deepEqual(await a.final(15), { messageId: 15, status: 0x0000, context: 3 });
    assert.deepEqual(faced, [{ command: 'C-GET', messageId: 15 }]);
    a.close();
  });

  test('a Maximum Length below 4 KiB is refused at association (PS3.8 D.1 sets no floor; the gateway does); 4 KiB is accepted', async () => {
    const small = await associate(listener.port, [[QUERY_RETRIEVE.studyRootFind]], 1024);
    assert.ok('rejected' in small);
    assert.deepEqual(small.rejected, { result: RejectResult.Permanent, source: RejectSource.ServiceUser, reason: RejectReason.NoReasonGiven });
    const floor = await associate(listener.port, [[QUERY_RETRIEVE.studyRootFind]], 4096);
    assert.ok('accepted' in floor);
    floor.accepted.close();
  });

  test(`at most ${MAX_RESEARCH_ASSOCIATIONS} associations per researcher caller: the next is rejected (transient, local limit exceeded) until one ends`, async () => {
    const open: Requestor[] = [];
    for (let i = 0; i < MAX_RESEARCH_ASSOCIATIONS; i++) {
      const o = await associate(listener.port, [[QUERY_RETRIEVE.studyRootFind]]);
      assert.ok('accepted' in o, `association ${i + 1}`);
      open.push(o.accepted);
    }
    const over = await associate(listener.port, [[QUERY_RETRIEVE.studyRootFind]]);
    assert.ok('rejected' in over);
    assert.deepEqual(over.rejected, { result: RejectResult.Transient, source: RejectSource.ServiceProviderPresentation, reason: RejectReason.LocalLimitExceeded });
    const first = open.shift() as Requestor;
    first.close();
    await first.closed;
    await new Promise((r) => setTimeout(r, 50));
    const again = await associate(listener.port, [[QUERY_RETRIEVE.studyRootFind]]);
    assert.ok('accepted' in again, 'room again once one ended');
    for (const a of [...open, again.accepted]) a.close();
    await Promise.all([...open, again.accepted].map((a) => a.closed));
  });

  test('drained(): with a peer that stopped reading, it waits until the socket has room again', async () => {
    let waited: { before: number; after: number } | undefined;
    let paused = 0;
    let blocked: () => void = () => undefined;
    const full = new Promise<void>((resolve) => (blocked = resolve));
    onFind = async (op) => {
      // Matches until the socket's buffers are full (each about 60 KB; loopback buffers here grow to
      // 32 MB + 4 MB), then wait for room: drained() still pending after 200 ms means they are.
      for (let i = 0; i < 2_000; i++) {
        const r = CFindResponse.fromRequest(op.request);
        r.setDataset(new dimse.Dataset({ StudyInstanceUID: '2.25.1', StudyDescription: 'x'.repeat(64), PatientComments: 'y'.repeat(60_000) }, EXPLICIT_LE));
        r.setStatus(0xff00);
        op.respond(r);
        const before = Date.now();
        const timer = setTimeout(blocked, 200);
        await op.drained();
        clearTimeout(timer);
        if (Date.now() - before > 100) {
          waited = { before, after: Date.now() };
          break;
        }
      }
    };
    try {
      const outcome = await associate(listener.port, [[QUERY_RETRIEVE.studyRootFind]]);
      assert.ok('accepted' in outcome);
      const a = outcome.accepted;
      a.socket.pause();
      a.send(find(), 21, 1);
      // The peer reads again only once the responder is held by drained() (not after a fixed time: how
      // soon loopback buffers fill depends on their autotuning and the machine's load).
      await Promise.race([full, new Promise((_, reject) => setTimeout(() => reject(new Error('the socket never filled')), 20_000))]);
      paused = Date.now();
      a.socket.resume();
      await release(21);
      assert.equal((await a.final(21)).status, 0x0000);
      assert.ok(waited, 'drained() waited for the peer');
      assert.ok(waited.after >= paused, 'and resolved only once the peer read again');
      a.close();
    } finally {
      onFind = async () => undefined;
    }
  });
});

// The research face's C-MOVE and C-GET (research-retrieve.ts) with a scripted view: which destination a
// caller may name, and the one audit record each retrieval leaves (PS3.15 A.5.3.2).
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import dimse from 'dcmjs-dimse';
import type { GatewayConfig } from '../../../src/config/schema.ts';
import type { DimseLog } from '../../../src/dimse/forwarder.ts';
import type { GetChannel, Operation, ResearchFaceOptions } from '../../../src/dimse/research-face.ts';
import { auditOutcome, getFromView, moveFromView } from '../../../src/dimse/research-retrieve.ts';
import { RetrieveStatus } from '../../../src/dimse/retrieve-status.ts';
import type { ViewClient } from '../../../src/dimse/view-client.ts';
import type { AuditEvent, AuditTrail } from '../../../src/store/audit-trail.ts';

dimse.log.setLevel('silent');

const { CGetRequest, CMoveRequest } = dimse.requests;
type Request = InstanceType<typeof CGetRequest> | InstanceType<typeof CMoveRequest>;
const NOW = new Date('2026-03-04T05:06:07.089Z');
const CALLER = { aeTitle: 'RESEARCH_WS', role: 'researcher', project: 'alpha', moveDestinations: ['RESEARCH_PACS'] } as const;

/** The face's options with a view that lists nothing (404: an unknown UID), an audit trail and a log in memory. */
function face() {
  const asked: string[] = [];
  const client: ViewClient = {
    async get(_caller, pathAndQuery) {
      asked.push(pathAndQuery);
      return { statusCode: 404, headers: {}, body: Readable.from([]) };
    },
    close: async () => undefined,
  };
  const events: AuditEvent[] = [];
  const audit: AuditTrail = { append: async (e) => void events.push(e), list: async () => [] };
  const lines: { message: string; entry: Record<string, unknown> }[] = [];
  const log: DimseLog = {
    info: (entry, message) => void lines.push({ message, entry: entry as Record<string, unknown> }),
    warn: (entry, message) => void lines.push({ message, entry: entry as Record<string, unknown> }),
    error: (entry, message) => void lines.push({ message, entry: entry as Record<string, unknown> }),
  };
  const config = {
    aeTitle: 'DEID_GATEWAY',
    moveDestinations: [
      { aeTitle: 'RESEARCH_PACS', host: '127.0.0.1', port: 1 },
      { aeTitle: 'OTHER_PACS', host: '127.0.0.1', port: 1 },
    ],
    maxPduBytes: 16_384,
    pduTimeoutMs: 1_000,
  } as GatewayConfig['dimse'];
  const options: ResearchFaceOptions = { config, client, log, audit, now: () => NOW };
  return { options, asked, events, lines };
}

function operation<R extends Request>(request: R): { op: Operation<R>; statuses: number[] } {
  const statuses: number[] = [];
  const op: Operation<R> = {
    caller: CALLER,
    association: 'assoc-test',
    request,
    signal: new AbortController().signal,
    respond: (r) => {
      for (const one of [r].flat()) statuses.push(one.getStatus());
    },
    drained: async () => undefined,
  };
  return { op, statuses };
}

describe('the research face C-MOVE and C-GET: destinations and the audit trail', () => {
  test('a destination of dimse.moveDestinations the caller may not name is A801, as an unknown one, before the view is asked; each refusal leaves one audit record', async () => {
    const { options, asked, events, lines } = face();
    for (const destination of ['OTHER_PACS', 'NOWHERE']) {
      const { op, statuses } = operation(CMoveRequest.createStudyMoveRequest(destination, '2.25.1'));
      await moveFromView(op, options);
      assert.deepEqual(statuses, [RetrieveStatus.moveDestinationUnknown], destination);
    }
    assert.deepEqual(asked, [], 'the view was not asked');
    assert.equal(events.length, 2);
    for (const [n, destination] of ['OTHER_PACS', 'NOWHERE'].entries()) {
      const { requestId, ...event } = events[n] as AuditEvent;
      assert.deepEqual(event, {
        eventDateTime: NOW,
        eventId: { code: '110104', codingScheme: 'DCM', meaning: 'DICOM Instances Transferred' },
        eventActionCode: 'R',
        eventOutcomeIndicator: 4,
        userId: 'dimse:RESEARCH_WS',
        roleId: 'researcher',
        route: 'DIMSE C-MOVE → WADO-RS',
        httpStatus: 403,
        participantObjectId: destination,
        participantObjectIdTypeCode: 'DestinationAETitle',
        project: 'alpha',
        numberOfInstances: 0,
      });
      // The record joins the log line, which names the destination and the status.
      const line = lines.find((l) => l.entry['requestId'] === requestId);
      assert.equal(line?.message, 'DIMSE C-MOVE refused');
      assert.deepEqual({ destination: line?.entry['destination'], status: line?.entry['status'] }, { destination, status: 'A801' });
    }
  });

  test('a C-MOVE to a destination the caller may name is served: one record naming it, with the count and the outcome; the log line names it too', async () => {
    const { options, asked, events, lines } = face();
    const { op, statuses } = operation(CMoveRequest.createStudyMoveRequest('RESEARCH_PACS', '2.25.1'));
    await moveFromView(op, options);
    assert.deepEqual(statuses, [RetrieveStatus.success], 'nothing listed (an unknown UID): 0000, zero sub-operations');
    assert.equal(asked.length, 1);
    assert.equal(events.length, 1);
    assert.deepEqual(
      { outcome: events[0]?.eventOutcomeIndicator, http: events[0]?.httpStatus, to: events[0]?.participantObjectId, n: events[0]?.numberOfInstances, user: events[0]?.userId },
      { outcome: 0, http: 200, to: 'RESEARCH_PACS', n: 0, user: 'dimse:RESEARCH_WS' },
    );
    const done = lines.find((l) => l.message === 'DIMSE C-MOVE done');
    assert.equal(done?.entry['destination'], 'RESEARCH_PACS');
    assert.equal(done?.entry['requestId'], events[0]?.requestId);
  });

  test('a C-GET leaves one record naming the caller as the destination; a malformed Identifier (A900) too', async () => {
    const { options, events } = face();
    const socket = Object.assign(new EventEmitter(), { destroyed: false });
    const channel = { socket, association: { getPresentationContexts: () => [], getMaxPduLength: () => 16_384 }, pending: [] } as unknown as GetChannel;
    const { op, statuses } = operation(CGetRequest.createStudyGetRequest('2.25.1'));
    await getFromView(op, channel, options);
    const bad = CGetRequest.createStudyGetRequest('2.25.1');
    bad.setDataset(new dimse.Dataset({ StudyInstanceUID: '2.25.1' }, '1.2.840.10008.1.2'));
    const refused = operation(bad);
    await getFromView(refused.op, channel, options);
    assert.deepEqual([...statuses, ...refused.statuses], [RetrieveStatus.success, RetrieveStatus.identifierDoesNotMatch]);
    assert.deepEqual(
      events.map((e) => ({ route: e.route, to: e.participantObjectId, outcome: e.eventOutcomeIndicator, http: e.httpStatus })),
      [
        { route: 'DIMSE C-GET → WADO-RS', to: 'RESEARCH_WS', outcome: 0, http: 200 },
        { route: 'DIMSE C-GET → WADO-RS', to: 'RESEARCH_WS', outcome: 4, http: 400 },
      ],
    );
  });

  test('the final status as the trail records it: success, partial, refused, none transferred, aborted', () => {
    assert.deepEqual(auditOutcome(RetrieveStatus.success), { outcome: 0, httpStatus: 200 });
    assert.deepEqual(auditOutcome(RetrieveStatus.someFailed), { outcome: 4, httpStatus: 202 });
    assert.deepEqual(auditOutcome(RetrieveStatus.cancel), { outcome: 4, httpStatus: 202 });
    assert.deepEqual(auditOutcome(RetrieveStatus.moveDestinationUnknown), { outcome: 4, httpStatus: 403 });
    assert.deepEqual(auditOutcome(RetrieveStatus.identifierDoesNotMatch), { outcome: 4, httpStatus: 400 });
    assert.deepEqual(auditOutcome(RetrieveStatus.unableToPerformSubOperations), { outcome: 8, httpStatus: 409 });
    assert.deepEqual(auditOutcome('aborted'), { outcome: 8, httpStatus: 500 });
    assert.deepEqual(auditOutcome(undefined), { outcome: 8, httpStatus: 500 });
  });
});

import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import dimse from 'dcmjs-dimse';
import type { GatewayConfig } from '../../../src/config/schema.ts';
import type { JsonDataset } from '../../../src/dicom/json-model.ts';
import type { DimseLog } from '../../../src/dimse/forwarder.ts';
import { QUERY_RETRIEVE, type Operation } from '../../../src/dimse/research-face.ts';
import { FindStatus, findOnView, planFind, responseIdentifier, viewStatus, type FindPlan, type NaturalDataset } from '../../../src/dimse/research-find.ts';
import type { ViewClient } from '../../../src/dimse/view-client.ts';

const { Dataset } = dimse;
const { CFindRequest } = dimse.requests;
type FindRequest = InstanceType<typeof CFindRequest>;
type FindResponse = InstanceType<typeof dimse.responses.CFindResponse>;

const EXPLICIT_LE = '1.2.840.10008.1.2.1';

/** An Identifier as the listener receives it: encoded by dcmjs-dimse and read back (the shapes findscu's keys take). */
function received(elements: NaturalDataset): NaturalDataset {
  const bytes = new Dataset({ _vrMap: {}, ...elements }, EXPLICIT_LE).getDenaturalizedDataset();
  return new Dataset(bytes, EXPLICIT_LE).getElements();
}

function plan(elements: NaturalDataset, model: string = QUERY_RETRIEVE.studyRootFind, max = 10): FindPlan {
  const planned = planFind(received(elements), model, max);
  assert.ok('plan' in planned, JSON.stringify('refusal' in planned ? planned.refusal : undefined));
  return planned.plan;
}

function refusal(elements: NaturalDataset, model: string = QUERY_RETRIEVE.studyRootFind): { status: number; reason: string; comment: string } {
  const planned = planFind(elements, model, 10);
  assert.ok('refusal' in planned, 'refused');
  return planned.refusal;
}

/** A JSON element of the view's answer. */
const el = (vr: string, ...Value: unknown[]) => ({ vr, ...(Value.length ? { Value } : {}) }) as JsonDataset[string];

describe('the research face C-FIND: Identifier to QIDO-RS query', () => {
  test('a STUDY-level Identifier is a /studies search: values are keys by tag, empty keys are includefields, limit is one past the cap', () => {
    const p = plan(
      {
        QueryRetrieveLevel: 'STUDY',
        SpecificCharacterSet: 'ISO_IR 192',
        PatientName: [{ Alphabetic: 'Mü*', Ideographic: '山田' }],
        PatientID: '',
        StudyInstanceUID: ['1.2.3', '4.5.6'],
        StudyDate: '20200101-20201231',
        ModalitiesInStudy: ['CT', 'MR'],
        StudyDescription: '',
        NumberOfStudyRelatedInstances: null,
        RetrieveAETitle: '',
      },
      QUERY_RETRIEVE.studyRootFind,
      10,
    );
    assert.equal(p.level, 'STUDY');
    assert.equal(p.path, '/studies');
    assert.equal(p.query.get('00100010'), 'Mü*=山田');
    assert.equal(p.query.get('0020000D'), '1.2.3,4.5.6');
    assert.equal(p.query.get('00080020'), '20200101-20201231');
    assert.equal(p.query.get('00080061'), 'CT\\MR');
    assert.deepEqual(p.query.getAll('includefield').sort(), ['00081030', '00100020', '00201208']);
    assert.equal(p.query.get('limit'), '11');
    // Level, character set and Retrieve AE Title are answered here, never asked of the view.
    assert.equal(p.query.has('00080052') || p.query.has('00080005') || p.query.has('00080054'), false);
    assert.deepEqual(p.keys.map((k) => k.name).sort(), ['ModalitiesInStudy', 'NumberOfStudyRelatedInstances', 'PatientID', 'PatientName', 'StudyDate', 'StudyDescription', 'StudyInstanceUID'].sort());
    assert.equal(p.warning, false);
    assert.equal(p.distinct, false);
  });

  test('the query is made of dictionary tags and the caller values as URL parameters: no caller text becomes a parameter of its own', () => {
    const p = plan({ QueryRetrieveLevel: 'STUDY', PatientID: 'X&limit=100000&includefield=all', AccessionNumber: 'A#B?C' });
    assert.equal(p.query.get('00100020'), 'X&limit=100000&includefield=all');
    assert.equal(p.query.get('00080050'), 'A#B?C');
    assert.equal(p.query.get('limit'), '11');
    assert.deepEqual(p.query.getAll('includefield'), []);
    assert.deepEqual([...p.query.keys()].sort(), ['00080050', '00100020', 'limit']);
  });

  test('SERIES is /series, IMAGE is /instances (PS3.4 C.6.2.1); PATIENT in Patient Root is /studies, one match per distinct answer', () => {
    const series = plan({ QueryRetrieveLevel: 'SERIES', StudyInstanceUID: '1.2.3', SeriesInstanceUID: '', Modality: 'CT', SeriesNumber: null });
    assert.deepEqual([series.path, series.query.get('0020000D'), series.query.get('00080060')], ['/series', '1.2.3', 'CT']);
    assert.deepEqual(series.query.getAll('includefield').sort(), ['0020000E', '00200011']);
    const image = plan({ QueryRetrieveLevel: 'IMAGE', SeriesInstanceUID: '1.2.3.4', SOPInstanceUID: '', InstanceNumber: 7 });
    assert.deepEqual([image.path, image.query.get('0020000E'), image.query.get('00200013')], ['/instances', '1.2.3.4', '7']);
    const patient = plan({ QueryRetrieveLevel: 'PATIENT', PatientID: 'ANON*', PatientName: '', PatientBirthDate: '' }, QUERY_RETRIEVE.patientRootFind);
    assert.deepEqual([patient.path, patient.level, patient.distinct, patient.query.get('00100020')], ['/studies', 'PATIENT', true, 'ANON*']);
    assert.equal(plan({ QueryRetrieveLevel: 'STUDY', PatientID: '' }, QUERY_RETRIEVE.patientRootFind).path, '/studies');
  });

  test('a level the model lacks, no level or no Identifier is A900; a C-FIND on a retrieve model is 0122', () => {
    assert.equal(refusal(received({ QueryRetrieveLevel: 'PATIENT', PatientID: '' })).status, FindStatus.identifierDoesNotMatch);
    assert.equal(refusal(received({ PatientID: '' })).status, 0xa900);
    assert.equal(refusal(received({ QueryRetrieveLevel: 'study' })).status, 0xa900);
    assert.equal(refusal(received({ QueryRetrieveLevel: 'WORKLIST' })).reason, 'DIMSE_FIND_BAD_LEVEL');
    assert.equal((planFind(undefined, QUERY_RETRIEVE.studyRootFind, 10) as { refusal: { status: number } }).refusal.status, 0xa900);
    assert.equal(refusal(received({ QueryRetrieveLevel: 'STUDY' }), QUERY_RETRIEVE.studyRootGet).status, FindStatus.sopClassNotSupported);
    assert.equal(refusal(received({ QueryRetrieveLevel: 'STUDY' }), '1.2.840.10008.5.1.4.31').status, 0x0122);
  });

  test('PATIENT level takes Patient IE keys only; the patient counts are not supported: FF01 when asked, A900 as a matching key', () => {
    const lower = refusal(received({ QueryRetrieveLevel: 'PATIENT', PatientID: '', StudyDate: '' }), QUERY_RETRIEVE.patientRootFind);
    assert.deepEqual([lower.status, lower.reason, lower.comment], [0xa900, 'DIMSE_FIND_KEY_NOT_OF_LEVEL', '(0008,0020) is not a PATIENT-level key']);
    const counts = plan({ QueryRetrieveLevel: 'PATIENT', PatientID: '', NumberOfPatientRelatedStudies: null }, QUERY_RETRIEVE.patientRootFind);
    assert.equal(counts.warning, true);
    assert.deepEqual(counts.keys.map((k) => k.name), ['PatientID']);
    assert.deepEqual(counts.query.getAll('includefield'), ['00100020']);
    assert.equal(refusal(received({ QueryRetrieveLevel: 'PATIENT', NumberOfPatientRelatedStudies: 3 }), QUERY_RETRIEVE.patientRootFind).status, 0xa900);
  });

  test('private and unknown keys: refused with a value (never silently dropped), not returned and FF01 when empty', () => {
    // As dcmjs-dimse reads findscu's `-k (0009,0010)=ACME -k (0009,1001)` and `-k (0071,1001)=FOO`.
    const empty = planFind({ _vrMap: {}, QueryRetrieveLevel: 'STUDY', PatientID: '', '00091001': [new ArrayBuffer(0)], '00110010': '' }, QUERY_RETRIEVE.studyRootFind, 10);
    assert.ok('plan' in empty);
    assert.equal(empty.plan.warning, true);
    assert.deepEqual(empty.plan.keys.map((k) => k.name), ['PatientID']);
    assert.deepEqual(empty.plan.query.getAll('includefield'), ['00100020']);
    const creator = refusal({ _vrMap: {}, QueryRetrieveLevel: 'STUDY', '00090010': 'ACME' });
    assert.deepEqual([creator.status, creator.reason, creator.comment], [0xa900, 'DIMSE_FIND_UNSUPPORTED_KEY', '(0009,0010) cannot be matched']);
    assert.equal(refusal({ _vrMap: {}, QueryRetrieveLevel: 'STUDY', '00711001': [new Uint8Array([70, 79]).buffer] }).status, 0xa900);
    // A binary attribute of the dictionary cannot be matched either.
    assert.equal(refusal({ _vrMap: {}, QueryRetrieveLevel: 'IMAGE', PixelData: [new Uint8Array([1, 2]).buffer] }).reason, 'DIMSE_FIND_UNSUPPORTED_KEY');
  });

  test('PS3.4 C.2.2.2.6: a sequence is a return key (zero items: all of it; one item: its keys); a value in it or two items is A900', () => {
    const p = plan({ QueryRetrieveLevel: 'STUDY', ReferencedStudySequence: [], ProcedureCodeSequence: [{ CodeValue: '', CodeMeaning: '' }] });
    assert.deepEqual(p.query.getAll('includefield').sort(), ['00081032', '00081110']);
    assert.equal(p.keys.find((k) => k.name === 'ReferencedStudySequence')?.items, 'all');
    const items = p.keys.find((k) => k.name === 'ProcedureCodeSequence')?.items;
    assert.ok(Array.isArray(items));
    assert.deepEqual(items.map((k) => k.name).sort(), ['CodeMeaning', 'CodeValue']);
    const matching = refusal(received({ QueryRetrieveLevel: 'STUDY', ProcedureCodeSequence: [{ CodeValue: 'X' }] }));
    assert.deepEqual([matching.status, matching.reason], [0xa900, 'DIMSE_FIND_SEQUENCE_MATCHING']);
    assert.equal(refusal(received({ QueryRetrieveLevel: 'IMAGE', ReferencedImageSequence: [{ ReferencedSOPClassUID: '' }, { ReferencedSOPClassUID: '' }] })).status, 0xa900);
  });
});

describe('the research face C-FIND: a match of the view as a response Identifier', () => {
  const study = plan({
    QueryRetrieveLevel: 'STUDY',
    PatientName: '',
    PatientID: '',
    StudyInstanceUID: '',
    StudyDate: '',
    PatientWeight: null,
    NumberOfStudyRelatedInstances: null,
    ModalitiesInStudy: '',
    StudyDescription: '',
    ProcedureCodeSequence: [{ CodeValue: '' }],
    ReferencedStudySequence: [],
  });
  const match: JsonDataset = {
    '00080005': el('CS', 'ISO_IR 192'),
    '00080020': el('DA', '20190305'),
    '00080061': el('CS', 'CT', 'SR'),
    '00081190': el('UR', 'http://gateway/dicom-web/studies/2.25.1'),
    '00081032': { vr: 'SQ', Value: [{ '00080100': el('SH', 'P1'), '00080104': el('LO', 'a meaning not asked') }] as never },
    '00081110': { vr: 'SQ', Value: [{ '00081150': el('UI', '1.2.840.10008.3.1.2.3.1'), '00091001': el('LO', 'private'), '7FE00010': { vr: 'OB', InlineBinary: 'AAAA' } }] as never },
    '00100010': el('PN', { Alphabetic: 'ANON^7Q2XK4', Ideographic: '匿名' }),
    '00100020': el('LO', 'ANON7Q2XK4'),
    '00101030': el('DS', 0.1234567890123456),
    '00200010': el('SH', 'not asked'),
    '0020000D': el('UI', '2.25.123'),
    '00201208': el('IS', 12),
  };

  test('only the requested keys, plus the level, ISO_IR 192 and our Retrieve AE Title (PS3.4 C.4.1.1.3.2); a key the view left out is zero length', () => {
    const id = responseIdentifier(match, study, 'DEID_GATEWAY  ');
    const names = Object.keys(id).filter((k) => k !== '_vrMap').sort();
    assert.deepEqual(names, [...study.keys.map((k) => k.name), 'QueryRetrieveLevel', 'RetrieveAETitle', 'SpecificCharacterSet'].sort());
    assert.deepEqual(id['QueryRetrieveLevel'], ['STUDY']);
    assert.deepEqual(id['SpecificCharacterSet'], ['ISO_IR 192']);
    assert.deepEqual(id['RetrieveAETitle'], ['DEID_GATEWAY']);
    assert.deepEqual(id['PatientName'], [{ Alphabetic: 'ANON^7Q2XK4', Ideographic: '匿名' }]);
    assert.deepEqual(id['ModalitiesInStudy'], ['CT', 'SR']);
    assert.deepEqual(id['NumberOfStudyRelatedInstances'], ['12']);
    assert.deepEqual(id['PatientWeight'], ['0.12345678901235'], 'DS within its 16 characters');
    assert.equal(id['StudyDescription'], null);
    assert.deepEqual(id['ProcedureCodeSequence'], [{ _vrMap: { CodeValue: 'SH' }, CodeValue: ['P1'] }]);
    // Zero items asked: the items whole, but what dcmjs cannot name or write as text (private, binary).
    assert.deepEqual(id['ReferencedStudySequence'], [{ _vrMap: { ReferencedSOPClassUID: 'UI' }, ReferencedSOPClassUID: ['1.2.840.10008.3.1.2.3.1'] }]);
  });

  test('what dcmjs-dimse sends decodes to the same values, UTF-8 intact; a value too long for its VR goes zero length, and dcmjs logs nothing', () => {
    const long: JsonDataset = { ...match, '00081030': el('LO', 'x'.repeat(65)), '00100020': el('LO', 'ANON7Q2XK4') };
    const said: unknown[] = [];
    const saved = { log: console.log, info: console.info, warn: console.warn, error: console.error, debug: console.debug };
    for (const k of Object.keys(saved) as (keyof typeof saved)[]) console[k] = (...args: unknown[]) => void said.push(args);
    let back: NaturalDataset;
    try {
      const bytes = new Dataset(responseIdentifier(long, study, 'DEID_GATEWAY'), EXPLICIT_LE).getDenaturalizedDataset();
      back = new Dataset(bytes, EXPLICIT_LE).getElements();
    } finally {
      Object.assign(console, saved);
    }
    assert.deepEqual(said, []);
    assert.deepEqual(back['PatientName'], [{ Alphabetic: 'ANON^7Q2XK4', Ideographic: '匿名' }]);
    assert.equal(back['SpecificCharacterSet'], 'ISO_IR 192');
    assert.equal(back['StudyInstanceUID'], '2.25.123');
    assert.equal(back['StudyDescription'], '');
    assert.equal(back['PatientWeight'], 0.12345678901235);
    assert.equal(back['RetrieveAETitle'], 'DEID_GATEWAY');
  });

  test('the view refusing the query (400) is A900; any other answer is C001 (PS3.4 C.4.1.1.4)', () => {
    assert.equal(viewStatus(400), FindStatus.identifierDoesNotMatch);
    for (const status of [401, 403, 404, 406, 429, 500, 501, 502, 503, 504]) assert.equal(viewStatus(status), FindStatus.unableToProcess, String(status));
  });
});

/** A view client answering from a stream the test writes: the view's side of the loopback request, not the PACS. */
function scriptedView(answer: { statusCode?: number; fail?: Error } = {}) {
  const asked: string[] = [];
  const body = new PassThrough();
  const client: ViewClient = {
    async get(_caller, pathAndQuery, accept, signal) {
      asked.push(pathAndQuery);
      assert.equal(accept, 'application/dicom+json');
      if (answer.fail) throw answer.fail;
      signal?.addEventListener('abort', () => body.destroy(Object.assign(new Error('aborted'), { name: 'AbortError' })), { once: true });
      return { statusCode: answer.statusCode ?? 200, headers: {}, body };
    },
    close: async () => undefined,
  };
  return { client, asked, body };
}

function recordingLog() {
  const lines: { level: string; entry: object; message: string }[] = [];
  const log: DimseLog = {
    info: (entry, message) => void lines.push({ level: 'info', entry, message }),
    warn: (entry, message) => void lines.push({ level: 'warn', entry, message }),
    error: (entry, message) => void lines.push({ level: 'error', entry, message }),
  };
  return { log, lines };
}

function operation(elements: NaturalDataset, model: string = QUERY_RETRIEVE.studyRootFind) {
  const request: FindRequest = CFindRequest.createStudyFindRequest({});
  request.setAffectedSopClassUid(model);
  request.setDataset(new Dataset(received(elements), EXPLICIT_LE));
  const controller = new AbortController();
  const responses: FindResponse[] = [];
  let notify: () => void = () => undefined;
  /** What `drained()` waits on: resolved unless a test holds it (a peer that stopped reading). */
  const socket = { room: Promise.resolve(), waits: 0 };
  const op: Operation<FindRequest> = {
    caller: { aeTitle: 'RESEARCH_WS', role: 'researcher', project: 'alpha', moveDestinations: [] },
    association: 'assoc-test',
    request,
    signal: controller.signal,
    respond: (r) => {
      responses.push(...(Array.isArray(r) ? r : [r]));
      notify();
    },
    drained: () => {
      socket.waits++;
      return socket.room;
    },
  };
  /** Resolves once `n` responses were sent. */
  const sent = (n: number) =>
    new Promise<void>((resolve) => {
      notify = () => responses.length >= n && resolve();
      notify();
    });
  const statuses = () => responses.map((r) => r.getStatus());
  return { op, controller, responses, sent, statuses, socket };
}

const config = (maxFindResults = 10) => ({ aeTitle: 'DEID_GATEWAY', maxFindResults }) as GatewayConfig['dimse'];
const studyItem = (uid: string, patient = 'ANON7Q2XK4') => JSON.stringify({ '0020000D': el('UI', uid), '00100020': el('LO', patient), '00100010': el('PN', { Alphabetic: `ANON^${patient}` }) });

describe('the research face C-FIND: responses as the view answers', () => {
  test('each match is sent as it is read, before the view has answered the rest; then 0000, and one info line without values', async () => {
    const view = scriptedView();
    const { log, lines } = recordingLog();
    const find = operation({ QueryRetrieveLevel: 'STUDY', StudyInstanceUID: '', PatientID: 'ANON7Q2XK4' });
    const done = findOnView(find.op, { config: config(), client: view.client, log });
    view.body.write(`[${studyItem('2.25.1')}`);
    await find.sent(1);
    assert.deepEqual(find.statuses(), [0xff00]);
    assert.equal(find.responses[0]?.getDataset()?.getElements()['StudyInstanceUID'] !== undefined, true);
    view.body.end(`,${studyItem('2.25.2')}]`);
    await done;
    assert.deepEqual(find.statuses(), [0xff00, 0xff00, 0x0000]);
    assert.deepEqual(view.asked, ['/studies?00100020=ANON7Q2XK4&includefield=0020000D&limit=11']);
    assert.deepEqual(
      find.responses.slice(0, 2).map((r) => r.getDataset()?.getElements()['StudyInstanceUID']),
      [['2.25.1'], ['2.25.2']],
    );
    assert.deepEqual(lines, [{ level: 'info', entry: { association: 'assoc-test', callingAe: 'RESEARCH_WS', level: 'STUDY', matches: 2, status: '0000' }, message: 'DIMSE C-FIND' }]);
  });

  test('back-pressure: while the association\'s socket has no room, the next match is not read from the view nor sent', async () => {
    const view = scriptedView();
    const find = operation({ QueryRetrieveLevel: 'STUDY', StudyInstanceUID: '' });
    let room: () => void = () => undefined;
    find.socket.room = new Promise<void>((resolve) => {
      room = resolve;
    });
    const done = findOnView(find.op, { config: config(), client: view.client, log: recordingLog().log });
    view.body.end(`[${['2.25.1', '2.25.2', '2.25.3'].map((u) => studyItem(u)).join(',')}]`);
    await find.sent(1);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(find.statuses(), [0xff00], 'one match sent, then it waits for the socket to drain');
    assert.equal(find.socket.waits, 1);
    find.socket.room = Promise.resolve();
    room();
    await done;
    assert.deepEqual(find.statuses(), [0xff00, 0xff00, 0xff00, 0x0000]);
    assert.equal(find.socket.waits, 3, 'after each match');
  });

  test('a C-CANCEL stops reading the view at once: its answer is destroyed and the final status is FE00', async () => {
    const view = scriptedView();
    const { log, lines } = recordingLog();
    const find = operation({ QueryRetrieveLevel: 'STUDY', StudyInstanceUID: '' });
    const done = findOnView(find.op, { config: config(), client: view.client, log });
    view.body.write(`[${studyItem('2.25.1')},`);
    await find.sent(1);
    find.controller.abort(new Error('C-CANCEL'));
    await done;
    assert.equal(view.body.destroyed, true);
    assert.deepEqual(find.statuses(), [0xff00, FindStatus.cancel]);
    assert.deepEqual(lines.at(-1)?.entry, { association: 'assoc-test', callingAe: 'RESEARCH_WS', level: 'STUDY', matches: 1, status: 'FE00' });
  });

  test('at most dimse.maxFindResults matches: the rest are cut, a warning is logged, the final status stays 0000', async () => {
    const view = scriptedView();
    const { log, lines } = recordingLog();
    const find = operation({ QueryRetrieveLevel: 'STUDY', StudyInstanceUID: '' });
    view.body.end(`[${['2.25.1', '2.25.2', '2.25.3'].map((u) => studyItem(u)).join(',')}]`);
    await findOnView(find.op, { config: config(2), client: view.client, log });
    assert.match(view.asked[0] as string, /limit=3$/);
    assert.deepEqual(find.statuses(), [0xff00, 0xff00, 0x0000]);
    assert.ok(lines.some((l) => l.level === 'warn' && l.message === 'DIMSE C-FIND answer cut at dimse.maxFindResults'));
    assert.equal(view.body.destroyed, true);
  });

  test('PATIENT level: one match per patient, with patient-level keys only', async () => {
    const view = scriptedView();
    const find = operation({ QueryRetrieveLevel: 'PATIENT', PatientID: '', PatientName: '' }, QUERY_RETRIEVE.patientRootFind);
    view.body.end(`[${studyItem('2.25.1', 'P1')},${studyItem('2.25.2', 'P2')},${studyItem('2.25.3', 'P1')}]`);
    await findOnView(find.op, { config: config(), client: view.client, log: recordingLog().log });
    assert.deepEqual(find.statuses(), [0xff00, 0xff00, 0x0000]);
    assert.deepEqual(
      find.responses.slice(0, 2).map((r) => r.getDataset()?.getElements()['PatientID']),
      [['P1'], ['P2']],
    );
    assert.equal(find.responses[0]?.getDataset()?.getElements()['StudyInstanceUID'], undefined);
  });

  test('a refused Identifier is answered without asking the view; the view refusing the query is A900 with its code as Error Comment', async () => {
    const unasked = scriptedView();
    const bad = operation({ QueryRetrieveLevel: 'STUDY', ProcedureCodeSequence: [{ CodeValue: 'X' }] });
    await findOnView(bad.op, { config: config(), client: unasked.client, log: recordingLog().log });
    assert.deepEqual(unasked.asked, []);
    assert.deepEqual(bad.statuses(), [0xa900]);
    assert.equal(bad.responses[0]?.getErrorComment(), '(0008,1032): sequence matching is not supported');

    const view = scriptedView({ statusCode: 400 });
    const { log, lines } = recordingLog();
    const find = operation({ QueryRetrieveLevel: 'STUDY', StudyDate: '2020-01-01' });
    view.body.end(JSON.stringify({ error: { code: 'QIDO_BAD_VALUE', message: 'the value of 00080020 is not valid for its VR' } }));
    await findOnView(find.op, { config: config(), client: view.client, log });
    assert.deepEqual(find.statuses(), [0xa900]);
    assert.equal(find.responses[0]?.getErrorComment(), 'QIDO_BAD_VALUE');
    assert.deepEqual(lines.at(-1)?.entry, { association: 'assoc-test', callingAe: 'RESEARCH_WS', level: 'STUDY', matches: 0, status: 'A900', reason: 'QIDO_BAD_VALUE' });
  });

  test('the view failing (5xx, unreachable, an answer cut short) is C001, after the matches already sent', async () => {
    const failed = scriptedView({ statusCode: 502 });
    const a = operation({ QueryRetrieveLevel: 'STUDY', StudyInstanceUID: '' });
    failed.body.end(JSON.stringify({ error: { code: 'UPSTREAM_UNREACHABLE' } }));
    await findOnView(a.op, { config: config(), client: failed.client, log: recordingLog().log });
    assert.deepEqual(a.statuses(), [FindStatus.unableToProcess]);
    assert.equal(a.responses[0]?.getErrorComment(), 'UPSTREAM_UNREACHABLE');

    const down = scriptedView({ fail: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'UPSTREAM_UNREACHABLE' }) });
    const b = operation({ QueryRetrieveLevel: 'STUDY', StudyInstanceUID: '' });
    const { log, lines } = recordingLog();
    await findOnView(b.op, { config: config(), client: down.client, log });
    assert.deepEqual(b.statuses(), [0xc001]);
    assert.ok(!JSON.stringify(lines).includes('127.0.0.1'), 'no message, only the code');

    const cut = scriptedView();
    const c = operation({ QueryRetrieveLevel: 'STUDY', StudyInstanceUID: '' });
    cut.body.end(`[${studyItem('2.25.1')},{"0020000D":`);
    await findOnView(c.op, { config: config(), client: cut.client, log: recordingLog().log });
    assert.deepEqual(c.statuses(), [0xff00, 0xc001]);
    assert.equal(c.responses[1]?.getErrorComment(), 'UPSTREAM_BAD_JSON');
  });
});

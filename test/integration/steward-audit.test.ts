import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import type { AuditRecord } from '../../src/store/audit-trail.ts';
import { startTestGateway, TEST_PROJECT, type TestGateway } from '../helpers/gateway.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { sample } from '../helpers/sample.ts';
import { stowBody } from '../helpers/stow.ts';

type Json = Record<string, { Value?: unknown[] }>;
const firstValue = (d: Json | undefined, tag: string) => d?.[tag]?.Value?.[0] as string | undefined;

describe('the steward re-identifies, and every restricted access is on the audit trail', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;
  const tokens: Record<string, string> = {};
  const started = new Date();

  before(async () => {
    ({ orthanc } = await startTestOrthanc({ loadSamples: true }));
    // burst 10, one token back every 10 s: the rate-limit test cannot be rescued by refill.
    gateway = await startTestGateway(orthanc.dicomWebUrl, {
      reidentify: { rateLimit: { burst: 10, perMinute: 6 } },
      audit: { file: 'audit.jsonl' },
    });
    for (const role of ['researcher', 'clinician', 'uploader', 'steward']) tokens[role] = await gateway.token(role, { sub: `${role}-1` });
    tokens['steward-2'] = await gateway.token('steward', { sub: 'steward-2' });
    tokens['researcher+steward'] = await gateway.token(['steward', 'researcher'], { sub: 'both-1' });
  });
  after(async () => {
    await gateway?.close();
    await orthanc?.stop();
  });

  const researcherGet = async (path: string) => {
    const res = await fetch(gateway.base + path, { headers: { authorization: `Bearer ${tokens['researcher']}` } });
    assert.equal(res.status, 200, path);
    return (await res.json()) as Json[];
  };
  /** Asks within the test researchers' project (every object body names it). */
  const reidentify = (who: string, body: unknown) =>
    fetch(`${gateway.url}/reidentify`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens[who]}`, 'content-type': 'application/json' },
      body: JSON.stringify(typeof body === 'object' && body !== null && !Array.isArray(body) ? { project: TEST_PROJECT, ...body } : body),
    });
  const readAudit = async (query = `since=${started.toISOString()}&limit=1000`) => {
    const res = await fetch(`${gateway.url}/audit?${query}`, { headers: { authorization: `Bearer ${tokens['steward']}` } });
    assert.equal(res.status, 200);
    return ((await res.json()) as { events: AuditRecord[] }).events;
  };
  /** The DICOMweb hook writes when the response closes: poll until the record is there. */
  const auditUntil = async (match: (e: AuditRecord) => boolean) => {
    for (let i = 0; i < 50; i++) {
      const found = (await readAudit()).filter(match);
      if (found.length > 0) return found;
      await new Promise((r) => setTimeout(r, 50));
    }
    return [];
  };

  test('a pseudonymous StudyInstanceUID, PatientID and AccessionNumber map back to the originals Orthanc holds', async () => {
    const studies = await researcherGet('/studies?includefield=all');
    const study = studies.find((s) => firstValue(s, '00080050') && firstValue(s, '00100020'));
    assert.ok(study, 'a study with a Patient ID and an Accession Number');
    const pseudo = { uid: firstValue(study, '0020000D') as string, patientId: firstValue(study, '00100020') as string, accessionNumber: firstValue(study, '00080050') as string };
    await researcherGet(`/studies/${pseudo.uid}/metadata`);

    const res = await reidentify('steward', {
      items: [
        { kind: 'uid', pseudonym: pseudo.uid },
        { kind: 'patientId', pseudonym: pseudo.patientId },
        { kind: 'accessionNumber', pseudonym: pseudo.accessionNumber },
      ],
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const { results } = (await res.json()) as { results: Array<{ kind: string; pseudonym: string; original: string }> };
    const original = Object.fromEntries(results.map((r) => [r.kind, r.original]));
    // The originals are the study Orthanc holds, its patient and its accession: read from Orthanc itself.
    const direct = await fetch(`${orthanc.dicomWebUrl}/studies?StudyInstanceUID=${original['uid']}&includefield=00100020&includefield=00080050`);
    const [held] = (await direct.json()) as Json[];
    assert.ok(held, 'Orthanc holds the re-identified study');
    assert.equal(firstValue(held, '00100020'), original['patientId']);
    assert.equal(firstValue(held, '00080050'), original['accessionNumber']);
    for (const kind of ['uid', 'patientId', 'accessionNumber'] as const) assert.notEqual(original[kind], pseudo[kind]);

    // One object asked, one object back.
    const single = await reidentify('steward', { kind: 'uid', pseudonym: pseudo.uid });
    assert.equal(single.status, 200);
    assert.deepEqual(await single.json(), { kind: 'uid', pseudonym: pseudo.uid, original: original['uid'] });

    // Each pseudonym resolved is one record, written before the answer, naming the pseudonym, never the original.
    const records = (await readAudit()).filter((e) => e.eventTypeCode?.code === 'REIDENTIFY' && e.userId === 'steward-1');
    assert.equal(records.length, 4);
    for (const r of records) {
      assert.equal(r.roleId, 'steward');
      assert.equal(r.eventId.code, '110110');
      assert.equal(r.eventActionCode, 'R');
      assert.equal(r.eventOutcomeIndicator, 0);
      assert.equal(r.route, 'POST /reidentify');
      assert.ok(Object.values(pseudo).includes(r.participantObjectId as string));
      assert.ok(!JSON.stringify(r).includes(original['uid'] as string));
    }
    assert.deepEqual(new Set(records.map((r) => r.participantObjectIdTypeCode)), new Set(['UID', 'PatientID', 'AccessionNumber']));

    // The researcher's accesses: who, which role, which pseudonymous study, what, how it ended.
    const meta = await auditUntil((e) => e.userId === 'researcher-1' && e.route === 'GET /studies/:study/metadata');
    assert.equal(meta.length, 1);
    assert.equal(meta[0]?.roleId, 'researcher');
    assert.equal(meta[0]?.participantObjectId, pseudo.uid);
    assert.equal(meta[0]?.participantObjectIdTypeCode, 'StudyInstanceUID');
    assert.deepEqual([meta[0]?.eventId.code, meta[0]?.eventActionCode, meta[0]?.eventOutcomeIndicator, meta[0]?.httpStatus], ['110106', 'R', 0, 200]);
    const search = await auditUntil((e) => e.userId === 'researcher-1' && e.route === 'GET /studies');
    assert.deepEqual([search[0]?.eventId.code, search[0]?.eventActionCode], ['110112', 'E']);
  });

  test('only the steward may re-identify or read the trail; the steward may not use DICOMweb', async () => {
    for (const who of ['researcher', 'clinician', 'uploader', 'researcher+steward']) {
      const res = await reidentify(who, { kind: 'uid', pseudonym: '2.25.1' });
      assert.equal(res.status, 403, who);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'AUTH_ROLE_FORBIDDEN');
      const audit = await fetch(`${gateway.url}/audit`, { headers: { authorization: `Bearer ${tokens[who]}` } });
      assert.equal(audit.status, 403, `${who} /audit`);
    }
    const anonymous = await fetch(`${gateway.url}/audit`);
    assert.equal(anonymous.status, 401);
    for (const path of ['/studies', '/studies/2.25.1/metadata']) {
      const res = await fetch(gateway.base + path, { headers: { authorization: `Bearer ${tokens['steward']}` } });
      assert.equal(res.status, 403, `steward ${path}`);
    }
    const post = await fetch(`${gateway.base}/studies`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens['steward']}`, 'content-type': 'multipart/related; type="application/dicom"; boundary=x' },
      body: '--x--',
    });
    assert.equal(post.status, 403, 'steward STOW');
    // Refusals are recorded too, as minor failures of the one who tried.
    const refused = await auditUntil((e) => e.userId === 'clinician-1' && e.route === 'POST /reidentify');
    assert.deepEqual([refused[0]?.roleId, refused[0]?.httpStatus, refused[0]?.eventOutcomeIndicator], ['clinician', 403, 4]);
    const both = await auditUntil((e) => e.userId === 'both-1' && e.route === 'POST /reidentify');
    assert.equal(both[0]?.roleId, 'researcher', 'researcher + steward resolves to researcher');
    const stewardDicomweb = await auditUntil((e) => e.userId === 'steward-1' && e.route === 'GET /studies/:study/metadata');
    assert.equal(stewardDicomweb[0]?.httpStatus, 403);
  });

  test('unknown pseudonyms are 404, malformed requests 400, and both are recorded', async () => {
    const unknown = await reidentify('steward', { kind: 'uid', pseudonym: '2.25.123456789' });
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, 'REID_UNKNOWN_PSEUDONYM');
    // An original is not a pseudonym.
    const [held] = (await (await fetch(`${orthanc.dicomWebUrl}/studies?limit=1`)).json()) as Json[];
    const original = await reidentify('steward', { kind: 'uid', pseudonym: firstValue(held, '0020000D') });
    assert.equal(original.status, 404);
    const list = await reidentify('steward', { items: [{ kind: 'patientId', pseudonym: 'NOPE' }] });
    assert.equal(list.status, 200);
    assert.deepEqual(await list.json(), { results: [{ kind: 'patientId', pseudonym: 'NOPE', original: null }] });
    for (const body of [{ kind: 'patientName', pseudonym: 'X' }, { kind: 'uid', pseudonym: 'not-a-uid' }, { items: [] }, 'text', { kind: 'uid' }]) {
      const res = await reidentify('steward', body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.match(((await res.json()) as { error: { code: string } }).error.code, /^REID_BAD_REQUEST$|^HTTP_BAD_REQUEST$/);
    }
    const bad = await fetch(`${gateway.url}/audit?since=yesterday`, { headers: { authorization: `Bearer ${tokens['steward']}` } });
    assert.equal(bad.status, 400);
    const events = await readAudit();
    const unknownRecord = events.find((e) => e.participantObjectId === '2.25.123456789');
    assert.deepEqual([unknownRecord?.httpStatus, unknownRecord?.eventOutcomeIndicator], [404, 4]);
    assert.ok(events.some((e) => e.route === 'POST /reidentify' && e.httpStatus === 400 && e.userId === 'steward-1'));
  });

  test('the rate limit is per subject: past the burst, 429 with Retry-After, recorded; another steward is unaffected', async () => {
    const items = Array.from({ length: 10 }, (_, i) => ({ kind: 'patientId', pseudonym: `X${i}` }));
    const tooMany = await reidentify('steward-2', { items: [...items, { kind: 'patientId', pseudonym: 'X10' }] });
    assert.equal(tooMany.status, 400, 'more than the burst in one request');
    assert.equal((await reidentify('steward-2', { items })).status, 200);
    const limited = await reidentify('steward-2', { kind: 'uid', pseudonym: '2.25.1' });
    assert.equal(limited.status, 429);
    const retryAfter = Number(limited.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 10, `Retry-After ${retryAfter}`);
    assert.equal(((await limited.json()) as { error: { code: string } }).error.code, 'REID_RATE_LIMITED');
    assert.equal((await reidentify('steward', { kind: 'uid', pseudonym: '2.25.2' })).status, 404, 'steward-1 still has tokens');
    const records = (await readAudit()).filter((e) => e.userId === 'steward-2' && e.httpStatus === 429);
    assert.equal(records.length, 1);
    assert.equal(records[0]?.eventOutcomeIndicator, 4);
  });

  test('uploads are recorded as Import, without the target study (an uploader may name the original)', async () => {
    const stow = (path: string) => {
      const { body, contentType } = stowBody([sample('private-tags/CT_small.dcm')]);
      return fetch(gateway.base + path, { method: 'POST', headers: { authorization: `Bearer ${tokens['uploader']}`, 'content-type': contentType }, body });
    };
    assert.equal((await stow('/studies')).status, 200);
    assert.equal((await stow('/studies/2.25.42')).status, 409, 'the upload is not of the target study');
    const plain = await auditUntil((e) => e.userId === 'uploader-1' && e.route === 'POST /studies');
    assert.deepEqual([plain[0]?.roleId, plain[0]?.eventId.code, plain[0]?.eventActionCode, plain[0]?.eventOutcomeIndicator], ['uploader', '110107', 'C', 0]);
    assert.equal(plain[0]?.participantObjectId, undefined);
    const targeted = await auditUntil((e) => e.userId === 'uploader-1' && e.route === 'POST /studies/:study');
    assert.deepEqual([targeted[0]?.participantObjectId, targeted[0]?.httpStatus, targeted[0]?.eventOutcomeIndicator], [undefined, 409, 4]);
  });

  test('uploads through the browser page are recorded as Import too; a file refused is a minor failure', async () => {
    const upload = async (file: string) => {
      const form = new FormData();
      form.append('file', new Blob([new Uint8Array(sample(file))]), 'a.dcm');
      const res = await fetch(`${gateway.url}/upload`, { method: 'POST', body: form, headers: { authorization: `Bearer ${tokens['uploader']}` } });
      assert.equal(res.status, 200, file);
      return ((await res.json()) as { files: { outcome: string }[] }).files[0]?.outcome;
    };
    assert.equal(await upload('transfer-syntax/MR_small.dcm'), 'stored');
    const stored = await auditUntil((e) => e.userId === 'uploader-1' && e.route === 'POST /upload');
    assert.equal(stored.length, 1);
    assert.deepEqual(
      [stored[0]?.roleId, stored[0]?.eventId.code, stored[0]?.eventActionCode, stored[0]?.httpStatus, stored[0]?.eventOutcomeIndicator],
      ['uploader', '110107', 'C', 200, 0],
    );
    assert.equal(await upload('edge-cases/MR_truncated.dcm'), 'refused');
    const refused = await auditUntil((e) => e.userId === 'uploader-1' && e.route === 'POST /upload' && e.id !== stored[0]?.id);
    assert.deepEqual([refused[0]?.eventId.code, refused[0]?.httpStatus, refused[0]?.eventOutcomeIndicator], ['110107', 200, 4]);
    // Refused at the door (wrong role) is recorded as well, under the one who tried.
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(sample('transfer-syntax/MR_small.dcm'))]), 'a.dcm');
    const wrongRole = await fetch(`${gateway.url}/upload`, { method: 'POST', body: form, headers: { authorization: `Bearer ${tokens['researcher']}` } });
    assert.equal(wrongRole.status, 403);
    await wrongRole.arrayBuffer();
    const door = await auditUntil((e) => e.userId === 'researcher-1' && e.route === 'POST /upload');
    assert.deepEqual([door[0]?.roleId, door[0]?.httpStatus, door[0]?.eventOutcomeIndicator], ['researcher', 403, 4]);
  });

  test('reading the trail is itself recorded and pages by id; the table refuses UPDATE and DELETE', async () => {
    const first = await readAudit('limit=2');
    assert.equal(first.length, 2);
    const next = await readAudit(`after=${first[1]?.id}&limit=2`);
    assert.ok(Number(next[0]?.id) > Number(first[1]?.id));
    const reads = (await readAudit()).filter((e) => e.eventId.code === '110101');
    assert.ok(reads.length >= 3);
    assert.deepEqual([reads[0]?.userId, reads[0]?.eventActionCode, reads[0]?.route], ['steward-1', 'R', 'GET /audit']);

    const db = new Database(join(gateway.keys.dir, 'data', 'pseudonyms.sqlite'));
    try {
      const count = () => (db.prepare('SELECT count(*) AS n FROM audit_event').get() as { n: number }).n;
      const before = count();
      assert.ok(before > 10);
      assert.throws(() => db.prepare(`UPDATE audit_event SET user_id = 'someone-else'`).run(), /append-only/);
      assert.throws(() => db.prepare('DELETE FROM audit_event').run(), /append-only/);
      assert.equal(count(), before);
      assert.equal((db.prepare(`SELECT count(*) AS n FROM audit_event WHERE user_id = 'someone-else'`).get() as { n: number }).n, 0);
      // audit.file: the same records, one JSON line each.
      const lines = readFileSync(join(gateway.keys.dir, 'data', 'audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AuditRecord);
      assert.equal(lines.length, before);
      assert.ok(lines.some((l) => l.eventTypeCode?.code === 'REIDENTIFY' && l.userId === 'steward-1'));
    } finally {
      db.close();
    }
  });
});

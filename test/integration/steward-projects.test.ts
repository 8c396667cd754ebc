// Issue 15, stewardship: the steward's project API (http/projects.ts) and page (/steward) over a real
// Orthanc and the real gateway. A project made of two explicit studies is exactly what its researcher
// sees; a study removed or a patient withdrawn is gone on the next request; every change, and every
// refusal, is on the audit trail with its project and never with an original PatientID.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AuditRecord } from '../../src/store/audit-trail.ts';
import { launchBrowser } from '../helpers/browser.ts';
import { startTestGateway, TEST_PROJECT, type TestGateway } from '../helpers/gateway.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';

type Json = Record<string, { Value?: unknown[] }>;
const value = (d: Json | undefined, tag: string) => (d?.[tag]?.Value?.[0] as string | undefined) ?? '';
const STUDY = '0020000D';
const PATIENT_ID = '00100020';
const PROJECT = 'trial';

interface Answer {
  status: number;
  body: Record<string, unknown> & { error?: { code: string; message: string } };
}

describe('the steward manages projects; researchers see exactly the project, at once', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;
  const tokens: Record<string, string> = {};
  /** Two original studies of two patients, each patient with this one study in the PACS. */
  let chosen: Array<{ uid: string; patientId: string }>;
  /** How many studies each original PatientID has in the PACS. */
  const studiesOf = new Map<string, number>();
  const started = new Date();

  before(async () => {
    ({ orthanc } = await startTestOrthanc({ loadSamples: true }));
    gateway = await startTestGateway(orthanc.dicomWebUrl);
    tokens['steward'] = await gateway.token('steward', { sub: 'steward-1' });
    tokens['researcher'] = await gateway.token('researcher', { sub: 'researcher-trial', project: PROJECT });
    tokens['researcher-all'] = await gateway.token('researcher', { sub: 'researcher-all' });
    for (const role of ['clinician', 'uploader']) tokens[role] = await gateway.token(role, { sub: `${role}-1` });
    // The originals, read from Orthanc itself.
    const res = await fetch(`${orthanc.dicomWebUrl}/studies?includefield=${PATIENT_ID}`, { headers: { accept: 'application/dicom+json' } });
    const studies = ((await res.json()) as Json[]).map((s) => ({ uid: value(s, STUDY), patientId: value(s, PATIENT_ID) }));
    for (const s of studies) studiesOf.set(s.patientId, (studiesOf.get(s.patientId) ?? 0) + 1);
    // Patients whose PatientID is distinctive enough (a letter, four characters) that finding it in a record means it leaked.
    chosen = studies.filter((s) => /[A-Za-z]/.test(s.patientId) && s.patientId.length >= 4 && studiesOf.get(s.patientId) === 1).slice(0, 2);
    assert.equal(chosen.length, 2, 'two patients with one study each');
  });
  after(async () => {
    await gateway?.close();
    await orthanc?.stop();
  });

  const call = async (who: string | undefined, method: string, path: string, body?: unknown): Promise<Answer> => {
    const headers: Record<string, string> = {};
    if (who) headers['authorization'] = `Bearer ${tokens[who]}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(gateway.url + path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Answer['body']) : {} };
  };
  /** A researcher's QIDO for studies: the pseudonymous study-level datasets. */
  const search = async (who: string, base = gateway.base): Promise<Json[]> => {
    const res = await fetch(`${base}/studies?includefield=${PATIENT_ID}`, { headers: { authorization: `Bearer ${tokens[who]}` } });
    assert.ok(res.status === 200 || res.status === 204, `QIDO ${res.status}`);
    return res.status === 204 ? [] : ((await res.json()) as Json[]);
  };
  const reidentify = async (kind: string, pseudonym: string, project = PROJECT) => {
    const r = await call('steward', 'POST', '/reidentify', { project, kind, pseudonym });
    assert.equal(r.status, 200);
    return r.body['original'] as string;
  };
  const audit = async (): Promise<AuditRecord[]> => {
    const r = await call('steward', 'GET', `/audit?since=${started.toISOString()}&limit=1000`);
    assert.equal(r.status, 200);
    return r.body['events'] as AuditRecord[];
  };

  /** The pseudonymous study of each chosen original, as the project's researcher sees it. */
  const pseudo: Record<string, { study: string; patientId: string }> = {};

  test('every endpoint is the steward’s: others get 403, no token 401, each refusal recorded', async () => {
    const endpoints: Array<[string, string, unknown?]> = [
      ['GET', '/projects'],
      ['POST', '/projects', { name: 'x' }],
      ['GET', `/projects/${TEST_PROJECT}`],
      ['POST', `/projects/${TEST_PROJECT}/studies`, { add: ['1.2.3'] }],
      ['POST', `/projects/${TEST_PROJECT}/withdrawals`, { patientId: 'P1' }],
      ['POST', '/withdrawals', { patientId: 'P1' }],
    ];
    for (const [method, path, body] of endpoints) {
      for (const who of ['researcher', 'clinician', 'uploader']) {
        const r = await call(who, method, path, body);
        assert.equal(r.status, 403, `${who} ${method} ${path}`);
        assert.equal(r.body.error?.code, 'AUTH_ROLE_FORBIDDEN');
      }
      assert.equal((await call(undefined, method, path, body)).status, 401, `anonymous ${method} ${path}`);
    }
    const refused = (await audit()).filter((e) => e.userId === 'clinician-1');
    assert.equal(refused.length, endpoints.length, 'one record per refused call');
    for (const e of refused) assert.deepEqual([e.httpStatus, e.eventOutcomeIndicator], [403, 4]);
    assert.ok(refused.some((e) => e.route === 'POST /projects/:project/studies' && e.project === TEST_PROJECT));
  });

  test('a definition that is not valid is refused with every issue named by its key; nothing is created', async () => {
    const bad = await call('steward', 'POST', '/projects', {
      name: 'Not A Name',
      membership: { query: { NoSuchKeyword: 'x', StudyInstanceUID: '1.2.3' }, studies: ['1.2.3', 'not a uid*'] },
      profile: { options: ['noSuchOption'], overrides: { PatientName: 'shred' } },
      colour: 'blue',
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error?.code, 'PROJECT_BAD_DEFINITION');
    for (const key of ['colour:']) assert.ok(bad.body.error?.message.includes(key), key);
    // The shape is checked first; a well-formed but invalid definition reports the rest, all at once.
    const invalid = await call('steward', 'POST', '/projects', {
      name: 'Not A Name',
      membership: { query: { NoSuchKeyword: 'x', StudyInstanceUID: '1.2.3' }, studies: ['1.2.3', 'not a uid*'] },
      profile: { options: ['noSuchOption'], overrides: { PatientName: 'shred' } },
    });
    assert.equal(invalid.status, 400);
    for (const key of [
      'name:',
      'membership.query.NoSuchKeyword',
      'membership.query.StudyInstanceUID',
      'membership.studies.1',
      'profile.options.noSuchOption',
      'profile.overrides.PatientName',
    ]) {
      assert.ok(invalid.body.error?.message.includes(key), `${key} in ${invalid.body.error?.message}`);
    }
    assert.ok(!invalid.body.error?.message.includes('not a uid*'), 'values are not echoed');
    for (const body of [null, [], 'trial', { name: 7 }, { name: 'ok', membership: { studies: 'x' } }, { name: 'ok', membership: { all: true, studies: ['1.2.3'] } }]) {
      const r = await call('steward', 'POST', '/projects', body);
      assert.equal(r.status, 400, JSON.stringify(body));
    }
    const list = await call('steward', 'GET', '/projects');
    assert.deepEqual((list.body['projects'] as Array<{ name: string }>).map((p) => p.name), [TEST_PROJECT]);
  });

  test('a project of two explicit studies is exactly what its researcher sees, under its own pseudonyms', async () => {
    const [a, b] = chosen as [(typeof chosen)[0], (typeof chosen)[0]];
    const created = await call('steward', 'POST', '/projects', {
      name: PROJECT,
      description: 'Two studies for a trial',
      membership: { studies: [a.uid, b.uid] },
      // Pixels off: this is about membership, and the studies chosen may be screen captures (issue 16).
      profile: { options: ['retainLongitudinalTemporalModifiedDates'], overrides: {}, pixels: { enabled: false } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual(
      { ...created.body, createdAt: undefined },
      {
        name: PROJECT,
        description: 'Two studies for a trial',
        profile: { options: ['retainLongitudinalTemporalModifiedDates'], overrides: {}, pixels: { enabled: false } },
        membership: { all: false, query: null },
        studyCount: 2,
        createdAt: undefined,
      },
    );
    const again = await call('steward', 'POST', '/projects', { name: PROJECT });
    assert.deepEqual([again.status, again.body.error?.code], [409, 'PROJECT_EXISTS']);

    const listed = await call('steward', 'GET', '/projects');
    assert.deepEqual(
      (listed.body['projects'] as Array<{ name: string; studyCount: number; membership: unknown }>).map((p) => [p.name, p.studyCount, p.membership]),
      [
        [TEST_PROJECT, 0, { all: true, query: null }],
        [PROJECT, 2, { all: false, query: null }],
      ],
    );
    const one = await call('steward', 'GET', `/projects/${PROJECT}`);
    assert.equal(one.status, 200);
    assert.deepEqual([one.body['studies'], one.body['studyCount'], one.body['limit'], one.body['offset']], [[a.uid, b.uid].sort(), 2, 100, 0]);
    const page = await call('steward', 'GET', `/projects/${PROJECT}?limit=1&offset=1`);
    assert.deepEqual(page.body['studies'], [[a.uid, b.uid].sort()[1]]);
    for (const q of ['limit=0', 'limit=1001', 'offset=-1', 'limit=1&limit=2', 'sort=uid']) {
      const r = await call('steward', 'GET', `/projects/${PROJECT}?${q}`);
      assert.deepEqual([r.status, r.body.error?.code], [400, 'PROJECT_BAD_REQUEST'], q);
    }

    // Through the token's only project and through the project's own path: the same two studies.
    for (const base of [gateway.base, `${gateway.url}/projects/${PROJECT}/dicom-web`]) {
      const seen = await search('researcher', base);
      assert.equal(seen.length, 2, base);
      const originals: string[] = [];
      for (const s of seen) {
        const original = await reidentify('uid', value(s, STUDY));
        originals.push(original);
        pseudo[original] = { study: value(s, STUDY), patientId: value(s, PATIENT_ID) };
        assert.notEqual(value(s, STUDY), original);
      }
      assert.deepEqual(originals.sort(), [a.uid, b.uid].sort());
    }
    // The same study under project `all` has other pseudonyms: the scopes are unlinkable.
    const everything = await search('researcher-all');
    assert.ok(everything.length > 2);
    assert.ok(!everything.some((s) => value(s, STUDY) === pseudo[a.uid]?.study || value(s, PATIENT_ID) === pseudo[a.uid]?.patientId));
  });

  test('removing a study takes it away on the next request; the list is validated', async () => {
    const [a, b] = chosen as [(typeof chosen)[0], (typeof chosen)[0]];
    const headers = { authorization: `Bearer ${tokens['researcher']}` };
    const before = await fetch(`${gateway.base}/studies/${pseudo[b.uid]?.study}/metadata`, { headers });
    assert.equal(before.status, 200);
    await before.arrayBuffer();

    const removed = await call('steward', 'POST', `/projects/${PROJECT}/studies`, { remove: [b.uid] });
    assert.deepEqual([removed.status, removed.body], [200, { added: 0, removed: 1, studyCount: 1 }]);
    const after = await fetch(`${gateway.base}/studies/${pseudo[b.uid]?.study}/metadata`, { headers });
    assert.equal(after.status, 404);
    await after.arrayBuffer();
    assert.deepEqual((await search('researcher')).map((s) => value(s, STUDY)), [pseudo[a.uid]?.study]);

    const addedTwice = await call('steward', 'POST', `/projects/${PROJECT}/studies`, { add: [a.uid] });
    assert.deepEqual(addedTwice.body, { added: 0, removed: 0, studyCount: 1 });
    const tooMany = Array.from({ length: 1001 }, (_, i) => `1.2.3.${i}`);
    for (const body of [{}, { add: ['not a uid*'] }, { add: tooMany }, { add: [a.uid], remove: [a.uid] }, { add: 'x' }, { other: [] }]) {
      const r = await call('steward', 'POST', `/projects/${PROJECT}/studies`, body);
      assert.deepEqual([r.status, r.body.error?.code], [400, 'PROJECT_BAD_REQUEST'], JSON.stringify(body).slice(0, 60));
    }
    const all = await call('steward', 'POST', `/projects/${TEST_PROJECT}/studies`, { add: [a.uid] });
    assert.deepEqual([all.status, all.body.error?.code], [400, 'PROJECT_BAD_REQUEST'], 'project `all` has no list');
    for (const [method, path, body] of [
      ['GET', '/projects/ghost', undefined],
      ['GET', '/projects/Not_A_Name', undefined],
      ['POST', '/projects/ghost/studies', { add: [a.uid] }],
      ['POST', '/projects/ghost/withdrawals', { patientId: 'P1' }],
    ] as const) {
      const r = await call('steward', method, path, body);
      assert.deepEqual([r.status, r.body.error?.code], [404, 'PROJECT_NOT_FOUND'], `${method} ${path}`);
    }
  });

  test('a patient withdrawn by the project’s pseudonymous PatientID is invisible at once; from every project, in `all` too', async () => {
    const [a, b] = chosen as [(typeof chosen)[0], (typeof chosen)[0]];
    const listedBefore = await search('researcher-all');
    const allBefore = listedBefore.length;
    // Once anyone has withdrawn from a project, its studies whose Patient ID the PACS does not give are out (fail closed).
    const noPatientId = listedBefore.filter((s) => !(PATIENT_ID in s)).length;
    const withdrawn = await call('steward', 'POST', `/projects/${PROJECT}/withdrawals`, { pseudonym: pseudo[a.uid]?.patientId });
    assert.deepEqual([withdrawn.status, withdrawn.body], [200, { withdrawn: true, alreadyWithdrawn: false }]);
    assert.deepEqual(await search('researcher'), [], 'the next request sees nothing');
    const meta = await fetch(`${gateway.base}/studies/${pseudo[a.uid]?.study}/metadata`, { headers: { authorization: `Bearer ${tokens['researcher']}` } });
    assert.equal(meta.status, 404);
    await meta.arrayBuffer();
    assert.equal((await search('researcher-all')).length, allBefore, 'withdrawn from this project only');
    const twice = await call('steward', 'POST', `/projects/${PROJECT}/withdrawals`, { pseudonym: pseudo[a.uid]?.patientId });
    assert.deepEqual(twice.body, { withdrawn: true, alreadyWithdrawn: true });

    // A pseudonym of another scope, or never issued, is unknown here.
    const unknown = await call('steward', 'POST', `/projects/${PROJECT}/withdrawals`, { pseudonym: 'NOSUCHPSEUDONYM1' });
    assert.deepEqual([unknown.status, unknown.body.error?.code], [404, 'PROJECT_PATIENT_UNKNOWN']);
    for (const body of [{}, { patientId: 'a\\b' }, { patientId: 'x'.repeat(65) }, { patientId: '   ' }, { patientId: 'P1', pseudonym: 'X' }, { project: PROJECT, patientId: 'P1' }]) {
      const r = await call('steward', 'POST', `/projects/${PROJECT}/withdrawals`, body);
      assert.deepEqual([r.status, r.body.error?.code], [400, 'PROJECT_BAD_REQUEST'], JSON.stringify(body));
      assert.ok(!r.body.error?.message.includes('a\\b'));
    }

    // From every project: by the pseudonym the project's researcher saw, and by an original PatientID.
    const everywhere = await call('steward', 'POST', '/withdrawals', { project: PROJECT, pseudonym: pseudo[a.uid]?.patientId });
    assert.deepEqual([everywhere.status, everywhere.body], [200, { withdrawn: true, alreadyWithdrawn: false }]);
    assert.equal((await search('researcher-all')).length, allBefore - (studiesOf.get(a.patientId) ?? 0) - noPatientId);
    const byOriginal = await call('steward', 'POST', '/withdrawals', { patientId: ` ${b.patientId} ` });
    assert.deepEqual([byOriginal.status, byOriginal.body], [200, { withdrawn: true, alreadyWithdrawn: false }]);
    assert.ok(!JSON.stringify(byOriginal.body).includes(b.patientId), 'the original is not echoed');
    assert.equal((await search('researcher-all')).length, allBefore - 2 - noPatientId);
    for (const body of [{ pseudonym: pseudo[a.uid]?.patientId }, { project: 'ghost', pseudonym: 'X' }, { project: PROJECT }]) {
      const r = await call('steward', 'POST', '/withdrawals', body);
      assert.ok(r.status === 400 || r.status === 404, JSON.stringify(body));
    }
  });

  test('every change and refusal is on the trail with its project, never with an original PatientID', async () => {
    const events = (await audit()).filter((e) => e.userId === 'steward-1' && e.route !== 'GET /audit' && e.route !== 'POST /reidentify');
    const summary = events.map((e) => [e.route, e.eventActionCode, e.httpStatus, e.project ?? null]);
    const expected: Array<[string, string, number, string | null]> = [
      ['POST /projects', 'C', 201, PROJECT],
      ['POST /projects', 'C', 409, PROJECT],
      ['POST /projects', 'C', 400, null],
      ['GET /projects', 'R', 200, null],
      ['GET /projects/:project', 'R', 200, PROJECT],
      ['GET /projects/:project', 'R', 404, 'ghost'],
      ['POST /projects/:project/studies', 'U', 200, PROJECT],
      ['POST /projects/:project/studies', 'U', 400, TEST_PROJECT],
      ['POST /projects/:project/withdrawals', 'U', 200, PROJECT],
      ['POST /projects/:project/withdrawals', 'U', 404, PROJECT],
      ['POST /withdrawals', 'U', 200, PROJECT],
      ['POST /withdrawals', 'U', 200, '(every project)'],
    ];
    for (const row of expected) {
      assert.ok(summary.some((r) => r.every((v, i) => v === row[i])), row.join(' '));
    }
    for (const e of events) {
      assert.equal(e.eventOutcomeIndicator, e.httpStatus < 400 ? 0 : 4);
      if (e.route.includes('withdrawals')) {
        assert.deepEqual([e.eventId.code, e.eventTypeCode?.code, e.participantObjectIdTypeCode], ['110110', 'WITHDRAW_CONSENT', 'PatientID']);
      } else assert.equal(e.eventId.code, 'PROJECT');
    }
    const withdrawals = events.filter((e) => e.route.includes('withdrawals') && e.httpStatus === 200);
    assert.deepEqual(new Set(withdrawals.map((e) => e.participantObjectId)), new Set([pseudo[chosen[0]?.uid as string]?.patientId, '(original PatientID)']));
    const trail = JSON.stringify(await audit());
    for (const { patientId } of chosen) assert.ok(!trail.includes(patientId), 'no original PatientID on the trail');
    assert.ok(!gateway.logs().includes(chosen[1]?.patientId as string), 'nor in the log');
  });

  test('DICOMweb below /projects/{project}/dicom-web still reaches the DICOMweb router', async () => {
    const steward = await fetch(`${gateway.url}/projects/${PROJECT}/dicom-web/studies`, { headers: { authorization: `Bearer ${tokens['steward']}` } });
    assert.equal(steward.status, 403, 'the steward is refused DICOMweb, not served a project');
    assert.equal(((await steward.json()) as { error: { code: string } }).error.code, 'AUTH_ROLE_FORBIDDEN');
    const other = await fetch(`${gateway.url}/projects/${PROJECT}/dicom-web/nothing-here`, { headers: { authorization: `Bearer ${tokens['researcher']}` } });
    assert.deepEqual([other.status, ((await other.json()) as { error: { code: string } }).error.code], [404, 'NOT_A_DICOMWEB_RESOURCE']);
    const all = await fetch(`${gateway.url}/projects/${TEST_PROJECT}/dicom-web/studies`, { headers: { authorization: `Bearer ${tokens['researcher-all']}` } });
    assert.equal(all.status, 200);
    await all.arrayBuffer();
  });

  test('GET /steward serves the page from our own files; in Chromium it creates a project and shows its studies', async () => {
    const page = await fetch(`${gateway.url}/steward`);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /<script src="steward\/app\.js"><\/script>/);
    assert.ok(!/<script>/.test(html), 'no inline script');
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    for (const [path, type] of [['/steward/app.js', 'javascript'], ['/steward/style.css', 'text/css']] as const) {
      const res = await fetch(gateway.url + path);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', new RegExp(type));
      await res.arrayBuffer();
    }
    assert.equal((await fetch(`${gateway.url}/steward/demo-token.json`)).status, 404, 'no demo token outside the demo');

    const browser = await launchBrowser();
    try {
      const tab = await browser.browser.newPage();
      const errors: string[] = [];
      tab.on('pageerror', (e) => errors.push(String(e)));
      // Outside the demo the page's look for a demo token is answered 404, as is the browser's favicon.
      tab.on('response', (r) => {
        if (r.status() >= 400 && !/\/(steward\/demo-token\.json|favicon\.ico)$/.test(new URL(r.url()).pathname)) errors.push(`${r.status()} ${r.url()}`);
      });
      tab.on('console', (m) => {
        if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
      });
      await tab.goto(`${gateway.url}/steward#token=${tokens['steward']}`);
      await tab.waitForSelector(`#projects tr[data-project="${PROJECT}"]`);
      assert.ok(!tab.url().includes('token='), 'the token leaves the address bar');
      await tab.fill('#new-name', 'from-page');
      await tab.fill('#new-description', 'made in the browser');
      await tab.fill('#new-studies', (chosen as Array<{ uid: string }>).map((c) => c.uid).join('\n'));
      await tab.click('#create');
      await tab.waitForSelector('#projects tr[data-project="from-page"]');
      await tab.waitForSelector('#studies tbody tr[data-study]');
      const shown = await tab.$$eval('#studies tbody tr', (trs) => trs.map((tr) => (tr as HTMLElement).dataset['study']));
      assert.deepEqual(shown, (chosen as Array<{ uid: string }>).map((c) => c.uid).sort());
      assert.match((await tab.textContent('#status')) ?? '', /created with 2 listed studies/);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
    const made = await call('steward', 'GET', '/projects/from-page');
    assert.deepEqual([made.body['studyCount'], made.body['description']], [2, 'made in the browser']);
  });
});

// Issue 21 §4: the steward's page (/steward) in Chromium, over a real Orthanc and the real gateway: a
// pseudonym pasted is shown with its original (and the request is on the trail); the audit trail is
// browsed with filters (who, what, when, outcome), a page at a time; all with the keyboard alone, under
// the page's own strict Content-Security-Policy. And `GET /audit`'s filters themselves.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import type { AuditRecord } from '../../src/store/audit-trail.ts';
import { launchBrowser } from '../helpers/browser.ts';
import { startTestGateway, TEST_PROJECT, type TestGateway } from '../helpers/gateway.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';

type Json = Record<string, { Value?: unknown[] }>;
const firstValue = (d: Json | undefined, tag: string) => d?.[tag]?.Value?.[0] as string | undefined;

describe('the steward’s page: re-identify a pasted pseudonym, browse the trail with filters, by keyboard', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;
  const tokens: Record<string, string> = {};
  /** A study as the researcher sees it (pseudonyms) and as Orthanc holds it (originals). */
  const study = { uid: '', patientId: '', originalUid: '', originalPatientId: '' };

  before(async () => {
    ({ orthanc } = await startTestOrthanc({ loadSamples: true }));
    gateway = await startTestGateway(orthanc.dicomWebUrl);
    tokens['steward'] = await gateway.token('steward', { sub: 'steward-page' });
    tokens['researcher'] = await gateway.token('researcher', { sub: 'researcher-page' });
    tokens['clinician'] = await gateway.token('clinician', { sub: 'clinician-page' });
    // The researcher's traffic the steward will read: searches, one retrieval, one refused request.
    const get = (path: string, who = 'researcher') => fetch(gateway.base + path, { headers: { authorization: `Bearer ${tokens[who]}` } });
    const studies = (await (await get('/studies?includefield=00100020')).json()) as Json[];
    const chosen = studies.find((s) => firstValue(s, '00100020'));
    assert.ok(chosen, 'a study with a PatientID');
    study.uid = firstValue(chosen, '0020000D') as string;
    study.patientId = firstValue(chosen, '00100020') as string;
    for (let i = 0; i < 30; i++) await (await get(`/studies?StudyInstanceUID=${study.uid}`)).arrayBuffer();
    await (await get(`/studies/${study.uid}/metadata`)).arrayBuffer();
    await (await get('/studies/1.2.3.4/metadata')).arrayBuffer(); // not issued: 404, a minor failure
    // The originals, from Orthanc itself (as the clinician sees them through the gateway).
    const all = (await (await get('/studies?includefield=00100020', 'clinician')).json()) as Json[];
    const original = await fetch(`${gateway.url}/reidentify`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens['steward']}`, 'content-type': 'application/json' },
      body: JSON.stringify({ project: TEST_PROJECT, kind: 'uid', pseudonym: study.uid }),
    });
    study.originalUid = ((await original.json()) as { original: string }).original;
    study.originalPatientId = firstValue(all.find((s) => firstValue(s, '0020000D') === study.originalUid), '00100020') as string;
    assert.ok(study.originalPatientId && study.originalPatientId !== study.patientId);
  });
  after(async () => {
    await gateway?.close();
    await orthanc?.stop();
  });

  const audit = async (query: string): Promise<{ status: number; events: AuditRecord[]; next?: string; error?: { code: string } }> => {
    const res = await fetch(`${gateway.url}/audit?${query}`, { headers: { authorization: `Bearer ${tokens['steward']}` } });
    return { status: res.status, ...((await res.json()) as { events: AuditRecord[]; next?: string }) };
  };

  test('GET /audit filters by who, role, what, object, outcome and time, newest first on request, and pages in either order', async () => {
    const searches = await audit('user=researcher-page&event=110112&limit=1000');
    assert.equal(searches.status, 200);
    assert.equal(searches.events.length, 31);
    for (const e of searches.events) assert.deepEqual([e.userId, e.eventId.code], ['researcher-page', '110112']);
    const byObject = await audit(`object=${study.uid}&role=researcher&limit=1000`);
    assert.ok(byObject.events.length >= 31 && byObject.events.every((e) => e.participantObjectId === study.uid));
    const refused = await audit('user=researcher-page&outcome=4');
    assert.deepEqual(refused.events.map((e) => [e.route, e.httpStatus]), [['GET /studies/:study/metadata', 404]]);
    const reid = await audit('event=REIDENTIFY');
    assert.deepEqual(reid.events.map((e) => [e.userId, e.participantObjectId]), [['steward-page', study.uid]]);
    // Newest first, in pages: the pages do not overlap and together are the whole (oldest first, reversed).
    const oldestFirst = (await audit('user=researcher-page&limit=1000')).events.map((e) => e.id);
    const pages: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await audit(`user=researcher-page&order=desc&limit=7${cursor ? `&after=${cursor}` : ''}`);
      pages.push(...page.events.map((e) => e.id));
      cursor = page.next;
    } while (cursor);
    assert.deepEqual(pages, [...oldestFirst].reverse());
    // A time window: nothing before the gateway started, nothing after now.
    assert.equal((await audit(`until=${new Date(Date.now() - 3_600_000).toISOString()}`)).events.length, 0);
    assert.equal((await audit(`since=${new Date(Date.now() + 60_000).toISOString()}`)).events.length, 0);
    const bad = await audit('outcome=3');
    assert.deepEqual([bad.status, bad.error?.code], [400, 'AUDIT_BAD_QUERY']);
  });

  test('in Chromium, by keyboard alone: a pasted pseudonym shows its original and is recorded; the trail is filtered and paged', async () => {
    const page = await fetch(`${gateway.url}/steward`);
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.equal(csp, "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    assert.ok(!/<script>|\sstyle=|\son[a-z]+=/.test(await page.text()), 'no inline script, style or handler');

    const browser = await launchBrowser();
    try {
      const tab: Page = await browser.browser.newPage();
      const errors: string[] = [];
      tab.on('pageerror', (e) => errors.push(String(e)));
      tab.on('console', (m) => {
        // Any CSP violation is reported on the console as an error.
        if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) errors.push(m.text());
      });
      tab.on('response', (r) => {
        if (r.status() >= 400 && !/\/(steward\/demo-token\.json|favicon\.ico|reidentify)$/.test(new URL(r.url()).pathname)) errors.push(`${r.status()} ${r.url()}`);
      });
      await tab.goto(`${gateway.url}/steward#token=${tokens['steward']}`);
      await tab.waitForSelector(`#lookup-scope option[value="${TEST_PROJECT}"]`, { state: 'attached' });
      // Every control has a label.
      const unlabelled = await tab.$$eval('input, select, textarea', (els) => els.filter((e) => (e as HTMLInputElement).labels?.length === 0).map((e) => e.id));
      assert.deepEqual(unlabelled, []);

      // 1. Re-identify: the controls in order with Tab, the pseudonym typed, Enter submits.
      await tab.focus('#lookup-scope');
      await tab.selectOption('#lookup-scope', TEST_PROJECT);
      const order: string[] = [];
      for (let i = 0; i < 3; i++) {
        await tab.keyboard.press('Tab');
        order.push(await tab.evaluate(() => document.activeElement?.id ?? ''));
      }
      assert.deepEqual(order, ['lookup-kind', 'lookup-value', 'lookup']);
      await tab.focus('#lookup-value');
      await tab.keyboard.type(study.patientId); // a keyed code: the kind follows it
      assert.equal(await tab.inputValue('#lookup-kind'), 'patientId');
      await tab.keyboard.press('Enter');
      await tab.waitForSelector('#lookup-result code');
      assert.equal(await tab.textContent('#lookup-result code'), study.originalPatientId);
      await tab.fill('#lookup-value', '');
      await tab.focus('#lookup-value');
      await tab.keyboard.type(study.uid); // dots: a UID
      assert.equal(await tab.inputValue('#lookup-kind'), 'uid');
      await tab.keyboard.press('Enter');
      await tab.waitForFunction((uid) => document.querySelector('#lookup-result code')?.textContent === uid, study.originalUid);
      // A pseudonym never issued: no original, the reason shown.
      await tab.fill('#lookup-value', '2.25.1234567');
      await tab.press('#lookup-value', 'Enter');
      await tab.waitForFunction(() => document.querySelector('#lookup-result')?.textContent === 'No original shown.');
      assert.match((await tab.textContent('#status')) ?? '', /REID_UNKNOWN_PSEUDONYM/);
      const recorded = await audit('event=REIDENTIFY&user=steward-page&order=desc&limit=3');
      assert.deepEqual(
        recorded.events.map((e) => [e.participantObjectId, e.eventOutcomeIndicator]),
        [['2.25.1234567', 4], [study.uid, 0], [study.patientId, 0]],
        'each look is on the trail, answered or not, naming the pseudonym only',
      );

      // 2. The trail: who + what, Enter in a field searches.
      await tab.focus('#audit-user');
      await tab.keyboard.type('researcher-page');
      await tab.selectOption('#audit-event', '110112');
      await tab.selectOption('#audit-limit', '25');
      await tab.press('#audit-user', 'Enter');
      await tab.waitForFunction(() => document.body.dataset['auditPage'] === '1');
      const rows = (t: Page) => t.$$eval('#audit tbody tr', (trs) => trs.map((tr) => [(tr as HTMLElement).dataset['id'], ...[...tr.children].map((td) => td.textContent)]));
      const first = await rows(tab);
      assert.equal(first.length, 25);
      for (const r of first) assert.deepEqual([r[2], r[3], r[4]], ['researcher-page', 'researcher', 'Query (execute)']);
      const ids = first.map((r) => Number(r[0]));
      assert.deepEqual(ids, [...ids].sort((a, b) => b - a), 'newest first');
      // Next page with the keyboard: focus the button, Enter.
      await tab.focus('#audit-next');
      await tab.keyboard.press('Enter');
      await tab.waitForFunction(() => document.body.dataset['auditPage'] === '2');
      const second = await rows(tab);
      assert.equal(second.length, 31 - 25);
      assert.ok(Number(second[0]?.[0]) < Math.min(...ids), 'older records on the next page');
      assert.equal(await tab.isDisabled('#audit-next'), true);
      await tab.focus('#audit-prev');
      await tab.keyboard.press('Enter');
      await tab.waitForFunction(() => document.body.dataset['auditPage'] === '1');
      assert.deepEqual((await rows(tab)).map((r) => r[0]), first.map((r) => r[0]));
      // Outcome: the refused request only; then a window in the future: nothing.
      await tab.selectOption('#audit-event', '');
      await tab.selectOption('#audit-outcome', '4');
      await tab.press('#audit-user', 'Enter');
      await tab.waitForFunction(() => document.querySelectorAll('#audit tbody tr').length === 1);
      assert.match((await tab.textContent('#audit tbody tr')) ?? '', /GET \/studies\/:study\/metadata.*minor failure · 404/);
      await tab.fill('#audit-since', '2099-01-01T00:00:00');
      await tab.press('#audit-user', 'Enter');
      await tab.waitForFunction(() => document.querySelector('#audit-caption')?.textContent === 'No record matches.');
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
    // Reading the trail from the page is itself on the trail.
    const reads = await audit('event=110101&user=steward-page&limit=1000');
    assert.ok(reads.events.length >= 4);
  });
});

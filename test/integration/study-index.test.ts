// Issue 20, goal 5: the de-identified study index. A real Orthanc (every shared sample) behind a
// recording proxy; two gateways on the same keys, one with the index (Orthanc's change feed through
// the proxy too), one without. Every search answers exactly as the paging one does, the PACS is asked
// only for the candidates by UID (never the researcher's key, never a page through the archive), a
// study stored later is found through the change feed, one deleted is not shown, and the index holds
// no original value (the test's own check and scan-leaks.py).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { samplesDir } from '../../src/demo/samples.ts';
import { TAG } from '../../src/dicom/tags.ts';
import { makeKeys, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { scanLeaks } from '../helpers/leak-scan.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { startRecordingProxy, type RecordedRequest, type RecordingProxy } from '../helpers/recording-proxy.ts';
import { syntheticInstance } from '../helpers/synthetic-instance.ts';

type Json = Array<Record<string, { vr?: string; Value?: unknown[] }>>;
const STUDY_UID = '0020000D';
const first = (d: Json[number], hex: string) => d[hex]?.Value?.[0];
const nameOf = (d: Json[number]) => (first(d, '00100010') as { Alphabetic?: string } | undefined)?.Alphabetic;
/** Two gateways' answers hold the same datasets (as sets: QIDO's order is the origin's); the Retrieve URL names each gateway's own port. */
function assertSameAnswer(actual: Json, expected: Json, message: string): void {
  const key = (d: Json[number]) => JSON.stringify({ ...d, '00081190': undefined });
  assert.deepEqual(new Set(actual.map(key)), new Set(expected.map(key)), message);
}

describe('the de-identified study index answers study searches as paging does, asking the PACS for candidates only', () => {
  let orthanc: OrthancProcess;
  let proxy: RecordingProxy;
  let indexed: TestGateway;
  let paging: TestGateway;
  let tokens: { indexed: string; paging: string };
  let studies: Json;
  let proxyRoot: string;

  const search = async (gateway: TestGateway, token: string, query: string) => {
    const res = await fetch(`${gateway.base}/studies?${query}`, { headers: { authorization: `Bearer ${token}`, accept: 'application/dicom+json' } });
    const text = await res.text();
    assert.equal(res.status, 200, `${query}: ${text}`);
    return text === '' ? [] : (JSON.parse(text) as Json);
  };
  /** The same search through both gateways: equal answers, and what the indexed one asked the PACS. */
  const both = async (query: string) => {
    const mark = proxy.seen.length;
    const viaIndex = await search(indexed, tokens.indexed, query);
    const asked = proxy.since(mark).filter((r) => r.url.startsWith('/dicom-web/'));
    const viaPaging = await search(paging, tokens.paging, query);
    assertSameAnswer(viaIndex, viaPaging, `${query}: the index and paging answer alike`);
    return { found: viaIndex, asked };
  };
  /** Every upstream search the index answered by: UID-list queries only, none with the researcher's key. */
  const byCandidates = (asked: RecordedRequest[], researcherKeys: string[]) => {
    assert.ok(asked.length > 0);
    for (const r of asked) {
      const params = new URL(r.url, 'http://pacs').searchParams;
      assert.ok(params.get(STUDY_UID), `${r.url}: a UID-list query`);
      assert.ok((params.get('offset') ?? '0') === '0', `${r.url}: no paging`);
      for (const k of researcherKeys) assert.equal(params.get(k), null, `${r.url}: the researcher's ${k} is not sent`);
    }
  };
  const waitForBuild = async (gateway: TestGateway, count: number) => {
    const deadline = Date.now() + 30_000;
    while ((gateway.logs().match(/study index built/g) ?? []).length < count) {
      assert.ok(Date.now() < deadline, 'the index is built');
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  before(async () => {
    ({ orthanc } = await startTestOrthanc({ loadSamples: true }));
    proxy = await startRecordingProxy(orthanc.httpUrl);
    proxyRoot = proxy.dicomWebUrl.replace(/\/dicom-web$/, '');
    const keys = await makeKeys();
    // Two gateways, one key and one project: the same pseudonyms. Each its own data dir (its own store).
    indexed = await startTestGateway(proxy.dicomWebUrl, { dataDir: join(keys.dir, 'indexed'), qido: { index: { enabled: true, orthancUrl: proxyRoot } } }, keys);
    paging = await startTestGateway(orthanc.dicomWebUrl, { dataDir: join(keys.dir, 'paging') }, keys);
    tokens = { indexed: await indexed.token('researcher'), paging: await paging.token('researcher') };
    studies = await search(paging, tokens.paging, 'includefield=00080020');
    assert.ok(studies.length >= 10, 'the samples make many studies');
    // The first search on a gateway-side key starts the build and is answered by paging meanwhile.
    await both(`PatientName=${encodeURIComponent(`${nameOf(studies[0] as Json[number])?.slice(0, 7)}*`)}`);
    await waitForBuild(indexed, 1);
    // With a change feed the scan read Orthanc's list of studies, and asked QIDO-RS by UID, never by offset.
    const scan = proxy.seen.filter((r) => r.url.startsWith('/studies?expand') || r.url.startsWith('/dicom-web/studies?'));
    assert.ok(scan.some((r) => r.url.startsWith('/studies?expand&since=0')), 'the study list was read');
    assert.ok(!scan.some((r) => /[?&]limit=500/.test(r.url)), 'no QIDO-RS page by offset');
  });
  after(async () => {
    await indexed?.close();
    await paging?.close();
    await proxy?.close();
    await orthanc?.stop();
    await rm(indexed?.keys.dir ?? '', { recursive: true, force: true });
  });

  test('pseudonymous names: prefix, exact, lower case, fuzzy, a leading wild card, a list', async () => {
    const names = studies.map(nameOf).filter((n): n is string => typeof n === 'string' && n.length > 3);
    assert.ok(names.length >= 5);
    const [a = '', b = ''] = names;
    for (const value of [`${a.slice(0, 7)}*`, a, a.toLowerCase(), `*${a.slice(-4)}`, `${a}\\${b}`, `${a.slice(0, 6)}?${a.slice(7, 9)}*`]) {
      const { found, asked } = await both(`PatientName=${encodeURIComponent(value)}`);
      assert.ok(found.length >= 1, `${value} finds its study`);
      byCandidates(asked, ['PatientName', '00100010']);
    }
    const fuzzy = await both(`PatientName=${encodeURIComponent(a.slice(0, 8).toLowerCase())}&fuzzymatching=true`);
    assert.ok(fuzzy.found.length >= 1);
    byCandidates(fuzzy.asked, ['PatientName', '00100010']);
    // A name no study has: nothing, and the PACS is not asked at all.
    const none = await both('PatientName=ZZZZNOSUCH*');
    assert.equal(none.found.length, 0);
    assert.equal(none.asked.length, 0);
  });

  test('shifted study dates: single, ranges, open ranges; with a kept key, limit and offset', async () => {
    const dates = studies.map((s) => first(s, '00080020')).filter((d): d is string => typeof d === 'string').sort();
    const low = dates[Math.floor(dates.length / 4)] as string;
    const high = dates[Math.floor((3 * dates.length) / 4)] as string;
    for (const value of [low, `${low}-${high}`, `-${low}`, `${high}-`, `${low}\\${high}`]) {
      const { found, asked } = await both(`StudyDate=${value}&includefield=00080020`);
      assert.ok(found.length >= 1, `${value} finds studies`);
      byCandidates(asked, ['StudyDate', '00080020']);
    }
    const all = await both(`StudyDate=${dates[0]}-&ModalitiesInStudy=CT`);
    byCandidates(all.asked, ['StudyDate']);
    // limit and offset pick from the matches the same way through both (in one order: the index's by UID).
    const whole = await search(indexed, tokens.indexed, `StudyDate=${dates[0]}-&includefield=00080020`);
    const page = await search(indexed, tokens.indexed, `StudyDate=${dates[0]}-&includefield=00080020&limit=3&offset=2`);
    assert.deepEqual(page, whole.slice(2, 5));
  });

  test('a key on an attribute the index does not hold pages through the PACS, as before', async () => {
    const { asked } = await both('PatientIdentityRemoved=YES&limit=5');
    assert.ok(asked.some((r) => !new URL(r.url, 'http://pacs').searchParams.get(STUDY_UID)), 'the archive is paged');
  });

  test('without a change feed the index is built by QIDO-RS paging and answers alike', async () => {
    const noFeed = await startTestGateway(proxy.dicomWebUrl, { dataDir: join(indexed.keys.dir, 'no-feed'), qido: { index: { enabled: true } } }, indexed.keys);
    try {
      const token = await noFeed.token('researcher');
      const name = nameOf(studies[3] as Json[number]) as string;
      const query = `PatientName=${encodeURIComponent(`${name.slice(0, 7)}*`)}`;
      let mark = proxy.seen.length;
      await search(noFeed, token, query);
      await waitForBuild(noFeed, 1);
      assert.ok(proxy.since(mark).some((r) => /[?&]offset=500/.test(r.url) || /[?&]limit=500/.test(r.url)), 'the scan paged QIDO-RS');
      assert.ok(!proxy.since(mark).some((r) => r.url.startsWith('/changes') || r.url.startsWith('/studies?expand')), 'no Orthanc REST call');
      const expected = await search(paging, tokens.paging, query);
      mark = proxy.seen.length;
      const found = await search(noFeed, token, query);
      byCandidates(proxy.since(mark), ['PatientName']);
      assertSameAnswer(found, expected, query);
      assert.ok(found.length >= 1);
    } finally {
      await noFeed.close();
    }
  });

  test('a scan that fails leaves searches paging as before, and is not retried by every search', async () => {
    // A feed on a loopback port nothing listens on: the scan fails at its first request.
    const broken = await startTestGateway(proxy.dicomWebUrl, { dataDir: join(indexed.keys.dir, 'broken'), qido: { index: { enabled: true, orthancUrl: 'http://127.0.0.1:1' } } }, indexed.keys);
    try {
      const token = await broken.token('researcher');
      const query = `PatientName=${encodeURIComponent(`${(nameOf(studies[2] as Json[number]) as string).slice(0, 7)}*`)}`;
      const expected = await search(paging, tokens.paging, query);
      for (let i = 0; i < 3; i++) {
        const found = await search(broken, token, query);
        assertSameAnswer(found, expected, query);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal((broken.logs().match(/study index build failed/g) ?? []).length, 1);
    } finally {
      await broken.close();
    }
  });

  test('a study stored later is found through the change feed; one deleted is not shown', async () => {
    const uid = `2.25.${BigInt(`0x${randomBytes(12).toString('hex')}`)}`;
    const file = syntheticInstance(`${uid}.1.1`, [
      [0x00080020, 'DA', '20190607'],
      [0x00080060, 'CS', 'OT'],
      [TAG.PatientName, 'PN', 'LATECOMER^INDEX'],
      [TAG.PatientID, 'LO', `LATE-${randomBytes(4).toString('hex')}`],
      [TAG.StudyInstanceUID, 'UI', uid],
      [TAG.SeriesInstanceUID, 'UI', `${uid}.1`],
    ]);
    const stored = await fetch(`${orthanc.httpUrl}/instances`, { method: 'POST', body: new Uint8Array(file), headers: { 'content-type': 'application/dicom' } });
    const { ParentStudy } = (await stored.json()) as { ParentStudy: string };
    const byUid = await search(paging, tokens.paging, `includefield=00100010&ModalitiesInStudy=OT`);
    const late = byUid.find((s) => nameOf(s) !== undefined && !studies.some((t) => first(t, STUDY_UID) === first(s, STUDY_UID)));
    assert.ok(late, 'the paging gateway sees the new study');
    const name = nameOf(late) as string;
    const found = await both(`PatientName=${encodeURIComponent(name)}`);
    assert.deepEqual(found.found.map((s) => first(s, STUDY_UID)), [first(late, STUDY_UID)], 'the index found the new study');
    byCandidates(found.asked, ['PatientName']);
    // Deleted from the PACS: its entry stays in the index, and the PACS's answer to the candidate shows nothing.
    await (await fetch(`${orthanc.httpUrl}/studies/${ParentStudy}`, { method: 'DELETE' })).arrayBuffer();
    const gone = await both(`PatientName=${encodeURIComponent(name)}`);
    assert.equal(gone.found.length, 0);
    assert.equal(gone.asked.length, 1, 'the stale candidate was checked against the PACS');
  });

  test('the index holds no original value (its own check and scan-leaks.py)', async () => {
    const db = new Database(join(indexed.keys.dir, 'indexed', 'pseudonyms.sqlite'), { readonly: true });
    const rows = db.prepare('SELECT study, doc FROM study_index_entry').all() as Array<{ study: string; doc: string }>;
    const keys = db.prepare('SELECT value FROM study_index_key').all() as Array<{ value: string }>;
    db.close();
    assert.ok(rows.length >= studies.length);
    const direct = (await (await fetch(`${orthanc.dicomWebUrl}/studies?includefield=00100010&includefield=00100020&includefield=00080020`)).json()) as Json;
    const dump = JSON.stringify({ rows, keys });
    // Every value the index holds, as held (docs) and as keyed (upper case, date digits).
    const held = new Set([...keys.map((k) => k.value), ...rows.flatMap((r) => Object.values(JSON.parse(r.doc) as Record<string, string[]>).flat()), ...rows.map((r) => r.study)]);
    const heldUpper = [...held].map((v) => v.toUpperCase());
    for (const d of direct) {
      assert.ok(!held.has(first(d, STUDY_UID) as string), 'no original StudyInstanceUID');
      const id = first(d, '00100020');
      if (typeof id === 'string' && id !== '') assert.ok(!heldUpper.includes(id.toUpperCase()), 'no original PatientID');
      const name = nameOf(d);
      if (name && name.replace(/[\^= ]/g, '').length >= 3) assert.ok(!heldUpper.some((v) => v.includes(name.toUpperCase())), 'no original PatientName');
    }
    const dir = await mkdtemp(join(tmpdir(), 'study-index-dump-'));
    try {
      await writeFile(join(dir, 'index.json'), dump);
      const scan = await scanLeaks(samplesDir(), join(dir, 'index.json'));
      assert.equal(scan.exitCode, 0, scan.report);
      assert.ok(scan.clean && scan.valuesSearched > 0, scan.summary);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

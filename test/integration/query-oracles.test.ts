// Issue 13, findings 2-4: no condition derived from a researcher's value on an attribute whose
// de-identified value differs from the original reaches the PACS. A real Orthanc behind a logging
// proxy shows what the PACS was asked; the two reported oracles (original study dates through a
// month-86 range, original birth dates through timing) are reproduced and must now tell nothing.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { createSession, type Decision } from '../../src/deid/deidentify.ts';
import { loadIntoOrthanc } from '../../src/demo/orthanc-process.ts';
import { samplesDir } from '../../src/demo/samples.ts';
import { DICTIONARY_TABLE } from '../../src/dicom/dictionary.generated.ts';
import { tagForKeyword } from '../../src/dicom/dictionary.ts';
import { tagToHex } from '../../src/dicom/tag.ts';
import { QUERY_LIMITS } from '../../src/dicomweb/qido.ts';
import { policyFor } from '../../src/config/resolve.ts';
import { makeKeys, startTestGateway, testConfig, type TestGateway, type TestKeys, scopeKey } from '../helpers/gateway.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { startRecordingProxy, type RecordedRequest, type RecordingProxy } from '../helpers/recording-proxy.ts';

const SAMPLES = ['transfer-syntax/MR_small.dcm', 'private-tags/CT_small.dcm', 'multiframe/CT0012.fragmented_no_bot_jpeg_ls.80.dcm', 'private-tags/philips-mr-epi.dcm'];
const LATE_SAMPLE = 'charset/chrFren.dcm';
type Json = Array<Record<string, { Value?: unknown[] }>>;

/** Matching modes per VR family (PS3.4 C.2.2.2): single, list, wild card, range, open ranges. */
function modesFor(vr: string): Record<string, string> {
  switch (vr) {
    case 'DA':
      return { single: '20140214', list: '20140214\\20150101', range: '20140101-20141231', openStart: '-20141231', openEnd: '20140101-' };
    case 'TM':
      return { single: '101010', list: '101010\\121212', range: '1000-1200', openStart: '-1200', openEnd: '1000-' };
    case 'DT':
      return { single: '20140214101010', list: '20140214101010\\2015', range: '2014-2015', openStart: '-20141231', openEnd: '20140101-' };
    case 'UI':
      return { single: '1.2.3.4', list: '1.2.3.4,1.2.3.5', backslashList: '1.2.3.4\\1.2.3.5' };
    case 'IS':
    case 'US':
    case 'UL':
    case 'SS':
    case 'SL':
    case 'FL':
    case 'FD':
    case 'DS':
      return { single: '5', list: '5\\6' };
    case 'AS':
      return { single: '045Y', list: '045Y\\046Y' };
    case 'AT':
      return { single: '00100010' };
    default:
      return { single: 'ABC', list: 'ABC\\DEF', wildcard: 'A*', wildcardMiddle: '*B?C*', question: '???' };
  }
}

/** A value malformed for the VR (PS3.5 6.2), or undefined when every string is a valid text key. */
function malformedFor(vr: string): string[] {
  switch (vr) {
    case 'DA':
      return ['20088614-', '2014021', '2014-02-14', '20140230'];
    case 'TM':
      return ['2561', 'ab'];
    case 'DT':
      return ['20141332', '2014-02'];
    case 'UI':
      return ['1.2.abc', '1..2'];
    case 'IS':
      return ['12a'];
    case 'DS':
      return ['1.2.3'];
    case 'AS':
      return ['45Y'];
    default:
      return ['A\u0001B'];
  }
}

describe('a researcher query sends the PACS no condition on a value the researcher cannot see', () => {
  let orthanc: OrthancProcess;
  let proxy: RecordingProxy;
  let keys: TestKeys;
  let gateway: TestGateway;
  let token: string;
  let studies: Array<{ uid: string; pseudonym: string; shifted: string; original: string; birth: string | undefined }>;
  /** Tags of the attributes the researcher profile changes, with their VR. */
  const changed = new Map<number, string>();

  const get = async (path: string) => {
    const res = await fetch(gateway.base + path, { headers: { authorization: `Bearer ${token}` } });
    const text = await res.text();
    return { status: res.status, json: res.status === 200 ? (JSON.parse(text) as Json) : undefined, text };
  };
  /** The conditions (key → value) an upstream request carried, control parameters left out. */
  const conditions = (r: RecordedRequest) => {
    const out = new Map<number, string>();
    for (const [k, v] of new URL(r.url, 'http://pacs').searchParams) {
      if (['includefield', 'limit', 'offset', 'fuzzymatching'].includes(k)) continue;
      const tag = /^[0-9A-Fa-f]{8}$/.test(k) ? Number.parseInt(k, 16) : tagForKeyword(k);
      assert.ok(tag !== undefined, `the PACS got an unknown key ${k}`);
      out.set(tag, v);
    }
    return out;
  };

  before(async () => {
    ({ orthanc } = await startTestOrthanc());
    await loadIntoOrthanc(orthanc.httpUrl, SAMPLES.map((name) => ({ name, bytes: readFileSync(join(samplesDir(), name)) })));
    proxy = await startRecordingProxy(orthanc.httpUrl);
    keys = await makeKeys();
    gateway = await startTestGateway(proxy.dicomWebUrl, {}, keys);
    token = await gateway.token('researcher');
    // Ground truth from Orthanc directly, joined to the researcher's view by the keyed pseudonym.
    const direct = (await (await fetch(`${orthanc.dicomWebUrl}/studies?includefield=00100030`)).json()) as Json;
    const seen = (await get('/studies?includefield=00080020')).json as Json;
    const { keyedUid } = await import('../../src/deid/pseudonym.ts');
    const secret = scopeKey(keys);
    studies = direct.map((d) => {
      const original = d['0020000D']?.Value?.[0] as string;
      const pseudonym = keyedUid(secret, original);
      const mine = seen.find((s) => s['0020000D']?.Value?.[0] === pseudonym);
      assert.ok(mine, 'the researcher sees every study');
      return {
        uid: original,
        pseudonym,
        original: d['00080020']?.Value?.[0] as string,
        shifted: mine['00080020']?.Value?.[0] as string,
        birth: d['00100030']?.Value?.[0] as string | undefined,
      };
    });
    assert.ok(studies.every((s) => /^\d{8}$/.test(s.original) && /^\d{8}$/.test(s.shifted) && s.original !== s.shifted));
    assert.ok(studies.some((s) => s.birth), 'some sample has a birth date');
    // Every top-level attribute whose de-identified value differs from the original (the profile's one decision).
    const policy = policyFor(testConfig(proxy.dicomWebUrl, keys), 'researcher', readFileSync(keys.secretFile, 'utf8').trim()); // the decisions; the key does not matter
    const probe = createSession(policy);
    probe.beginDataset('probe');
    for (const line of DICTIONARY_TABLE.trim().split('\n')) {
      const [t = '', vrs = '-'] = line.split(' ');
      if (/x/i.test(t) || t.startsWith('0000') || t.startsWith('0002') || t.startsWith('fffe')) continue;
      const vr = vrs.split('/')[0] as string;
      if (['SQ', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN', '-'].includes(vr)) continue;
      const tag = Number.parseInt(t, 16);
      const decision: Decision = probe.decide({ tag, vr, path: [] }, [modesFor(vr)['single'] as string]);
      if (decision.op !== 'keep') changed.set(tag, vr);
    }
    for (const keyword of ['PatientName', 'PatientID', 'PatientBirthDate', 'StudyDate', 'SeriesDate', 'AcquisitionDateTime', 'AccessionNumber', 'InstitutionName', 'StudyInstanceUID']) {
      assert.ok(changed.has(tagForKeyword(keyword) as number), `${keyword} is changed by the profile`);
    }
  });
  after(async () => {
    await gateway?.close();
    await proxy?.close();
    await orthanc?.stop();
    if (keys) rmSync(keys.dir, { recursive: true, force: true });
  });

  test('oracle 1: a month-86 open range is 400, and open ranges flip at the shifted date, never the original', async () => {
    for (const s of studies) {
      const mark = proxy.seen.length;
      const bad = await get(`/studies?StudyInstanceUID=${s.pseudonym}&StudyDate=20088614-`);
      assert.equal(bad.status, 400);
      assert.match(bad.text, /QIDO_BAD_VALUE/);
      assert.deepEqual(proxy.since(mark), [], 'a malformed value never reaches the PACS');
      const count = async (range: string) => ((await get(`/studies?StudyInstanceUID=${s.pseudonym}&StudyDate=${range}`)).json as Json).length;
      const day = (d: string, delta: number) => {
        const t = Date.UTC(Number(d.slice(0, 4)), Number(d.slice(4, 6)) - 1, Number(d.slice(6, 8))) + delta * 86_400_000;
        return new Date(t).toISOString().slice(0, 10).replace(/-/g, '');
      };
      assert.equal(await count(`${s.shifted}-`), 1);
      assert.equal(await count(`${day(s.shifted, 1)}-`), 0);
      assert.equal(await count(`-${s.shifted}`), 1);
      assert.equal(await count(`-${day(s.shifted, -1)}`), 0);
      // Around the original date the answer is a function of the shifted one alone.
      for (const probe of [s.original, day(s.original, 1), day(s.original, -1)]) {
        assert.equal(await count(`${probe}-`), probe <= s.shifted ? 1 : 0);
        assert.equal(await count(`-${probe}`), probe >= s.shifted ? 1 : 0);
      }
      for (const r of proxy.since(mark)) assert.ok(!conditions(r).has(0x00080020), `StudyDate reached the PACS: ${r.url}`);
    }
  });

  test('oracle 2: a birth-date condition is answered without asking the PACS, whatever the value', async () => {
    const withBirth = studies.filter((s) => s.birth);
    for (const s of withBirth) {
      for (const level of ['studies', 'series', 'instances']) {
        for (const value of [s.birth as string, '19000101', `${s.birth}-`, `-${s.birth}`]) {
          const mark = proxy.seen.length;
          const answer = await get(`/${level}?StudyInstanceUID=${s.pseudonym}&PatientBirthDate=${value}`);
          assert.equal(answer.status, 200);
          assert.deepEqual(answer.json, []);
          assert.deepEqual(proxy.since(mark), [], `${level} PatientBirthDate=${value}: the PACS was asked`);
        }
      }
    }
  });

  test('datasets filtered out on the gateway leave no pseudonym in the store', async () => {
    await loadIntoOrthanc(orthanc.httpUrl, [{ name: LATE_SAMPLE, bytes: readFileSync(join(samplesDir(), LATE_SAMPLE)) }]);
    const db = new Database(join(keys.dir, 'data', 'pseudonyms.sqlite'), { readonly: true, fileMustExist: true });
    try {
      const rows = () => (db.prepare('SELECT COUNT(*) AS n FROM scoped_pseudonym').get() as { n: number }).n;
      const before = rows();
      const none = await get('/instances?PatientName=NOBODY*&includefield=all');
      assert.deepEqual(none.json, []);
      assert.equal(rows(), before, 'every dataset was filtered out: nothing saved');
      const all = await get('/instances?PatientName=ANON*');
      assert.equal((all.json as Json).length, SAMPLES.length + 1);
      assert.ok(rows() > before, 'a dataset shown saves its pseudonyms (the positive control)');
    } finally {
      db.close();
    }
  });

  test('structure: no key on a changed attribute reaches the PACS as a condition, at any level, in any matching mode', async () => {
    assert.ok(changed.size > 500, `${changed.size} changed attributes`);
    const mark = proxy.seen.length;
    const paths: string[] = [];
    // Every changed attribute, single value, at the study level.
    for (const [tag, vr] of changed) paths.push(`/studies?${tagToHex(tag)}=${encodeURIComponent(modesFor(vr)['single'] as string)}`);
    // The identity-bearing ones, by keyword and by tag, at every level and in every mode.
    const sample = ['PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex', 'PatientAge', 'StudyDate', 'SeriesDate', 'ContentDate', 'AcquisitionDateTime', 'AccessionNumber', 'StudyID', 'StudyDescription', 'InstitutionName', 'ReferringPhysicianName', 'OtherPatientIDs', 'IssuerOfPatientID', 'DeviceID', 'PatientBirthDateInAlternativeCalendar', 'SOPInstanceUID'];
    for (const keyword of sample) {
      const tag = tagForKeyword(keyword) as number;
      const vr = changed.get(tag);
      assert.ok(vr, `${keyword} is changed`);
      for (const level of ['/studies', '/series', '/instances', `/studies/${studies[0]!.pseudonym}/series`, `/studies/${studies[0]!.pseudonym}/instances`]) {
        Object.values(modesFor(vr)).forEach((value, i) => {
          // By keyword or by tag, with or without paging, in turn.
          paths.push(i % 2 === 0 ? `${level}?${keyword}=${encodeURIComponent(value)}&includefield=${keyword}` : `${level}?${tagToHex(tag)}=${encodeURIComponent(value)}&limit=2&offset=1`);
        });
      }
    }
    // Four at a time: which request asked what does not matter, since no request may carry any such condition.
    for (let i = 0; i < paths.length; i += 4) {
      await Promise.all(
        paths.slice(i, i + 4).map(async (path) => {
          const answer = await get(path);
          assert.equal(answer.status, 200, `${path}: ${answer.text.slice(0, 200)}`);
        }),
      );
    }
    const asked = proxy.since(mark);
    assert.ok(asked.length > 0, 'some queries did reach the PACS (their conditions were checked)');
    for (const r of asked) {
      for (const [tag, value] of conditions(r)) {
        if (!changed.has(tag)) continue;
        // Only a pseudonym mapped back through the store may go upstream (finding 3's one exception).
        assert.ok(tag === 0x0020000d && value.split(',').every((v) => studies.some((s) => s.uid === v)), `the PACS got a condition on ${tagToHex(tag)}: ${r.url}`);
      }
    }
  });

  test('malformed values answer 400 for every changed attribute’s VR, and nothing reaches the PACS', async () => {
    const byVr = new Map<string, number>();
    for (const [tag, vr] of changed) if (!byVr.has(vr)) byVr.set(vr, tag);
    for (const [vr, tag] of byVr) {
      for (const value of [...malformedFor(vr), 'x'.repeat(QUERY_LIMITS.valueChars + 1), Array.from({ length: QUERY_LIMITS.alternatives + 1 }, () => 'A').join('\\')]) {
        const mark = proxy.seen.length;
        const answer = await get(`/studies?${tagToHex(tag)}=${encodeURIComponent(value)}`);
        assert.equal(answer.status, 400, `${vr} ${JSON.stringify(value.slice(0, 20))}`);
        assert.deepEqual(proxy.since(mark), []);
      }
    }
    for (const query of [`PatientName=A&PatientName=B`, `PatientName=A&00100010=B`, `StudyDate=20140101&limit=x`, `fuzzymatching=maybe`]) {
      const mark = proxy.seen.length;
      assert.equal((await get(`/studies?${query}`)).status, 400, query);
      assert.deepEqual(proxy.since(mark), []);
    }
  });
});

// Issue 14, item 1: a patient's name pseudonym is a function of the patient, not of the spelling one
// representation gives the name. Orthanc's QIDO transcodes PN to ISO_IR 100 and loses characters, its
// /metadata keeps the real character set (and garbles chrH32's JIS X 0208 groups), and the gateway's own
// Part 10 reader decodes all of them: three spellings of one name. The researcher must see one name.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { keyedCode } from '../../src/deid/pseudonym.ts';
import { datasetToJson } from '../../src/dicom/json-model.ts';
import { readPart10Buffer } from '../../src/dicom/part10-reader.ts';
import { loadIntoOrthanc } from '../../src/demo/orthanc-process.ts';
import { makeKeys, startTestGateway, type TestGateway, type TestKeys, scopeKey, TEST_PROJECT } from '../helpers/gateway.ts';
import { splitMultipart } from '../helpers/multipart.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { sample } from '../helpers/sample.ts';

/** The charset samples whose Specific Character Set is not Latin-1, by their original Patient ID. */
const SAMPLES: Readonly<Record<string, string>> = {
  I2EXAMPLE: 'charset/chrI2.dcm', // ISO 2022 IR 149 (Korean)
  SCSARAB: 'charset/chrArab.dcm', // ISO_IR 127 (Arabic)
  H31EXAMPLE: 'charset/chrH31.dcm', // ISO 2022 IR 87 (Japanese)
  H32EXAMPLE: 'charset/chrH32.dcm', // ISO 2022 IR 13 + IR 87 (half-width katakana, kanji)
  X1EXAMPLE: 'charset/chrX1.dcm', // ISO_IR 192
  X2EXAMPLE: 'charset/chrX2.dcm', // GB18030
  SCSRUSS: 'charset/chrRuss.dcm', // ISO_IR 144 (Cyrillic)
};
const ALL_TS = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const WHERE = new Set([
  'QIDO studies', 'QIDO series', 'QIDO instances of a series', 'QIDO all series', 'QIDO all instances',
  'study metadata', 'series metadata', 'instance metadata', 'Part 10 study retrieval',
]);

type Json = Record<string, { vr: string; Value?: unknown[] }>;
const value = (ds: Json | undefined, key: string): unknown => ds?.[key]?.Value?.[0];
const nameOf = (ds: Json | undefined): string | undefined => (value(ds, '00100010') as { Alphabetic?: string } | undefined)?.Alphabetic;

describe('one name pseudonym per patient in QIDO, metadata and Part 10, whatever the character set', () => {
  let orthanc: OrthancProcess;
  let keys: TestKeys;
  let gateway: TestGateway;
  let researcher: string;
  /** Every name the researcher was shown, by pseudonymous Patient ID, with where it was seen. */
  const seen = new Map<string, Map<string, string[]>>();

  const get = async (path: string, accept = 'application/dicom+json') => {
    const res = await fetch(gateway.base + path, { headers: { authorization: `Bearer ${researcher}`, accept } });
    assert.equal(res.status, 200, path);
    return res;
  };
  const getJson = async (path: string) => (await (await get(path)).json()) as Json[];
  const record = (ds: Json | undefined, where: string) => {
    const patient = value(ds, '00100020');
    assert.equal(typeof patient, 'string', `${where}: a Patient ID pseudonym`);
    const name = nameOf(ds) ?? '(none)';
    const names = seen.get(patient as string) ?? new Map<string, string[]>();
    names.set(name, [...(names.get(name) ?? []), where]);
    seen.set(patient as string, names);
  };

  before(async () => {
    ({ orthanc } = await startTestOrthanc());
    const loaded = await loadIntoOrthanc(orthanc.httpUrl, Object.values(SAMPLES).map((rel) => ({ name: rel, bytes: sample(rel) })));
    assert.deepEqual(loaded.refused, []);
    keys = await makeKeys();
    gateway = await startTestGateway(orthanc.dicomWebUrl, {}, keys);
    researcher = await gateway.token('researcher');
  });
  after(async () => {
    await gateway?.close();
    await orthanc?.stop();
  });

  test('QIDO at every level, metadata at every level and study retrieval show each patient one name', async () => {
    for (const study of await getJson('/studies?includefield=all')) {
      const studyUid = value(study, '0020000D') as string;
      record(study, 'QIDO studies');
      for (const ds of await getJson(`/studies/${studyUid}/metadata`)) record(ds, 'study metadata');
      for (const series of await getJson(`/studies/${studyUid}/series?includefield=all`)) {
        const seriesUid = value(series, '0020000E') as string;
        record(series, 'QIDO series');
        for (const ds of await getJson(`/studies/${studyUid}/series/${seriesUid}/metadata`)) record(ds, 'series metadata');
        for (const instance of await getJson(`/studies/${studyUid}/series/${seriesUid}/instances?includefield=all`)) {
          record(instance, 'QIDO instances of a series');
          const sop = value(instance, '00080018') as string;
          for (const ds of await getJson(`/studies/${studyUid}/series/${seriesUid}/instances/${sop}/metadata`)) record(ds, 'instance metadata');
        }
      }
      const res = await get(`/studies/${studyUid}`, ALL_TS);
      for (const part of splitMultipart(Buffer.from(await res.arrayBuffer()), res.headers.get('content-type'))) {
        const { header } = await readPart10Buffer(part.body);
        record(datasetToJson(header.dataset, [], header.encoding.littleEndian) as Json, 'Part 10 study retrieval');
      }
    }
    for (const ds of await getJson('/instances?includefield=all')) record(ds, 'QIDO all instances');
    for (const ds of await getJson('/series?includefield=all')) record(ds, 'QIDO all series');

    assert.equal(seen.size, Object.keys(SAMPLES).length, 'one pseudonymous Patient ID per sample');
    const names = [...seen.values()].map((byName) => [...byName.keys()]);
    for (const [patient, byName] of seen) {
      assert.equal(byName.size, 1, `${patient}: ${JSON.stringify(Object.fromEntries(byName))}`);
      assert.match([...byName.keys()][0]!, /^ANON\^[A-Z2-7]{12}$/);
      assert.deepEqual(new Set([...byName.values()][0]), WHERE, `${patient}: seen in every representation`);
    }
    assert.equal(new Set(names.flat()).size, Object.keys(SAMPLES).length, 'seven patients, seven names');
  });

  test('the name is keyed on the original Patient ID, and a search by it finds that patient', async () => {
    const secret = scopeKey(keys);
    const studies = await getJson('/studies?includefield=all');
    for (const original of Object.keys(SAMPLES)) {
      const name = `ANON^${keyedCode(secret, 'patientName', `PatientID=${original}`, 12)}`;
      const study = studies.find((s) => nameOf(s) === name);
      assert.ok(study, `${original}: ${name} is shown`);
      const found = await getJson(`/studies?PatientName=${encodeURIComponent(name)}`);
      assert.deepEqual(found.map((s) => value(s, '0020000D')), [value(study, '0020000D')], `${original}: the name finds its study`);
    }
  });

  test('a steward maps the patient behind a name back through the Patient ID pseudonym shown with it', async () => {
    const steward = await gateway.token('steward', { sub: 'steward-names' });
    const studies = await getJson('/studies?includefield=all');
    const items = studies.map((s) => ({ kind: 'patientId', pseudonym: value(s, '00100020') }));
    const res = await fetch(`${gateway.url}/reidentify`, {
      method: 'POST',
      headers: { authorization: `Bearer ${steward}`, 'content-type': 'application/json' },
      body: JSON.stringify({ project: TEST_PROJECT, items }),
    });
    assert.equal(res.status, 200);
    const { results } = (await res.json()) as { results: { original: string | null }[] };
    assert.deepEqual(results.map((r) => r.original).sort(), Object.keys(SAMPLES).sort());
  });
});

// Issue 20 (QIDO at PACS scale): a key on an attribute the profile replaces with a constant (Clean
// Descriptors: the VR's dummy, whatever the original held) is decided without the PACS. A key the
// constant does not match finds nothing at once; one it matches is matched on each result. A recording
// proxy in front of a real Orthanc shows what the PACS was asked.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadIntoOrthanc } from '../../src/demo/orthanc-process.ts';
import { samplesDir } from '../../src/demo/samples.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { startRecordingProxy, type RecordingProxy } from '../helpers/recording-proxy.ts';

const SAMPLES = ['transfer-syntax/MR_small.dcm', 'private-tags/CT_small.dcm', 'private-tags/philips-mr-epi.dcm'];
const STUDY_DESCRIPTION = '00081030';

describe('QIDO keys on attributes replaced by a constant', () => {
  let orthanc: OrthancProcess;
  let proxy: RecordingProxy;
  let gateway: TestGateway;
  let token: string;
  const get = async (path: string) => {
    const res = await fetch(gateway.base + path, { headers: { authorization: `Bearer ${token}` } });
    const text = await res.text();
    return { status: res.status, json: res.status === 200 ? (JSON.parse(text) as Array<Record<string, { Value?: unknown[] }>>) : [] };
  };

  before(async () => {
    ({ orthanc } = await startTestOrthanc());
    await loadIntoOrthanc(orthanc.httpUrl, SAMPLES.map((name) => ({ name, bytes: readFileSync(join(samplesDir(), name)) })));
    proxy = await startRecordingProxy(orthanc.httpUrl);
    gateway = await startTestGateway(proxy.dicomWebUrl, { deid: { profiles: { researcher: { options: ['cleanDescriptors'] } } } });
    token = await gateway.token('researcher');
  });
  after(async () => {
    await gateway?.close();
    await proxy?.close();
    await orthanc?.stop();
  });

  test('a key the dummy does not match answers [] at every level without asking the PACS', async () => {
    for (const path of ['/studies?StudyDescription=CT*', '/series?SeriesDescription=T1*', '/instances?StudyDescription=BRAIN', `/studies?${STUDY_DESCRIPTION}=*MPRAGE*&limit=5`]) {
      const mark = proxy.seen.length;
      const answer = await get(path);
      assert.equal(answer.status, 200, path);
      assert.deepEqual(answer.json, [], path);
      assert.deepEqual(proxy.since(mark), [], `${path}: the PACS was asked`);
    }
  });

  test('a key the dummy matches is matched on each result: the studies that have a description (the positive control)', async () => {
    const all = await get(`/studies?includefield=${STUDY_DESCRIPTION}`);
    const described = all.json.filter((s) => s[STUDY_DESCRIPTION]?.Value?.length);
    assert.ok(described.length > 0 && described.every((s) => s[STUDY_DESCRIPTION]?.Value?.[0] === 'ANONYMIZED'), JSON.stringify(described));
    const mark = proxy.seen.length;
    const matched = await get('/studies?StudyDescription=ANONYM*');
    assert.equal(matched.json.length, described.length);
    assert.ok(proxy.since(mark).length > 0, 'the PACS was asked for the studies');
  });
});

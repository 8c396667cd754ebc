// Issue 14, item 4: the clinician's pass-through is no stricter than the PACS. Orthanc stores and lists
// instances whose "UIDs" are not PS3.5 9.1 UIDs (bad_sequence.dcm carries SHA-256 hex; an instance with
// no UID at all Orthanc refuses to store), and answers for them; the clinician, who sees Orthanc's QIDO
// through the gateway, must be able to open what it lists. Path segments are checked for safety (no
// traversal, no reserved characters, bounded length), not UID grammar. The researcher keeps strict
// PS3.5 UIDs: a hash is 400 and never goes upstream.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadIntoOrthanc } from '../../src/demo/orthanc-process.ts';
import { samplesDir } from '../../src/demo/samples.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { splitMultipart } from '../helpers/multipart.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { startRecordingProxy, type RecordingProxy } from '../helpers/recording-proxy.ts';

/** Identifiers as Orthanc makes them for itself (a SHA-256 in hex, its dashed SHA-1 ids): not UIDs. */
const STUDY = '3f1e0c2a9b7d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b';
const SERIES = '91fc8d80-be059714-a10bf1eb-0f43c02b-9f165a5a';
const INSTANCE = '8a8cf898-ca27c490-d0c7058c-929d0581-2bbf104d';
const ALL_TS = 'multipart/related; type="application/dicom"; transfer-syntax=*';

describe('the clinician opens what the clinician’s QIDO lists, UIDs or not', () => {
  let orthanc: OrthancProcess;
  let proxy: RecordingProxy;
  let gateway: TestGateway;
  let clinician: string;
  let researcher: string;
  const work = mkdtempSync(join(tmpdir(), 'deid-non-uid-'));

  before(async () => {
    // A copy of MR_small whose Study, Series and SOP Instance "UIDs" are made not to be UIDs (dcmtk).
    const copy = join(work, 'MR_small-non-uid.dcm');
    await copyFile(join(samplesDir(), 'transfer-syntax/MR_small.dcm'), copy);
    execFileSync('dcmodify', ['-nb', '-m', `(0020,000d)=${STUDY}`, '-m', `(0020,000e)=${SERIES}`, '-m', `(0008,0018)=${INSTANCE}`, copy]);
    ({ orthanc } = await startTestOrthanc());
    const loaded = await loadIntoOrthanc(orthanc.httpUrl, [
      { name: 'MR_small-non-uid.dcm', bytes: readFileSync(copy) },
      { name: 'edge-cases/bad_sequence.dcm', bytes: readFileSync(join(samplesDir(), 'edge-cases/bad_sequence.dcm')) },
    ]);
    assert.equal(loaded.refused.length, 0, `Orthanc stored both: ${loaded.refused.join(', ')}`);
    proxy = await startRecordingProxy(orthanc.httpUrl);
    gateway = await startTestGateway(proxy.dicomWebUrl);
    clinician = `Bearer ${await gateway.token('clinician')}`;
    researcher = `Bearer ${await gateway.token('researcher')}`;
  });
  /** A GET with the path sent as written (fetch resolves `%2E%2E` before sending). */
  const rawGet = (path: string, authorization: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const url = new URL(gateway.url);
      const req = request({ host: url.hostname, port: url.port, path, headers: { authorization } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });

  after(async () => {
    await gateway?.close();
    await proxy?.close();
    await orthanc?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('clinician QIDO lists them, and metadata, retrieval and frames answer as Orthanc direct does', async () => {
    const listed = await fetch(`${gateway.base}/instances?includefield=0020000D&includefield=0020000E`, { headers: { authorization: clinician } });
    assert.equal(listed.status, 200);
    const instances = ((await listed.json()) as Array<Record<string, { Value?: string[] }>>).map((i) => ({
      study: i['0020000D']?.Value?.[0] as string,
      series: i['0020000E']?.Value?.[0] as string,
      instance: i['00080018']?.Value?.[0] as string,
    }));
    assert.equal(instances.length, 2);
    assert.ok(instances.some((i) => i.study === STUDY && i.series === SERIES && i.instance === INSTANCE), 'the dcmodify copy is listed');
    for (const { study, series, instance } of instances) {
      assert.ok(![study, series, instance].every((id) => /^[0-9.]+$/.test(id)), 'identifiers that are not PS3.5 UIDs');
      for (const path of [`/studies/${study}/metadata`, `/studies/${study}/series/${series}/metadata`, `/studies/${study}/series/${series}/instances/${instance}/metadata`]) {
        // As the gateway names itself to the PACS (RFC 7239), so BulkDataURIs point at the same place.
        const forwarded = `host=${new URL(gateway.url).host};proto=http`;
        const direct = await fetch(orthanc.dicomWebUrl + path, { headers: { accept: 'application/dicom+json', forwarded } });
        const via = await fetch(gateway.base + path, { headers: { accept: 'application/dicom+json', authorization: clinician } });
        assert.equal(direct.status, 200, `direct ${path}`);
        assert.equal(via.status, 200, `gateway ${path}`);
        assert.deepEqual(await via.json(), await direct.json(), path);
      }
      const path = `/studies/${study}/series/${series}/instances/${instance}`;
      const direct = await fetch(orthanc.dicomWebUrl + path, { headers: { accept: ALL_TS } });
      const via = await fetch(gateway.base + path, { headers: { accept: ALL_TS, authorization: clinician } });
      assert.equal(via.status, direct.status, path);
      const parts = (res: Response, body: ArrayBuffer) => splitMultipart(Buffer.from(body), res.headers.get('content-type')).map((p) => Buffer.from(p.body).toString('base64'));
      assert.deepEqual(parts(via, await via.arrayBuffer()), parts(direct, await direct.arrayBuffer()), `${path}: the same Part 10 bytes`);
    }
    const frames = await fetch(`${gateway.base}/studies/${STUDY}/series/${SERIES}/instances/${INSTANCE}/frames/1`, {
      headers: { authorization: clinician, accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' },
    });
    assert.equal(frames.status, 200);
    assert.ok((await frames.arrayBuffer()).byteLength > 64 * 64 * 2);
  });

  test('the PACS is asked for exactly the listed identifiers, rebuilt from the route', async () => {
    const mark = proxy.seen.length;
    const res = await fetch(`${gateway.base}/studies/${STUDY}/series/${SERIES}/metadata`, { headers: { authorization: clinician } });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.deepEqual(proxy.since(mark).map((r) => r.url), [`/dicom-web/studies/${STUDY}/series/${SERIES}/metadata`]);
  });

  test('for the researcher the same identifiers are 400 DICOMWEB_BAD_PARAMETER and never go upstream', async () => {
    for (const path of [`/studies/${STUDY}/metadata`, `/studies/${STUDY}/series/${SERIES}/instances/${INSTANCE}`, `/studies/1.2.3/series/${SERIES}/instances`]) {
      const mark = proxy.seen.length;
      const res = await fetch(gateway.base + path, { headers: { authorization: researcher } });
      assert.equal(res.status, 400, path);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'DICOMWEB_BAD_PARAMETER', path);
      assert.equal(proxy.seen.length, mark, `${path}: nothing upstream`);
    }
  });

  test('unsafe segments stay refused for the clinician: reserved or non-ASCII characters, dot segments, over 128 characters', async () => {
    for (const [segment, code] of [
      ['1.2%203', 'DICOMWEB_BAD_PARAMETER'], // a space
      ['a%3Bb', 'DICOMWEB_BAD_PARAMETER'], // ';'
      ['a%40b', 'DICOMWEB_BAD_PARAMETER'], // '@'
      ['%EF%BC%91.%EF%BC%92', 'DICOMWEB_BAD_PARAMETER'], // fullwidth digits
      ['a'.repeat(129), 'DICOMWEB_BAD_PARAMETER'],
      ['%2E%2E', 'DICOMWEB_BAD_PATH'],
      ['a%2Fb', 'DICOMWEB_BAD_PATH'],
    ] as const) {
      const mark = proxy.seen.length;
      const res = await rawGet(`/dicom-web/studies/${segment}/metadata`, clinician);
      assert.equal(res.status, 400, segment);
      assert.equal((JSON.parse(res.body) as { error: { code: string } }).error.code, code, segment);
      assert.equal(proxy.seen.length, mark, `${segment}: nothing upstream`);
    }
    const ok = await fetch(`${gateway.base}/studies/${'a'.repeat(128)}/metadata`, { headers: { authorization: clinician } });
    assert.equal(ok.status, 404, 'a 128-character identifier is relayed; Orthanc does not know it');
    await ok.arrayBuffer();
  });
});

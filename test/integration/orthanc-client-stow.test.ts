// Issue 14, item 2: a second Orthanc that names the gateway in `DicomWeb.Servers` (with an uploader token
// in `HttpHeaders`) pushes an instance with `POST /dicom-web/servers/<name>/stow`. Orthanc's DICOMweb
// client frames its STOW-RS body (PS3.18 10.5) with a 73-character boundary, beyond RFC 2046's 70; the
// gateway reads it whole, and the PACS behind the gateway then holds the instance de-identified only.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { asciiValue } from '../../src/dicom/dataset.ts';
import { tagForKeyword } from '../../src/dicom/dictionary.ts';
import { boundaryFrom } from '../../src/dicom/multipart.ts';
import { readPart10Buffer } from '../../src/dicom/part10-reader.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { scanLeaks } from '../helpers/leak-scan.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { startRecordingProxy, type RecordingProxy } from '../helpers/recording-proxy.ts';
import { SAMPLES_DIR, sample } from '../helpers/sample.ts';

const SAMPLE = 'transfer-syntax/MR_small.dcm';
const IDENTITY = ['PatientName', 'PatientID', 'SOPInstanceUID', 'StudyInstanceUID', 'SeriesInstanceUID'] as const;

async function identityOf(file: Buffer): Promise<Record<(typeof IDENTITY)[number], string>> {
  const { header } = await readPart10Buffer(file);
  const value = (keyword: string) => asciiValue(header.dataset, tagForKeyword(keyword) as number) ?? '';
  return Object.fromEntries(IDENTITY.map((k) => [k, value(k)])) as Record<(typeof IDENTITY)[number], string>;
}

describe('an Orthanc that uses the gateway as its DICOMweb server stores through it, de-identified', () => {
  let pacs: OrthancProcess; // behind the gateway
  let gateway: TestGateway;
  let proxy: RecordingProxy; // between the pushing Orthanc and the gateway: shows what that client sent
  let client: OrthancProcess; // the Orthanc that pushes
  let work: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'deid-orthanc-client-'));
    ({ orthanc: pacs } = await startTestOrthanc());
    gateway = await startTestGateway(pacs.dicomWebUrl);
    proxy = await startRecordingProxy(gateway.url);
    const server = { Url: `${proxy.dicomWebUrl}/`, HttpHeaders: { Authorization: `Bearer ${await gateway.token('uploader')}` } };
    ({ orthanc: client } = await startTestOrthanc({ extraConfig: { DicomWeb: { Servers: { gateway: server } } } }));
  });
  after(async () => {
    await client?.stop();
    await proxy?.close();
    await gateway?.close();
    await pacs?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('POST /dicom-web/servers/gateway/stow: its long boundary is accepted and the PACS holds only the de-identified instance', async () => {
    const file = sample(SAMPLE);
    const original = await identityOf(file);
    assert.ok(IDENTITY.every((k) => original[k].length > 0), 'the sample carries every identity attribute checked');
    const loaded = await fetch(`${client.httpUrl}/instances`, { method: 'POST', body: new Uint8Array(file), headers: { 'content-type': 'application/dicom' } });
    const { ID } = (await loaded.json()) as { ID: string };

    const mark = proxy.seen.length;
    const res = await fetch(`${client.httpUrl}/dicom-web/servers/gateway/stow`, {
      method: 'POST',
      body: JSON.stringify({ Resources: [ID] }),
      headers: { 'content-type': 'application/json' },
    });
    const answer = await res.text();
    assert.equal(res.status, 200, answer);

    // What Orthanc's DICOMweb client sent: one STOW-RS, with a boundary RFC 2046 would call too long.
    const stows = proxy.since(mark).filter((r) => r.method === 'POST' && r.url === '/dicom-web/studies');
    assert.equal(stows.length, 1);
    const boundary = boundaryFrom(String(stows[0]?.headers['content-type']));
    assert.ok(boundary.length > 70, `Orthanc's boundary has ${boundary.length} characters`);

    // What the PACS behind the gateway holds: the one instance, pseudonymous, with none of the original identity.
    const ids = (await (await fetch(`${pacs.httpUrl}/instances`)).json()) as string[];
    assert.equal(ids.length, 1);
    const stored = Buffer.from(await (await fetch(`${pacs.httpUrl}/instances/${ids[0]}/file`)).arrayBuffer());
    const seen = await identityOf(stored);
    for (const uid of ['SOPInstanceUID', 'StudyInstanceUID', 'SeriesInstanceUID'] as const) {
      assert.match(seen[uid], /^2\.25\.\d+$/, `${uid} is a pseudonym`);
    }
    const text = stored.toString('latin1');
    for (const k of IDENTITY) assert.ok(!text.includes(original[k]), `the original ${k} reached the PACS`);
    const out = join(work, 'stored');
    await mkdir(out);
    await writeFile(join(out, 'stored.dcm'), stored);
    const scan = await scanLeaks(join(SAMPLES_DIR, SAMPLE), out);
    assert.ok(scan.clean, scan.report.slice(-2000));
  });
});

// Originals a hostile or broken source planted (found by a review of issue 13's fixes): the pseudonym
// store maps a researcher's pseudonym to whatever an instance or an upload carried, and the PACS holds
// files no good encoder writes. None of it may steer a PACS request or reach the researcher.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { makeKeys, startTestGateway, type TestGateway, type TestKeys, scopeKey } from '../helpers/gateway.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { rawInstance } from '../helpers/raw-dicom.ts';
import { startRecordingProxy, type RecordingProxy } from '../helpers/recording-proxy.ts';
import { rmSync } from 'node:fs';
import { keyedCode } from '../../src/deid/pseudonym.ts';

type Json = Array<Record<string, { vr: string; Value?: unknown[] }>>;
/** Orthanc's patient identifier: the SHA-1 of the Patient ID, in 8-character groups. */
const orthancPatient = (patientId: string) => (createHash('sha1').update(patientId).digest('hex').match(/.{8}/g) as string[]).join('-');

describe('originals planted by an upload or a broken source steer nothing and reach no researcher', () => {
  let orthanc: OrthancProcess;
  let proxy: RecordingProxy;
  let keys: TestKeys;
  let gateway: TestGateway;
  let researcher: string;
  let uploader: string;

  before(async () => {
    ({ orthanc } = await startTestOrthanc());
    const store = async (bytes: Buffer) => assert.equal((await fetch(`${orthanc.httpUrl}/instances`, { method: 'POST', body: new Uint8Array(bytes) })).status, 200);
    // A clinical patient that came from a modality, and two files from a broken encoder:
    await store(rawInstance({ study: '1.2.826.0.1.3680043.96.1', series: '1.2.826.0.1.3680043.96.1.2', instance: '1.2.826.0.1.3680043.96.1.3' }));
    // ICC Profile (OB) encoded as UT, holding text;
    await store(rawInstance({ study: '1.2.826.0.1.3680043.98.1', series: '1.2.826.0.1.3680043.98.1.2', instance: '1.2.826.0.1.3680043.98.1.3' }, [[0x28, 0x2000, 'UT', 'CANARY^SECRET born 19700101']]));
    // Rows (US, VM 1) 32 bytes long: a length that swallowed text.
    await store(rawInstance({ study: '1.2.826.0.1.3680043.98.2', series: '1.2.826.0.1.3680043.98.2.2', instance: '1.2.826.0.1.3680043.98.2.3' }, [[0x28, 0x10, 'US', 'CANARY^SECRET^PATIENT^19700101..']]));
    proxy = await startRecordingProxy(orthanc.httpUrl);
    keys = await makeKeys();
    gateway = await startTestGateway(proxy.dicomWebUrl, {}, keys);
    researcher = `Bearer ${await gateway.token('researcher')}`;
    uploader = `Bearer ${await gateway.token('uploader')}`;
  });
  after(async () => {
    await gateway?.close();
    await proxy?.close();
    await orthanc?.stop();
    if (keys) rmSync(keys.dir, { recursive: true, force: true });
  });

  /** Uploads one instance; returns the pseudonymous study UID the STOW answer names. */
  async function upload(ids: Parameters<typeof rawInstance>[0]): Promise<string> {
    const boundary = 'b0undary';
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`),
      rawInstance(ids),
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const res = await fetch(`${gateway.base}/studies`, {
      method: 'POST',
      headers: { authorization: uploader, accept: 'application/dicom+json', 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}` },
      body: new Uint8Array(body),
    });
    assert.equal(res.status, 200);
    const answer = (await res.json()) as Record<string, { Value?: string[] }>;
    return String(answer['00081190']?.Value?.[0]).split('/studies/')[1] as string;
  }

  test('an uploaded UID that is a PACS path is an unknown pseudonym: nothing goes upstream, whatever the guess', async () => {
    const statuses: number[] = [];
    for (const [n, guess] of [[2, 'CANARYPID'], [3, 'NOBODY']] as const) {
      const pseudonym = await upload({ study: `../../patients/${orthancPatient(guess)}`, series: `1.2.826.0.1.3680043.96.${n}.2`, instance: `1.2.826.0.1.3680043.96.${n}.3` });
      const mark = proxy.seen.length;
      for (const path of [`/studies/${pseudonym}/metadata`, `/studies/${pseudonym}`, `/studies/${pseudonym}/series`, `/studies?StudyInstanceUID=${pseudonym}`]) {
        const res = await fetch(gateway.base + path, { headers: { authorization: researcher } });
        await res.arrayBuffer();
        statuses.push(res.status);
      }
      for (const r of proxy.since(mark)) assert.doesNotMatch(r.url, /%2F|\/\.\.(\/|$)|%2E|patients/i, `the PACS was asked ${r.url}`);
    }
    assert.deepEqual(statuses.slice(0, 4), statuses.slice(4), 'a guessed Patient ID in the PACS answers as one that is not');
  });

  test('an uploaded Patient ID with a wild card is matched by the gateway, never sent as a wild card', async () => {
    await upload({ study: '1.2.826.0.1.3680043.96.4', series: '1.2.826.0.1.3680043.96.4.2', instance: '1.2.826.0.1.3680043.96.4.3', patientId: 'CANARY*' });
    // The researcher's pseudonym for "CANARY*" (the store maps it back once the researcher has seen the study).
    const planted = keyedCode(scopeKey(keys), 'patientId', 'CANARY*', 16);
    const mark = proxy.seen.length;
    const res = await fetch(`${gateway.base}/studies?PatientID=${planted}`, { headers: { authorization: researcher } });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), [], 'no study the researcher sees has that Patient ID');
    for (const r of proxy.since(mark)) {
      const pid = new URL(r.url, 'http://pacs').searchParams.get('00100020');
      assert.ok(pid === null || !/[*?\\]/.test(pid), `a wild card reached the PACS: ${r.url}`);
    }
  });

  test('attributes the gateway sets on every result are matched on what the researcher sees', async () => {
    const mark = proxy.seen.length;
    const yes = (await (await fetch(`${gateway.base}/studies?PatientIdentityRemoved=YES`, { headers: { authorization: researcher } })).json()) as Json;
    const no = (await (await fetch(`${gateway.base}/studies?PatientIdentityRemoved=NO`, { headers: { authorization: researcher } })).json()) as Json;
    const all = (await (await fetch(`${gateway.base}/studies`, { headers: { authorization: researcher } })).json()) as Json;
    assert.equal(yes.length, all.length, 'every study the researcher sees says YES');
    assert.deepEqual(no, []);
    for (const r of proxy.since(mark)) assert.equal(new URL(r.url, 'http://pacs').searchParams.get('00120062'), null, r.url);
  });

  test('a misencoded or over-long value in the PACS reaches no researcher: not in metadata, bulkdata or Part 10', async () => {
    const get = async (path: string, accept?: string) => {
      const res = await fetch(gateway.base + path, { headers: { authorization: researcher, ...(accept ? { accept } : {}) } });
      return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
    };
    const leaks: string[] = [];
    for (const study of JSON.parse((await get('/studies')).body.toString()) as Json) {
      const s = String(study['0020000D']?.Value?.[0]);
      const metadata = await get(`/studies/${s}/metadata`);
      if (metadata.status !== 200) continue; // refused whole: nothing shown
      for (const ds of JSON.parse(metadata.body.toString()) as Json) {
        const rows = ds['00280010']?.Value as number[] | undefined;
        if (rows && rows.length > 1) leaks.push('metadata Rows holds more than one value');
        const p = `/studies/${s}/series/${ds['0020000E']?.Value?.[0]}/instances/${ds['00080018']?.Value?.[0]}`;
        for (const tag of ['00282000', '00280010']) {
          const r = await get(`${p}/bulk/${tag}`);
          if (r.body.includes('CANARY')) leaks.push(`bulk ${tag} ${r.status}`);
        }
        const part10 = await get(p, 'multipart/related; type="application/dicom"');
        if (part10.body.includes('CANARY')) leaks.push(`Part 10 ${part10.status}`);
      }
      if (metadata.body.includes('CANARY')) leaks.push(`metadata of ${s}`);
    }
    assert.deepEqual(leaks, []);
  });
});

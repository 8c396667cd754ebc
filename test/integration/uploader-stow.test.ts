import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listDicomFiles, samplesDir } from '../../src/demo/samples.ts';
import { makeKeys, memoryOf, signToken, spawnGateway, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { parseStowAnswer, stowBody } from '../helpers/stow.ts';
import { scanLeaks } from '../helpers/leak-scan.ts';

const sample = (name: string) => readFileSync(join(samplesDir(), name));
const MB = 1024 * 1024;

async function stow(gateway: { base: string }, token: string, files: Uint8Array[], path = '/studies', accept = 'application/dicom+json') {
  const { body, contentType } = stowBody(files);
  const res = await fetch(gateway.base + path, {
    method: 'POST',
    body,
    headers: { authorization: `Bearer ${token}`, 'content-type': contentType, accept },
  });
  return res;
}

async function orthancInstanceCount(orthanc: OrthancProcess): Promise<number> {
  return ((await (await fetch(`${orthanc.httpUrl}/instances`)).json()) as string[]).length;
}

/** Every stored instance, fetched from Orthanc directly as Part 10 files, into a folder for the scan. */
async function dumpOrthanc(orthanc: OrthancProcess, dir: string): Promise<number> {
  mkdirSync(dir, { recursive: true });
  const ids = (await (await fetch(`${orthanc.httpUrl}/instances`)).json()) as string[];
  for (const id of ids) {
    const file = Buffer.from(await (await fetch(`${orthanc.httpUrl}/instances/${id}/file`)).arrayBuffer());
    writeFileSync(join(dir, `${id}.dcm`), file);
  }
  return ids.length;
}

describe('the uploader’s STOW is de-identified before it reaches the PACS', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;
  let uploader: string;
  const work = mkdtempSync(join(tmpdir(), 'deid-stow-'));

  before(async () => {
    ({ orthanc } = await startTestOrthanc());
    gateway = await startTestGateway(orthanc.dicomWebUrl);
    uploader = await gateway.token('uploader');
  });
  after(async () => {
    await gateway?.close();
    await orthanc?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('every sample, edge cases included: what Orthanc stores holds no identity of the inputs, and counts agree', async () => {
    const files = listDicomFiles(samplesDir());
    const res = await stow(gateway, uploader, files.map(sample));
    const answer = parseStowAnswer(res.status, (await res.json()) as never);
    assert.equal(res.status, 202, 'some edge cases are refused, the rest stored');
    assert.equal(answer.stored.length + answer.failed.length, files.length);
    assert.ok(answer.stored.length >= 45, `${answer.stored.length} stored`);
    assert.ok(answer.stored.every((s) => /^2\.25\./.test(s.sopInstance)), 'the response names pseudonymous UIDs');
    assert.ok(answer.stored.every((s) => s.url.startsWith(gateway.base) && !s.url.includes(orthanc.httpUrl)));
    assert.ok(answer.failed.every((f) => [0xc000, 0xa900, 0x0110].includes(f.reason)), JSON.stringify(answer.failed));
    // Orthanc refuses some de-identified files itself (ECOSYSTEM.md); the stored count must equal what it accepted.
    const held = await orthancInstanceCount(orthanc);
    const distinct = new Set(answer.stored.map((s) => s.sopInstance)).size;
    assert.equal(held, distinct);

    const out = join(work, 'stored');
    await dumpOrthanc(orthanc, out);
    const bytes = Buffer.concat(listDicomFiles(out).map((f) => readFileSync(join(out, f)))).toString('latin1');
    for (const canary of ['CompressedSamples', 'PANCREAS_0001', 'JFK IMAGING', '1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457']) {
      assert.ok(!bytes.includes(canary), `canary ${canary} reached the PACS`);
    }
    const scan = await scanLeaks(samplesDir(), out);
    assert.ok(scan.clean, scan.report.slice(-3000));
  });

  test('good files mixed with malformed ones: the good are stored, each bad one is reported, nothing raw is stored', async () => {
    const fresh = await startTestOrthanc();
    const gw = await startTestGateway(fresh.orthanc.dicomWebUrl);
    try {
      const res = await stow(gw, await gw.token('uploader'), [
        sample('transfer-syntax/MR_small.dcm'),
        sample('edge-cases/MR_truncated.dcm'),
        Buffer.from('not DICOM at all'),
        sample('private-tags/CT_small.dcm'),
        sample('edge-cases/no_meta.dcm'),
        Buffer.alloc(0),
      ]);
      const answer = parseStowAnswer(res.status, (await res.json()) as never);
      assert.equal(res.status, 202);
      assert.equal(answer.stored.length, 2);
      assert.equal(answer.failed.length, 4);
      assert.ok(answer.failed.every((f) => f.reason === 0xc000));
      assert.equal(await orthancInstanceCount(fresh.orthanc), 2);
      const dump = join(work, 'mixed');
      await dumpOrthanc(fresh.orthanc, dump);
      const scan = await scanLeaks(join(samplesDir(), 'private-tags/CT_small.dcm'), dump);
      assert.ok(scan.clean, scan.report.slice(-2000));

      const none = await stow(gw, await gw.token('uploader'), [Buffer.from('nope')]);
      assert.equal(none.status, 409, 'nothing stored');
      assert.equal(parseStowAnswer(none.status, (await none.json()) as never).failed[0]?.reason, 0xc000);
    } finally {
      await gw.close();
      await fresh.orthanc.stop();
    }
  });

  test('a target study that does not match the parts is refused per part, and the answer can be XML', async () => {
    const fresh = await startTestOrthanc();
    const gw = await startTestGateway(fresh.orthanc.dicomWebUrl);
    try {
      const res = await stow(gw, await gw.token('uploader'), [sample('transfer-syntax/MR_small.dcm')], '/studies/1.2.3.4');
      assert.equal(res.status, 409);
      assert.equal(parseStowAnswer(409, (await res.json()) as never).failed[0]?.reason, 0xc409);
      const ok = await stow(gw, await gw.token('uploader'), [sample('transfer-syntax/MR_small.dcm')], '/studies/1.3.6.1.4.1.5962.1.2.4.20040826185059.5457', 'application/dicom+xml');
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get('content-type'), 'application/dicom+xml');
      const xml = await ok.text();
      assert.match(xml, /<NativeDicomModel[^>]*>.*<DicomAttribute tag="00081199" vr="SQ"/s);
      assert.ok(!xml.includes('1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457'));
    } finally {
      await gw.close();
      await fresh.orthanc.stop();
    }
  });

  test('wrong media types get 415 and an oversized part 413', async () => {
    const gw = await startTestGateway(orthanc.dicomWebUrl, { stow: { maxPartBytes: 4096 } });
    try {
      const token = await gw.token('uploader');
      const json = await fetch(`${gw.base}/studies`, { method: 'POST', body: '{}', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
      assert.equal(json.status, 415);
      const related = await fetch(`${gw.base}/studies`, {
        method: 'POST',
        body: '--x--',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'multipart/related; type="application/dicom+json"; boundary=x' },
      });
      assert.equal(related.status, 415);
      const big = await stow(gw, token, [sample('transfer-syntax/MR_small.dcm')]);
      assert.equal(big.status, 413);
      const broken = await fetch(`${gw.base}/studies`, {
        method: 'POST',
        body: '--x\r\nContent-Type: application/dicom\r\n\r\nabc',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'multipart/related; type="application/dicom"; boundary=x' },
      });
      assert.equal(broken.status, 400);
    } finally {
      await gw.close();
    }
  });

  test('a client that disconnects halfway leaves no partial or raw instance upstream', async () => {
    const fresh = await startTestOrthanc();
    const gw = await startTestGateway(fresh.orthanc.dicomWebUrl);
    try {
      const cine = sample('multiframe/IM00001.implicit_little_endian.dcm');
      const { body, contentType } = stowBody([sample('transfer-syntax/MR_small.dcm'), cine]);
      const cut = body.length - Math.floor(cine.length / 2);
      const url = new URL(`${gw.base}/studies`);
      const token = await gw.token('uploader');
      await new Promise<void>((resolve) => {
        const req = request(url, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': contentType, 'content-length': String(body.length) },
        });
        req.on('error', () => resolve());
        req.on('response', (r) => {
          r.resume();
          resolve();
        });
        // Send the first part whole and half of the second, then go away.
        req.write(body.subarray(0, cut), () =>
          setTimeout(() => {
            req.destroy();
            resolve();
          }, 300),
        );
      });
      await new Promise((r) => setTimeout(r, 500));
      const ids = (await (await fetch(`${fresh.orthanc.httpUrl}/instances`)).json()) as string[];
      assert.ok(ids.length <= 1, 'at most the first, complete part');
      const dump = join(work, 'disconnect');
      await dumpOrthanc(fresh.orthanc, dump);
      for (const f of listDicomFiles(dump)) assert.ok(readFileSync(join(dump, f)).length < cine.length / 2, 'no cine instance upstream');
      const scan = await scanLeaks(join(samplesDir(), 'transfer-syntax/MR_small.dcm'), dump);
      assert.ok(scan.clean, scan.report.slice(-2000));
      const health = await fetch(`${gw.url}/healthz`);
      assert.equal(health.status, 200);
      await health.arrayBuffer();
      // A caller that went away is neither the PACS's failure nor the gateway's: nothing logged as an error.
      const failures = gw.logs().split('\n').filter((l) => l.includes('"level":50'));
      assert.deepEqual(failures, []);
    } finally {
      await gw.close();
      await fresh.orthanc.stop();
    }
  });

  test('the same study twice lands as one study in keyed mode and as two in fresh mode', async () => {
    const files = [sample('transfer-syntax/MR_small.dcm'), sample('private-tags/CT_small.dcm')];
    for (const [mode, expected] of [['keyed', 1], ['fresh', 2]] as const) {
      const fresh = await startTestOrthanc();
      const gw = await startTestGateway(fresh.orthanc.dicomWebUrl, { deid: { uploadPseudonyms: mode } });
      try {
        const token = await gw.token('uploader');
        for (let i = 0; i < 2; i++) {
          const res = await stow(gw, token, [files[0] as Buffer]);
          assert.equal(res.status, 200);
          await res.arrayBuffer();
        }
        const studies = (await (await fetch(`${fresh.orthanc.dicomWebUrl}/studies`)).json()) as unknown[];
        assert.equal(studies.length, expected, mode);
      } finally {
        await gw.close();
        await fresh.orthanc.stop();
      }
    }
  });

  test('uploading the 1.8 MB cine 50 times in one STOW keeps gateway RSS growth small', async (t) => {
    const fresh = await startTestOrthanc();
    const keys = await makeKeys();
    const gw = await spawnGateway(fresh.orthanc.dicomWebUrl, keys);
    try {
      const cine = sample('multiframe/IM00001.implicit_little_endian.dcm');
      const token = await signToken(keys, { roles: ['uploader'] });
      const warm = await stow(gw, token, [cine]);
      await warm.arrayBuffer();
      const before = await memoryOf(gw.pid);
      const boundary = 'cine-boundary-0123456789';
      const head = Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`);
      const stream = new ReadableStream<Uint8Array>({
        start() {},
        async pull(controller) {
          const sent = (this as unknown as { n?: number }).n ?? 0;
          if (sent === 50) {
            controller.enqueue(Buffer.from(`--${boundary}--\r\n`));
            controller.close();
            return;
          }
          controller.enqueue(Buffer.concat([head, cine, Buffer.from('\r\n')]));
          (this as unknown as { n?: number }).n = sent + 1;
        },
      });
      const res = await fetch(`${gw.base}/studies`, {
        method: 'POST',
        body: stream,
        duplex: 'half',
        headers: { authorization: `Bearer ${token}`, 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}` },
      } as RequestInit);
      const answer = parseStowAnswer(res.status, (await res.json()) as never);
      const afterRun = await memoryOf(gw.pid);
      assert.equal(res.status, 200);
      assert.equal(answer.stored.length, 50);
      const growth = afterRun.peak - before.rss;
      t.diagnostic(`uploaded ${((50 * cine.length) / MB).toFixed(0)} MiB in one STOW; gateway RSS ${(before.rss / MB).toFixed(1)} MiB before, peak ${(afterRun.peak / MB).toFixed(1)} MiB, growth ${(growth / MB).toFixed(1)} MiB`);
      // Buffered, the body alone (90 MiB) would be more than the bound.
      assert.ok(growth < 60 * MB, `RSS grew ${(growth / MB).toFixed(1)} MiB`);
    } finally {
      await gw.stop();
      await fresh.orthanc.stop();
      rmSync(keys.dir, { recursive: true, force: true });
    }
  });
});


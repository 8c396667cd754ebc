// A caller who reads a study slowly must never bring the gateway down. Orthanc ends a streamed study
// retrieval by closing the connection (`Connection: close`, no length), so the end of the body arrives
// while the gateway holds the upstream response paused under the caller's back-pressure. undici 7, the
// PACS client before, could crash the process there (`assert(!this.paused)`, nodejs/undici#5360) when
// that end and a pause met; the unit test (test/unit/dicomweb/upstream.test.ts) makes them meet every
// time, while here, end to end, they meet only by chance. Each caller reads a study several times larger
// than the socket buffers, slowly and with a long stall, and must get it whole.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadIntoOrthanc } from '../../src/demo/orthanc-process.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { assertHealthy } from '../helpers/http.ts';
import { splitMultipart } from '../helpers/multipart.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { monochromeImageFile } from '../helpers/synthetic-instance.ts';

const ROOT = '1.2.826.0.1.3680043.10.543.26';
const STUDY = `${ROOT}.1`;
const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7';
const INSTANCES = 24;
const SIDE = 512; // 512 × 512 × 16 bits: 512 KiB of pixels per instance, 12 MiB in the study

/** A Secondary Capture instance with 512 KiB of 16-bit pixels, patterned so a cut or shuffled body shows. */
function instance(n: number): Buffer {
  const sop = `${ROOT}.3.${n}`;
  const pixels = Buffer.alloc(SIDE * SIDE * 2);
  for (let i = 0; i < SIDE * SIDE; i++) pixels.writeUInt16LE((i * 7 + n) & 0x0fff, i * 2);
  return monochromeImageFile({
    sopClass: SECONDARY_CAPTURE,
    sopInstance: sop,
    modality: 'OT',
    patientName: 'Slow^Caller',
    patientId: 'SLOW-26',
    study: STUDY,
    series: `${ROOT}.2`,
    instanceNumber: n,
    rows: SIDE,
    columns: SIDE,
    bitsAllocated: 16,
    bitsStored: 12,
    pixels,
  });
}

interface SlowRead {
  status: number;
  contentType: string;
  headers: import('node:http').IncomingHttpHeaders;
  body: Buffer;
  /** Whether the body ended normally (not cut by the gateway). */
  complete: boolean;
}

/** GETs `url`, stalls `stallMs` before reading a byte, then reads in 64 KiB steps with a pause after each MiB. */
function readSlowly(url: string, authorization: string, stallMs: number, pauseMs: number): Promise<SlowRead> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { authorization, accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } }, (res) => {
      res.pause();
      void (async () => {
        await sleep(stallMs);
        const chunks: Buffer[] = [];
        let sinceRest = 0;
        let complete = false;
        try {
          for await (const chunk of res) {
            chunks.push(chunk as Buffer);
            sinceRest += (chunk as Buffer).length;
            if (sinceRest >= 1 << 20) {
              sinceRest = 0;
              await sleep(pauseMs);
            }
          }
          complete = res.complete;
        } catch {
          complete = false;
        }
        resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type']), headers: res.headers, body: Buffer.concat(chunks), complete });
      })();
    });
    req.on('error', reject);
    req.end();
  });
}

describe('a caller who reads a study slowly gets it whole, and the gateway stays up', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;
  let researcherStudy = '';

  before(async () => {
    ({ orthanc } = await startTestOrthanc());
    const loaded = await loadIntoOrthanc(orthanc.httpUrl, Array.from({ length: INSTANCES }, (_, i) => ({ name: `i${i}`, bytes: instance(i + 1) })));
    assert.equal(loaded.stored.length, INSTANCES);
    gateway = await startTestGateway(orthanc.dicomWebUrl);
    const researcher = `Bearer ${await gateway.token('researcher')}`;
    const found = (await (await fetch(`${gateway.base}/studies`, { headers: { authorization: researcher } })).json()) as Record<string, { Value: string[] }>[];
    assert.equal(found.length, 1);
    researcherStudy = found[0]?.['0020000D']?.Value[0] ?? '';
    assert.match(researcherStudy, /^2\.25\./);
  });
  after(async () => {
    await gateway?.close();
    await orthanc?.stop();
  });

  // Orthanc's own answer is what makes this test mean something: it closes the connection at the end.
  test('Orthanc ends a study retrieval by closing the connection (the condition the test needs)', async () => {
    const direct = await readSlowly(`${orthanc.dicomWebUrl}/studies/${STUDY}`, '', 0, 0);
    assert.equal(direct.status, 200);
    assert.equal(direct.headers['connection'], 'close');
    assert.equal(direct.headers['content-length'], undefined, 'the body is delimited by the end of the connection');
    assert.equal(direct.headers['transfer-encoding'], undefined);
    assert.equal(splitMultipart(direct.body, direct.contentType).length, INSTANCES);
  });

  for (const role of ['clinician', 'researcher'] as const) {
    test(`a ${role} who stalls, then reads slowly, gets every instance and the closing delimiter`, async () => {
      const authorization = `Bearer ${await gateway.token(role)}`;
      const study = role === 'clinician' ? STUDY : researcherStudy;
      const [stalled, slow] = await Promise.all([
        readSlowly(`${gateway.base}/studies/${study}`, authorization, 1_500, 20),
        readSlowly(`${gateway.base}/studies/${study}`, authorization, 200, 60),
      ]);
      for (const read of [stalled, slow]) {
        assert.equal(read.status, 200);
        assert.ok(read.complete, 'the body ended normally');
        const parts = splitMultipart(read.body, read.contentType);
        assert.equal(parts.length, INSTANCES);
        for (const part of parts) assert.ok(part.body.length > SIDE * SIDE * 2, 'each instance carries its pixels whole');
      }
      await assertHealthy(gateway.url);
    });
  }
});

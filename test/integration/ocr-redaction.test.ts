// Issue 18, part 1: OCR-assisted redaction on the researcher's read side, against a real Orthanc and real
// gateways. The US cine sample (8 native RGB frames, no rule covers it, so risky: withheld) gets identity
// text burned into every frame here (@napi-rs/canvas); then
//   (a) with `pixels.ocr` off the researcher gets it withheld;
//   (b) with it on, the text's pixels are zero in every frame, every other pixel is as stored or zero (a
//       region OCR found), Burned In Annotation is NO, on instance, frames and metadata routes;
//   (c) a detector that cannot finish in time (timeoutMs 1) leaves it withheld, never raw;
//   (d) a second retrieval of the series reuses the regions: no frames are asked of the PACS for OCR again;
//   (e) the clinician still gets the stored bytes.
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { keyedUid } from '../../src/deid/pseudonym.ts';
import { findElement } from '../../src/dicom/dataset.ts';
import { readPart10Buffer } from '../../src/dicom/part10-reader.ts';
import { makeKeys, scopeKey, startTestGateway, TEST_PROJECT, type TestGateway, type TestKeys } from '../helpers/gateway.ts';
import { splitMultipart } from '../helpers/multipart.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { startRecordingProxy, type RecordingProxy } from '../helpers/recording-proxy.ts';
import { burnedCine, CINE_UIDS, COLUMNS, FRAME_BYTES, FRAMES, pixelOf, ROWS } from '../helpers/burned-cine.ts';
import { openSqliteStore } from '../../src/store/sqlite-store.ts';
import { projectScope } from '../../src/projects/project.ts';

const CINE = CINE_UIDS;
const OCR_PROJECT = 'ocr';
const INSTANCES = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const FRAMES_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
const TAG_BURNED_IN = 0x00280301;

describe('OCR-assisted redaction: a risky instance no rule covers is OCR-redacted, or withheld', () => {
  let orthanc: OrthancProcess;
  let proxy: RecordingProxy;
  let keys: TestKeys;
  let slowKeys: TestKeys;
  let gateway: TestGateway;
  let slow: TestGateway;
  let stored: Buffer;
  let textPixels: number[];
  let planar: number;
  const storedFrames = () => {
    const at = stored.length - FRAME_BYTES * FRAMES;
    return Array.from({ length: FRAMES }, (_, f) => stored.subarray(at + f * FRAME_BYTES, at + (f + 1) * FRAME_BYTES));
  };

  const path = (project: string, k = keys) => {
    const p = (uid: string) => keyedUid(scopeKey(k, { project }), uid);
    return `/studies/${p(CINE.study)}/series/${p(CINE.series)}/instances/${p(CINE.instance)}`;
  };
  const get = async (g: TestGateway, url: string, authorization: string, accept: string) => {
    const res = await fetch(g.base + url, { headers: { authorization, accept } });
    return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: Buffer.from(await res.arrayBuffer()) };
  };
  const codeOf = (body: Buffer) => (JSON.parse(body.toString()) as { error: { code: string } }).error.code;
  /** A researcher's instance-level search: it issues the pseudonyms of what it shows. */
  const search = async (g: TestGateway, authorization: string) => {
    const answer = await get(g, '/instances', authorization, 'application/dicom+json');
    assert.equal(answer.status, 200);
    return answer.body.length === 0 ? [] : (JSON.parse(answer.body.toString()) as unknown[]);
  };
  const framesAsked = (mark: number) => proxy.since(mark).filter((r) => /\/frames\//.test(r.url)).length;

  before(async () => {
    ({ file: stored, text: textPixels, planar } = await burnedCine('DOE JOHN 1961-04-12', { x: 4, y: 190, width: 312, height: 34 }, { x: 12, y: 196 }));
    ({ orthanc } = await startTestOrthanc());
    const up = await fetch(`${orthanc.httpUrl}/instances`, { method: 'POST', body: new Uint8Array(stored) });
    assert.equal(up.status, 200);
    proxy = await startRecordingProxy(orthanc.httpUrl);
    keys = await makeKeys();
    slowKeys = await makeKeys();
    const options = ['retainLongitudinalTemporalModifiedDates'];
    const config = (timeoutMs: number) => ({
      productPixelDefaults: true,
      deid: { researcherRendered: true },
      ocr: { workers: 1, timeoutMs, sampleEvery: 7, maxSampledFrames: 2 },
      projects: {
        [TEST_PROJECT]: { membership: { all: true } },
        [OCR_PROJECT]: { membership: { all: true }, profile: { options, pixels: { ocr: true } } },
      },
    });
    gateway = await startTestGateway(proxy.dicomWebUrl, config(60_000), keys);
    slow = await startTestGateway(proxy.dicomWebUrl, config(1), slowKeys);
  });
  after(async () => {
    await gateway?.close();
    await slow?.close();
    await proxy?.close();
    await orthanc?.stop();
    for (const k of [keys, slowKeys]) if (k) await rm(k.dir, { recursive: true, force: true });
  });

  test('(a) with ocr off, the researcher gets the risky instance withheld', async () => {
    const researcher = `Bearer ${await gateway.token('researcher')}`;
    assert.deepEqual(await search(gateway, researcher), [], 'withheld: absent from QIDO');
    // A researcher who holds its pseudonyms (an earlier policy showed it): the store has them.
    const store = openSqliteStore(join(keys.dir, 'data', 'pseudonyms.sqlite'));
    const pseudo = (uid: string) => keyedUid(scopeKey(keys, { project: TEST_PROJECT }), uid);
    await store.save(projectScope(TEST_PROJECT), Object.values(CINE).map((original) => ({ kind: 'uid' as const, pseudonym: pseudo(original), original })));
    await store.close();
    const answer = await get(gateway, path(TEST_PROJECT), researcher, INSTANCES);
    assert.equal(answer.status, 404);
    assert.equal(codeOf(answer.body), 'DICOMWEB_INSTANCE_WITHHELD');
  });

  test('(c) a detector past its timeout leaves the instance withheld, never raw', async () => {
    const researcher = `Bearer ${await slow.token('researcher', { project: OCR_PROJECT })}`;
    // QIDO lists it without running OCR (it may be OCR-redacted); retrieval decides.
    assert.equal((await search(slow, researcher)).length, 1);
    for (const [url, accept] of [
      [path(OCR_PROJECT, slowKeys), INSTANCES],
      [`${path(OCR_PROJECT, slowKeys)}/frames/1`, FRAMES_ACCEPT],
    ] as const) {
      const answer = await get(slow, url, researcher, accept);
      assert.equal(answer.status, 404, url);
      assert.equal(codeOf(answer.body), 'DICOMWEB_INSTANCE_WITHHELD');
    }
    // The series retrieval leaves it out.
    const series = await get(slow, path(OCR_PROJECT, slowKeys).replace(/\/instances\/.*$/, ''), researcher, INSTANCES);
    assert.equal(series.status, 200);
    assert.equal(splitMultipart(series.body, series.contentType).length, 0);
  });

  test('(b) with ocr on, the text is zero in every frame, the rest as stored, Burned In Annotation NO; (d) the second retrieval runs no OCR', async () => {
    const researcher = `Bearer ${await gateway.token('researcher', { project: OCR_PROJECT })}`;
    assert.equal((await search(gateway, researcher)).length, 1);
    const mark = proxy.seen.length;
    const started = performance.now();
    const answer = await get(gateway, path(OCR_PROJECT), researcher, INSTANCES);
    const firstMs = performance.now() - started;
    assert.equal(answer.status, 200, answer.body.toString().slice(0, 200));
    assert.equal(framesAsked(mark), 1, 'one frames request for OCR (frames 1 and 8)');
    const parts = splitMultipart(answer.body, answer.contentType);
    assert.equal(parts.length, 1);
    const parsed = await readPart10Buffer((parts[0] as { body: Buffer }).body);
    assert.equal(findElement(parsed.header.dataset, TAG_BURNED_IN)?.value?.toString('latin1').trim(), 'NO');
    const pixels = parsed.pixelDataBytes as Buffer;
    assert.equal(pixels.length, FRAME_BYTES * FRAMES);
    const originals = storedFrames();
    // Every pixel is as stored or blanked (zero); the positions blanked in any frame (the union of the
    // regions OCR found on the sampled frames) are zero in every frame; the text's pixels among them.
    const union = new Set<number>();
    for (let f = 0; f < FRAMES; f++) {
      const frame = pixels.subarray(f * FRAME_BYTES, (f + 1) * FRAME_BYTES);
      const was = originals[f] as Buffer;
      for (let p = 0; p < ROWS * COLUMNS; p++) {
        const now = pixelOf(frame, planar, p);
        if (now.every((v, s) => v === pixelOf(was, planar, p)[s])) continue;
        assert.deepEqual(now, [0, 0, 0], `frame ${f + 1}: a pixel changed but not blanked`);
        union.add(p);
      }
    }
    for (let f = 0; f < FRAMES; f++) {
      const frame = pixels.subarray(f * FRAME_BYTES, (f + 1) * FRAME_BYTES);
      for (const p of textPixels) assert.deepEqual(pixelOf(frame, planar, p), [0, 0, 0], `frame ${f + 1}: a text pixel left`);
      for (const p of union) assert.deepEqual(pixelOf(frame, planar, p), [0, 0, 0], `frame ${f + 1}: a blanked position not blanked here`);
    }
    const blanked = union.size / (ROWS * COLUMNS);

    // (d) Again, by instance, frames and metadata: the regions are reused, no frames asked for OCR.
    const again = proxy.seen.length;
    const second = performance.now();
    const repeat = await get(gateway, path(OCR_PROJECT), researcher, INSTANCES);
    const secondMs = performance.now() - second;
    assert.equal(repeat.status, 200);
    assert.equal(framesAsked(again), 0, 'no OCR frames request the second time');
    assert.deepEqual(splitMultipart(repeat.body, repeat.contentType)[0]?.body, parts[0]?.body);
    const frames = await get(gateway, `${path(OCR_PROJECT)}/frames/1,8`, researcher, FRAMES_ACCEPT);
    assert.equal(frames.status, 200);
    const frameParts = splitMultipart(frames.body, frames.contentType);
    assert.equal(frameParts.length, 2);
    assert.deepEqual(frameParts[0]?.body, pixels.subarray(0, FRAME_BYTES));
    assert.deepEqual(frameParts[1]?.body, pixels.subarray(7 * FRAME_BYTES));
    assert.equal(framesAsked(again), 1, 'only the frames route itself asked for frames');
    const meta = await get(gateway, `${path(OCR_PROJECT)}/metadata`, researcher, 'application/dicom+json');
    assert.equal(meta.status, 200);
    const dataset = (JSON.parse(meta.body.toString()) as Record<string, { Value?: unknown[] }>[])[0];
    assert.equal(dataset?.['00280301']?.Value?.[0], 'NO');
    // Rendered pixels and the Pixel Data bulkdata would be the PACS's unredacted ones: refused.
    const bulk = await get(gateway, `${path(OCR_PROJECT)}/bulk/7FE00010`, researcher, 'multipart/related; type="application/octet-stream"');
    assert.equal(bulk.status, 403);
    assert.equal(codeOf(bulk.body), 'DEID_BULKDATA_REDACTED');
    const rendered = await get(gateway, `${path(OCR_PROJECT)}/rendered`, researcher, 'image/jpeg');
    assert.equal(rendered.status, 403);
    assert.equal(codeOf(rendered.body), 'DEID_RENDERED_REDACTED');
    console.log(`OCR: first retrieval ${firstMs.toFixed(0)} ms, second ${secondMs.toFixed(0)} ms, ${(100 * blanked).toFixed(1)}% of the frame area changed to zero`);
    // "DOE" and "JOHN" cannot occur in the log's hex request IDs; the year is matched with what follows it
    // in the drawn date (a bare "1961" can be four digits of a random UUID, about 2 % of runs).
    assert.doesNotMatch(gateway.logs(), /DOE|JOHN|1961-04/, 'no recognised text in the log');
  });

  test('(e) the clinician still gets the stored bytes', async () => {
    const clinician = `Bearer ${await gateway.token('clinician')}`;
    const answer = await get(gateway, `/studies/${CINE.study}/series/${CINE.series}/instances/${CINE.instance}`, clinician, INSTANCES);
    assert.equal(answer.status, 200);
    const part = splitMultipart(answer.body, answer.contentType)[0];
    assert.deepEqual(part?.body, stored);
  });
});

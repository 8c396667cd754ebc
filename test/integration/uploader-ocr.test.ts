// Issue 18 on the write side: OCR-assisted redaction of an upload, against a real Orthanc and real gateways.
// The US cine sample (8 native RGB frames; risky, no rule covers it) gets identity text burned into every
// frame (@napi-rs/canvas), then is sent by STOW-RS as the uploader:
//   - with `pixels.ocr` on in the uploader profile it is stored with the text's pixels zero in every frame,
//     every other pixel as sent or zero (a region OCR found, the same in every frame), Burned In Annotation
//     NO and a de-identified header; counted as OCR-redacted in the metrics;
//   - with it off, it is refused 0x0124 (withheld) as before;
//   - with a detector that cannot finish in time (timeoutMs 1) it is refused, 0xA700 (to be sent again) for
//     the timeout and 0x0124 for a failure, the log naming the OCR failure's code, and nothing of it reaches
//     Orthanc (by STOW-RS and by the upload page).
// No gateway leaves a temporary file behind, and no log holds the text.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { keyedUid } from '../../src/deid/pseudonym.ts';
import { asciiValue } from '../../src/dicom/dataset.ts';
import { tagForKeyword } from '../../src/dicom/dictionary.ts';
import { readPart10Buffer, type Part10Parsed } from '../../src/dicom/part10-reader.ts';
import { scopeKey, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { burnedCine, CINE_UIDS, FRAME_BYTES, FRAMES, ROWS, COLUMNS, SAMPLES, sampleAt as at, type BurnedCine } from '../helpers/burned-cine.ts';
import { storescu } from '../helpers/dcmtk.ts';
import { dimseBlock, forwarded, spoolContents } from '../helpers/dimse.ts';
import { parseStowAnswer, stowBody } from '../helpers/stow.ts';

/** PS3.7 Annex C: Refused: Not authorized, the Failure Reason of a withheld instance. */
const NOT_AUTHORIZED = 0x0124;
/** PS3.4 B.2.3: Refused: Out of Resources (the sending device may try again). */
const OUT_OF_RESOURCES = 0xa700;
/** Identity text of words that cannot occur in a log's hex request IDs or UUIDs. */
const TEXT = 'ROE JANE 1957-09-30';
const TEXT_IN_LOG = /ROE|JANE|1957-09/;

const tag = (keyword: string): number => tagForKeyword(keyword) as number;

/** Every instance Orthanc holds, as the file it stored (its own REST API, never through the gateway). */
async function storedIn(orthanc: OrthancProcess): Promise<Part10Parsed[]> {
  const ids = (await (await fetch(`${orthanc.httpUrl}/instances`)).json()) as string[];
  return Promise.all(ids.map(async (id) => readPart10Buffer(Buffer.from(await (await fetch(`${orthanc.httpUrl}/instances/${id}/file`)).arrayBuffer()))));
}

/**
 * The stored copy's pixels against what was sent: each pixel is as sent or zero in every sample (a region
 * blanked), the burned text zero in every frame, and the blanked area the same in every frame and well
 * short of the whole frame. Returns the blanked pixels.
 */
function assertTextBlanked(copy: Part10Parsed, burned: BurnedCine): Set<number> {
  const pixels = copy.pixelDataBytes as Buffer;
  const sent = burned.file.subarray(burned.file.length - FRAME_BYTES * FRAMES);
  assert.equal(pixels.length, FRAME_BYTES * FRAMES);
  const { planar } = burned;
  const blanked = new Set<number>();
  for (let f = 0; f < FRAMES; f++) {
    for (let p = 0; p < ROWS * COLUMNS; p++) {
      const i = [0, 1, 2].map((s) => f * FRAME_BYTES + at(planar, p, s));
      if (i.every((j) => pixels[j] === sent[j])) continue;
      assert.ok(i.every((j) => pixels[j] === 0), `frame ${f + 1}: pixel ${p} changed but not blanked`);
      blanked.add(p);
    }
  }
  for (let f = 0; f < FRAMES; f++) {
    for (const p of [...burned.text, ...blanked]) {
      for (let s = 0; s < SAMPLES; s++) assert.equal(pixels[f * FRAME_BYTES + at(planar, p, s)], 0, `frame ${f + 1}: pixel ${p} not blank`);
    }
  }
  // On this echo OCR also blanks speckle it reads as text (72 % of the frame measured, 76 % before rules were
  // cleared: text-passes.ts ruleMin; README).
  assert.ok(blanked.size < ROWS * COLUMNS * 0.8, 'OCR blanked regions, not the whole frame');
  return blanked;
}

describe('uploader OCR: a risky upload no rule covers is OCR-redacted, or refused as withheld', () => {
  let orthanc: OrthancProcess;
  let ocr: TestGateway;
  let off: TestGateway;
  let slow: TestGateway;
  let burned: BurnedCine;

  before(async () => {
    burned = await burnedCine(TEXT, { x: 6, y: 186, width: 308, height: 40 }, { x: 14, y: 196 });
    ({ orthanc } = await startTestOrthanc());
    const config = (pixels: Record<string, unknown>, timeoutMs = 60_000) => ({
      productPixelDefaults: true,
      deid: { profiles: { uploader: { options: ['retainLongitudinalTemporalModifiedDates'], pixels } } },
      ocr: { workers: 1, timeoutMs, sampleEvery: 7, maxSampledFrames: 2 },
    });
    [ocr, off, slow] = await Promise.all([
      startTestGateway(orthanc.dicomWebUrl, config({ ocr: true })),
      startTestGateway(orthanc.dicomWebUrl, config({})),
      startTestGateway(orthanc.dicomWebUrl, config({ ocr: true }, 1)),
    ]);
  });
  after(async () => {
    for (const g of [ocr, off, slow]) await g?.close();
    await orthanc?.stop();
  });

  const stow = async (g: TestGateway, file: Buffer) => {
    const { body, contentType } = stowBody([file]);
    const res = await fetch(`${g.base}/studies`, {
      method: 'POST',
      body: new Uint8Array(body),
      headers: { authorization: `Bearer ${await g.token('uploader')}`, 'content-type': contentType, accept: 'application/dicom+json' },
    });
    return parseStowAnswer(res.status, (await res.json()) as never);
  };
  const held = () => storedIn(orthanc);
  const tempFiles = async (g: TestGateway) => (await readdir(join(g.keys.dir, 'data', 'tmp'))).filter((n) => n.startsWith('deid-stow-'));

  test('with ocr off the upload is refused 0x0124, as before', async () => {
    const answer = await stow(off, burned.file);
    assert.equal(answer.status, 409, JSON.stringify(answer));
    assert.deepEqual(answer.failed.map((f) => f.reason), [NOT_AUTHORIZED]);
    assert.equal((await held()).length, 0);
    assert.deepEqual(await tempFiles(off), []);
  });

  // As at DIMSE intake: a detector out of time is a passing state (0xA700, to be sent again), a detector
  // that failed is final (0x0124, withheld). With a 1 ms deadline either can come first.
  test('a detector past its timeout refuses the upload (0xA700 for the timeout, 0x0124 for a failure), naming it; nothing is stored or left behind', async () => {
    const answer = await stow(slow, burned.file);
    assert.equal(answer.status, 409, JSON.stringify(answer));
    assert.equal((await held()).length, 0, 'nothing of it reached the PACS');
    assert.deepEqual(await tempFiles(slow), [], 'no spool or part left in the temporary directory');
    const refused = slow
      .logs()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l['msg'] === 'a STOW part was withheld by the pixel policy' || l['msg'] === 'a STOW part was not stored: OCR is busy');
    assert.equal(refused.length, 1);
    const failure = /OCR failed: (TEXT_DETECTION_(?:TIMEOUT|FAILED))$/.exec(String(refused[0]?.['detail']))?.[1];
    assert.ok(failure, `the log names the OCR failure: ${JSON.stringify(refused[0])}`);
    const busy = failure === 'TEXT_DETECTION_TIMEOUT';
    assert.deepEqual(answer.failed.map((f) => f.reason), [busy ? OUT_OF_RESOURCES : NOT_AUTHORIZED]);
    assert.equal(refused[0]?.['reason'], busy ? OUT_OF_RESOURCES : NOT_AUTHORIZED);
    if (!busy) assert.equal(refused[0]?.['withheld'], 'risky');
    const metrics = await (await fetch(`${slow.url}/metrics`)).text();
    assert.match(metrics, new RegExp(`deid_gateway_ocr_instances_total\\{outcome="withheld",reason="${failure}"\\} 1`));
    // The upload page goes the same way: refused, saying why (a withheld file also names the OCR failure).
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(burned.file)]), 'echo.dcm');
    const page = await fetch(`${slow.url}/upload`, { method: 'POST', body: form, headers: { authorization: `Bearer ${await slow.token('uploader')}` } });
    assert.equal(page.status, 200);
    const files = ((await page.json()) as { files: { outcome: string; reason: string; withheld?: { reason: string; detail: string } }[] }).files;
    assert.equal(files[0]?.outcome, 'refused');
    assert.match(files[0]?.reason ?? '', /OCR, which must read its burned-in text first, is busy; try again later \(0xA700\)|OCR failed: TEXT_DETECTION_(TIMEOUT|FAILED)\); not stored \(0x0124\)/);
    if (files[0]?.withheld) assert.match(files[0].withheld.detail, /OCR failed: TEXT_DETECTION_FAILED$/);
    assert.equal((await held()).length, 0);
    assert.deepEqual(await tempFiles(slow), []);
    assert.doesNotMatch(slow.logs(), TEXT_IN_LOG);
  });

  test('the review (POST /upload/preview) says what the upload will do: withheld with ocr off, OCR-redacted with ocr on', async () => {
    const preview = async (g: TestGateway) => {
      const form = new FormData();
      form.append('file', new Blob([new Uint8Array(burned.file)]), 'echo.dcm');
      const res = await fetch(`${g.url}/upload/preview`, { method: 'POST', body: form, headers: { authorization: `Bearer ${await g.token('uploader')}` } });
      assert.equal(res.status, 200);
      return (await res.json()) as { withheld?: { reason: string }; ocrRedacts?: { reason: string; detail: string }; header: { keyword: string; value: string }[] };
    };
    const refused = await preview(off);
    assert.equal(refused.withheld?.reason, 'risky');
    assert.equal(refused.ocrRedacts, undefined);
    assert.deepEqual(refused.header, []);
    const redacts = await preview(ocr);
    assert.equal(redacts.withheld, undefined);
    assert.equal(redacts.ocrRedacts?.reason, 'risky');
    assert.equal(redacts.header.find((h) => h.keyword === 'BurnedInAnnotation')?.value, 'NO', 'the header as it will be stored');
    assert.equal(redacts.header.find((h) => h.keyword === 'PatientIdentityRemoved')?.value, 'YES');
    assert.equal((await held()).length, 0, 'the review stores nothing');
  });

  test('with ocr on it is stored: the text zero in every frame, the rest as sent or blanked alike, Burned In Annotation NO, the header de-identified', async () => {
    const started = performance.now();
    const answer = await stow(ocr, burned.file);
    const ms = performance.now() - started;
    assert.equal(answer.status, 200, JSON.stringify(answer));
    const stored = await held();
    assert.equal(stored.length, 1);
    const copy = stored[0] as Part10Parsed;
    const ds = copy.header.dataset;
    // The header went through the uploader profile: its UIDs are the upload scope's pseudonyms.
    assert.equal(asciiValue(ds, tag('SOPInstanceUID')), keyedUid(scopeKey(ocr.keys, 'upload'), CINE_UIDS.instance));
    assert.equal(answer.stored[0]?.sopInstance, asciiValue(ds, tag('SOPInstanceUID')));
    const original = (await readPart10Buffer(burned.file)).header.dataset;
    assert.notEqual(asciiValue(ds, tag('PatientName'))?.trim(), asciiValue(original, tag('PatientName'))?.trim());
    assert.notEqual(asciiValue(ds, tag('StudyInstanceUID')), asciiValue(original, tag('StudyInstanceUID')));
    assert.equal(asciiValue(ds, tag('BurnedInAnnotation'))?.trim(), 'NO');
    const blanked = assertTextBlanked(copy, burned);
    console.log(`uploader OCR: STOW ${ms.toFixed(0)} ms, ${((100 * blanked.size) / (ROWS * COLUMNS)).toFixed(1)}% of the frame area blanked`);
    const metrics = await (await fetch(`${ocr.url}/metrics`)).text();
    assert.match(metrics, /deid_gateway_ocr_instances_total\{outcome="redacted",reason="ocr"\} 1/);
    assert.match(metrics, /deid_gateway_ocr_frame_seconds_count 2/, 'two frames sampled (1 and 8)');
    assert.deepEqual(await tempFiles(ocr), [], 'the spool and the part are deleted');
    assert.doesNotMatch(ocr.logs(), TEXT_IN_LOG, 'no recognised text in the log');
  });
});

// The same over DIMSE (C-STORE from dcmtk's storescu): OCR runs at intake, before the response, so a success
// means its regions were found and can be blanked; the forwarder then blanks them without running OCR again.
describe('DIMSE OCR: a risky C-STORE no rule covers is OCR-redacted at intake, or refused as withheld', () => {
  let orthanc: OrthancProcess;
  let ocr: TestGateway;
  let slow: TestGateway;
  let burned: BurnedCine;
  const work = mkdtempSync(join(tmpdir(), 'dimse-ocr-'));
  let file: string;

  before(async () => {
    burned = await burnedCine(TEXT, { x: 6, y: 186, width: 308, height: 40 }, { x: 14, y: 196 });
    file = join(work, 'echo.dcm');
    writeFileSync(file, burned.file);
    ({ orthanc } = await startTestOrthanc());
    const config = (timeoutMs: number) => ({
      productPixelDefaults: true,
      deid: { profiles: { uploader: { options: ['retainLongitudinalTemporalModifiedDates'], pixels: { ocr: true } } } },
      ocr: { workers: 1, timeoutMs, sampleEvery: 7, maxSampledFrames: 2 },
      dimse: dimseBlock(),
    });
    [ocr, slow] = await Promise.all([startTestGateway(orthanc.dicomWebUrl, config(60_000)), startTestGateway(orthanc.dicomWebUrl, config(1))]);
  });
  after(async () => {
    for (const g of [ocr, slow]) await g?.close();
    await orthanc?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const held = () => storedIn(orthanc);

  // A detector out of time is a passing state: A700 (Refused: Out of Resources), which a device retries; a
  // detector that failed is final: 0x0124 as withheld. With a 1 ms deadline either can come first.
  test('a detector past its timeout: refused at intake (A700 for the timeout, 0x0124 for a failure), naming it; nothing spooled or stored', async () => {
    const run = await storescu(slow.dimsePort as number, [file]);
    const refused = slow
      .logs()
      .split('\n')
      .filter((l) => l.includes('DIMSE C-STORE refused'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(refused.length, 1);
    const failure = /OCR failed: (TEXT_DETECTION_(?:TIMEOUT|FAILED))$/.exec(String(refused[0]?.['detail']))?.[1];
    assert.ok(failure, `the log names the OCR failure: ${JSON.stringify(refused[0])}`);
    const expected = failure === 'TEXT_DETECTION_TIMEOUT' ? OUT_OF_RESOURCES : NOT_AUTHORIZED;
    assert.deepEqual(run.outcomes.map((o) => o.status), [expected], run.stderr);
    console.log(`DIMSE OCR past its deadline: ${failure}, status ${expected.toString(16)}`);
    assert.equal(refused[0]?.['status'], expected.toString(16).toUpperCase().padStart(4, '0'));
    assert.deepEqual(spoolContents(join(slow.keys.dir, 'data')).originals, []);
    assert.equal((await held()).length, 0);
  });

  test('with ocr on: C-STORE success after OCR at intake; stored with the text zero in every frame, Burned In Annotation NO, OCR run once', async () => {
    const run = await storescu(ocr.dimsePort as number, [file]);
    assert.deepEqual(run.outcomes.map((o) => o.status), [0], run.stderr);
    await forwarded(ocr.url);
    const stored = await held();
    assert.equal(stored.length, 1);
    const copy = stored[0] as Part10Parsed;
    const ds = copy.header.dataset;
    assert.equal(asciiValue(ds, tag('BurnedInAnnotation'))?.trim(), 'NO');
    const original = (await readPart10Buffer(burned.file)).header.dataset;
    assert.notEqual(asciiValue(ds, tag('SOPInstanceUID')), asciiValue(original, tag('SOPInstanceUID')));
    assert.notEqual(asciiValue(ds, tag('PatientName'))?.trim(), asciiValue(original, tag('PatientName'))?.trim());
    assertTextBlanked(copy, burned);
    const metrics = await (await fetch(`${ocr.url}/metrics`)).text();
    assert.match(metrics, /deid_gateway_ocr_frame_seconds_count 2/, 'two frames read by OCR, at intake only (1 and 8)');
    assert.match(metrics, /deid_gateway_ocr_instances_total\{outcome="redacted",reason="ocr"\} 1/);
    assert.deepEqual(spoolContents(join(ocr.keys.dir, 'data')).originals, [], 'forwarded and removed from the spool');
    assert.doesNotMatch(ocr.logs(), TEXT_IN_LOG, 'no recognised text in the log');
  });
});

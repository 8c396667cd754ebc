// Issue 18 on the write side (dicomweb/upload-ocr.ts through stow.ts storePart): a part the uploader profile
// withholds but OCR may redact is spooled, its sampled frames read by the detector, and stored with the
// regions blank; a detector full or out of time refuses it 0xA700 (to be sent again), any other failure
// 0x0124; other parts stream as before. A fake detector and a fake PACS stand in for tesseract and Orthanc
// (test/helpers/ocr-stow-view.ts; test/integration/uploader-ocr.test.ts runs the real ones).
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PixelWithheldError } from '../../../src/deid/errors.ts';
import { OcrBusyError } from '../../../src/dicomweb/errors.ts';
import type { PixelPolicyConfig, Rectangle } from '../../../src/deid/pixel-policy.ts';
import { asciiValue, findElement } from '../../../src/dicom/dataset.ts';
import { readPart10Buffer } from '../../../src/dicom/part10-reader.ts';
import { savingSession } from '../../../src/dicomweb/deidentified-view.ts';
import { FailureReason, storePart } from '../../../src/dicomweb/stow.ts';
import { TextDetectionError, type TextDetector, type TextRegion } from '../../../src/pixel/text-detection.ts';
import { sample } from '../../helpers/sample.ts';
import { fakeDetector, ocrStowView } from '../../helpers/ocr-stow-view.ts';
import { monochromeImageFile } from '../../helpers/synthetic-instance.ts';

const CINE = 'multiframe/IM00001.implicit_little_endian.dcm'; // US, RGB 8-bit, 320 × 240, 8 frames, native
const CINE_JPEG = 'multiframe/IM00001.fragmented_no_bot_jpeg_baseline.50.dcm'; // the same cine, JPEG baseline
const [ROWS, COLUMNS, FRAMES] = [240, 320, 8];
const BURNED_IN_ANNOTATION = 0x00280301;
const PHOTOMETRIC = 0x00280004;
const PLANAR = 0x00280006;
const OCR_ON: PixelPolicyConfig = { ocr: true };
const TEXT: TextRegion[] = [{ x: 10, y: 190, width: 120, height: 24 }];

describe('STOW with OCR (storePart, upload-ocr.ts)', () => {
  let tempDir: string;
  before(async () => {
    tempDir = await mkdtemp(join(tmpdir(), 'stow-ocr-'));
  });
  after(async () => {
    await rm(tempDir, { recursive: true, force: true });
  });

  /** storePart of one sample, in 16 KiB chunks, against a PACS that keeps what it is sent. */
  async function store(file: string | Buffer, pixels: PixelPolicyConfig, detector: TextDetector | undefined, manual?: Rectangle[]) {
    const { view, record } = ocrStowView(tempDir, pixels, detector);
    const bytes = typeof file === 'string' ? sample(file) : file;
    const body = (async function* () {
      for (let i = 0; i < bytes.length; i += 16384) yield bytes.subarray(i, i + 16384);
    })();
    const result = await storePart(view, savingSession(view), { body }, undefined, undefined, manual && (() => manual));
    assert.deepEqual(await readdir(tempDir), [], 'no temporary file is left');
    return { result, ...record };
  }

  /** Asserts every frame of a stored native RGB cine is zero inside `rects` and as the original outside. */
  async function assertBlankedIn(stored: Buffer, rects: readonly Rectangle[]): Promise<void> {
    const parsed = await readPart10Buffer(stored);
    assert.equal(asciiValue(parsed.header.dataset, BURNED_IN_ANNOTATION)?.trim(), 'NO');
    const original = (await readPart10Buffer(sample(CINE))).pixelDataBytes as Buffer;
    const pixels = parsed.pixelDataBytes as Buffer;
    assert.equal(pixels.length, ROWS * COLUMNS * 3 * FRAMES);
    const inside = (x: number, y: number) => rects.some((r) => x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height);
    for (let i = 0; i < pixels.length; i++) {
      const p = Math.floor(i / 3) % (ROWS * COLUMNS);
      if (inside(p % COLUMNS, Math.floor(p / COLUMNS))) assert.equal(pixels[i], 0, `sample ${i} inside`);
      else if (pixels[i] !== original[i]) assert.fail(`sample ${i} changed outside`);
    }
  }

  test('an instance OCR may redact is stored with the regions found on frames 1, 4 and 7 blank in every frame', async () => {
    const detector = fakeDetector({ regions: TEXT });
    const { result, sent, outcomes } = await store(CINE, OCR_ON, detector);
    assert.ok(result.stored, JSON.stringify(result));
    assert.equal(detector.frames.length, 3, 'the first and every 3rd frame, at most 3');
    assert.ok(detector.frames.every((f) => f.width === COLUMNS && f.height === ROWS && f.data.length === ROWS * COLUMNS));
    assert.equal(sent.length, 1);
    await assertBlankedIn(sent[0] as Buffer, TEXT);
    assert.deepEqual(outcomes, [['redacted', 'ocr', 1]]);
  });

  test('the JPEG cine has its sampled frames decoded for OCR and is stored native with the regions blank', async () => {
    const detector = fakeDetector({ regions: TEXT });
    const { result, sent } = await store(CINE_JPEG, OCR_ON, detector);
    assert.ok(result.stored, JSON.stringify(result));
    assert.equal(detector.frames.length, 3);
    const parsed = await readPart10Buffer(sent[0] as Buffer);
    assert.equal(parsed.header.transferSyntaxUID, '1.2.840.10008.1.2.1');
    assert.equal(asciiValue(parsed.header.dataset, BURNED_IN_ANNOTATION)?.trim(), 'NO');
    // Blank is black: Y 0 (and mid-scale chroma) when decoded to YBR_FULL (pixel/native-blank.ts), else RGB 0.
    const ybr = asciiValue(parsed.header.dataset, PHOTOMETRIC)?.trim() === 'YBR_FULL';
    const planar = findElement(parsed.header.dataset, PLANAR)?.value?.readUInt16LE(0) ?? 0;
    const pixels = parsed.pixelDataBytes as Buffer;
    for (let f = 0; f < FRAMES; f++) {
      for (let y = 190; y < 214; y++) {
        for (let x = 10; x < 130; x++) {
          const p = y * COLUMNS + x;
          const samples = [0, 1, 2].map((s) => pixels[f * ROWS * COLUMNS * 3 + (planar === 0 ? p * 3 + s : s * ROWS * COLUMNS + p)]);
          assert.deepEqual(samples, ybr ? [0, 128, 128] : [0, 0, 0], `frame ${f + 1} (${x}, ${y}) blank`);
        }
      }
    }
  });

  test('manual rectangles are blanked beside the regions OCR found', async () => {
    const drawn: Rectangle[] = [{ x: 200, y: 20, width: 60, height: 30 }];
    const { result, sent } = await store(CINE, OCR_ON, fakeDetector({ regions: TEXT }), drawn);
    assert.ok(result.stored);
    await assertBlankedIn(sent[0] as Buffer, [...TEXT, ...drawn]);
  });

  for (const code of ['TEXT_DETECTION_TIMEOUT', 'TEXT_DETECTION_BUSY'] as const) {
    test(`a detector full or out of time (${code}) refuses the part 0xA700, to be sent again, naming the code; nothing is sent`, async () => {
      const { result, sent, outcomes, refusals } = await store(CINE, OCR_ON, fakeDetector({ error: new TextDetectionError(code, code) }));
      assert.equal(result.failed?.reason, FailureReason.outOfResources);
      assert.equal(sent.length, 0);
      const refusal = refusals[0] as OcrBusyError;
      assert.ok(refusal instanceof OcrBusyError);
      const withheld = refusal.cause as PixelWithheldError;
      assert.ok(withheld instanceof PixelWithheldError, 'the withhold it stands for');
      assert.equal(withheld.reason, 'risky');
      assert.match(withheld.detail, new RegExp(`OCR failed: ${code}$`));
      assert.deepEqual(outcomes, [['withheld', code, 1]]);
    });
  }

  test('a detection that fails (TEXT_DETECTION_FAILED) refuses the part 0x0124 naming the code: final, nothing is sent', async () => {
    const { result, sent, outcomes, refusals } = await store(CINE, OCR_ON, fakeDetector({ error: new TextDetectionError('TEXT_DETECTION_FAILED', 'engine failed') }));
    assert.equal(result.failed?.reason, FailureReason.notAuthorized);
    assert.equal(sent.length, 0);
    const refusal = refusals[0] as PixelWithheldError;
    assert.ok(refusal instanceof PixelWithheldError);
    assert.match(refusal.detail, /OCR failed: TEXT_DETECTION_FAILED$/);
    assert.deepEqual(outcomes, [['withheld', 'TEXT_DETECTION_FAILED', 1]]);
  });

  test('native 1-bit frames that start mid-byte are not read for OCR: withheld, the detector never asked', async () => {
    // A 5 × 5 bitmap holds 25 bits: frames 2 and 3 start at bits 25 and 50, inside a byte.
    const sopClass = '1.2.840.10008.5.1.4.1.1.7.1'; // Multi-frame Single Bit Secondary Capture
    const file = monochromeImageFile({
      sopClass,
      sopInstance: '2.25.1234567890123456789',
      modality: 'OT',
      patientName: 'DOE^JANE',
      study: '2.25.1234567890123456780',
      series: '2.25.1234567890123456781',
      frames: 3,
      rows: 5,
      columns: 5,
      bitsAllocated: 1,
      pixels: Buffer.alloc(10, 0x5a),
    });
    const detector = fakeDetector({ regions: TEXT });
    const { result, sent, refusals } = await store(file, OCR_ON, detector);
    assert.equal(result.failed?.reason, FailureReason.notAuthorized);
    assert.equal(sent.length, 0);
    assert.equal(detector.frames.length, 0);
    assert.match((refusals[0] as PixelWithheldError).detail, /OCR failed: PIXEL_UNSUPPORTED$/, 'refused on the OCR path, not before it');
  });

  test('without a detector the part OCR may redact stays withheld, as before', async () => {
    const { result, sent } = await store(CINE, OCR_ON, undefined);
    assert.equal(result.failed?.reason, FailureReason.notAuthorized);
    assert.equal(sent.length, 0);
  });

  test('a part OCR may not redact streams as before: the detector is not asked, Pixel Data byte-identical', async () => {
    const detector = fakeDetector({ regions: TEXT });
    const { result, sent } = await store(CINE, { ocr: true, risky: { modality: { US: 'allow' } } }, detector);
    assert.ok(result.stored);
    assert.equal(detector.frames.length, 0);
    const stored = await readPart10Buffer(sent[0] as Buffer);
    assert.ok((stored.pixelDataBytes as Buffer).equals((await readPart10Buffer(sample(CINE))).pixelDataBytes as Buffer));
  });
});

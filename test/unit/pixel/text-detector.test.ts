// The OCR text-region detector (issue 18) with the real tesseract.js engine: a fixed-seed regression on
// generated frames (recall of identity strings, false-blank area on text-free frames), the pool's bounds
// (timeout, queue, abort, close), and no recognised text in what leaves the detector.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { createCanvas } from '@napi-rs/canvas';
import { type GrayFrame, TextDetectionError, type TextDetectionErrorCode, type TextRegion } from '../../../src/pixel/text-detection.ts';
import { createTextDetector } from '../../../src/pixel/text-detector.ts';
import { startRegionModel } from '../../../src/pixel/text-region-engine.ts';
import { prng } from '../../helpers/prng.ts';
import { blankedFraction, fullyCovered, type GeneratedSet, generateTextFrames, type TextFrameCase } from '../../helpers/text-frames.ts';

/**
 * The regression set: 10 text frames (25+ identity strings) and text-free frames, seed fixed: of the 10
 * backgrounds without text of their own, the first 4 of this seed's cycle (CT, MR, NM, synthetic) and
 * the first ultrasound one (speckle, where the detector is weakest; the SC photo is left to bench/ocr.ts
 * to keep this file's run time down).
 */
const SEED = 18;
const TEXT_FRAMES = 10;
const TEXT_FREE_FRAMES = 10;
const MARGIN = 4;
const WORKERS = 2;
/**
 * Issue 18's goal: ≥ 0.98 of identity strings fully covered. Measured on this seed: 27/27 (the test
 * prints it as a diagnostic); bench/ocr.ts's larger sets are harder (tesseract and the text-region model
 * together: seed 2026 1.000 on 60 frames, 0.994 on 200; seed 1 0.987 and seed 18 0.994 on 60).
 */
const MIN_RECALL = 0.98;
/**
 * False-blank area (fraction of a text-free frame inside the regions), bounded per kind of background.
 * Measured on this seed's backgrounds (the same for seeds 1, 2026): CT 0.02, MR 0.05, NM 0.001,
 * synthetic ≤ 0.05; ultrasound speckle up to 0.46 with the text-region model's regions joined (0.30
 * with tesseract alone) and the SC photo's glitter 0.44 since rules are
 * cleared (text-passes.ts ruleMin; 0.53 before, 0.45 before specks were cleared, speckMax; 0.45–0.91
 * before short unsure runs next to nothing were dropped, textLike). The bounds sit
 * above what is measured with room for engine nondeterminism; the textured one fails if the detector
 * goes back to blanking most of a speckled frame.
 */
const MAX_FALSE_BLANK = { smooth: 0.12, textured: 0.6 } as const;
const textured = (modality: string) => modality === 'US' || modality === 'SC';

async function rejection(promise: Promise<unknown>): Promise<TextDetectionError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof TextDetectionError, `a TextDetectionError, not ${String(error)}`);
    return error;
  }
  assert.fail('expected a rejection');
}

function expectCode(error: TextDetectionError, code: TextDetectionErrorCode): void {
  assert.equal(error.code, code, `code ${error.code}: ${error.message}`);
  assert.equal(error.name, 'TextDetectionError');
}

/** A frame with one distinctive string in large white letters on black: what the detector reads. */
const SECRET = 'ZEBRAFISH 4711';
function secretFrame(): GrayFrame {
  const canvas = createCanvas(400, 120);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, 400, 120);
  ctx.fillStyle = '#fff';
  ctx.font = '32px "DejaVu Sans"';
  ctx.fillText(SECRET, 20, 70);
  const rgba = ctx.getImageData(0, 0, 400, 120).data;
  return { width: 400, height: 120, data: Uint8Array.from({ length: 400 * 120 }, (_, i) => rgba[i * 4] as number) };
}

/** Random noise: the binarised page is all specks, which tesseract takes a long time over. */
function noiseFrame(side: number): GrayFrame {
  const r = prng(3);
  return { width: side, height: side, data: Uint8Array.from({ length: side * side }, () => (r() * 256) | 0) };
}

describe('text detector (tesseract.js, real engine)', () => {
  let set: GeneratedSet;
  before(async () => {
    const all = await generateTextFrames(SEED, TEXT_FRAMES, TEXT_FREE_FRAMES);
    const firstUltrasound = all.textFree.find((c) => c.modality === 'US');
    set = { textCases: all.textCases, textFree: [...all.textFree.slice(0, 4), ...(firstUltrasound ? [firstUltrasound] : [])] };
  });

  it('covers at least 98% of the identity strings of the fixed-seed set, and blanks little of text-free frames', async (t) => {
    const detector = createTextDetector({ workers: WORKERS, timeoutMs: 120_000, marginPx: MARGIN, maxQueue: 64 });
    try {
      const started = Date.now();
      // As many frames in flight as there are workers: the deadline, which counts queue time, then bounds one
      // frame's read, not the wait behind the whole set (which, beside CI's browser files, passed 120 s).
      const frames = [...set.textCases, ...set.textFree].map((c) => c.frame);
      const results: TextRegion[][] = [];
      let next = 0;
      const reader = async () => {
        for (let i = next++; i < frames.length; i = next++) results[i] = await detector.detect(frames[i] as GrayFrame);
      };
      await Promise.all(Array.from({ length: WORKERS }, reader));
      let strings = 0;
      let covered = 0;
      const missed: string[] = [];
      set.textCases.forEach((c, i) => {
        for (const s of c.strings) {
          strings++;
          if (fullyCovered(c.frame, s.box, results[i] ?? [])) covered++;
          else missed.push(`${c.background} ${s.kind} ${s.font} ${s.style} ${s.placement}`);
        }
      });
      const falseBlank = set.textFree.map((c, i) => blankedFraction(c.frame, results[set.textCases.length + i] ?? []));
      const recall = covered / strings;
      t.diagnostic(`recall ${covered}/${strings} = ${recall.toFixed(3)}; false blank ${falseBlank.map((f, i) => `${set.textFree[i]?.background} ${f.toFixed(3)}`).join(', ')}; ${Date.now() - started} ms`);
      for (const m of missed) t.diagnostic(`missed: ${m}`);
      assert.ok(strings >= 25, `the set holds ${strings} identity strings`);
      assert.ok(set.textFree.some((c) => c.modality === 'US'), 'the set holds a text-free ultrasound frame');
      assert.ok(recall >= MIN_RECALL, `recall ${recall.toFixed(3)} < ${MIN_RECALL}`);
      for (const [i, f] of falseBlank.entries()) {
        const c = set.textFree[i];
        const bound = textured(c?.modality ?? '') ? MAX_FALSE_BLANK.textured : MAX_FALSE_BLANK.smooth;
        assert.ok(f <= bound, `${c?.background}: ${(f * 100).toFixed(1)}% blanked, more than ${bound * 100}%`);
      }
      // Every region is inside the frame (margin clipped).
      [...set.textCases, ...set.textFree].forEach((c, i) => {
        for (const r of results[i] ?? []) {
          assert.ok(r.x >= 0 && r.y >= 0 && r.width > 0 && r.height > 0 && r.x + r.width <= c.frame.width && r.y + r.height <= c.frame.height, 'region inside the frame');
        }
      });
    } finally {
      await detector.close();
    }
  });

  // bench/ocr.ts's seed 2026, frame 22: two dark labels on light grey panels stacked 4 px apart in the
  // corner of a real echo frame, as a device's overlay has them. The panels' edges and the dark gap
  // between them are thin lines in the black top-hat, and tesseract read neither label until horizontal
  // rules were cleared (text-passes.ts PASS_TUNING.ruleMin; fails with it off).
  it('reads labels boxed by the edges of their panels (rules cleared before recognition)', async () => {
    const { textCases } = await generateTextFrames(2026, 23, 0);
    const { frame, strings } = textCases[22] as TextFrameCase;
    assert.deepEqual(strings.map((s) => `${s.style} ${s.placement}`), ['black-on-gray corner', 'black-on-gray corner'], 'the generator still draws this case');
    const detector = createTextDetector({ workers: 1, timeoutMs: 120_000, marginPx: MARGIN, maxQueue: 4 });
    try {
      const regions = await detector.detect(frame);
      for (const s of strings) assert.ok(fullyCovered(frame, s.box, regions), `label at ${JSON.stringify(s.box)} covered by ${JSON.stringify(regions)}`);
    } finally {
      await detector.close();
    }
  });

  // bench/ocr.ts's seed 1: a 9 px grey name over a 320 × 240 echo (frame 2) and a 10 px low-contrast string
  // over NM (frame 38), which tesseract does not read on any of its passes (measured: missed by the
  // detector before the text-region model was added). The model marks both; the detector blanks the union.
  it('covers text tesseract does not read, through the text-region model', async () => {
    const { textCases } = await generateTextFrames(1, 39, 0);
    const cases = [
      { case: textCases[2] as TextFrameCase, string: 0, drawn: 'gray-over-image over-image' },
      { case: textCases[38] as TextFrameCase, string: 1, drawn: 'low-contrast over-image' },
    ];
    const detector = createTextDetector({ workers: 1, timeoutMs: 120_000, marginPx: MARGIN, maxQueue: 4 });
    const model = startRegionModel(() => undefined);
    try {
      for (const c of cases) {
        const s = c.case.strings[c.string];
        assert.equal(s && `${s.style} ${s.placement}`, c.drawn, 'the generator still draws this case');
        if (s === undefined) continue;
        // The model marks (part of) the string; what tesseract reads of it, if anything, and the margin complete it.
        const { boxes } = await model.read(c.case.frame);
        const b = s.box;
        assert.ok(boxes.some((m) => m.x0 < b.x + b.width && b.x < m.x1 && m.y0 < b.y + b.height && b.y < m.y1), `the model marks ${JSON.stringify(b)}: ${JSON.stringify(boxes)}`);
        const regions = await detector.detect(c.case.frame);
        assert.ok(fullyCovered(c.case.frame, s.box, regions), `the detector covers ${JSON.stringify(s.box)}: ${JSON.stringify(regions)}`);
      }
    } finally {
      await model.terminate();
      await detector.close();
    }
  });

  it('stops an idle text-region model and starts it again with the next frame', async () => {
    const detector = createTextDetector({ workers: 1, timeoutMs: 60_000, marginPx: 2, maxQueue: 4, modelIdleMs: 50 });
    try {
      assert.ok((await detector.detect(secretFrame())).length >= 1);
      // Each worker thread holds one MessagePort resource in this thread (tesseract's engine, the model).
      const threads = () => process.getActiveResourcesInfo().filter((r) => r === 'MessagePort').length;
      const busy = threads();
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.equal(threads(), busy - 1, 'the model worker stopped, the tesseract engine stays');
      assert.ok((await detector.detect(secretFrame())).length >= 1, 'read again with a new model');
      assert.equal(threads(), busy);
    } finally {
      await detector.close();
    }
  });

  it('returns regions only: no recognised word leaves the detector', async () => {
    const detector = createTextDetector({ workers: 1, timeoutMs: 60_000, marginPx: 2, maxQueue: 4 });
    try {
      const regions = await detector.detect(secretFrame());
      assert.ok(regions.length >= 1, 'the string is found');
      for (const r of regions) assert.deepEqual(Object.keys(r).sort(), ['height', 'width', 'x', 'y']);
      const serialised = JSON.stringify(regions);
      for (const word of SECRET.split(' ')) assert.ok(!serialised.includes(word));
    } finally {
      await detector.close();
    }
  });

  it('times out a frame that takes too long (TEXT_DETECTION_TIMEOUT), replaces its engine and keeps working', async () => {
    const detector = createTextDetector({ workers: 1, timeoutMs: TIMEOUT_MS, marginPx: 2, maxQueue: 4 });
    try {
      const error = await rejection(detector.detect(noiseFrame(NOISE_SIDE)));
      expectCode(error, 'TEXT_DETECTION_TIMEOUT');
      // A fresh engine reads the next frame.
      const regions = await detector.detect(secretFrame());
      assert.ok(regions.length >= 1);
    } finally {
      await detector.close();
    }
  });

  it('counts queue time against the deadline', async () => {
    const detector = createTextDetector({ workers: 1, timeoutMs: 1, marginPx: 2, maxQueue: 4 });
    try {
      const [a, b] = await Promise.all([rejection(detector.detect(secretFrame())), rejection(detector.detect(secretFrame()))]);
      expectCode(a, 'TEXT_DETECTION_TIMEOUT');
      expectCode(b, 'TEXT_DETECTION_TIMEOUT');
    } finally {
      await detector.close();
    }
  });

  it('refuses at once beyond the queue (TEXT_DETECTION_BUSY), and close() rejects what is pending', async () => {
    const detector = createTextDetector({ workers: 1, timeoutMs: 60_000, marginPx: 2, maxQueue: 1 });
    try {
      // Drawn before the clock starts: only the refusal is timed (drawing a frame under CI load took > 100 ms).
      const [first, second, third] = [secretFrame(), secretFrame(), secretFrame()];
      const running = rejection(detector.detect(first));
      const queued = rejection(detector.detect(second));
      const refusedAt = Date.now();
      const busy = await rejection(detector.detect(third));
      expectCode(busy, 'TEXT_DETECTION_BUSY');
      assert.ok(Date.now() - refusedAt < 100, 'refused without waiting');
      const closing = detector.close();
      expectCode(await running, 'TEXT_DETECTION_FAILED');
      expectCode(await queued, 'TEXT_DETECTION_FAILED');
      await closing;
      expectCode(await rejection(detector.detect(first)), 'TEXT_DETECTION_FAILED');
    } finally {
      // A failed assertion above must not leave the engine's thread running: the test process would never exit.
      await detector.close();
    }
  });

  it('rejects an aborted detection (TEXT_DETECTION_ABORTED), before or while it runs', async () => {
    const detector = createTextDetector({ workers: 1, timeoutMs: 60_000, marginPx: 2, maxQueue: 4 });
    try {
      expectCode(await rejection(detector.detect(secretFrame(), { signal: AbortSignal.abort() })), 'TEXT_DETECTION_ABORTED');
      const controller = new AbortController();
      const pending = detector.detect(secretFrame(), { signal: controller.signal });
      controller.abort(); // the frame already holds the (only) engine: it is replaced
      expectCode(await rejection(pending), 'TEXT_DETECTION_ABORTED');
      // The pool still reads frames afterwards.
      assert.ok((await detector.detect(secretFrame())).length >= 1);
    } finally {
      await detector.close();
    }
  });

  it('never puts recognised text in an error', async () => {
    const errors: TextDetectionError[] = [];
    const collect = async (p: Promise<unknown>) => {
      try {
        await p;
      } catch (error) {
        if (error instanceof TextDetectionError) errors.push(error);
      }
    };
    // The engine reads the frame (warm), then the same frame times out, is aborted, refused, closed on.
    const slow = createTextDetector({ workers: 1, timeoutMs: 60_000, marginPx: 2, maxQueue: 0 });
    await slow.detect(secretFrame());
    const controller = new AbortController();
    const aborted = slow.detect(secretFrame(), { signal: controller.signal });
    await collect(slow.detect(secretFrame()));
    controller.abort();
    await collect(aborted);
    const closed = collect(slow.detect(secretFrame()));
    await slow.close();
    await closed;
    const quick = createTextDetector({ workers: 1, timeoutMs: 300, marginPx: 2, maxQueue: 0 });
    await collect(quick.detect(secretFrame()));
    await quick.close();
    assert.deepEqual(errors.map((e) => e.code).sort(), ['TEXT_DETECTION_ABORTED', 'TEXT_DETECTION_BUSY', 'TEXT_DETECTION_FAILED', 'TEXT_DETECTION_TIMEOUT']);
    for (const e of errors) {
      const text = `${e.message} ${e.stack ?? ''} ${String(e.cause ?? '')} ${JSON.stringify(e)}`;
      for (const word of ['ZEBRAFISH', '4711']) assert.ok(!text.includes(word), `${e.code} carries no recognised text`);
    }
  });
});

/** Past the noise frame's start (it takes minutes), within reach of a fresh engine and a small frame on a loaded machine. */
const TIMEOUT_MS = 10_000;
const NOISE_SIDE = 1500;

// The OCR text-region detector of issue 18 (contract: text-detection.ts): a bounded pool of slots, each a
// tesseract.js engine and a worker thread of our own (text-region-worker.ts: tesseract's pages and the
// text-region model, text-region-model.ts). Compute
// only, no policy: it reports where text is; deid/ decides what to do.
//
// Two engines, and the union of what they find. Tesseract finds text by reading it, on preprocessed passes
// (below), and misses what it cannot read: small or low-contrast text over ultrasound texture or noise.
// The model (PaddleOCR's PP-OCRv4 detector) marks text pixels whatever they say, and misses other strings
// (mostly low-contrast text over photographs and noise). Measured on bench/ocr.ts's frames (2 workers):
//   seed 2026, 200 text frames + 40 text-free: tesseract 513/526 = 0.975, model alone 509/526 = 0.968,
//   union 523/526 = 0.994; seed 1, 60 + 12: 151/155, 145/155, union 153/155 = 0.987; seed 2026, 60 + 12:
//   155/155, 149/155, union 155/155.
// Area blanked on text-free frames: the model alone blanks ultrasound 9.6 % (max 12.7 %), SC 2.3 %, CT, NM
// and synthetic 0 %; the union (bench/ocr.ts, this detector) ultrasound 39 % (max 46 %; tesseract alone
// 28 %), SC 44 %, MR 0.6 %, the rest as tesseract. Time: each frame goes through both, one after the other in its slot (about 0.4 s of CPU
// for the model, 0.8 s for tesseract's two passes, here). Either engine failing fails the frame.
//
// Off the event loop: tesseract.js in Node runs each engine in its own worker_thread (its
// src/worker/node/spawnWorker.js: `new Worker(workerPath)`); recognition is WebAssembly in that thread.
// The pool adds the bounds: at most `workers` frames in recognition, at most `maxQueue` waiting (beyond:
// TEXT_DETECTION_BUSY at once), a deadline per frame counting its queue time (TEXT_DETECTION_TIMEOUT; a
// recognition cannot be cancelled, so the engine busy with it is terminated and replaced), abort
// (TEXT_DETECTION_ABORTED, the engine likewise replaced), engine failure (TEXT_DETECTION_FAILED).
// Engines and models start on first use: an idle gateway holds none (an engine costs ~30 MB and a second
// to start).
//
// No network, ever (read from tesseract.js 7.0.0's code, src/worker-script/index.js loadLanguage and
// src/worker-script/node/getCore.js):
//   - the language data is read from `langPath` when it is set and is not a URL (is-url); only an unset
//     langPath falls back to the jsdelivr CDN. We set it to the directory of the npm package
//     @tesseract.js-data/eng (resolved through node_modules, so an absolute file path, never a URL), and
//     `gzip: true` as that package ships eng.traineddata.gz;
//   - `cacheMethod: 'none'` skips the read of and the write to the cache (`./eng.traineddata` in the
//     working directory by default);
//   - the WebAssembly core is `require('tesseract.js-core/…')` from node_modules in Node: corePath is
//     not consulted there;
//   - images are passed as bytes (a PGM in memory), so loadImage never fetches or reads a path.
// (A worker whose langPath were a URL would call fetch; with a file path it calls fs.readFile only.)
//
// Preprocessing (text-passes.ts: top-hats, despeckling, rules cleared, upscaling; ~50–150 ms for a
// 1024 × 768 frame) runs in the slot's own worker thread, with the text-region model: the event loop only
// passes frames and boxes.
//
// The words read never leave detect(): only their boxes are kept; nothing is logged (logger and
// errorHandler are silent), and error messages carry the code and sizes only.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Worker as NodeWorker } from 'node:worker_threads';
import tesseract from 'tesseract.js';
import { startRegionModel, type RegionModel } from './text-region-engine.ts';
import { type GrayFrame, TextDetectionError, type TextDetectionErrorCode, type TextDetector, type TextDetectorOptions, type TextRegion } from './text-detection.ts';

const { createWorker, OEM, PSM } = tesseract;
type Engine = Awaited<ReturnType<typeof createWorker>>;

/**
 * @tesseract.js-data/eng 1.0.0 ships 4.0.0/ (legacy + LSTM models, 10.9 MB gz) and 4.0.0_best_int/ (LSTM
 * only, 2.9 MB gz). We run the LSTM engine only (OEM.LSTM_ONLY), for which tesseract.js itself picks
 * best_int: smaller, faster to load.
 */
const LANG_PATH = join(dirname(createRequire(import.meta.url).resolve('@tesseract.js-data/eng/package.json')), '4.0.0_best_int');

/**
 * Preprocessing (text-passes.ts PASS_TUNING: radius, threshold, speckMax, ruleMin, upscaleBelow) and
 * filtering (TUNING below), chosen by measurement on the frames of test/helpers/text-frames.ts
 * (seeds 1 and 2, 16–24 text frames and 10 text-free; bench/ocr.ts reports the larger set):
 *   - plain frame + inverted frame (tesseract's own binarisation): recall 0.67, false blank up to 0.48;
 *   - top-hats (below), grey: recall 0.95, false blank up to 0.97 (speckle read as "words");
 *   - top-hats thresholded at 48 grey levels: recall 0.97–0.985, faster (binary pages), false blank
 *     ≤ 0.08 on CT, MR, NM, SC and screens but 0.45–0.9 on ultrasound speckle;
 *   - runs of words kept from 2 alphanumeric characters: recall 0.985 (vs 0.94 from 3, which brings
 *     ultrasound false blank down to ≤ 0.25): recall wins, withholding is the alternative;
 *   - then short runs (2–3 characters) dropped when tesseract is unsure of them AND no run kept on its
 *     own lies beside them (textLike): the runs of seeds 2026, 1 and 18 replayed offline, every string
 *     covered before stays covered (the context rule is what keeps them: a plain confidence floor on
 *     2-character runs, or a 3-character minimum, loses 1–3 % of the strings), and ultrasound false
 *     blank falls from 77 % (max 91 %) to 31 % (max 45 %), the SC photo from 45 % to 31 %, CT 4 → 1 %;
 *   - then kept runs on one line joined across gaps up to 1.8 text heights (bridgeGap): a string read
 *     as two runs (monospace spaces, a word between them not read) was covered only in pieces. Replayed
 *     on the recognitions of seeds 2026, 1 and 18 (bench/ocr.ts's 60 text frames + 12 text-free each):
 *     misses 7 → 5, 7 → 6, 7 → 7, false blank unchanged; from 2.0 up the SC photo's false blank rises
 *     31 → 44 % (speckle runs bridged), below 1.8 nothing is gained;
 *   - then ink specks of 1–2 pixels cleared from the thresholded top-hats (speckMax): tesseract then reads
 *     text over speckle it lost among the specks. Measured (1 worker, with the bridging): misses 5 → 4,
 *     6 → 5, 7 → 4; but false blank rises: US mean 31 → 38 % (max 45 → 53 %), SC 31 → 44 %, synthetic
 *     0.2 → 2.2 % (max 4.5 %), NM 0.1 → 0.3 %, MR 4.6 → 0 %, CT unchanged; CPU per frame +13 % (median
 *     1.6 → 1.8 s on seed 2026). Kept for recall (speckMax 0 turns it off). A floor on 3-character
 *     runs brings US false blank back to 25 % on seed 2026 but loses 2 strings on seed 1: not taken.
 * With that, on bench/ocr.ts's frames, 1 worker, seeds 2026 / 1 / 18: recall 151/155 = 0.974, 150/155 =
 * 0.968, 156/160 = 0.975 (before it: 0.955, 0.955, 0.956);
 *   - then horizontal rules cleared from the thresholded top-hats (ruleMin): ink runs of 40+ pixels along
 *     a row. The edges of panels behind text (a label's grey box, two boxes stacked a few pixels apart,
 *     a box at the frame's edge) and the rulers of an echo became thin lines in the black top-hat, and
 *     tesseract took text boxed by lines for a table or a figure and read none of it (the measured
 *     misses: two black-on-grey labels stacked in an echo's corner). No letter of text up to
 *     maxTextHeight has a horizontal stroke that long. Measured (2 workers, seeds 2026 / 1 / 18, 60 text
 *     frames + 12 text-free): misses 4 → 1, 5 → 4, 4 → 3: recall 0.994, 0.974, 0.981 (all three: 462/470
 *     = 0.983, was 457/470); US false blank mean 38 → 28 % (max 53 → 30 %), SC 44 %, the rest unchanged.
 *     A 32-pixel minimum loses a string on seed 1 and doubles US false blank (44 %, max 78 %); 48 loses
 *     one on seed 2026; columns cleared too (vertical rules) changed nothing measured: not taken. On the
 *     bench's default set (seed 2026, 200 text frames + 40 text-free): 498/526 = 0.947 → 505/526 = 0.960;
 *     and 513/526 = 0.975 once the generator drew grey text over a top bar against the bar (it measured
 *     the contrast against the frame under the bar, which drew 9 strings 0–40 levels off their bar). With
 *     that generator, 60 frames: seed 2026 155/155 = 1.000, seed 1 0.974, seed 18 0.981.
 * The misses left (13 of 526 on the 200-frame set) are text not read at all, or only in part: low-contrast
 * text (70–100 levels off the mean) over the synthetic sector's dense noise or ultrasound texture (the
 * top-hat keeps the texture as ink touching the letters), labels on small panels amid that noise, a
 * 9 px bold name over CT.
 * Tried and not kept: a white border of 4 or 16 px around each pass image (fixes text at the frame's
 * edge, but tesseract then reads other frames differently: 8–10 misses on seed 2026 instead of 5, US
 * false blank 41–43 %, SC 44 %); joining words 2.5 heights apart in textRuns, or keeping short runs up
 * to 3 heights beside a kept one on the same line: no string more than the bridging, more false blank.
 */
const TUNING = Object.freeze({
  /** Words taller than this (frame pixels) are image blobs, not overlay text. */
  maxTextHeight: 64,
  /** A run of words is kept from this many alphanumeric characters. */
  minAlnum: 2,
  /**
   * Short runs (speckle read as "words") are kept when tesseract is confident of them (mean word
   * confidence, weighted by length, at least this; index = alphanumeric characters) or when they sit
   * beside a run that is kept on its own (`nearRun`): runs of 4+ characters are always kept. Measured:
   * the 2-character floor changes nothing from 70 up (context then decides alone), a 3-character floor
   * of 40 or more starts losing strings (hence 25).
   */
  minConfidence: [0, 0, 70, 25] as readonly number[],
  /** Beside: at most this many text heights apart, horizontally and vertically (the smaller height). */
  nearRun: 1,
  /**
   * Kept runs on one line (overlapping by half the smaller height) at most this many text heights apart
   * are one string: the gap between them is covered too (a monospace font's spaces, a word not read).
   */
  bridgeGap: 1.8,
});
interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

const ALNUM = /[A-Za-z0-9]/g;

interface Run extends Box {
  alnum: number;
  /** Sum over its words of confidence × text length, and that length: the run's mean confidence. */
  weighted: number;
  chars: number;
}

/**
 * The boxes of alphanumeric text in one recognition, in frame pixels (inclusive-exclusive x0..x1).
 * Words of a line that are close (gap ≤ 1.5 × the smaller height) are joined into one run, so the space
 * between the words of a name is covered too; runs of fewer than TUNING.minAlnum alphanumeric characters
 * are dropped, and so are words taller than TUNING.maxTextHeight. The words' text is only counted (with
 * their confidence, for textLike), never kept.
 */
function textRuns(page: tesseract.Page, scale: number): Run[] {
  const out: Run[] = [];
  const maxHeight = TUNING.maxTextHeight * scale;
  for (const block of page.blocks ?? []) {
    for (const paragraph of block.paragraphs) {
      for (const line of paragraph.lines) {
        let run: Run | undefined;
        const flush = () => {
          if (run && run.alnum >= TUNING.minAlnum) out.push(run);
          run = undefined;
        };
        for (const word of line.words) {
          const alnum = word.text.match(ALNUM)?.length ?? 0;
          if (alnum === 0) continue;
          const b = word.bbox;
          const h = b.y1 - b.y0;
          // Taller than any overlay text: a blob of the image read as a "word" (it would blank half the frame).
          if (h > maxHeight) continue;
          if (run && b.x0 - run.x1 <= 1.5 * Math.min(h, run.y1 - run.y0)) {
            run.x0 = Math.min(run.x0, b.x0);
            run.y0 = Math.min(run.y0, b.y0);
            run.x1 = Math.max(run.x1, b.x1);
            run.y1 = Math.max(run.y1, b.y1);
            run.alnum += alnum;
            run.weighted += word.confidence * word.text.length;
            run.chars += word.text.length;
          } else {
            flush();
            run = { x0: b.x0, y0: b.y0, x1: b.x1, y1: b.y1, alnum, weighted: word.confidence * word.text.length, chars: word.text.length };
          }
        }
        flush();
      }
    }
  }
  return out.map((b) => ({ ...b, x0: b.x0 / scale, y0: b.y0 / scale, x1: b.x1 / scale, y1: b.y1 / scale }));
}

/**
 * The runs of both passes that look like text, as boxes in frame pixels. Speckle (ultrasound, photos)
 * is read as many short, low-confidence "words"; real text as longer runs, or short ones that tesseract
 * is sure of, or short ones next to longer ones on the same line (a date's "12", "ID"). A short run is
 * dropped only when it is unsure AND alone: measured on bench/ocr.ts's frames (seeds 2026, 1, 18), no
 * string covered before is lost, and ultrasound false blank falls from 77 % to about 31 %.
 */
function textLike(runs: Run[]): Box[] {
  const sure = (r: Run) => r.alnum >= TUNING.minConfidence.length || r.weighted / Math.max(1, r.chars) >= (TUNING.minConfidence[r.alnum] ?? 0);
  const seeds = runs.filter(sure);
  const near = (a: Run, b: Run) => {
    const h = TUNING.nearRun * Math.min(a.y1 - a.y0, b.y1 - b.y0);
    return Math.max(a.y0, b.y0) - Math.min(a.y1, b.y1) <= h && Math.max(a.x0, b.x0) - Math.min(a.x1, b.x1) <= h;
  };
  return runs
    .filter((r) => sure(r) || seeds.some((s) => near(s, r)))
    .map((b) => ({ x0: Math.floor(b.x0), y0: Math.floor(b.y0), x1: Math.ceil(b.x1), y1: Math.ceil(b.y1) }));
}

/**
 * The kept boxes plus, for each pair on one line (vertical overlap at least half the smaller height) less
 * than TUNING.bridgeGap smaller heights apart, the gap between them: the words of one string that
 * tesseract read as two runs (a monospace font's wide spaces, a word between them it could not read) are
 * then covered from end to end.
 */
function bridged(boxes: Box[]): Box[] {
  const bridges: Box[] = [];
  for (const [i, a] of boxes.entries()) {
    for (const b of boxes.slice(i + 1)) {
      const h = Math.min(a.y1 - a.y0, b.y1 - b.y0);
      const overlap = Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0);
      const gap = Math.max(a.x0, b.x0) - Math.min(a.x1, b.x1);
      if (overlap >= h / 2 && gap > 0 && gap <= TUNING.bridgeGap * h) {
        bridges.push({ x0: Math.min(a.x1, b.x1), y0: Math.min(a.y0, b.y0), x1: Math.max(a.x0, b.x0), y1: Math.max(a.y1, b.y1) });
      }
    }
  }
  return [...boxes, ...bridges];
}

/** Grown by `margin`, clipped to the frame, overlapping (or touching) boxes merged until none overlap. */
function regionsOf(boxes: Box[], margin: number, width: number, height: number): TextRegion[] {
  let rects = boxes
    .map((b) => ({ x0: Math.max(0, b.x0 - margin), y0: Math.max(0, b.y0 - margin), x1: Math.min(width, b.x1 + margin), y1: Math.min(height, b.y1 + margin) }))
    .filter((b) => b.x1 > b.x0 && b.y1 > b.y0);
  let merged = true;
  while (merged) {
    merged = false;
    const next: Box[] = [];
    for (const r of rects) {
      const hit = next.find((o) => r.x0 <= o.x1 && o.x0 <= r.x1 && r.y0 <= o.y1 && o.y0 <= r.y1);
      if (hit) {
        hit.x0 = Math.min(hit.x0, r.x0);
        hit.y0 = Math.min(hit.y0, r.y0);
        hit.x1 = Math.max(hit.x1, r.x1);
        hit.y1 = Math.max(hit.y1, r.y1);
        merged = true;
      } else next.push({ ...r });
    }
    rects = next;
  }
  return rects.map((r) => ({ x: r.x0, y: r.y0, width: r.x1 - r.x0, height: r.y1 - r.y0 }));
}

/**
 * One engine. `onCrash` is called if its worker thread dies of an uncaught error: tesseract.js attaches
 * no 'error' listener in Node (it sets `onerror`, which node:worker_threads ignores), and an 'error' event
 * without a listener would throw in the gateway's own thread.
 */
async function startEngine(onCrash: (error: unknown) => void): Promise<Engine> {
  const engine = await createWorker('eng', OEM.LSTM_ONLY, {
    langPath: LANG_PATH,
    gzip: true,
    cacheMethod: 'none',
    // Without an errorHandler tesseract.js rethrows a failed job inside its message listener (an
    // uncaught exception); the job's promise rejects all the same, and that is where we handle it.
    errorHandler: () => undefined,
    logger: () => undefined,
  });
  (engine as Engine & { worker?: NodeWorker }).worker?.on('error', onCrash);
  // debug_file: tesseract's own diagnostics ("Estimating resolution", "Detected N diacritics") go nowhere.
  await engine.setParameters({ tessedit_pageseg_mode: PSM.SPARSE_TEXT, debug_file: '/dev/null', user_defined_dpi: '300' });
  return engine;
}

interface Job {
  readonly frame: GrayFrame;
  readonly resolve: (regions: TextRegion[]) => void;
  readonly reject: (error: TextDetectionError) => void;
  readonly cleanup: () => void;
  settled: boolean;
  slot: Slot | undefined;
}

interface Slot {
  engine: Promise<Engine> | undefined;
  /** The slot's text-region model (text-region-engine.ts), started with its first frame like the engine. */
  model: RegionModel | undefined;
  /** Stops the model once the slot has been idle MODEL_IDLE_MS. */
  idle: NodeJS.Timeout | undefined;
  job: Job | undefined;
}

/**
 * A model left idle this long (by default; TextDetectorOptions.modelIdleMs) is stopped, and started again
 * (about 2 s) with the next frame: its WebAssembly memory grows to about 300 MB at the model's input size
 * and never shrinks while it runs, and only stopping the worker gives it back. Tesseract's engines (about
 * 30 MB) stay.
 */
const MODEL_IDLE_MS = 60_000;

function message(code: TextDetectionErrorCode, frame: GrayFrame, extra: string): string {
  return `${code}: ${frame.width}×${frame.height} frame ${extra}`;
}

/** A detector with a pool of `options.workers` engines (see the head of this file). */
export function createTextDetector(options: TextDetectorOptions): TextDetector {
  const workers = Math.max(1, Math.floor(options.workers));
  const maxQueue = Math.max(0, Math.floor(options.maxQueue));
  const margin = Math.max(0, Math.floor(options.marginPx));
  const modelIdleMs = Math.max(0, options.modelIdleMs ?? MODEL_IDLE_MS);
  const slots: Slot[] = Array.from({ length: workers }, () => ({ engine: undefined, model: undefined, idle: undefined, job: undefined }));
  const queue: Job[] = [];
  let closed = false;

  const stopModel = (slot: Slot): void => {
    const model = slot.model;
    slot.model = undefined;
    if (model) void model.terminate().catch(() => undefined);
  };
  const retire = (slot: Slot): void => {
    const engine = slot.engine;
    slot.engine = undefined;
    if (engine) void engine.then((e) => e.terminate(), () => undefined);
    stopModel(slot);
  };
  /** The engine or model of `slot` stopped by itself: its frame fails, and both are replaced at the next. */
  const crashed = (slot: Slot, error: unknown): void => {
    if (slot.job) cutShort(slot.job, new TextDetectionError('TEXT_DETECTION_FAILED', message('TEXT_DETECTION_FAILED', slot.job.frame, 'not read: the OCR engine stopped'), { cause: error }));
    else retire(slot);
  };

  const settle = (job: Job, outcome: { regions: TextRegion[] } | { error: TextDetectionError }): void => {
    if (job.settled) return;
    job.settled = true;
    job.cleanup();
    const i = queue.indexOf(job);
    if (i >= 0) queue.splice(i, 1);
    if ('regions' in outcome) job.resolve(outcome.regions);
    else job.reject(outcome.error);
  };

  /** A job that ends before its recognition does (timeout, abort, close): its engine is replaced. */
  const cutShort = (job: Job, error: TextDetectionError): void => {
    if (job.settled) return;
    const slot = job.slot;
    settle(job, { error });
    if (slot && slot.job === job) {
      retire(slot);
      slot.job = undefined;
    }
    pump();
  };

  const run = async (slot: Slot, job: Job): Promise<void> => {
    try {
      if (!slot.engine) {
        const starting = startEngine((error) => {
          if (slot.engine === starting) crashed(slot, error);
        });
        slot.engine = starting;
      }
      if (!slot.model) {
        const model = startRegionModel((error) => {
          if (slot.model === model) crashed(slot, error);
        });
        slot.model = model;
      }
      const model = slot.model;
      const engine = await slot.engine;
      if (job.settled) return;
      // The pages and the model's boxes, made in the slot's worker thread (nothing per pixel here).
      const { images, scale, boxes } = await model.read(job.frame);
      const runs: Run[] = [];
      for (const image of images) {
        if (job.settled) return;
        const result = await engine.recognize(image, {}, { blocks: true, text: false });
        runs.push(...textRuns(result.data, scale));
      }
      // The union of what tesseract read and what the text-region model marks (see the head of this file).
      settle(job, { regions: regionsOf([...bridged(textLike(runs)), ...boxes], margin, job.frame.width, job.frame.height) });
    } catch (error) {
      if (slot.job === job) retire(slot);
      // The engine's error names its own failure (a load or image error), never words it read.
      settle(job, { error: new TextDetectionError('TEXT_DETECTION_FAILED', message('TEXT_DETECTION_FAILED', job.frame, 'could not be read by the OCR engine'), { cause: error }) });
    } finally {
      if (slot.job === job) {
        slot.job = undefined;
        pump();
        if (!slot.job && slot.model) {
          const model = slot.model;
          slot.idle = setTimeout(() => {
            if (!slot.job && slot.model === model) stopModel(slot);
          }, modelIdleMs).unref();
        }
      }
    }
  };

  const pump = (): void => {
    if (closed) return;
    for (const slot of slots) {
      if (slot.job) continue;
      const job = queue.shift();
      if (!job) return;
      clearTimeout(slot.idle);
      slot.job = job;
      job.slot = slot;
      void run(slot, job);
    }
  };

  return {
    detect(frame, detectOptions) {
      return new Promise<TextRegion[]>((resolve, reject) => {
        const signal = detectOptions?.signal;
        const fail = (code: TextDetectionErrorCode, extra: string) => reject(new TextDetectionError(code, message(code, frame, extra)));
        if (closed) return fail('TEXT_DETECTION_FAILED', 'refused: the detector is closed');
        if (signal?.aborted) return fail('TEXT_DETECTION_ABORTED', 'aborted before it was read');
        if (!(frame.width > 0 && frame.height > 0 && frame.data.length >= frame.width * frame.height)) {
          return fail('TEXT_DETECTION_FAILED', `has ${frame.data.length} bytes, fewer than width × height`);
        }
        const idle = slots.some((s) => !s.job);
        if (!idle && queue.length >= maxQueue) return fail('TEXT_DETECTION_BUSY', `refused: ${workers} being read and ${queue.length} waiting`);
        let timer: NodeJS.Timeout | undefined;
        const onAbort = () => cutShort(job, new TextDetectionError('TEXT_DETECTION_ABORTED', message('TEXT_DETECTION_ABORTED', frame, 'aborted')));
        const job: Job = {
          frame,
          resolve,
          reject,
          settled: false,
          slot: undefined,
          cleanup: () => {
            clearTimeout(timer);
            signal?.removeEventListener('abort', onAbort);
          },
        };
        timer = setTimeout(() => cutShort(job, new TextDetectionError('TEXT_DETECTION_TIMEOUT', message('TEXT_DETECTION_TIMEOUT', frame, `not read within ${options.timeoutMs} ms`))), options.timeoutMs);
        signal?.addEventListener('abort', onAbort, { once: true });
        queue.push(job);
        pump();
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      const pending = [...queue, ...slots.flatMap((s) => (s.job ? [s.job] : []))];
      for (const job of pending) settle(job, { error: new TextDetectionError('TEXT_DETECTION_FAILED', message('TEXT_DETECTION_FAILED', job.frame, 'not read: the detector closed')) });
      queue.length = 0;
      const engines = slots.map((s) => s.engine);
      const models = slots.map((s) => s.model);
      for (const slot of slots) {
        clearTimeout(slot.idle);
        slot.engine = undefined;
        slot.model = undefined;
        slot.job = undefined;
      }
      await Promise.all([
        ...engines.map((e) => e?.then((engine) => engine.terminate(), () => undefined)),
        ...models.map((m) => m?.terminate().catch(() => undefined)),
      ]);
    },
  };
}

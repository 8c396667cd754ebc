// OCR text-region detection (issue 18) on a generated set (test/helpers/text-frames.ts, seeded): recall of
// identity strings fully covered, false-blank area on text-free frames, and ms per frame (median, p95),
// with a pool of 1 and of 2 workers side by side on the same frames.
// Callable from bench/run.ts (benchOcr, section `ocr`) or alone:
//   node --import tsx bench/ocr.ts [--seed 2026] [--frames 200] [--text-free 40] [--workers N] [--misses]
// --workers N measures that pool size only (a tuning run in half the time); --misses lists each string
// not covered (where and how it was drawn, not its text).
import { parseArgs } from 'node:util';
import { createTextDetector } from '../src/pixel/text-detector.ts';
import { blankedFraction, fullyCovered, generateTextFrames, type TextFrameCase } from '../test/helpers/text-frames.ts';
import { quantile } from './stats.ts';

export interface OcrBenchRow {
  readonly workers: number;
  readonly strings: number;
  readonly covered: number;
  readonly recall: number;
  /** Mean fraction of a text-free frame blanked, over all of them and by kind of background. */
  readonly falseBlankMean: number;
  readonly falseBlankByModality: Record<string, { frames: number; mean: number; max: number }>;
  /** Time one frame spends in recognition (the pool kept exactly full, so no queue time). */
  readonly msPerFrameMedian: number;
  readonly msPerFrameP95: number;
  /** Wall time over frames: the pool's throughput. */
  readonly wallMsPerFrame: number;
  /** Recall by text size band and by style. */
  readonly recallBy: Record<string, string>;
  /** Each string not fully covered: frame index, background, style, placement, font and ink box (never its text). */
  readonly missed: string[];
}

const MARGIN = 4;

async function measure(workers: number, cases: TextFrameCase[], textFree: TextFrameCase[]): Promise<OcrBenchRow> {
  const detector = createTextDetector({ workers, timeoutMs: 300_000, marginPx: MARGIN, maxQueue: workers });
  try {
    // Warm-up, not timed: the engines start lazily.
    await Promise.all(Array.from({ length: workers }, (_, i) => detector.detect((cases[i] ?? cases[0] as TextFrameCase).frame)));
    const all = [...cases, ...textFree];
    const regions: Awaited<ReturnType<typeof detector.detect>>[] = new Array(all.length);
    const times: number[] = [];
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: workers }, async () => {
        while (next < all.length) {
          const i = next++;
          const t = performance.now();
          regions[i] = await detector.detect((all[i] as TextFrameCase).frame);
          times.push(performance.now() - t);
        }
      }),
    );
    const wall = performance.now() - started;
    let strings = 0;
    let covered = 0;
    const by: Record<string, [number, number]> = {};
    const count = (key: string, hit: boolean) => {
      const e = by[key] ?? [0, 0];
      e[0] += hit ? 1 : 0;
      e[1]++;
      by[key] = e;
    };
    const missed: string[] = [];
    cases.forEach((c, i) => {
      for (const s of c.strings) {
        const hit = fullyCovered(c.frame, s.box, regions[i] ?? []);
        strings++;
        if (hit) covered++;
        else missed.push(`frame ${i} ${c.modality} ${c.background} ${c.frame.width}×${c.frame.height}: ${s.kind}, ${s.style}, ${s.placement}, ${s.font}, ink ${s.box.x},${s.box.y} ${s.box.width}×${s.box.height}`);
        count(s.sizePx <= 10 ? 'size 9–10 px' : s.sizePx <= 14 ? 'size 11–14 px' : 'size ≥ 15 px', hit);
        count(s.style, hit);
        count(c.modality, hit);
      }
    });
    const falseBlankByModality: OcrBenchRow['falseBlankByModality'] = {};
    const fractions = textFree.map((c, i) => {
      const f = blankedFraction(c.frame, regions[cases.length + i] ?? []);
      const e = falseBlankByModality[c.modality] ?? { frames: 0, mean: 0, max: 0 };
      e.mean = (e.mean * e.frames + f) / (e.frames + 1);
      e.frames++;
      e.max = Math.max(e.max, f);
      falseBlankByModality[c.modality] = e;
      return f;
    });
    return {
      workers,
      strings,
      covered,
      recall: covered / strings,
      falseBlankMean: fractions.reduce((a, b) => a + b, 0) / Math.max(1, fractions.length),
      falseBlankByModality,
      msPerFrameMedian: quantile(times, 0.5),
      msPerFrameP95: quantile(times, 0.95),
      wallMsPerFrame: wall / all.length,
      recallBy: Object.fromEntries(Object.entries(by).map(([k, [h, n]]) => [k, `${h}/${n}`])),
      missed,
    };
  } finally {
    await detector.close();
  }
}

/** Both pool sizes on the same generated frames (`workers`: only that one). */
export async function benchOcr(options: { seed: number; frames: number; textFree: number; workers?: number }): Promise<OcrBenchRow[]> {
  const set = await generateTextFrames(options.seed, options.frames, options.textFree);
  const out: OcrBenchRow[] = [];
  for (const workers of options.workers ? [options.workers] : [1, 2]) out.push(await measure(workers, set.textCases, set.textFree));
  return out;
}

/** Markdown rows in bench/run.ts's table (measurement | medians | ratio). */
export function ocrRows(measured: OcrBenchRow[], options: { seed: number; frames: number; textFree: number }): string[] {
  const rows: string[] = [];
  for (const r of measured) {
    const fb = Object.entries(r.falseBlankByModality)
      .map(([m, e]) => `${m} ${(e.mean * 100).toFixed(1)}% (max ${(e.max * 100).toFixed(1)}%)`)
      .join(', ');
    rows.push(
      `| OCR text regions, ${options.frames} text frames + ${options.textFree} text-free (seed ${options.seed}), ${r.workers} worker${r.workers > 1 ? 's' : ''}: recall of identity strings fully covered · false-blank area on text-free frames · ms per frame median / p95 · wall ms per frame | ${r.covered}/${r.strings} · ${(r.falseBlankMean * 100).toFixed(1)}% (${fb}) · ${r.msPerFrameMedian.toFixed(0)} / ${r.msPerFrameP95.toFixed(0)} · ${r.wallMsPerFrame.toFixed(0)} | recall **${r.recall.toFixed(3)}** (goal ≥ 0.98) |`,
    );
  }
  const [one, two] = measured;
  if (one && two) rows.push(`| OCR pool: wall ms per frame, 1 worker / 2 workers | ${one.wallMsPerFrame.toFixed(0)} / ${two.wallMsPerFrame.toFixed(0)} | 2 workers **${(one.wallMsPerFrame / two.wallMsPerFrame).toFixed(2)}×** the throughput of 1 |`);
  const last = measured[measured.length - 1];
  if (last) rows.push(`| OCR recall by size, style and modality (${last.workers} workers) | ${Object.entries(last.recallBy).map(([k, v]) => `${k} ${v}`).join(' · ')} | |`);
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string', default: '2026' },
      frames: { type: 'string', default: '200' },
      'text-free': { type: 'string', default: '40' },
      workers: { type: 'string' },
      misses: { type: 'boolean', default: false },
    },
  });
  const options = { seed: Number(values.seed), frames: Number(values.frames), textFree: Number(values['text-free']), ...(values.workers ? { workers: Number(values.workers) } : {}) };
  const measured = await benchOcr(options);
  process.stdout.write(`${['| measurement | medians | ratio |', '|---|---|---|', ...ocrRows(measured, options)].join('\n')}\n`);
  process.stdout.write(`${JSON.stringify(measured, null, 2)}\n`);
  if (values.misses) for (const r of measured) process.stdout.write(`${r.workers} worker(s), missed:\n${r.missed.map((m) => `  ${m}`).join('\n')}\n`);
}

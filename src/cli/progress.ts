// The offline CLI's progress: a bar redrawn in place on a terminal, plain lines now and then otherwise
// (a log file, CI). Counts only, never a file name or a value. Time is passed in (`now`), so a test can
// drive it; the timer that calls `render` belongs to the caller.

export type ProgressMode = 'bar' | 'lines' | 'none';

export interface ProgressCounts {
  /** Inputs finished, whatever their outcome (resumed ones included). */
  readonly done: number;
  readonly total: number;
  /** Input bytes read and de-identified by this run (resumed files are not work done). */
  readonly bytes: number;
  /** Inputs this run processed (not resumed): the rate and the ETA are measured over these. */
  readonly processed: number;
  readonly refused: number;
  readonly withheld: number;
  readonly resumed: number;
}

const MB = 1_000_000;

/** `m:ss` (or `h:mm:ss`); `--:--` while there is nothing to measure from. */
export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const [h, m, r] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  const mm = h > 0 ? String(m).padStart(2, '0') : String(m);
  return `${h > 0 ? `${h}:` : ''}${mm}:${String(r).padStart(2, '0')}`;
}

/** Rate and ETA from what this run processed so far: the remaining inputs at this run's pace per input. */
export function measure(c: ProgressCounts, elapsedSeconds: number): { mbPerSecond: number; filesPerSecond: number; etaSeconds: number | undefined } {
  const mbPerSecond = elapsedSeconds > 0 ? c.bytes / MB / elapsedSeconds : 0;
  const filesPerSecond = elapsedSeconds > 0 ? c.processed / elapsedSeconds : 0;
  const remaining = c.total - c.done;
  const etaSeconds = remaining === 0 ? 0 : c.processed > 0 && elapsedSeconds > 0 ? (remaining * elapsedSeconds) / c.processed : undefined;
  return { mbPerSecond, filesPerSecond, etaSeconds };
}

const percent = (c: ProgressCounts): number => (c.total === 0 ? 100 : Math.floor((c.done * 100) / c.total));
const grouped = (n: number): string => n.toLocaleString('en-US');

/** One plain progress line (not a terminal). */
export function progressLine(c: ProgressCounts, elapsedSeconds: number): string {
  const { mbPerSecond, filesPerSecond, etaSeconds } = measure(c, elapsedSeconds);
  const resumed = c.resumed > 0 ? `, ${c.resumed} already done` : '';
  return (
    `progress: ${c.done}/${c.total} files (${percent(c)}%), ${(c.bytes / MB).toFixed(1)} MB at ${mbPerSecond.toFixed(1)} MB/s (${Math.round(filesPerSecond)} files/s), ` +
    `ETA ${formatDuration(etaSeconds)}, ${c.refused} refused, ${c.withheld} withheld${resumed}`
  );
}

/** The bar as drawn on a terminal `columns` wide. */
export function progressBar(c: ProgressCounts, elapsedSeconds: number, columns: number): string {
  const { mbPerSecond, etaSeconds } = measure(c, elapsedSeconds);
  const total = grouped(c.total);
  const text = ` ${grouped(c.done).padStart(total.length)}/${total} ${String(percent(c)).padStart(3)}% ${mbPerSecond.toFixed(1)} MB/s ETA ${formatDuration(etaSeconds)} refused ${c.refused}`;
  // A width that does not change as the numbers grow (room for the text at its longest, on 80 columns 20).
  const width = Math.max(10, Math.min(40, columns - 60));
  const filled = c.total === 0 ? width : Math.floor((c.done * width) / c.total);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]${text}`;
}

export interface Progress {
  /** Draws (bar) or prints (lines, at most once an interval) the current counts. */
  render(c: ProgressCounts): void;
  /** The last state, always: the bar's final frame and a newline, or a last line. */
  finish(c: ProgressCounts): void;
}

/**
 * A bar (`\r`, erase the line, redraw) or lines (one per `intervalSeconds`) written with `write`; `none`
 * writes nothing. `columns` is read at each frame (a terminal may be resized).
 */
export function createProgress(options: {
  mode: ProgressMode;
  write: (text: string) => void;
  now: () => number;
  intervalSeconds: number;
  columns?: () => number;
}): Progress {
  const started = options.now();
  let lastLine = -Infinity;
  const elapsed = () => (options.now() - started) / 1000;
  const draw = (c: ProgressCounts) => options.write(`\r\x1b[2K${progressBar(c, elapsed(), options.columns?.() ?? 80)}`);
  return {
    render(c) {
      if (options.mode === 'bar') draw(c);
      else if (options.mode === 'lines' && options.now() - lastLine >= options.intervalSeconds * 1000) {
        lastLine = options.now();
        options.write(`${progressLine(c, elapsed())}\n`);
      }
    },
    finish(c) {
      if (options.mode === 'bar') {
        draw(c);
        options.write('\n');
      } else if (options.mode === 'lines') options.write(`${progressLine(c, elapsed())}\n`);
    },
  };
}

// The pages tesseract reads for one frame (text-detector.ts): the frame's top-hats, thresholded, cleaned
// of specks and rules, upscaled. Pure computation on arrays, run in the slot's own worker thread
// (text-region-worker.ts) so that it never holds the event loop (~50–150 ms for a 1024 × 768 frame).
// The figures that chose PASS_TUNING are in text-detector.ts.
import type { GrayFrame } from './text-detection.ts';

/** Preprocessing, chosen by measurement (text-detector.ts, the head comment). */
export const PASS_TUNING = Object.freeze({
  /** Half-size of the square structuring element of the top-hats, frame pixels: strokes up to 2r+1 wide survive. */
  radius: 4,
  /** Top-hat response (grey levels) from which a pixel is ink: text 70+ levels off its ground stays. */
  threshold: 48,
  /**
   * Ink specks of at most this many pixels (8-connected) in a thresholded top-hat are cleared before
   * recognition: a stroke of the smallest text (9 px) is far larger, speckle is mostly such specks.
   */
  speckMax: 2,
  /**
   * Ink runs of at least this many pixels along a row of a thresholded top-hat are rules (a panel's edge,
   * a ruler), not letters, and are cleared before recognition: text boxed by lines is otherwise not read.
   */
  ruleMin: 40,
  /** Frames narrower than this are read at ×2 (bilinear): 9–10 px text becomes 18–20 px. */
  upscaleBelow: 700,
});

const MAX_SIDE = 4096;

/** A frame as binary PGM (Netpbm P5), which leptonica reads. */
function pgm(data: Uint8Array, width: number, height: number): Buffer {
  // tesseract.js's setImage scans the first 500 bytes for an EXIF orientation pattern
  // (/1 18 0 3 0 0 0 1 0 (\d)/ over the decimal bytes) and would rotate the image if pixel values
  // happened to match it: a comment pads the header past 500 bytes of printable ASCII.
  const header = Buffer.from(`P5\n#${' '.repeat(512)}\n${width} ${height}\n255\n`, 'latin1');
  return Buffer.concat([header, data]);
}

/**
 * Running min (or max) over a centred window of 2r+1 samples of `line` (length n), outside samples
 * ignored: van Herk / Gil-Werman, three comparisons per sample whatever r (blocks of 2r+1, a prefix
 * extreme g and a suffix extreme h per block; a window spans two blocks: op(h[a], g[b])).
 */
function runningExtreme(line: Uint8Array, n: number, r: number, max: boolean, out: Uint8Array, pad: Uint8Array, g: Uint8Array, h: Uint8Array): void {
  const k = 2 * r + 1;
  const m = n + 2 * r;
  const identity = max ? 0 : 255;
  pad.fill(identity, 0, r);
  pad.set(line.subarray(0, n), r);
  pad.fill(identity, r + n, m);
  for (let i = 0; i < m; i++) {
    const v = pad[i] as number;
    if (i % k === 0) g[i] = v;
    else {
      const p = g[i - 1] as number;
      g[i] = max ? Math.max(v, p) : Math.min(v, p);
    }
  }
  for (let i = m - 1; i >= 0; i--) {
    const v = pad[i] as number;
    if (i % k === k - 1 || i === m - 1) h[i] = v;
    else {
      const p = h[i + 1] as number;
      h[i] = max ? Math.max(v, p) : Math.min(v, p);
    }
  }
  for (let x = 0; x < n; x++) {
    const a = h[x] as number;
    const b = g[x + 2 * r] as number;
    out[x] = max ? Math.max(a, b) : Math.min(a, b);
  }
}

/**
 * Grey erosion (max false) or dilation (max true) by a (2r+1)² square: along rows, then along columns
 * with the same van Herk / Gil-Werman scheme applied to whole rows at once (contiguous memory).
 */
function squareFilter(src: Uint8Array, w: number, h: number, r: number, max: boolean): Uint8Array {
  const rows = new Uint8Array(w * h);
  const result = new Uint8Array(w);
  const pad = new Uint8Array(w + 2 * r);
  const g = new Uint8Array(w + 2 * r);
  const hh = new Uint8Array(w + 2 * r);
  for (let y = 0; y < h; y++) {
    runningExtreme(src.subarray(y * w, y * w + w), w, r, max, result, pad, g, hh);
    rows.set(result, y * w);
  }
  // Columns: padded row index i in 0..h+2r-1 holds source row i-r (rows outside are the identity).
  const k = 2 * r + 1;
  const m = h + 2 * r;
  const identity = max ? 0 : 255;
  const row = (i: number): Uint8Array | undefined => (i >= r && i < r + h ? rows.subarray((i - r) * w, (i - r + 1) * w) : undefined);
  const prefix = new Uint8Array(w * m);
  const suffix = new Uint8Array(w * m);
  for (let i = 0; i < m; i++) {
    const v = row(i);
    const at = i * w;
    if (i % k === 0) {
      if (v) prefix.set(v, at);
      else prefix.fill(identity, at, at + w);
    } else if (v) {
      for (let x = 0; x < w; x++) prefix[at + x] = max ? Math.max(v[x] as number, prefix[at - w + x] as number) : Math.min(v[x] as number, prefix[at - w + x] as number);
    } else prefix.copyWithin(at, at - w, at);
  }
  for (let i = m - 1; i >= 0; i--) {
    const v = row(i);
    const at = i * w;
    if (i % k === k - 1 || i === m - 1) {
      if (v) suffix.set(v, at);
      else suffix.fill(identity, at, at + w);
    } else if (v) {
      for (let x = 0; x < w; x++) suffix[at + x] = max ? Math.max(v[x] as number, suffix[at + w + x] as number) : Math.min(v[x] as number, suffix[at + w + x] as number);
    } else suffix.copyWithin(at, at + w, at + 2 * w);
  }
  const out = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    const a = y * w;
    const b = (y + 2 * r) * w;
    for (let x = 0; x < w; x++) out[a + x] = max ? Math.max(suffix[a + x] as number, prefix[b + x] as number) : Math.min(suffix[a + x] as number, prefix[b + x] as number);
  }
  return out;
}

/**
 * Text strokes as black ink on white: the white top-hat (frame − opening) keeps bright strokes narrower
 * than the structuring element, the black top-hat (closing − frame) dark ones; anatomy, gradients and
 * panels wider than it vanish, whatever their level. Tesseract's page layout then sees text on a clean
 * page, whichever polarity and contrast the device drew it with.
 */
function topHats(frame: GrayFrame, r: number, threshold: number): [Uint8Array, Uint8Array] {
  const { width: w, height: h, data } = frame;
  const opening = squareFilter(squareFilter(data, w, h, r, false), w, h, r, true);
  const closing = squareFilter(squareFilter(data, w, h, r, true), w, h, r, false);
  const bright = new Uint8Array(w * h);
  const dark = new Uint8Array(w * h);
  for (let i = 0; i < w * h; i++) {
    const v = data[i] as number;
    bright[i] = v - (opening[i] as number) >= threshold ? 0 : 255;
    dark[i] = (closing[i] as number) - v >= threshold ? 0 : 255;
  }
  return [bright, dark];
}

/**
 * `ink` (0 ink, 255 paper; w × h) with its 8-connected ink components of at most `max` pixels turned to
 * paper, in place. Each component is filled once (a stack of pixel indices) and cleared if it stayed small.
 */
function despeckle(ink: Uint8Array, w: number, h: number, max: number): Uint8Array {
  const seen = new Uint8Array(w * h);
  const stack = new Int32Array(w * h);
  const small = new Int32Array(max + 1);
  for (let start = 0; start < w * h; start++) {
    if (ink[start] !== 0 || seen[start] === 1) continue;
    seen[start] = 1;
    let top = 0;
    stack[top++] = start;
    let size = 0;
    while (top > 0) {
      const i = stack[--top] as number;
      if (size <= max) small[size] = i;
      size++;
      const x = i % w;
      const y = (i - x) / w;
      for (let yy = Math.max(0, y - 1); yy <= Math.min(h - 1, y + 1); yy++) {
        for (let xx = Math.max(0, x - 1); xx <= Math.min(w - 1, x + 1); xx++) {
          const j = yy * w + xx;
          if (ink[j] === 0 && seen[j] === 0) {
            seen[j] = 1;
            stack[top++] = j;
          }
        }
      }
    }
    if (size <= max) for (let k = 0; k < size; k++) ink[small[k] as number] = 255;
  }
  return ink;
}

/**
 * `ink` (0 ink, 255 paper; w × h) with every run of at least `min` ink pixels along a row turned to paper,
 * in place: the horizontal rules of panel edges and rulers (see PASS_TUNING.ruleMin).
 */
function clearRules(ink: Uint8Array, w: number, h: number, min: number): Uint8Array {
  for (let y = 0; y < h; y++) {
    const row = ink.subarray(y * w, y * w + w);
    let start = -1;
    for (let x = 0; x <= w; x++) {
      const on = x < w && row[x] === 0;
      if (on && start < 0) start = x;
      else if (!on && start >= 0) {
        if (x - start >= min) row.fill(255, start, x);
        start = -1;
      }
    }
  }
  return ink;
}

/** Bilinear ×scale. */
function upscale(src: Uint8Array, w: number, h: number, scale: number): Uint8Array {
  if (scale === 1) return src;
  const W = w * scale;
  const H = h * scale;
  const out = new Uint8Array(W * H);
  for (let Y = 0; Y < H; Y++) {
    const fy = Math.max(0, (Y + 0.5) / scale - 0.5);
    const y0 = Math.min(h - 1, Math.floor(fy));
    const y1 = Math.min(h - 1, y0 + 1);
    const ty = fy - y0;
    for (let X = 0; X < W; X++) {
      const fx = Math.max(0, (X + 0.5) / scale - 0.5);
      const x0 = Math.min(w - 1, Math.floor(fx));
      const x1 = Math.min(w - 1, x0 + 1);
      const tx = fx - x0;
      const top = (src[y0 * w + x0] as number) * (1 - tx) + (src[y0 * w + x1] as number) * tx;
      const bottom = (src[y1 * w + x0] as number) * (1 - tx) + (src[y1 * w + x1] as number) * tx;
      out[Y * W + X] = Math.round(top * (1 - ty) + bottom * ty);
    }
  }
  return out;
}

/** The pages tesseract reads for one frame (PGM bytes), and the factor from frame to page pixels. */
export interface TextPasses {
  readonly images: Buffer[];
  readonly scale: number;
}

/**
 * The frame's two passes: its white and black top-hats thresholded (bright and dark strokes as black ink
 * on white), specks and rules cleared, upscaled ×2 below PASS_TUNING.upscaleBelow, as PGM.
 */
export function textPasses(frame: GrayFrame): TextPasses {
  const scale = frame.width < PASS_TUNING.upscaleBelow && frame.width * 2 <= MAX_SIDE && frame.height * 2 <= MAX_SIDE ? 2 : 1;
  const w = frame.width * scale;
  const h = frame.height * scale;
  const data = frame.data.subarray(0, frame.width * frame.height);
  const passes = topHats({ ...frame, data }, PASS_TUNING.radius, PASS_TUNING.threshold).map((p) => clearRules(PASS_TUNING.speckMax > 0 ? despeckle(p, frame.width, frame.height, PASS_TUNING.speckMax) : p, frame.width, frame.height, PASS_TUNING.ruleMin));
  return { images: passes.map((p) => pgm(upscale(p, frame.width, frame.height, scale), w, h)), scale };
}

// Blanking rectangles in native pixel data as it streams (PS3.5 8.1.1, PS3.3 C.7.6.3): every frame, any
// Bits Allocated (1-bit packed as in SEG, 8, 16, 32), samples per pixel, planar configuration and byte
// order. No frame is buffered: each chunk is blanked where it overlaps a rectangle and passed on.
import type { Rectangle } from '../deid/pixel-policy.ts';
import { frameBits, frameByteLength, type FrameGeometry } from './geometry.ts';

/** A blanked span of one frame: bytes [start, end) (bits for 1-bit data), `pattern` repeating from start. */
interface BlankRun {
  readonly start: number;
  readonly end: number;
  readonly pattern: Buffer;
  readonly zero: boolean;
}

/**
 * The blank value of each sample: 0, except the chroma samples (Cb, Cr) of YBR_FULL, which are set to
 * mid-scale so that the blank is black rather than green (PS3.3 C.7.6.3.1.2).
 */
export function blankSampleValues(g: FrameGeometry): number[] {
  const values = new Array<number>(g.samplesPerPixel).fill(0);
  if (g.photometricInterpretation === 'YBR_FULL' && g.samplesPerPixel === 3 && g.pixelRepresentation === 0) {
    const mid = 2 ** (g.bitsStored - 1);
    values[1] = mid;
    values[2] = mid;
  }
  return values;
}

function sampleBytes(value: number, bytes: number, littleEndian: boolean): Buffer {
  const b = Buffer.alloc(bytes);
  if (bytes === 1) b[0] = value;
  else if (bytes === 2) littleEndian ? b.writeUInt16LE(value) : b.writeUInt16BE(value);
  else littleEndian ? b.writeUInt32LE(value) : b.writeUInt32BE(value);
  return b;
}

/** Per row, the union of the rectangles' column ranges clipped to the image, as [x0, x1) pairs. */
function rowIntervals(g: FrameGeometry, rectangles: readonly Rectangle[]): Map<number, [number, number][]> {
  const rows = new Map<number, [number, number][]>();
  for (const r of rectangles) {
    const x0 = Math.max(0, Math.floor(r.x));
    const x1 = Math.min(g.columns, Math.floor(r.x) + Math.floor(r.width));
    const y0 = Math.max(0, Math.floor(r.y));
    const y1 = Math.min(g.rows, Math.floor(r.y) + Math.floor(r.height));
    if (x1 <= x0 || y1 <= y0) continue;
    for (let y = y0; y < y1; y++) {
      const list = rows.get(y) ?? [];
      list.push([x0, x1]);
      rows.set(y, list);
    }
  }
  for (const [y, list] of rows) {
    list.sort((a, b) => a[0] - b[0]);
    const merged: [number, number][] = [];
    for (const [a, b] of list) {
      const last = merged[merged.length - 1];
      if (last && a <= last[1]) last[1] = Math.max(last[1], b);
      else merged.push([a, b]);
    }
    rows.set(y, merged);
  }
  return new Map([...rows].sort((a, b) => a[0] - b[0]));
}

function buildRuns(g: FrameGeometry, rectangles: readonly Rectangle[], littleEndian: boolean): BlankRun[] {
  const rows = rowIntervals(g, rectangles);
  const runs: BlankRun[] = [];
  if (g.bitsAllocated === 1) {
    const zero = Buffer.alloc(1);
    for (const [y, list] of rows) for (const [x0, x1] of list) runs.push({ start: y * g.columns + x0, end: y * g.columns + x1, pattern: zero, zero: true });
    return runs;
  }
  const bpp = g.bitsAllocated / 8;
  const samples = blankSampleValues(g).map((v) => sampleBytes(v, bpp, littleEndian));
  if (g.planarConfiguration === 1 && g.samplesPerPixel > 1) {
    const planeBytes = g.rows * g.columns * bpp;
    samples.forEach((pattern, s) => {
      const zero = pattern.every((b) => b === 0);
      for (const [y, list] of rows) {
        for (const [x0, x1] of list) runs.push({ start: s * planeBytes + (y * g.columns + x0) * bpp, end: s * planeBytes + (y * g.columns + x1) * bpp, pattern, zero });
      }
    });
    return runs;
  }
  const pattern = Buffer.concat(samples);
  const zero = pattern.every((b) => b === 0);
  const pixelBytes = pattern.length;
  for (const [y, list] of rows) for (const [x0, x1] of list) runs.push({ start: (y * g.columns + x0) * pixelBytes, end: (y * g.columns + x1) * pixelBytes, pattern, zero });
  return runs;
}

/** Index of the first run whose end is after `pos` (runs are sorted and disjoint). */
function firstRunAfter(runs: readonly BlankRun[], pos: number): number {
  let lo = 0;
  let hi = runs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((runs[mid] as BlankRun).end <= pos) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Clears bits [from, to) of `out`, where bit 0 is the least significant bit of out[0] (PS3.5 D.2). */
function clearBits(out: Buffer, from: number, to: number): void {
  let bit = from;
  while (bit < to && bit % 8 !== 0) {
    out[bit >>> 3] = (out[bit >>> 3] as number) & ~(1 << (bit & 7));
    bit++;
  }
  const wholeEnd = to - (to % 8);
  if (wholeEnd > bit) {
    out.fill(0, bit >>> 3, wholeEnd >>> 3);
    bit = wholeEnd;
  }
  while (bit < to) {
    out[bit >>> 3] = (out[bit >>> 3] as number) & ~(1 << (bit & 7));
    bit++;
  }
}

export interface NativeBlankerOptions {
  /** Byte order of the samples (Explicit VR Big Endian stores 16/32-bit samples big-endian). Default true. */
  readonly littleEndian?: boolean;
  /** Write into the chunks given (they belong to the caller, e.g. a decoded frame) instead of copying. */
  readonly inPlace?: boolean;
}

/**
 * Blanks rectangles in every frame of a native Pixel Data value fed chunk by chunk, in order. A chunk that
 * touches no rectangle is returned as is; one that does is copied first (the input is never written to).
 * Bytes after the last frame (the even-length pad) are left alone.
 */
export class NativeBlanker {
  private readonly runs: BlankRun[];
  private readonly bitMode: boolean;
  /** Frame size in bytes, or in bits for 1-bit data. */
  private readonly frameUnits: number;
  private readonly frames: number;
  private readonly inPlace: boolean;
  private offset = 0;

  constructor(geometry: FrameGeometry, rectangles: readonly Rectangle[], options: NativeBlankerOptions = {}) {
    this.runs = buildRuns(geometry, rectangles, options.littleEndian ?? true);
    this.bitMode = geometry.bitsAllocated === 1;
    this.frameUnits = this.bitMode ? frameBits(geometry) : frameByteLength(geometry);
    this.frames = geometry.numberOfFrames;
    this.inPlace = options.inPlace ?? false;
  }

  /** Whether any rectangle lies inside the image at all. */
  get blanksAnything(): boolean {
    return this.runs.length > 0;
  }

  /** Bytes of the value seen so far. */
  get position(): number {
    return this.offset;
  }

  /** The next chunk of the value, blanked. */
  push(chunk: Buffer): Buffer {
    const pos = this.offset;
    this.offset += chunk.length;
    if (this.runs.length === 0 || chunk.length === 0) return chunk;
    let out: Buffer | undefined;
    const unit = this.bitMode ? 8 : 1;
    const lo = pos * unit;
    const hi = (pos + chunk.length) * unit;
    const lastFrame = Math.min(this.frames - 1, Math.floor((hi - 1) / this.frameUnits));
    for (let f = Math.floor(lo / this.frameUnits); f <= lastFrame; f++) {
      const base = f * this.frameUnits;
      const from = Math.max(lo, base) - base;
      const to = Math.min(hi, base + this.frameUnits) - base;
      for (let i = firstRunAfter(this.runs, from); i < this.runs.length; i++) {
        const run = this.runs[i] as BlankRun;
        if (run.start >= to) break;
        const a = Math.max(run.start, from);
        const b = Math.min(run.end, to);
        out ??= this.inPlace ? chunk : Buffer.from(chunk);
        if (this.bitMode) clearBits(out, base + a - lo, base + b - lo);
        else if (run.zero) out.fill(0, base + a - pos, base + b - pos);
        else {
          const phase = (a - run.start) % run.pattern.length;
          const rotated = phase === 0 ? run.pattern : Buffer.concat([run.pattern.subarray(phase), run.pattern.subarray(0, phase)]);
          out.fill(rotated, base + a - pos, base + b - pos);
        }
      }
    }
    return out ?? chunk;
  }
}

/** Blanks one whole frame in place (a decoded frame, a WADO-RS frame): the frame starts at byte (bit) 0. */
export function blankFrameInPlace(frame: Buffer, geometry: FrameGeometry, rectangles: readonly Rectangle[], options: NativeBlankerOptions = {}): void {
  new NativeBlanker({ ...geometry, numberOfFrames: 1 }, rectangles, { ...options, inPlace: true }).push(frame);
}

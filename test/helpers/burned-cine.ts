// The OCR tests' risky instance that no rule covers: the US cine sample (RGB 8-bit, 320 × 240, 8 frames,
// Implicit VR Little Endian, Pixel Data its last element) with a line of identity text burned in white on a
// black band in every frame, as an ultrasound device draws its overlay.
import assert from 'node:assert/strict';
import { createCanvas } from '@napi-rs/canvas';
import { findElement } from '../../src/dicom/dataset.ts';
import { readPart10Buffer } from '../../src/dicom/part10-reader.ts';
import { sample } from './sample.ts';

export const CINE_FILE = 'multiframe/IM00001.implicit_little_endian.dcm';
export const CINE_UIDS = {
  study: '1.3.6.1.4.1.25403.166563008443.732.20120418082458.1',
  series: '1.3.6.1.4.1.25403.166563008443.732.20120418082458.2',
  instance: '1.3.6.1.4.1.25403.166563008443.732.20120418082458.3',
} as const;
export const [ROWS, COLUMNS, FRAMES, SAMPLES] = [240, 320, 8, 3] as const;
export const FRAME_BYTES = ROWS * COLUMNS * SAMPLES;
const TAG_PLANAR_CONFIGURATION = 0x00280006;

export interface BurnedCine {
  readonly file: Buffer;
  /** The pixels (row-major indices) the text covers, white in every frame. */
  readonly text: number[];
  /** Planar Configuration (0028,0006) of the sample: where each pixel's samples are (`sampleAt`). */
  readonly planar: number;
}

/** Where sample `s` of pixel `p` is in a frame of Planar Configuration `planar`. */
export const sampleAt = (planar: number, p: number, s: number): number => (planar === 0 ? p * SAMPLES + s : s * ROWS * COLUMNS + p);

/** The pixel `p` of `frame`, its three samples. */
export const pixelOf = (frame: Buffer, planar: number, p: number): number[] => [0, 1, 2].map((s) => frame[sampleAt(planar, p, s)] as number);

/**
 * The cine with `text` (bold 20 px DejaVu Sans, top at `at`) white on the black rectangle `band`, in every
 * frame: each pixel the band or the text touches is 255 where the text covers more than half of it, else 0.
 */
export async function burnedCine(text: string, band: { x: number; y: number; width: number; height: number }, at: { x: number; y: number }): Promise<BurnedCine> {
  const original = sample(CINE_FILE);
  const planar = findElement((await readPart10Buffer(original)).header.dataset, TAG_PLANAR_CONFIGURATION)?.value?.readUInt16LE(0) ?? 0;
  const start = original.length - FRAME_BYTES * FRAMES;
  assert.equal(original.readUInt32LE(start - 8), 0x00107fe0, 'Pixel Data is the last element');
  assert.equal(original.readUInt32LE(start - 4), FRAME_BYTES * FRAMES, 'the frames end the file');
  const canvas = createCanvas(COLUMNS, ROWS);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#000';
  ctx.fillRect(band.x, band.y, band.width, band.height);
  ctx.fillStyle = '#fff';
  ctx.font = 'bold 20px "DejaVu Sans"';
  ctx.textBaseline = 'top';
  ctx.fillText(text, at.x, at.y);
  const rgba = ctx.getImageData(0, 0, COLUMNS, ROWS).data;
  const file = Buffer.from(original);
  const covered: number[] = [];
  for (let p = 0; p < ROWS * COLUMNS; p++) {
    const alpha = rgba[p * 4 + 3] as number;
    if (alpha === 0) continue;
    const white = (rgba[p * 4] as number) > 128 && alpha > 128;
    if (white) covered.push(p);
    for (let f = 0; f < FRAMES; f++) for (let s = 0; s < SAMPLES; s++) file[start + f * FRAME_BYTES + sampleAt(planar, p, s)] = white ? 255 : 0;
  }
  return { file, text: covered, planar };
}

// One decoded native frame (codecs.ts decodeFrame output, or a native frame as stored) to the 8-bit
// luminance a text detector reads (text-detection.ts GrayFrame, issue 18). Compute only: no policy.
//
//   1. Each pixel's value: the stored bits of each sample (PS3.5 8.1.1: bits above Bits Stored may hold
//      other data and are masked off), sign-extended when Pixel Representation is 1 (PS3.3 C.7.6.3.1).
//   2. Luminance by Photometric Interpretation (PS3.3 C.7.6.3.1.2): MONOCHROME2 as is; MONOCHROME1
//      inverted (its minimum is white); RGB as ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B); YBR_FULL
//      (and YBR_FULL_422 once decoded to full resolution) its Y sample, which is that same luma.
//   3. Min–max stretch to 0..255, so that faint text (a few grey levels above a 12-bit background) is
//      still strong enough to read. A frame of one value is all black.
//
// Refused (PixelUnsupportedError), so the caller fails closed rather than OCR a frame whose luminance is
// guessed: PALETTE COLOR (index order says nothing about brightness: text drawn with index 200 on a
// background of index 201 would vanish; a caller holding the LUT should convert to RGB first),
// YBR_PARTIAL_* (subsampled) and YBR_ICT/RCT (decoders return RGB: pass the decoded interpretation,
// dicom/photometric.ts decodedPhotometricInterpretation), Bits Allocated other than 1, 8 or 16.
import { decodedPhotometricInterpretation } from '../dicom/photometric.ts';
import type { TransferSyntax } from '../dicom/transfer-syntax.ts';
import { decodeFrame } from './codecs.ts';
import { PixelGeometryError, PixelUnsupportedError } from './errors.ts';
import { frameByteLength, type FrameGeometry } from './geometry.ts';
import type { GrayFrame } from './text-detection.ts';

/**
 * One frame as stored, in `syntax`, as 8-bit luminance: native little-endian samples as they are, an
 * encapsulated frame decoded (codecs.ts: PixelUnsupportedError for a syntax without a codec; its
 * Photometric Interpretation is then the decoded one), then `grayFrame`. Native big endian is refused
 * (PixelUnsupportedError): its samples are not where `grayFrame` reads them. `index`: the frame's 0-based
 * number (codecs use it for frames of a multi-frame RLE or JPEG stream).
 */
export async function frameLuminance(bytes: Uint8Array, syntax: TransferSyntax, single: FrameGeometry, index = 0): Promise<GrayFrame> {
  if (!syntax.encapsulated) {
    if (!syntax.littleEndian) throw new PixelUnsupportedError('native big endian Pixel Data is not read for OCR');
    return grayFrame(bytes, single);
  }
  const pixels = await decodeFrame(bytes, syntax.uid, single, index);
  return grayFrame(pixels, { ...single, photometricInterpretation: decodedPhotometricInterpretation(single.photometricInterpretation) });
}

type Luma = 'mono2' | 'mono1' | 'rgb' | 'ybr';

function lumaKind(g: FrameGeometry): Luma {
  const pi = g.photometricInterpretation.trim();
  if (g.samplesPerPixel === 1) {
    if (pi === 'MONOCHROME2') return 'mono2';
    if (pi === 'MONOCHROME1') return 'mono1';
    if (pi === 'PALETTE COLOR') throw new PixelUnsupportedError('Photometric Interpretation PALETTE COLOR has no luminance without its lookup table');
  } else if (g.samplesPerPixel === 3) {
    if (pi === 'RGB') return 'rgb';
    if (pi === 'YBR_FULL' || pi === 'YBR_FULL_422') return 'ybr';
  }
  throw new PixelUnsupportedError(`Photometric Interpretation ${pi || '(none)'} with SamplesPerPixel ${g.samplesPerPixel} has no luminance here`);
}

/**
 * The frame as 8-bit luminance, min–max stretched. `pixels` holds exactly one frame of native
 * little-endian samples laid out as `geometry` says (Planar Configuration included); `geometry` carries
 * the Photometric Interpretation of these decoded pixels. Errors: PixelUnsupportedError (see above),
 * PixelGeometryError (wrong byte length).
 */
export function grayFrame(pixels: Uint8Array, geometry: FrameGeometry): GrayFrame {
  const g = geometry;
  if (g.bitsAllocated !== 1 && g.bitsAllocated !== 8 && g.bitsAllocated !== 16) throw new PixelUnsupportedError('BitsAllocated (0028,0100) not 1, 8 or 16');
  const kind = lumaKind(g);
  if (g.bitsAllocated === 1 && g.samplesPerPixel !== 1) throw new PixelUnsupportedError('1-bit pixels with more than one sample');
  const single = { ...g, numberOfFrames: 1 };
  const expected = frameByteLength(single);
  // An odd-length native frame may carry its pad byte (PS3.5 8.1.1).
  if (pixels.length !== expected && !(expected % 2 === 1 && pixels.length === expected + 1)) {
    throw new PixelGeometryError(`frame holds ${pixels.length} bytes, the geometry needs ${expected}`);
  }
  const n = g.rows * g.columns;
  const bits = Math.min(g.bitsStored, g.bitsAllocated);
  const mask = bits >= 32 ? 0xffffffff : (1 << bits) - 1;
  const signBit = g.pixelRepresentation === 1 && bits > 1 ? 1 << (bits - 1) : 0;
  const view = new DataView(pixels.buffer, pixels.byteOffset, pixels.byteLength);
  // Step 1: one sample's value.
  const sample = (index: number): number => {
    let v: number;
    if (g.bitsAllocated === 8) v = (pixels[index] as number) & mask;
    else if (g.bitsAllocated === 16) v = view.getUint16(index * 2, true) & mask;
    else v = ((pixels[index >> 3] as number) >> (index & 7)) & 1; // PS3.5 D.2: little-endian bit order
    return signBit !== 0 && (v & signBit) !== 0 ? v - (mask + 1) : v;
  };
  // Step 2: luminance per pixel.
  const luma = new Float64Array(n);
  const planar = g.samplesPerPixel === 3 && g.planarConfiguration === 1;
  const at = (p: number, s: number) => (planar ? s * n + p : p * 3 + s);
  for (let p = 0; p < n; p++) {
    if (kind === 'mono2' || kind === 'mono1') luma[p] = sample(p);
    else if (kind === 'ybr') luma[p] = sample(at(p, 0));
    else luma[p] = 0.299 * sample(at(p, 0)) + 0.587 * sample(at(p, 1)) + 0.114 * sample(at(p, 2));
  }
  // Step 3: stretch.
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (let p = 0; p < n; p++) {
    const v = luma[p] as number;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const data = new Uint8Array(n);
  const range = max - min;
  if (range > 0) {
    const scale = 255 / range;
    for (let p = 0; p < n; p++) {
      const v = Math.round(((luma[p] as number) - min) * scale);
      data[p] = kind === 'mono1' ? 255 - v : v;
    }
  }
  return { width: g.columns, height: g.rows, data };
}

// The frame layout of an instance from its Image Pixel Module (PS3.3 C.7.6.3) and Number of Frames
// (C.7.6.6), and whether its pixels can be blanked. Read through an AttributeReader (DICOM JSON values),
// so the Part 10, frames and metadata paths share it.
import type { AttributeReader } from '../deid/pixel-policy.ts';
import { PixelFrameTooLargeError, PixelGeometryError, PixelUnsupportedError } from './errors.ts';

export const PIXEL_TAG = Object.freeze({
  SamplesPerPixel: 0x00280002,
  PhotometricInterpretation: 0x00280004,
  PlanarConfiguration: 0x00280006,
  NumberOfFrames: 0x00280008,
  Rows: 0x00280010,
  Columns: 0x00280011,
  BitsAllocated: 0x00280100,
  BitsStored: 0x00280101,
  PixelRepresentation: 0x00280103,
  ExtendedOffsetTable: 0x7fe00001,
  ExtendedOffsetTableLengths: 0x7fe00002,
  PixelData: 0x7fe00010,
} as const);

/**
 * Default cap on one frame (decoded, or encoded while it is assembled): 64 MiB, e.g. a 4096 × 4096 RGB
 * 32-bit frame is 192 MiB and refused; the largest sample frame is far below it. Bounds the memory and
 * CPU one decode may take.
 */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;

export interface FrameGeometry {
  readonly rows: number;
  readonly columns: number;
  readonly samplesPerPixel: number;
  readonly bitsAllocated: number;
  readonly bitsStored: number;
  readonly pixelRepresentation: number;
  /** 0 interleaved (R1G1B1R2…), 1 planar (R…G…B…) (PS3.3 C.7.6.3.1.3); 0 for one sample per pixel. */
  readonly planarConfiguration: number;
  readonly photometricInterpretation: string;
  readonly numberOfFrames: number;
}

function numberOf(read: AttributeReader, tag: number): number | undefined {
  const v = read(tag)?.[0];
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && /^\s*[+-]?\d+\s*$/.test(v)) return Number(v);
  return undefined;
}

function hex(tag: number): string {
  return `(${(tag >>> 16).toString(16).padStart(4, '0')},${(tag & 0xffff).toString(16).padStart(4, '0')})`.toUpperCase();
}

function required(read: AttributeReader, tag: number, keyword: string): number {
  const v = numberOf(read, tag);
  if (v === undefined || !Number.isInteger(v) || v < 0) throw new PixelGeometryError(`${keyword} ${hex(tag)} missing or not an integer`);
  return v;
}

export interface FrameGeometryOptions {
  /**
   * Planar Configuration may be absent with more than one sample: only for encapsulated pixels whose
   * decoder fixes the layout (it is then taken as 0, interleaved). Never for native bytes.
   */
  readonly allowMissingPlanarConfiguration?: boolean;
}

/**
 * The frame geometry, or PixelGeometryError naming the attribute that is missing or out of range.
 * PS3.3 C.7.6.3: Planar Configuration is Type 1C, required when Samples per Pixel > 1; its absence is
 * refused (fail closed: guessing interleaved would blank the wrong bytes of a planar frame).
 */
export function frameGeometry(read: AttributeReader, options: FrameGeometryOptions = {}): FrameGeometry {
  const rows = required(read, PIXEL_TAG.Rows, 'Rows');
  const columns = required(read, PIXEL_TAG.Columns, 'Columns');
  const samplesPerPixel = required(read, PIXEL_TAG.SamplesPerPixel, 'SamplesPerPixel');
  const bitsAllocated = required(read, PIXEL_TAG.BitsAllocated, 'BitsAllocated');
  const bitsStored = numberOf(read, PIXEL_TAG.BitsStored) ?? bitsAllocated;
  const pixelRepresentation = numberOf(read, PIXEL_TAG.PixelRepresentation) ?? 0;
  const planar = samplesPerPixel > 1 ? numberOf(read, PIXEL_TAG.PlanarConfiguration) : 0;
  if (planar === undefined && !options.allowMissingPlanarConfiguration) {
    throw new PixelGeometryError('PlanarConfiguration (0028,0006) missing with SamplesPerPixel (0028,0002) > 1');
  }
  const planarConfiguration = planar ?? 0;
  const pi = read(PIXEL_TAG.PhotometricInterpretation)?.[0];
  const photometricInterpretation = typeof pi === 'string' ? pi.trim() : '';
  const frames = numberOf(read, PIXEL_TAG.NumberOfFrames);
  const numberOfFrames = frames === undefined || frames === 0 ? 1 : frames;
  if (rows === 0 || columns === 0) throw new PixelGeometryError('Rows (0028,0010) or Columns (0028,0011) is zero');
  if (samplesPerPixel !== 1 && samplesPerPixel !== 3 && samplesPerPixel !== 4) throw new PixelGeometryError('SamplesPerPixel (0028,0002) not 1, 3 or 4');
  if (bitsStored < 1 || bitsStored > bitsAllocated) throw new PixelGeometryError('BitsStored (0028,0101) out of range');
  if (pixelRepresentation !== 0 && pixelRepresentation !== 1) throw new PixelGeometryError('PixelRepresentation (0028,0103) not 0 or 1');
  if (planarConfiguration !== 0 && planarConfiguration !== 1) throw new PixelGeometryError('PlanarConfiguration (0028,0006) not 0 or 1');
  if (!Number.isInteger(numberOfFrames) || numberOfFrames < 0) throw new PixelGeometryError('NumberOfFrames (0028,0008) not a positive integer');
  return { rows, columns, samplesPerPixel, bitsAllocated, bitsStored, pixelRepresentation, planarConfiguration, photometricInterpretation, numberOfFrames };
}

/** Bits of one frame (PS3.5 8.1.1: 1-bit frames are packed and need not end on a byte boundary). */
export function frameBits(g: FrameGeometry): number {
  return g.rows * g.columns * g.samplesPerPixel * g.bitsAllocated;
}

/** Bytes of one frame on its own (a decoded frame, a WADO-RS frame): rounded up to a whole byte. */
export function frameByteLength(g: FrameGeometry): number {
  return Math.ceil(frameBits(g) / 8);
}

/** Bytes of a native Pixel Data value holding every frame, before the even-length padding (PS3.5 8.1.1). */
export function nativePixelDataLength(g: FrameGeometry): number {
  return Math.ceil((frameBits(g) * g.numberOfFrames) / 8);
}

export interface BlankabilityOptions {
  /** The pixels will be decoded from an encapsulated transfer syntax (the layout is then the decoder's). */
  readonly encapsulated: boolean;
  readonly maxFrameBytes?: number;
}

/**
 * Refuses what cannot be blanked in place (PixelUnsupportedError) or is too large (PixelFrameTooLargeError):
 *   1. Bits Allocated other than 1, 8, 16, 32 (no sample would line up with a byte);
 *   2. 1-bit with more than one sample;
 *   3. YBR_PARTIAL_420/422 (subsampled, PS3.3 C.7.6.3.1.2), and native YBR_FULL_422: two pixels share
 *      chroma, so a blank would not stay inside its rectangle and decodedPhotometricInterpretation could
 *      not keep the header true;
 *   4. a frame larger than the cap;
 *   5. decoded 1-bit frames that do not end on a byte boundary (they would have to be re-packed).
 */
export function assertBlankable(g: FrameGeometry, options: BlankabilityOptions): void {
  if (![1, 8, 16, 32].includes(g.bitsAllocated)) throw new PixelUnsupportedError('BitsAllocated (0028,0100) not 1, 8, 16 or 32');
  if (g.bitsAllocated === 1 && g.samplesPerPixel !== 1) throw new PixelUnsupportedError('1-bit pixels with more than one sample');
  const pi = g.photometricInterpretation;
  if (pi.startsWith('YBR_PARTIAL')) throw new PixelUnsupportedError(`Photometric Interpretation ${pi} cannot be blanked`);
  if (!options.encapsulated && pi === 'YBR_FULL_422') throw new PixelUnsupportedError('native YBR_FULL_422 cannot be blanked in place');
  if (options.encapsulated && g.bitsAllocated === 1 && g.numberOfFrames > 1 && frameBits(g) % 8 !== 0) {
    throw new PixelUnsupportedError('decoded 1-bit frames that do not end on a byte boundary');
  }
  const max = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  if (frameByteLength(g) > max) throw new PixelFrameTooLargeError(max);
  if (!Number.isSafeInteger(frameBits(g) * g.numberOfFrames) || nativePixelDataLength(g) > 0xfffffffe) {
    throw new PixelUnsupportedError('native Pixel Data would exceed the 32-bit value length');
  }
}

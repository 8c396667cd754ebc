// Shared by the pixel tests: decode every frame of an instance to native samples, read one sample.
import { findElement } from '../../../src/dicom/dataset.ts';
import { characterSetOf } from '../../../src/dicom/dataset.ts';
import { elementToJsonValue } from '../../../src/dicom/json-model.ts';
import { readPart10Buffer, type Part10Parsed } from '../../../src/dicom/part10-reader.ts';
import { transferSyntax } from '../../../src/dicom/transfer-syntax.ts';
import type { AttributeReader } from '../../../src/deid/pixel-policy.ts';
import { decodeFrame, requireCodec } from '../../../src/pixel/codecs.ts';
import { FrameSplitter } from '../../../src/pixel/encapsulated.ts';
import { PIXEL_TAG, frameGeometry, type FrameGeometry } from '../../../src/pixel/geometry.ts';

export function readerOf(parsed: Part10Parsed): AttributeReader {
  const { dataset, encoding } = parsed.header;
  const charset = characterSetOf(dataset, []);
  return (tag) => {
    const el = findElement(dataset, tag);
    if (!el || el.items || el.fragments) return undefined;
    return elementToJsonValue(el, charset, encoding.littleEndian).Value;
  };
}

export interface DecodedInstance {
  readonly parsed: Part10Parsed;
  readonly geometry: FrameGeometry;
  readonly transferSyntaxUid: string;
  /** Every frame, native, in the stored layout, concatenated as a native Pixel Data value would be. */
  readonly pixels: Buffer;
  readonly littleEndian: boolean;
}

/** Parses and decodes (with the same codecs as the gateway, frame by frame) every frame. */
export async function decodeInstance(bytes: Buffer): Promise<DecodedInstance> {
  const parsed = await readPart10Buffer(bytes);
  const geometry = frameGeometry(readerOf(parsed));
  const uid = parsed.header.transferSyntaxUID.replace(/[\0 ]+$/, '');
  const ts = transferSyntax(uid);
  const value = parsed.pixelDataBytes ?? Buffer.alloc(0);
  if (!ts.encapsulated) return { parsed, geometry, transferSyntaxUid: uid, pixels: value, littleEndian: ts.littleEndian };
  const eot = findElement(parsed.header.dataset, PIXEL_TAG.ExtendedOffsetTable)?.value;
  const splitter = new FrameSplitter(geometry, requireCodec(uid), eot ? { extendedOffsetTable: eot } : {});
  const encoded = [...splitter.push(value), ...splitter.end()];
  const frames: Buffer[] = [];
  for (const [i, f] of encoded.entries()) frames.push(await decodeFrame(f, uid, geometry, i));
  return { parsed, geometry, transferSyntaxUid: uid, pixels: Buffer.concat(frames), littleEndian: true };
}

/** One sample of frame f at (x, y), sample s, from a native value in the given layout. */
export function sampleAt(pixels: Buffer, g: FrameGeometry, le: boolean, f: number, x: number, y: number, s: number): number {
  const pixelIndex = y * g.columns + x;
  if (g.bitsAllocated === 1) {
    const bit = f * g.rows * g.columns + pixelIndex;
    return ((pixels[bit >>> 3] as number) >> (bit & 7)) & 1;
  }
  const bps = g.bitsAllocated / 8;
  const frameBytes = g.rows * g.columns * g.samplesPerPixel * bps;
  const within = g.planarConfiguration === 1 ? s * g.rows * g.columns + pixelIndex : pixelIndex * g.samplesPerPixel + s;
  const off = f * frameBytes + within * bps;
  if (bps === 1) return pixels[off] as number;
  if (bps === 2) return le ? pixels.readUInt16LE(off) : pixels.readUInt16BE(off);
  return le ? pixels.readUInt32LE(off) : pixels.readUInt32BE(off);
}

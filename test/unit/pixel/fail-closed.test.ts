// Security review of issue 16: layouts the blanker could not cover are refused, never passed on
// partly blanked (STYLE habit 5).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DataElement } from '../../../src/dicom/dataset.ts';
import { encodeDataset, encodeElementHeader, encodeFileMeta } from '../../../src/dicom/part10-writer.ts';
import type { Decision, ElementRef } from '../../../src/deid/deidentify.ts';
import { PixelWithheldError } from '../../../src/deid/errors.ts';
import type { PixelVerdict } from '../../../src/deid/pixel-policy.ts';
import { rewritePart10, rewritePart10Buffer, type Part10Policy } from '../../../src/deid/rewrite-part10.ts';
import { decodeFrame } from '../../../src/pixel/codecs.ts';
import { EncapsulatedRedactor } from '../../../src/pixel/encapsulated.ts';
import { PixelDecodeError, PixelGeometryError } from '../../../src/pixel/errors.ts';
import { redactFrame } from '../../../src/pixel/frame-redaction.ts';
import { DEFAULT_MAX_FRAME_BYTES, PIXEL_TAG, frameGeometry, type FrameGeometry } from '../../../src/pixel/geometry.ts';

type Encoding = { explicitVr: true; littleEndian: boolean };
const LE: Encoding = { explicitVr: true, littleEndian: true };
const BE: Encoding = { explicitVr: true, littleEndian: false };

const us = (tag: number, v: number, enc: Encoding): DataElement => {
  const value = Buffer.alloc(2);
  enc.littleEndian ? value.writeUInt16LE(v) : value.writeUInt16BE(v);
  return { tag, vr: 'US', value };
};
const text = (tag: number, vr: string, s: string): DataElement => ({ tag, vr, value: Buffer.from(s.length % 2 ? `${s} ` : s, 'latin1') });
const uid = (tag: number, s: string): DataElement => ({ tag, vr: 'UI', value: Buffer.from(s.length % 2 ? `${s}\0` : s, 'latin1') });

/** A native MONOCHROME2 instance: the header, then Pixel Data of `vr` holding `value`. */
function instance(ts: string, enc: Encoding, g: { rows: number; columns: number; bits: number; frames: number }, vr: string, value: Buffer): Buffer {
  const dataset: DataElement[] = [
    uid(0x00080016, '1.2.840.10008.5.1.4.1.1.7.2'),
    uid(0x00080018, '2.25.1'),
    us(0x00280002, 1, enc),
    text(0x00280004, 'CS', 'MONOCHROME2'),
    text(0x00280008, 'IS', String(g.frames)),
    us(0x00280010, g.rows, enc),
    us(0x00280011, g.columns, enc),
    us(0x00280100, g.bits, enc),
    us(0x00280101, g.bits, enc),
    us(0x00280102, g.bits - 1, enc),
    us(0x00280103, 0, enc),
  ];
  return Buffer.concat([
    encodeFileMeta({ transferSyntaxUID: ts, mediaStorageSOPClassUID: '1.2.840.10008.5.1.4.1.1.7.2', mediaStorageSOPInstanceUID: '2.25.1' }),
    encodeDataset(dataset, enc),
    encodeElementHeader(0x7fe00010, vr, value.length, enc),
    value,
  ]);
}

function policy(verdict: PixelVerdict): Part10Policy {
  return {
    beginDataset: () => undefined,
    pixelVerdict: () => verdict,
    decide: (ref: ElementRef): Decision => (ref.vr === 'SQ' ? { op: 'recurse' } : { op: 'keep' }),
    attributesToAdd: () => ({}),
  };
}

const REDACT: PixelVerdict = { action: 'redact', rule: 'all', rectangles: [{ x: 0, y: 0, width: 100, height: 100 }] };
const unredactable = (detail: string) => (err: unknown) => err instanceof PixelWithheldError && err.reason === 'unredactable' && err.detail === detail;

const geometry = (over: Partial<FrameGeometry>): FrameGeometry => ({
  rows: 5, columns: 7, samplesPerPixel: 1, bitsAllocated: 8, bitsStored: 8, pixelRepresentation: 0, planarConfiguration: 0, photometricInterpretation: 'MONOCHROME2', numberOfFrames: 1, ...over,
});

describe('native Pixel Data must hold exactly Number of Frames frames to be redacted', () => {
  const g = { rows: 4, columns: 4, bits: 8, frames: 2 };

  it('withholds, before any byte, Pixel Data with an extra frame past Number of Frames', async () => {
    const { output } = rewritePart10([instance('1.2.840.10008.1.2.1', LE, g, 'OB', Buffer.alloc(3 * 16, 0x55))], policy(REDACT));
    await assert.rejects(output.next(), unredactable('PIXEL_INVALID_GEOMETRY'));
  });

  it('withholds Pixel Data with two stray bytes past the frames (only an odd length may take one pad byte)', async () => {
    const { output } = rewritePart10([instance('1.2.840.10008.1.2.1', LE, g, 'OB', Buffer.alloc(2 * 16 + 2, 0x55))], policy(REDACT));
    await assert.rejects(output.next(), unredactable('PIXEL_INVALID_GEOMETRY'));
  });

  it('redacts the exact length, and an odd length with its pad byte', async () => {
    const exact = await rewritePart10Buffer(instance('1.2.840.10008.1.2.1', LE, g, 'OB', Buffer.alloc(32, 0x55)), policy(REDACT));
    assert.ok(!exact.output.subarray(-32).includes(0x55));
    const odd = { rows: 3, columns: 3, bits: 8, frames: 1 };
    const padded = await rewritePart10Buffer(instance('1.2.840.10008.1.2.1', LE, odd, 'OB', Buffer.alloc(10, 0x55)), policy(REDACT));
    assert.ok(!padded.output.subarray(-10, -1).includes(0x55));
  });
});

describe('Explicit VR Big Endian', () => {
  it('withholds 8-bit samples in OW (byte-swapped words), before any byte', async () => {
    const g = { rows: 4, columns: 4, bits: 8, frames: 1 };
    const { output } = rewritePart10([instance('1.2.840.10008.1.2.2', BE, g, 'OW', Buffer.alloc(16, 0x55))], policy(REDACT));
    await assert.rejects(output.next(), unredactable('PIXEL_UNSUPPORTED'));
  });

  it('still redacts 8-bit samples in OB and 16-bit samples in OW', async () => {
    const ob = await rewritePart10Buffer(instance('1.2.840.10008.1.2.2', BE, { rows: 4, columns: 4, bits: 8, frames: 1 }, 'OB', Buffer.alloc(16, 0x55)), policy(REDACT));
    assert.ok(!ob.output.subarray(-16).includes(0x55));
    const ow = await rewritePart10Buffer(instance('1.2.840.10008.1.2.2', BE, { rows: 4, columns: 4, bits: 16, frames: 1 }, 'OW', Buffer.alloc(32, 0x55)), policy(REDACT));
    assert.ok(!ow.output.subarray(-32).includes(0x55));
  });
});

describe('redactFrame takes exactly one native frame', () => {
  it('refuses a native frame longer than one frame (the rest would pass unblanked)', async () => {
    const g = geometry({ numberOfFrames: 2 });
    await assert.rejects(redactFrame(Buffer.alloc(70, 9), '1.2.840.10008.1.2.1', g, [{ x: 0, y: 0, width: 7, height: 5 }]), PixelGeometryError);
    await assert.rejects(redactFrame(Buffer.alloc(34, 9), '1.2.840.10008.1.2.1', g, []), PixelGeometryError);
  });

  it('accepts the pad byte of an odd-length frame, and only that', async () => {
    const r = await redactFrame(Buffer.alloc(36, 9), '1.2.840.10008.1.2.1', geometry({}), [{ x: 0, y: 0, width: 7, height: 5 }]);
    assert.ok(!r.bytes.subarray(0, 35).includes(9));
    const even = geometry({ columns: 8 });
    await assert.rejects(redactFrame(Buffer.alloc(41, 9), '1.2.840.10008.1.2.1', even, []), PixelGeometryError);
  });
});

describe('Planar Configuration (PS3.3 C.7.6.3, Type 1C)', () => {
  const read = (planar: number | undefined) => (tag: number): unknown[] | undefined =>
    ({ [PIXEL_TAG.Rows]: [2], [PIXEL_TAG.Columns]: [2], [PIXEL_TAG.SamplesPerPixel]: [3], [PIXEL_TAG.BitsAllocated]: [8], [PIXEL_TAG.PhotometricInterpretation]: ['RGB'], ...(planar === undefined ? {} : { [PIXEL_TAG.PlanarConfiguration]: [planar] }) })[tag];

  it('is required with more than one sample per pixel', () => {
    assert.throws(() => frameGeometry(read(undefined)), PixelGeometryError);
    assert.equal(frameGeometry(read(1)).planarConfiguration, 1);
  });

  it('may be absent only where the caller says the decoder fixes the layout', () => {
    assert.equal(frameGeometry(read(undefined), { allowMissingPlanarConfiguration: true }).planarConfiguration, 0);
  });
});

describe('decode cost', () => {
  it('caps one frame at 64 MiB by default', () => {
    assert.equal(DEFAULT_MAX_FRAME_BYTES, 64 * 1024 * 1024);
  });

  it('refuses a JPEG whose SOF size differs from Rows and Columns, before decoding', async () => {
    // SOI, SOF0 (8-bit, 100 × 100, 1 component), EOI.
    const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x64, 0x00, 0x64, 0x01, 0x01, 0x11, 0x00, 0xff, 0xd9]);
    await assert.rejects(decodeFrame(jpeg, '1.2.840.10008.1.2.4.50', geometry({})), (err: unknown) => err instanceof PixelDecodeError && /size does not match/.test(err.message));
  });

  it('refuses a JPEG 2000 codestream whose SIZ size differs from Rows and Columns, before decoding', async () => {
    const siz = Buffer.alloc(4 + 2 + 2 + 16 + 16);
    siz.set([0xff, 0x4f, 0xff, 0x51]);
    siz.writeUInt16BE(41, 4);
    siz.writeUInt32BE(4096, 8); // Xsiz
    siz.writeUInt32BE(4096, 12); // Ysiz
    await assert.rejects(decodeFrame(siz, '1.2.840.10008.1.2.4.90', geometry({})), (err: unknown) => err instanceof PixelDecodeError && /size does not match/.test(err.message));
  });
});

describe('encapsulated redaction errors name the right frame', () => {
  it('a bad first frame completed in the same chunk as the second is frame 0', () => {
    const g = geometry({ rows: 2, columns: 2, numberOfFrames: 3 });
    const rle = (segments: number): Buffer => {
      const h = Buffer.alloc(64);
      h.writeUInt32LE(segments, 0);
      h.writeUInt32LE(64, 4);
      return Buffer.concat([h, Buffer.from([3, 1, 2, 3, 4, 0])]); // one literal run of 4 bytes, padded
    };
    const item = (value: Buffer): Buffer => {
      const b = Buffer.alloc(8);
      b.writeUInt16LE(0xfffe, 0);
      b.writeUInt16LE(0xe000, 2);
      b.writeUInt32LE(value.length, 4);
      return Buffer.concat([b, value]);
    };
    const bad = rle(1);
    bad.writeUInt32LE(2, 0); // two segments announced: the RLE header does not fit the geometry
    const redactor = new EncapsulatedRedactor(g, { transferSyntaxUid: '1.2.840.10008.1.2.5', rectangles: [] });
    const value = Buffer.concat([item(Buffer.alloc(0)), item(bad), item(rle(1)), item(rle(1))]);
    assert.throws(() => redactor.push(value), (err: unknown) => err instanceof PixelDecodeError && err.frame === 0);
  });
});

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { createContext, runInContext } from 'node:vm';
import { decodeFrame } from '../../../src/pixel/codecs.ts';
import { sample } from '../../helpers/sample.ts';

interface Image {
  width: number;
  height: number;
  data: Uint8ClampedArray;
}
interface Parsed {
  transferSyntax: string;
  attributes: Record<string, number | string>;
  pixel: { offset?: number; fragments?: { items: { offset: number; length: number }[] } } | null;
}
interface PageDicom {
  parse(buffer: ArrayBuffer): Parsed;
  frameImage(parsed: Parsed, k: number): Promise<Image | string>;
  decodeRle(bytes: Uint8Array, attributes: Record<string, number>): Uint8Array | Uint16Array;
}

/** The page's dicom.js (browser code, no module) run in a fresh context, with a stand-in for ImageData. */
function pageDicom(): PageDicom {
  class ImageData {
    readonly data: Uint8ClampedArray;
    constructor(
      readonly width: number,
      readonly height: number,
    ) {
      this.data = new Uint8ClampedArray(width * height * 4);
    }
  }
  const context = createContext({ ImageData });
  runInContext(readFileSync(new URL('../../../src/http/upload-page/dicom.js', import.meta.url), 'utf8'), context);
  return context['DeidDicom'] as PageDicom;
}

const dicom = pageDicom();
const arrayBuffer = (b: Buffer) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

/** An RLE frame (PS3.5 G.5): the 64-byte header, then the segments as given. */
function rleFrame(segments: number[][]): Uint8Array {
  const header = Buffer.alloc(64);
  header.writeUInt32LE(segments.length, 0);
  let offset = 64;
  segments.forEach((s, i) => {
    header.writeUInt32LE(offset, 4 + 4 * i);
    offset += s.length;
  });
  return new Uint8Array(Buffer.concat([header, ...segments.map((s) => Buffer.from(s))]));
}

describe('the upload page decodes RLE Lossless frames (PS3.5 Annex G)', () => {
  test('MR_small_RLE decodes to the very samples of the native MR_small', () => {
    const rle = dicom.parse(arrayBuffer(sample('transfer-syntax/MR_small_RLE.dcm')));
    const native = dicom.parse(arrayBuffer(sample('transfer-syntax/MR_small.dcm')));
    const items = rle.pixel?.fragments?.items ?? [];
    assert.equal(items.length, 1);
    const file = sample('transfer-syntax/MR_small_RLE.dcm');
    const bytes = new Uint8Array(file.buffer, file.byteOffset + (items[0]?.offset ?? 0), items[0]?.length);
    const raw = dicom.decodeRle(bytes, rle.attributes as Record<string, number>);
    const nativeFile = sample('transfer-syntax/MR_small.dcm');
    const offset = native.pixel?.offset ?? 0;
    assert.equal(raw.length, 64 * 64);
    for (let i = 0; i < raw.length; i++) assert.equal(raw[i], nativeFile.readUInt16LE(offset + 2 * i), `sample ${i}`);
  });

  test('the preview of an RLE frame is the preview of the same pixels stored native', async () => {
    const rle = (await dicom.frameImage(dicom.parse(arrayBuffer(sample('transfer-syntax/MR_small_RLE.dcm'))), 0)) as Image;
    const native = (await dicom.frameImage(dicom.parse(arrayBuffer(sample('transfer-syntax/MR_small.dcm'))), 0)) as Image;
    assert.equal(typeof rle, 'object');
    assert.deepEqual([...rle.data], [...native.data]);
  });

  test('each frame of a multi-frame RLE file decodes as the server-side decoder does', async () => {
    const file = sample('multiframe/CT0012.not_fragmented_bot_rle.dcm');
    const parsed = dicom.parse(arrayBuffer(file));
    const a = parsed.attributes as Record<string, number>;
    const items = parsed.pixel?.fragments?.items ?? [];
    assert.equal(items.length, 2);
    for (const [k, item] of items.entries()) {
      const bytes = new Uint8Array(file.buffer, file.byteOffset + item.offset, item.length);
      const raw = dicom.decodeRle(bytes, a);
      const geometry = {
        rows: 512, columns: 512, samplesPerPixel: 1, bitsAllocated: 16, bitsStored: 16, pixelRepresentation: 0,
        planarConfiguration: 0, photometricInterpretation: 'MONOCHROME2', numberOfFrames: 2,
      };
      const reference = await decodeFrame(bytes, '1.2.840.10008.1.2.5', geometry, k);
      assert.deepEqual(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength), reference, `frame ${k + 1}`);
      assert.equal(typeof (await dicom.frameImage(parsed, k)), 'object');
    }
  });

  test('PackBits runs, literals and the no-op byte; byte planes most significant first; samples interleaved', () => {
    // Two pixels, three 16-bit samples: six segments (R high, R low, G high, …).
    const frame = rleFrame([
      [0xff, 0x12], // replicate 0x12 twice
      [0x01, 0x34, 0x35], // two literals
      [0x80, 0x00, 0xab, 0x00, 0xcd], // no-op, then one literal, then one literal
      [0xff, 0x00],
      [0xff, 0x01, 0x00], // padding past the two bytes is ignored
      [0x01, 0xfe, 0xff],
    ]);
    const raw = dicom.decodeRle(frame, { Rows: 1, Columns: 2, SamplesPerPixel: 3, BitsAllocated: 16 });
    assert.deepEqual([...raw], [0x1234, 0xab00, 0x01fe, 0x1235, 0xcd00, 0x01ff]);
  });

  test('a short segment or a wrong segment count is refused, never shown in part', () => {
    const a = { Rows: 2, Columns: 2, SamplesPerPixel: 1, BitsAllocated: 8 };
    assert.throws(() => dicom.decodeRle(rleFrame([[0x02, 1, 2, 3]]), a), /RLE segment 1 is short: 3 of 4 bytes/);
    assert.throws(() => dicom.decodeRle(rleFrame([[0xfd, 1], [0xfd, 1]]), a), /names 2 segments, 1 expected/);
    assert.throws(() => dicom.decodeRle(new Uint8Array(10), a), /header is truncated/);
    assert.deepEqual([...dicom.decodeRle(rleFrame([[0xfd, 7]]), a)], [7, 7, 7, 7]);
  });

  test('PALETTE COLOR has no preview, and the page says so', async () => {
    const image = await dicom.frameImage(dicom.parse(arrayBuffer(sample('private-tags/OBXXXX1A_rle.dcm'))), 0);
    assert.equal(image, 'no preview for PALETTE COLOR');
  });

  test('a corrupt frame resolves to a message saying so', async () => {
    const file = Buffer.from(sample('transfer-syntax/MR_small_RLE.dcm'));
    const parsed = dicom.parse(arrayBuffer(file));
    const item = parsed.pixel?.fragments?.items[0];
    const bytes = new Uint8Array(arrayBuffer(file));
    bytes.fill(0x80, (item?.offset ?? 0) + 64, (item?.offset ?? 0) + (item?.length ?? 0)); // every header byte a no-op
    const image = await dicom.frameImage(dicom.parse(bytes.buffer), 0);
    assert.match(String(image), /^could not decode this frame: RLE segment 1 is short: 0 of 4096 bytes$/);
  });
});

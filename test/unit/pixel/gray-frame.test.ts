import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PixelGeometryError, PixelUnsupportedError } from '../../../src/pixel/errors.ts';
import type { FrameGeometry } from '../../../src/pixel/geometry.ts';
import { grayFrame } from '../../../src/pixel/gray-frame.ts';
import { sampleFrame } from '../../helpers/text-frames.ts';

const geometry = (over: Partial<FrameGeometry>): FrameGeometry => ({
  rows: 2, columns: 3, samplesPerPixel: 1, bitsAllocated: 8, bitsStored: 8, pixelRepresentation: 0, planarConfiguration: 0, photometricInterpretation: 'MONOCHROME2', numberOfFrames: 1, ...over,
});

const u16 = (values: number[]): Uint8Array => {
  const b = Buffer.alloc(values.length * 2);
  for (const [i, v] of values.entries()) b.writeUInt16LE(v & 0xffff, i * 2);
  return b;
};

describe('grayFrame', () => {
  it('stretches an 8-bit MONOCHROME2 frame from its minimum to its maximum', () => {
    const f = grayFrame(Uint8Array.from([100, 101, 102, 103, 104, 110]), geometry({}));
    assert.equal(f.width, 3);
    assert.equal(f.height, 2);
    assert.deepEqual([...f.data], [0, 26, 51, 77, 102, 255]);
  });

  it('inverts MONOCHROME1, whose minimum is white', () => {
    const f = grayFrame(Uint8Array.from([0, 0, 0, 10, 10, 10]), geometry({ photometricInterpretation: 'MONOCHROME1' }));
    assert.deepEqual([...f.data], [255, 255, 255, 0, 0, 0]);
  });

  it('keeps faint text of a 12-bit frame visible: three grey levels above the background become white', () => {
    const f = grayFrame(u16([1000, 1000, 1003, 1000, 1000, 1000]), geometry({ bitsAllocated: 16, bitsStored: 12 }));
    assert.deepEqual([...f.data], [0, 0, 255, 0, 0, 0]);
  });

  it('masks the bits above Bits Stored and sign-extends signed samples', () => {
    // 12 bits stored, signed: 0x0800 is -2048, 0x07ff is 2047; the high nibble (0xf000) is other data.
    const f = grayFrame(u16([0xf800, 0x07ff, 0x0000, 0x0fff, 0x0000, 0x0000]), geometry({ bitsAllocated: 16, bitsStored: 12, pixelRepresentation: 1 }));
    assert.equal(f.data[0], 0);
    assert.equal(f.data[1], 255);
    assert.equal(f.data[2], 128); // 0 sits half way between -2048 and 2047
    assert.equal(f.data[3], 127); // 0x0fff is -1 once sign-extended
  });

  it('reads RGB as luma, the same interleaved and planar', () => {
    const rgb = [
      [255, 0, 0],
      [0, 255, 0],
      [0, 0, 255],
      [0, 0, 0],
      [255, 255, 255],
      [128, 128, 128],
    ];
    const interleaved = Uint8Array.from(rgb.flat());
    const planar = Uint8Array.from([0, 1, 2].flatMap((s) => rgb.map((p) => p[s] as number)));
    const a = grayFrame(interleaved, geometry({ samplesPerPixel: 3, photometricInterpretation: 'RGB' }));
    const b = grayFrame(planar, geometry({ samplesPerPixel: 3, photometricInterpretation: 'RGB', planarConfiguration: 1 }));
    assert.deepEqual([...a.data], [...b.data]);
    assert.deepEqual([...a.data], [76, 150, 29, 0, 255, 128]);
  });

  it('reads YBR_FULL as its Y sample', () => {
    const f = grayFrame(Uint8Array.from([10, 200, 50, 20, 0, 0, 30, 1, 2, 40, 3, 4, 50, 5, 6, 60, 7, 8]), geometry({ samplesPerPixel: 3, photometricInterpretation: 'YBR_FULL' }));
    assert.deepEqual([...f.data], [0, 51, 102, 153, 204, 255]);
  });

  it('unpacks 1-bit frames (PS3.5 D.2, least significant bit first)', () => {
    const f = grayFrame(Uint8Array.from([0b00_0101]), geometry({ bitsAllocated: 1, bitsStored: 1 }));
    assert.deepEqual([...f.data], [255, 0, 255, 0, 0, 0]);
  });

  it('returns a black frame when every pixel has the same value', () => {
    assert.deepEqual([...grayFrame(new Uint8Array(6).fill(9), geometry({})).data], [0, 0, 0, 0, 0, 0]);
  });

  it('refuses PALETTE COLOR, subsampled YBR and a frame of the wrong size (fail closed)', () => {
    assert.throws(() => grayFrame(new Uint8Array(6), geometry({ photometricInterpretation: 'PALETTE COLOR' })), PixelUnsupportedError);
    assert.throws(() => grayFrame(new Uint8Array(18), geometry({ samplesPerPixel: 3, photometricInterpretation: 'YBR_PARTIAL_420' })), PixelUnsupportedError);
    assert.throws(() => grayFrame(new Uint8Array(12), geometry({ bitsAllocated: 32, bitsStored: 32 })), PixelUnsupportedError);
    assert.throws(() => grayFrame(new Uint8Array(5), geometry({})), PixelGeometryError);
    assert.throws(() => grayFrame(new Uint8Array(8), geometry({})), PixelGeometryError);
  });

  it('converts real frames decoded by the gateway: a 16-bit CT, an RGB ultrasound, a JPEG YBR_FULL_422 echo', async () => {
    for (const [rel, width, height] of [
      ['transfer-syntax/CT1_UNC.explicit_little_endian.dcm', 512, 512],
      ['multiframe/IM00001.implicit_little_endian.dcm', 320, 240],
      ['multiframe/IM00001.fragmented_no_bot_jpeg_baseline.50.dcm', 320, 240],
    ] as const) {
      const f = await sampleFrame(rel, 0);
      assert.equal(f.width, width, rel);
      assert.equal(f.height, height, rel);
      assert.equal(f.data.length, width * height, rel);
      assert.equal(f.data.reduce((a, b) => Math.min(a, b), 255), 0, `${rel} stretched to black`);
      assert.equal(f.data.reduce((a, b) => Math.max(a, b), 0), 255, `${rel} stretched to white`);
    }
  });
});

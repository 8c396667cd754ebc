import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PixelUnsupportedError } from '../../../src/pixel/errors.ts';
import { redactFrame } from '../../../src/pixel/frame-redaction.ts';
import { assertBlankable, type FrameGeometry } from '../../../src/pixel/geometry.ts';
import { NativeBlanker } from '../../../src/pixel/native-blank.ts';
import { sampleAt } from './pixel-test-support.ts';

const geometry = (over: Partial<FrameGeometry>): FrameGeometry => ({
  rows: 5, columns: 7, samplesPerPixel: 1, bitsAllocated: 8, bitsStored: 8, pixelRepresentation: 0, planarConfiguration: 0, photometricInterpretation: 'MONOCHROME2', numberOfFrames: 1, ...over,
});

/** Feeds `value` in chunks of `size` and returns the concatenated output. */
function blankInChunks(value: Buffer, g: FrameGeometry, size: number, littleEndian = true): Buffer {
  const blanker = new NativeBlanker(g, [{ x: 2, y: 1, width: 3, height: 2 }, { x: 5, y: 3, width: 10, height: 10 }], { littleEndian });
  const out: Buffer[] = [];
  for (let i = 0; i < value.length; i += size) out.push(blanker.push(value.subarray(i, i + size)));
  return Buffer.concat(out);
}

const inside = (x: number, y: number): boolean => (x >= 2 && x < 5 && y >= 1 && y < 3) || (x >= 5 && y >= 3);

function check(g: FrameGeometry, value: Buffer, blank: number[], littleEndian = true): void {
  for (const size of [1, 3, 64, value.length]) {
    const before = Buffer.from(value);
    const out = blankInChunks(value, g, size, littleEndian);
    assert.ok(value.equals(before), 'the input is never written to');
    for (let f = 0; f < g.numberOfFrames; f++)
      for (let y = 0; y < g.rows; y++)
        for (let x = 0; x < g.columns; x++)
          for (let s = 0; s < g.samplesPerPixel; s++) {
            const want = inside(x, y) ? blank[s] : sampleAt(value, g, littleEndian, f, x, y, s);
            assert.equal(sampleAt(out, g, littleEndian, f, x, y, s), want, `chunk ${size} frame ${f} (${x},${y}) s${s}`);
          }
  }
}

describe('blanking native pixel data as it streams', () => {
  it('clears packed 1-bit frames that do not end on a byte boundary (5 × 7 × 3 frames)', () => {
    const g = geometry({ bitsAllocated: 1, bitsStored: 1, numberOfFrames: 3 });
    check(g, Buffer.alloc(Math.ceil((5 * 7 * 3) / 8) + 1, 0xff), [0]);
  });

  it('blanks planar RGB in every plane, chunk boundaries anywhere', () => {
    const g = geometry({ samplesPerPixel: 3, planarConfiguration: 1, photometricInterpretation: 'RGB', numberOfFrames: 2 });
    check(g, Buffer.from(Array.from({ length: 5 * 7 * 3 * 2 }, (_, i) => (i % 250) + 1)), [0, 0, 0]);
  });

  it('sets YBR_FULL chroma to mid-scale in big-endian 16-bit samples', () => {
    const g = geometry({ samplesPerPixel: 3, bitsAllocated: 16, bitsStored: 12, photometricInterpretation: 'YBR_FULL' });
    check(g, Buffer.alloc(5 * 7 * 3 * 2, 0x0f), [0, 2048, 2048], false);
  });

  it('blanks signed 32-bit samples to 0', () => {
    const g = geometry({ bitsAllocated: 32, bitsStored: 32, pixelRepresentation: 1, numberOfFrames: 2 });
    check(g, Buffer.alloc(5 * 7 * 4 * 2, 0xee), [0]);
  });

  it('refuses native YBR_FULL_422, YBR_PARTIAL_* and odd Bits Allocated', () => {
    assert.throws(() => assertBlankable(geometry({ samplesPerPixel: 3, photometricInterpretation: 'YBR_FULL_422' }), { encapsulated: false }), PixelUnsupportedError);
    assert.throws(() => assertBlankable(geometry({ samplesPerPixel: 3, photometricInterpretation: 'YBR_PARTIAL_420' }), { encapsulated: true }), PixelUnsupportedError);
    assert.throws(() => assertBlankable(geometry({ bitsAllocated: 12 }), { encapsulated: false }), PixelUnsupportedError);
  });
});

describe('redactFrame (WADO-RS frames)', () => {
  it('returns a blanked copy of a native frame in its own transfer syntax', async () => {
    const g = geometry({ numberOfFrames: 4 });
    const frame = Buffer.alloc(35, 9);
    const r = await redactFrame(frame, '1.2.840.10008.1.2.1', g, [{ x: 0, y: 0, width: 1, height: 1 }]);
    assert.equal(r.transferSyntaxUid, '1.2.840.10008.1.2.1');
    assert.equal(r.bytes[0], 0);
    assert.equal(r.bytes[1], 9);
    assert.equal(frame[0], 9);
  });

  it('refuses a transfer syntax it cannot decode (MPEG-4)', async () => {
    await assert.rejects(redactFrame(Buffer.alloc(10), '1.2.840.10008.1.2.4.102', geometry({}), []), (err: unknown) => err instanceof PixelUnsupportedError && err.code === 'PIXEL_UNSUPPORTED');
  });

  it('fails closed on a frame that does not decode', async () => {
    await assert.rejects(redactFrame(Buffer.from([1, 2, 3, 4]), '1.2.840.10008.1.2.4.50', geometry({}), []), (err: unknown) => (err as { code?: string }).code === 'PIXEL_DECODE_FAILED');
    await assert.rejects(redactFrame(Buffer.alloc(64), '1.2.840.10008.1.2.5', geometry({}), []), (err: unknown) => (err as { code?: string }).code === 'PIXEL_DECODE_FAILED');
  });
});

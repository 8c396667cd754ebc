import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { boundaryFrom, closeDelimiter, mediaTypeParameter, MultipartError, PART_END, partHead, readMultipart } from '../../../src/dicom/multipart.ts';

function* chunked(bytes: Buffer, sizes: number[]): Generator<Buffer> {
  let at = 0;
  let i = 0;
  while (at < bytes.length) {
    const n = sizes.length ? Math.max(1, sizes[i++ % sizes.length] as number) : bytes.length;
    yield bytes.subarray(at, at + n);
    at += n;
  }
}

async function readAll(bytes: Buffer, boundary: string, sizes: number[] = [], limits = {}) {
  const parts: { headers: Record<string, string>; body: Buffer }[] = [];
  for await (const part of readMultipart(chunked(bytes, sizes), boundary, limits)) {
    const chunks: Buffer[] = [];
    for await (const c of part.body) chunks.push(c);
    parts.push({ headers: { ...part.headers }, body: Buffer.concat(chunks) });
  }
  return parts;
}

const encode = (boundary: string, bodies: Buffer[]) =>
  Buffer.concat([
    ...bodies.flatMap((b) => [partHead(boundary, { 'Content-Type': 'application/dicom' }), b, PART_END]),
    closeDelimiter(boundary),
  ]);

describe('multipart/related', () => {
  test('any chunking of any bodies reads back the same parts, even when a body holds boundary-like bytes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 5 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }),
        async (raw, sizes) => {
          const boundary = 'b0undary';
          const bodies = raw.map((r, i) => Buffer.concat([Buffer.from(r), Buffer.from(i % 2 ? '\r\n--b0undar' : '--b0undary')]));
          const parts = await readAll(encode(boundary, bodies), boundary, sizes);
          assert.deepEqual(parts.map((p) => p.body), bodies);
          assert.ok(parts.every((p) => p.headers['content-type'] === 'application/dicom'));
        },
      ),
      { numRuns: 300 },
    );
  });

  test('a preamble and an epilogue are ignored; zero-length parts are parts', async () => {
    const body = Buffer.concat([Buffer.from('preamble\r\n'), encode('x', [Buffer.alloc(0), Buffer.from('a')]), Buffer.from('epilogue')]);
    const parts = await readAll(body, 'x');
    assert.deepEqual(parts.map((p) => p.body.toString()), ['', 'a']);
  });

  test('truncation, a missing close delimiter, wrong boundaries and oversize parts fail with a code', async () => {
    const good = encode('x', [Buffer.from('hello world')]);
    const cases: [Buffer, string, object, string][] = [
      [good.subarray(0, good.length - 6), 'x', {}, 'MULTIPART_TRUNCATED'],
      [good.subarray(0, 20), 'x', {}, 'MULTIPART_TRUNCATED'],
      [good, 'y', {}, 'MULTIPART_TRUNCATED'],
      [Buffer.from('--x\r\nno-colon-line\r\n\r\nbody\r\n--x--'), 'x', {}, 'MULTIPART_BAD_HEADER'],
      [good, 'x', { maxPartBytes: 5 }, 'MULTIPART_PART_TOO_LARGE'],
      [Buffer.concat([Buffer.from('--x\r\n'), Buffer.alloc(40_000, 0x41)]), 'x', {}, 'MULTIPART_HEADER_TOO_LARGE'],
    ];
    for (const [bytes, boundary, limits, code] of cases) {
      await assert.rejects(readAll(bytes, boundary, [7], limits), (e: unknown) => e instanceof MultipartError && e.code === code, code);
    }
  });

  test('boundaries and media-type parameters are read from content types', () => {
    assert.equal(boundaryFrom('multipart/related; type="application/dicom"; boundary="a b"'), 'a b');
    assert.equal(boundaryFrom('multipart/related;boundary=abc;type=application/dicom'), 'abc');
    assert.throws(() => boundaryFrom('multipart/related'), MultipartError);
    assert.equal(mediaTypeParameter('multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1', 'transfer-syntax'), '1.2.840.10008.1.2.1');
    assert.equal(mediaTypeParameter('multipart/related; type="application/dicom"', 'type'), 'application/dicom');
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { MultipartError } from '../../../src/dicom/errors.ts';
import { boundaryFrom, closeDelimiter, MAX_BOUNDARY_LENGTH, mediaTypeParameter, PART_END, partHead, readMultipart } from '../../../src/dicom/multipart.ts';

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
          // RFC 2046 §5.1.1: the delimiter (CRLF "--" boundary) must not occur in a body; a raw tail of CRLF before
          // the "--b0undary" suffix would make one, and that body is not a valid multipart body at all.
          fc.pre(!bodies.some((b) => b.includes('\r\n--b0undary')));
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
      // a body that holds a real delimiter ends there, and what follows is no part (fast-check seed 2101898480)
      [encode('x', [Buffer.from('\r\n--x')]), 'x', {}, 'MULTIPART_TRUNCATED'],
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

  test('a 73-character boundary, as Orthanc’s DICOMweb client sends, is read whole and splits the body', async () => {
    // Orthanc's form: two UUIDs joined by '-' (RFC 2046 5.1.1 says at most 70; Orthanc sends and accepts more).
    const boundary = '0f8c2d3e-6a1b-4c5d-9e7f-112233445566-a1b2c3d4-e5f6-4789-8abc-def012345678';
    assert.equal(boundary.length, 73);
    for (const type of [`multipart/related; type="application/dicom"; boundary=${boundary}`, `multipart/related; boundary="${boundary}"; type="application/dicom"`]) {
      assert.equal(boundaryFrom(type), boundary);
    }
    const parts = await readAll(encode(boundary, [Buffer.from('first'), Buffer.from('second')]), boundaryFrom(`multipart/related; boundary=${boundary}`), [5]);
    assert.deepEqual(parts.map((p) => p.body.toString()), ['first', 'second']);
  });

  test(`a boundary of up to ${MAX_BOUNDARY_LENGTH} characters is accepted; a longer one is refused with its own code, never cut short`, async () => {
    const longest = 'b'.repeat(MAX_BOUNDARY_LENGTH);
    assert.equal(boundaryFrom(`multipart/related; boundary=${longest}`), longest);
    assert.equal(boundaryFrom(`multipart/related; boundary="${longest}"`), longest);
    const parts = await readAll(encode(longest, [Buffer.from('x'.repeat(1000))]), longest, [13]);
    assert.deepEqual(parts.map((p) => p.body.length), [1000]);
    for (const type of [`multipart/related; boundary=${longest}c`, `multipart/related; boundary="${longest}c"; type="application/dicom"`]) {
      assert.throws(() => boundaryFrom(type), (e: unknown) => e instanceof MultipartError && e.code === 'MULTIPART_BOUNDARY_TOO_LONG');
    }
    for (const type of ['multipart/related; boundary=', 'multipart/related; boundary=""; type="application/dicom"']) {
      assert.throws(() => boundaryFrom(type), (e: unknown) => e instanceof MultipartError && e.code === 'MULTIPART_NO_BOUNDARY');
    }
  });
});

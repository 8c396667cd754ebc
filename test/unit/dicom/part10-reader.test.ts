import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Dataset } from '../../../src/dicom/dataset.ts';
import { DicomError } from '../../../src/dicom/errors.ts';
import { Part10Reader, readPart10Buffer, type Part10Parsed } from '../../../src/dicom/part10-reader.ts';
import { encodeElementHeader, encodeFileMeta } from '../../../src/dicom/part10-writer.ts';
import { listSamples, sample } from '../../helpers/sample.ts';

/** Samples that must be refused, and the code they are refused with. */
const REFUSED: Readonly<Record<string, string>> = {
  'edge-cases/MR_truncated.dcm': 'DICOM_TRUNCATED',
  'edge-cases/no_meta.dcm': 'DICOM_NOT_DICOM',
};

function describeTree(ds: Dataset): unknown {
  return ds.map((el) => ({
    tag: el.tag,
    vr: el.vr,
    value: el.value?.toString('hex'),
    items: el.items?.map(describeTree),
    fragments: el.fragments?.map((f) => f.toString('hex')),
  }));
}

function fingerprint(p: Part10Parsed): string {
  return JSON.stringify({
    ts: p.header.transferSyntaxUID,
    meta: p.header.meta && describeTree(p.header.meta),
    dataset: describeTree(p.header.dataset),
    pixel: p.pixelData,
    pixelHash: p.pixelDataBytes && createHash('sha256').update(p.pixelDataBytes).digest('hex'),
    trailer: describeTree(p.trailer),
  });
}

function chunksOf(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let last = 0;
  for (const p of [...points, buf.length]) {
    out.push(buf.subarray(last, p));
    last = p;
  }
  return out;
}

async function readChunks(chunks: Buffer[]): Promise<Part10Parsed> {
  let header: Part10Parsed['header'] | undefined;
  let pixelData: Part10Parsed['pixelData'];
  const pixels: Buffer[] = [];
  let trailer: Dataset = [];
  for await (const ev of new Part10Reader().read(chunks)) {
    if (ev.type === 'header') header = ev.header;
    else if (ev.type === 'pixel-data-start') pixelData = ev.pixelData;
    else if (ev.type === 'pixel-data-chunk') pixels.push(ev.chunk);
    else if (ev.type === 'trailer') trailer = ev.dataset;
  }
  assert.ok(header);
  return { header, pixelData, pixelDataBytes: pixelData ? Buffer.concat(pixels) : undefined, trailer };
}

describe('part10-reader', () => {
  for (const rel of listSamples()) {
    const refused = REFUSED[rel];
    if (refused) {
      it(`refuses ${rel} with ${refused}`, async () => {
        await assert.rejects(readPart10Buffer(sample(rel)), (err: unknown) => err instanceof DicomError && err.code === refused);
      });
      continue;
    }
    it(`parses ${rel} to the same tree whatever the chunk size`, async () => {
      const buf = sample(rel);
      const reference = fingerprint(await readPart10Buffer(buf, { chunkSize: 64 * 1024 }));
      assert.ok(JSON.parse(reference).dataset.length > 0);
      if (buf.length <= 512 * 1024) assert.equal(fingerprint(await readPart10Buffer(buf, { chunkSize: 7 })), reference);
      if (buf.length <= 64 * 1024) assert.equal(fingerprint(await readPart10Buffer(buf, { chunkSize: 1 })), reference);
    });
  }

  it('gives identical trees for random chunkings (property)', async () => {
    const files = ['sr/test-SR.dcm', 'transfer-syntax/image_dfl.dcm', 'edge-cases/UN_sequence.dcm', 'charset/chrSQEncoding.dcm', 'transfer-syntax/JPEG2000.dcm'];
    const references = new Map<string, string>();
    for (const f of files) references.set(f, fingerprint(await readPart10Buffer(sample(f))));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...files), fc.array(fc.nat(), { maxLength: 40 }), async (file, cuts) => {
        const parsed = await readChunks(chunksOf(sample(file), cuts));
        assert.equal(fingerprint(parsed), references.get(file));
      }),
      { numRuns: 60 },
    );
  });

  it('refuses every strict prefix of a file with a typed error (property)', async () => {
    const files = ['transfer-syntax/MR_small_implicit.dcm', 'transfer-syntax/MR_small_bigendian.dcm', 'multiframe/CT0012.fragmented_no_bot_jpeg_ls.80.dcm'];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...files), fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), async (file, at) => {
        const buf = sample(file);
        const cut = Math.floor(at * buf.length);
        await assert.rejects(readPart10Buffer(buf.subarray(0, cut)), (err: unknown) => err instanceof DicomError);
      }),
      { numRuns: 80 },
    );
  });

  it('refuses a deflated dataset cut inside its deflate stream with DICOM_TRUNCATED', async () => {
    // image_dfl.dcm has bytes after the end of its deflate stream; cutting those is harmless, so cut earlier.
    for (const cut of [400, 2000, 4200]) {
      await assert.rejects(readPart10Buffer(sample('transfer-syntax/image_dfl.dcm').subarray(0, cut)), { code: 'DICOM_TRUNCATED' });
    }
  });

  it('sniffs the encoding of datasets without File Meta', async () => {
    const be = await readPart10Buffer(sample('edge-cases/ExplVR_BigEndNoMeta.dcm'));
    assert.equal(be.header.transferSyntaxUID, '1.2.840.10008.1.2.2');
    assert.ok(be.header.transferSyntaxInferred);
    const implicit = await readPart10Buffer(sample('rt/rtstruct.dcm'));
    assert.equal(implicit.header.transferSyntaxUID, '1.2.840.10008.1.2');
    const missingTs = await readPart10Buffer(sample('edge-cases/meta_missing_tsyntax.dcm'));
    assert.equal(missingTs.header.transferSyntaxUID, '1.2.840.10008.1.2');
  });

  it('parses UN with undefined length as an Implicit VR Little Endian sequence (CP-246)', async () => {
    const { header } = await readPart10Buffer(sample('edge-cases/UN_sequence.dcm'));
    const un = header.dataset.find((e) => e.tag === 0x4453100c);
    assert.equal(un?.vr, 'SQ');
    assert.equal(un?.sourceVr, 'UN');
    assert.ok((un?.items?.length ?? 0) > 0);
  });

  it('resolves explicit UN elements the dictionary knows, so PatientName is seen as PN', async () => {
    const { header } = await readPart10Buffer(sample('edge-cases/explicit_VR-UN.dcm'));
    const name = header.dataset.find((e) => e.tag === 0x00100010);
    assert.equal(name?.vr, 'PN');
    assert.equal(name?.sourceVr, 'UN');
  });

  it('never holds the Pixel Data of the 1.8 MB cine whole when fed in 64 KiB chunks', async () => {
    const buf = sample('multiframe/IM00001.implicit_little_endian.dcm');
    const reader = new Part10Reader();
    const size = 64 * 1024;
    const source = function* (): Generator<Buffer> {
      for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
    };
    let pixelLength = 0;
    let largestChunk = 0;
    for await (const ev of reader.read(source())) {
      if (ev.type === 'pixel-data-start') pixelLength = ev.pixelData.length ?? 0;
      if (ev.type === 'pixel-data-chunk') largestChunk = Math.max(largestChunk, ev.chunk.length);
    }
    assert.equal(pixelLength, 1843200);
    assert.ok(reader.maxHeldBytes <= 2 * size, `held ${reader.maxHeldBytes}`);
    assert.ok(largestChunk <= size);
  });

  it('pulls input only as fast as events are consumed (back-pressure)', async () => {
    const buf = sample('multiframe/IM00001.implicit_little_endian.dcm');
    let pulled = 0;
    const source = function* (): Generator<Buffer> {
      for (let i = 0; i < buf.length; i += 16 * 1024) {
        pulled++;
        yield buf.subarray(i, i + 16 * 1024);
      }
    };
    const events = new Part10Reader().read(source());
    const first = await events.next();
    assert.equal(first.value?.type, 'header');
    assert.ok(pulled <= 2, `pulled ${pulled}`);
    await events.return();
  });

  it('refuses a header over the cap with DICOM_HEADER_TOO_LARGE', async () => {
    await assert.rejects(readPart10Buffer(sample('private-tags/CT_small.dcm'), { maxHeaderBytes: 1000 }), { code: 'DICOM_HEADER_TOO_LARGE' });
  });

  it('refuses a declared length beyond the cap before any value bytes arrive', async () => {
    const meta = encodeFileMeta({ transferSyntaxUID: '1.2.840.10008.1.2.1', mediaStorageSOPClassUID: '1.2', mediaStorageSOPInstanceUID: '1.3' });
    const huge = encodeElementHeader(0x00091010, 'OB', 0x7ffffff0, { explicitVr: true, littleEndian: true });
    await assert.rejects(readPart10Buffer(Buffer.concat([meta, huge])), { code: 'DICOM_HEADER_TOO_LARGE' });
  });

  it('refuses nesting deeper than the configured depth', async () => {
    await assert.rejects(readPart10Buffer(sample('sr/test-SR.dcm'), { maxDepth: 2 }), { code: 'DICOM_DEPTH_EXCEEDED' });
  });

  it('refuses an undefined-length sequence that never ends', async () => {
    const meta = encodeFileMeta({ transferSyntaxUID: '1.2.840.10008.1.2.1', mediaStorageSOPClassUID: '1.2', mediaStorageSOPInstanceUID: '1.3' });
    const seq = encodeElementHeader(0x00081140, 'SQ', 0xffffffff, { explicitVr: true, littleEndian: true });
    const item = Buffer.from('feff00e0ffffffff', 'hex');
    await assert.rejects(readPart10Buffer(Buffer.concat([meta, seq, item])), { code: 'DICOM_UNTERMINATED_SEQUENCE' });
  });
});

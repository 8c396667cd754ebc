import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { findElement, type Dataset } from '../../../src/dicom/dataset.ts';
import { DicomError } from '../../../src/dicom/errors.ts';
import { datasetToJson } from '../../../src/dicom/json-model.ts';
import { readPart10Buffer } from '../../../src/dicom/part10-reader.ts';
import type { Decision, ElementRef } from '../../../src/deid/deidentify.ts';
import { createPolicy, createSession } from '../../../src/deid/deidentify.ts';
import { PixelWithheldError } from '../../../src/deid/errors.ts';
import { KEEP, type PixelVerdict } from '../../../src/deid/pixel-policy.ts';
import { createPart10Rewriter, rewritePart10, rewritePart10Buffer, type Part10Policy } from '../../../src/deid/rewrite-part10.ts';
import { listSamples, sample } from '../../helpers/sample.ts';

const run = promisify(execFile);
const dir = mkdtempSync(path.join(tmpdir(), 'deid-rewrite-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const REFUSED = new Set(['edge-cases/MR_truncated.dcm', 'edge-cases/no_meta.dcm']);

/** Removes PatientName, replaces PatientID with "X" (and PatientName with `name` if given), keeps the rest. */
function fakePolicy(name?: unknown): Part10Policy & { seen: ElementRef[] } {
  const seen: ElementRef[] = [];
  return {
    seen,
    beginDataset: () => undefined,
    decide(ref: ElementRef): Decision {
      seen.push(ref);
      if (ref.tag === 0x00100010) return name === undefined ? { op: 'remove' } : { op: 'replace', value: [name] };
      if (ref.tag === 0x00100020) return { op: 'replace', value: ['X'] };
      if (ref.vr === 'SQ') return { op: 'recurse' };
      return { op: 'keep' };
    },
    attributesToAdd: () => ({ '00120062': { vr: 'CS', Value: ['YES'] } }),
  };
}

function sha(buf: Buffer | undefined): string | undefined {
  return buf && createHash('sha256').update(buf).digest('hex');
}

function json(ds: Dataset, le = true): Record<string, { Value?: unknown[] }> {
  return datasetToJson(ds, [], le);
}

describe('rewrite-part10', () => {
  it('applies keep, remove and replace decisions and adds the method attributes', async () => {
    const input = sample('transfer-syntax/MR_small.dcm');
    const { output } = await rewritePart10Buffer(input, fakePolicy());
    const before = await readPart10Buffer(input);
    const after = await readPart10Buffer(output);
    const j = json(after.header.dataset);
    assert.equal(j['00100010'], undefined);
    assert.deepEqual(j['00100020']?.Value, ['X']);
    assert.deepEqual(j['00120062']?.Value, ['YES']);
    assert.deepEqual(j['00080060']?.Value, ['MR']);
    assert.equal(sha(after.pixelDataBytes), sha(before.pixelDataBytes));
  });

  it('asks the caller to admit each instance by its original Study Instance UID before writing anything of it', async () => {
    const input = sample('transfer-syntax/MR_small.dcm');
    const original = json((await readPart10Buffer(input)).header.dataset)['0020000D']?.Value?.[0];
    const told: Array<string | undefined> = [];
    await rewritePart10Buffer(input, fakePolicy(), { admitStudy: (uid) => told.push(uid) });
    assert.deepEqual(told, [original]);
    const written: Buffer[] = [];
    const refuse = rewritePart10Buffer(input, fakePolicy(), {
      admitStudy: () => {
        throw new Error('another study');
      },
    }).then((r) => written.push(r.output));
    await assert.rejects(refuse, /another study/);
    assert.deepEqual(written, []);
  });

  it('gives the policy private creators and the enclosing sequence path', async () => {
    const policy = fakePolicy();
    await rewritePart10Buffer(sample('private-tags/CT_small.dcm'), policy);
    const priv = policy.seen.find((r) => r.tag === 0x00191023);
    assert.equal(priv?.privateCreator, 'GEMS_ACQU_01');
    const nested = new Set<string>();
    await rewritePart10Buffer(sample('sr/test-SR.dcm'), {
      ...policy,
      decide(ref: ElementRef): Decision {
        if (ref.path.length > 0) nested.add(ref.path.join('>'));
        return ref.vr === 'SQ' ? { op: 'recurse' } : { op: 'keep' };
      },
    });
    assert.ok([...nested].some((p) => p.split('>').length >= 3), 'saw elements three sequences deep');
  });

  it('switches a dataset to ISO_IR 192 when a replacement does not fit its character set', async () => {
    const { output } = await rewritePart10Buffer(sample('charset/chrFren.dcm'), fakePolicy({ Alphabetic: '山田^太郎' }));
    const after = await readPart10Buffer(output);
    const j = json(after.header.dataset);
    assert.deepEqual(j['00080005']?.Value, ['ISO_IR 192']);
    assert.deepEqual(j['00100010']?.Value, [{ Alphabetic: '山田^太郎' }]);
  });

  it('streams the 1.8 MB cine through a Duplex in 64 KiB chunks without holding Pixel Data whole', async () => {
    const input = sample('multiframe/IM00001.implicit_little_endian.dcm');
    const rewriter = createPart10Rewriter(fakePolicy());
    const out: Buffer[] = [];
    let largestOut = 0;
    const size = 64 * 1024;
    const chunks = function* (): Generator<Buffer> {
      for (let i = 0; i < input.length; i += size) yield input.subarray(i, i + size);
    };
    await pipeline(
      Readable.from(chunks()),
      rewriter,
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          largestOut = Math.max(largestOut, chunk.length);
          out.push(chunk);
          cb();
        },
      }),
    );
    const before = await readPart10Buffer(input);
    const after = await readPart10Buffer(Buffer.concat(out));
    assert.equal(sha(after.pixelDataBytes), sha(before.pixelDataBytes));
    const pixelLength = before.pixelData?.length ?? 0;
    assert.ok(rewriter.maxHeldBytes <= 2 * size && rewriter.maxHeldBytes < pixelLength / 8, `held ${rewriter.maxHeldBytes}`);
    assert.ok(largestOut < pixelLength / 8, `largest output chunk ${largestOut}`);
  });

  it('refuses truncated or unrecognisable input with a typed error and returns no bytes', async () => {
    await assert.rejects(rewritePart10Buffer(sample('edge-cases/MR_truncated.dcm'), fakePolicy()), (e: unknown) => e instanceof DicomError && e.code === 'DICOM_TRUNCATED');
    await assert.rejects(rewritePart10Buffer(sample('edge-cases/no_meta.dcm'), fakePolicy()), (e: unknown) => e instanceof DicomError && e.code === 'DICOM_NOT_DICOM');
  });

  it('maps MediaStorageSOPInstanceUID through the policy when the dataset has no SOP Instance UID (DICOMDIR)', async () => {
    const policy = createPolicy({ secret: 'unit-test-secret-0123456789abcdef' });
    const input = sample('edge-cases/DICOMDIR.dcm');
    const before = await readPart10Buffer(input);
    const { output } = await rewritePart10Buffer(input, createSession(policy));
    const after = await readPart10Buffer(output);
    const original = findElement(before.header.meta ?? [], 0x00020003)?.value?.toString('latin1');
    const now = findElement(after.header.meta ?? [], 0x00020003)?.value?.toString('latin1');
    assert.ok(original && now);
    assert.notEqual(now, original);
    assert.ok(now.startsWith('2.25.'));
  });

  describe('with the Basic Profile session (deidentify.ts)', () => {
    // Pixels kept (an explicit choice): these tests are about the header; the pixel verdicts have their own below.
    const policy = createPolicy({ secret: 'unit-test-secret-0123456789abcdef', pixels: { enabled: false } });
    for (const rel of listSamples().filter((r) => !REFUSED.has(r))) {
      it(`de-identifies ${rel} into a file dcmdump parses, with identical Pixel Data`, async () => {
        const input = sample(rel);
        const { output } = await rewritePart10Buffer(input, createSession(policy));
        const before = await readPart10Buffer(input);
        const after = await readPart10Buffer(output);
        assert.equal(sha(after.pixelDataBytes), sha(before.pixelDataBytes));
        assert.equal(after.header.transferSyntaxUID, before.header.transferSyntaxUID);
        const file = path.join(dir, rel.replace(/\//g, '_'));
        writeFileSync(file, output);
        await run('dcmdump', ['-q', file]);
      });
    }
  });
});

describe('the pixel verdict in the Part 10 rewriter', () => {
  const withVerdict = (verdict: PixelVerdict, seen: PixelVerdict[] = []): Part10Policy => ({
    ...fakePolicy(),
    beginDataset: (_pid, v) => {
      if (v) seen.push(v);
    },
    pixelVerdict: () => verdict,
  });

  for (const rel of ['transfer-syntax/MR_small.dcm', 'transfer-syntax/SC_rgb_jpeg_dcmtk.dcm', 'multiframe/CT0012.not_fragmented_bot_rle.dcm']) {
    it(`keeps ${rel} byte-identical to a rewrite without a pixel policy when the verdict is keep`, async () => {
      const seen: PixelVerdict[] = [];
      const kept = await rewritePart10Buffer(sample(rel), withVerdict(KEEP, seen));
      const today = await rewritePart10Buffer(sample(rel), fakePolicy());
      assert.ok(kept.output.equals(today.output));
      assert.deepEqual(seen, [KEEP]);
      const before = await readPart10Buffer(sample(rel));
      const after = await readPart10Buffer(kept.output);
      assert.equal(sha(after.pixelDataBytes), sha(before.pixelDataBytes));
    });
  }

  it('throws PixelWithheldError on withhold before any byte of the instance is yielded', async () => {
    const { output } = rewritePart10([sample('transfer-syntax/MR_small.dcm')], withVerdict({ action: 'withhold', reason: 'risky', detail: 'Modality US' }));
    await assert.rejects(output.next(), (err: unknown) => err instanceof PixelWithheldError && err.reason === 'risky' && err.detail === 'Modality US');
  });

  it('withholds as unredactable, before any byte, an instance whose pixels cannot be blanked', async () => {
    const { output } = rewritePart10([sample('edge-cases/meta_missing_tsyntax.dcm')], withVerdict({ action: 'redact', rule: 'r', rectangles: [{ x: 0, y: 0, width: 1, height: 1 }] }));
    await assert.rejects(output.next(), (err: unknown) => err instanceof PixelWithheldError && err.reason === 'unredactable' && err.detail === 'PIXEL_INVALID_GEOMETRY');
  });

  it('writes a redacted JPEG instance as native Explicit VR Little Endian with a defined-length OB Pixel Data', async () => {
    const seen: PixelVerdict[] = [];
    const verdict: PixelVerdict = { action: 'redact', rule: 'r', rectangles: [{ x: 0, y: 0, width: 10, height: 10 }] };
    const { output } = await rewritePart10Buffer(sample('transfer-syntax/SC_rgb_jpeg_dcmtk.dcm'), withVerdict(verdict, seen));
    const after = await readPart10Buffer(output);
    assert.equal(after.header.transferSyntaxUID, '1.2.840.10008.1.2.1');
    assert.deepEqual(after.pixelData, { tag: 0x7fe00010, vr: 'OB', length: 100 * 100 * 3 });
    assert.deepEqual(seen, [verdict]);
    // YBR_FULL: Y = 0, Cb = Cr = 128 (black).
    assert.deepEqual([...(after.pixelDataBytes ?? Buffer.alloc(0)).subarray(0, 6)], [0, 128, 128, 0, 128, 128]);
  });
});

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { inflateRawSync } from 'node:zlib';
import { asciiValue, type Dataset } from '../../../src/dicom/dataset.ts';
import { Part10Reader, readPart10Buffer } from '../../../src/dicom/part10-reader.ts';
import { IMPLEMENTATION_CLASS_UID, collect, writePart10 } from '../../../src/dicom/part10-writer.ts';
import { isGroupLength } from '../../../src/dicom/tag.ts';
import { listSamples, sample } from '../../helpers/sample.ts';

const run = promisify(execFile);
const dir = mkdtempSync(path.join(tmpdir(), 'deid-writer-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const REFUSED = new Set(['edge-cases/MR_truncated.dcm', 'edge-cases/no_meta.dcm']);

async function identity(buf: Buffer): Promise<Buffer> {
  return collect(writePart10(new Part10Reader().read([buf])));
}

function tagPaths(ds: Dataset, prefix = ''): string[] {
  const out: string[] = [];
  for (const el of ds) {
    if (isGroupLength(el.tag)) continue;
    const p = `${prefix}/${el.tag.toString(16).padStart(8, '0')}`;
    out.push(p);
    el.items?.forEach((item, i) => {
      out.push(...tagPaths(item, `${p}[${i}]`));
    });
  }
  return out;
}

function sha(buf: Buffer | undefined): string | undefined {
  return buf && createHash('sha256').update(buf).digest('hex');
}

describe('part10-writer', () => {
  for (const rel of listSamples().filter((r) => !REFUSED.has(r))) {
    it(`round-trips ${rel} with identical Pixel Data, the same elements, and dcmdump parses it`, async () => {
      const input = sample(rel);
      const before = await readPart10Buffer(input);
      const output = await identity(input);
      const after = await readPart10Buffer(output);
      assert.equal(after.header.transferSyntaxUID, before.header.transferSyntaxUID);
      assert.ok(after.header.hadPreamble);
      assert.deepEqual(tagPaths(after.header.dataset), tagPaths(before.header.dataset));
      assert.deepEqual(tagPaths(after.trailer), tagPaths(before.trailer));
      assert.equal(sha(after.pixelDataBytes), sha(before.pixelDataBytes));
      const file = path.join(dir, rel.replace(/\//g, '_'));
      writeFileSync(file, output);
      await run('dcmdump', ['-q', file]); // rejects on a non-zero exit
    });
  }

  it('writes a zeroed preamble and File Meta naming this implementation and the dataset SOP Instance UID', async () => {
    const output = await identity(sample('transfer-syntax/MR_small.dcm'));
    assert.ok(output.subarray(0, 128).every((b) => b === 0));
    const { header } = await readPart10Buffer(output);
    assert.ok(header.meta);
    assert.equal(asciiValue(header.meta, 0x00020012), IMPLEMENTATION_CLASS_UID);
    assert.equal(asciiValue(header.meta, 0x00020003), asciiValue(header.dataset, 0x00080018));
  });

  for (const rel of ['transfer-syntax/image_dfl.dcm', 'sr/report_dfl.dcm', 'waveform/wave_dfl.dcm']) {
    it(`re-deflates ${rel}: the dataset after File Meta is a raw deflate stream`, async () => {
      const output = await identity(sample(rel));
      const metaEnd = 132 + 12 + output.readUInt32LE(140);
      const inflated = inflateRawSync(output.subarray(metaEnd));
      assert.ok(inflated.length > output.length - metaEnd, 'the deflated dataset is smaller than the inflated one');
      const before = await readPart10Buffer(sample(rel));
      const after = await readPart10Buffer(output);
      assert.equal(after.header.transferSyntaxUID, '1.2.840.10008.1.2.1.99');
      assert.deepEqual(tagPaths(after.header.dataset), tagPaths(before.header.dataset));
    });
  }

  it('writes Big Endian as Big Endian with the same values', async () => {
    const input = sample('transfer-syntax/MR_small_bigendian.dcm');
    const output = await identity(input);
    const before = await readPart10Buffer(input);
    const after = await readPart10Buffer(output);
    assert.equal(after.header.encoding.littleEndian, false);
    const values = (ds: Dataset): string[] => ds.filter((e) => e.value).map((e) => `${e.tag}:${e.value?.toString('hex')}`);
    assert.deepEqual(values(after.header.dataset).filter((v) => !v.startsWith('0:')), values(before.header.dataset).filter((v) => !v.startsWith('0:')));
  });

  it('writes File Meta for a dataset that had none, with the sniffed transfer syntax', async () => {
    const output = await identity(sample('rt/rtstruct.dcm'));
    const { header } = await readPart10Buffer(output);
    assert.equal(header.transferSyntaxInferred, false);
    assert.equal(header.transferSyntaxUID, '1.2.840.10008.1.2');
  });
});

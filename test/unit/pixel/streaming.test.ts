import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DataElement } from '../../../src/dicom/dataset.ts';
import { encodeDataset, encodeElementHeader, encodeFileMeta } from '../../../src/dicom/part10-writer.ts';
import type { Decision, ElementRef } from '../../../src/deid/deidentify.ts';
import type { PixelVerdict } from '../../../src/deid/pixel-policy.ts';
import { rewritePart10, type Part10Policy } from '../../../src/deid/rewrite-part10.ts';

/** Bytes of the generated native instance; PIXEL_STREAM_BYTES overrides the 1 GiB default. */
const NATIVE_BYTES = Number(process.env['PIXEL_STREAM_BYTES'] ?? 1024 * 1024 * 1024);
const RSS_BOUND = 100 * 1024 * 1024;
const LE = { explicitVr: true, littleEndian: true };

const us = (tag: number, v: number): DataElement => ({ tag, vr: 'US', value: Buffer.from([v & 0xff, v >> 8]) });
const text = (tag: number, vr: string, s: string): DataElement => ({ tag, vr, value: Buffer.from(s.length % 2 ? `${s} ` : s, 'latin1') });
const uid = (tag: number, s: string): DataElement => ({ tag, vr: 'UI', value: Buffer.from(s.length % 2 ? `${s}\0` : s, 'latin1') });

function header(ts: string, rows: number, columns: number, bits: number, frames: number): Buffer {
  const dataset: DataElement[] = [
    uid(0x00080016, '1.2.840.10008.5.1.4.1.1.7.2'),
    uid(0x00080018, '2.25.1'),
    us(0x00280002, 1),
    text(0x00280004, 'CS', 'MONOCHROME2'),
    text(0x00280008, 'IS', String(frames)),
    us(0x00280010, rows),
    us(0x00280011, columns),
    us(0x00280100, bits),
    us(0x00280101, bits),
    us(0x00280102, bits - 1),
    us(0x00280103, 0),
  ];
  return Buffer.concat([encodeFileMeta({ transferSyntaxUID: ts, mediaStorageSOPClassUID: '1.2.840.10008.5.1.4.1.1.7.2', mediaStorageSOPInstanceUID: '2.25.1' }), encodeDataset(dataset, LE)]);
}

function policy(verdict: PixelVerdict): Part10Policy {
  return {
    beginDataset: () => undefined,
    pixelVerdict: () => verdict,
    decide: (ref: ElementRef): Decision => (ref.vr === 'SQ' ? { op: 'recurse' } : { op: 'keep' }),
    attributesToAdd: () => ({}),
  };
}

/** Drains the output, sampling RSS; returns the bytes written and the RSS growth over the start. */
async function drain(output: AsyncIterable<Buffer>, inspect?: (chunk: Buffer) => void): Promise<{ bytes: number; growth: number }> {
  globalThis.gc?.();
  const start = process.memoryUsage().rss;
  let peak = start;
  let bytes = 0;
  let n = 0;
  for await (const chunk of output) {
    bytes += chunk.length;
    inspect?.(chunk);
    if (++n % 32 === 0) peak = Math.max(peak, process.memoryUsage().rss);
  }
  return { bytes, growth: peak - start };
}

describe('redaction streams with bounded memory', () => {
  it(`blanks a ${Math.round(NATIVE_BYTES / 2 ** 20)} MiB native multi-frame instance generated on the fly, with RSS growth under 100 MB`, async () => {
    const rows = 1024;
    const columns = 1024;
    const frameBytes = rows * columns * 2;
    const frames = Math.max(1, Math.floor(NATIVE_BYTES / frameBytes));
    const chunk = Buffer.alloc(1024 * 1024, 0x11);
    async function* source(): AsyncGenerator<Buffer> {
      yield header('1.2.840.10008.1.2.1', rows, columns, 16, frames);
      yield encodeElementHeader(0x7fe00010, 'OW', frames * frameBytes, LE);
      for (let sent = 0; sent < frames * frameBytes; sent += chunk.length) yield chunk;
    }
    const verdict: PixelVerdict = { action: 'redact', rule: 'top band', rectangles: [{ x: 0, y: 0, width: columns, height: 32 }] };
    const { output } = rewritePart10(source(), policy(verdict));
    let zeros = 0;
    const { bytes, growth } = await drain(output, (c) => {
      if (c.length >= 4 && c.readUInt32LE(0) === 0 && c.length === chunk.length) zeros++;
    });
    assert.ok(bytes > frames * frameBytes, `${bytes} bytes out`);
    assert.ok(zeros >= frames / 16, `${zeros} chunks start blanked`);
    assert.ok(growth < RSS_BOUND, `RSS grew ${Math.round(growth / 2 ** 20)} MiB`);
  });

  it('decodes, blanks and writes 2000 RLE frames one at a time with RSS growth under 100 MB', async () => {
    const rows = 256;
    const columns = 256;
    const frames = 2000;
    // PS3.5 G.3.1: one segment; each row is two replicate runs of 128 bytes (0x81 = -127).
    const segment = Buffer.alloc(rows * 4);
    for (let r = 0; r < rows; r++) segment.set([0x81, 0x7f, 0x81, 0x7f], r * 4);
    const rleHeader = Buffer.alloc(64);
    rleHeader.writeUInt32LE(1, 0);
    rleHeader.writeUInt32LE(64, 4);
    const frame = Buffer.concat([rleHeader, segment]);
    const item = (length: number): Buffer => {
      const b = Buffer.alloc(8);
      b.writeUInt16LE(0xfffe, 0);
      b.writeUInt16LE(0xe000, 2);
      b.writeUInt32LE(length, 4);
      return b;
    };
    async function* source(): AsyncGenerator<Buffer> {
      yield header('1.2.840.10008.1.2.5', rows, columns, 8, frames);
      yield encodeElementHeader(0x7fe00010, 'OB', 0xffffffff, LE);
      yield item(0);
      for (let f = 0; f < frames; f++) yield Buffer.concat([item(frame.length), frame]);
      yield Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
    }
    const verdict: PixelVerdict = { action: 'redact', rule: 'corner', rectangles: [{ x: 0, y: 0, width: 16, height: 16 }] };
    const { output } = rewritePart10(source(), policy(verdict));
    let frameChunks = 0;
    const { bytes, growth } = await drain(output, (c) => {
      if (c.length === rows * columns) {
        frameChunks++;
        assert.equal(c[0], 0);
        assert.equal(c[16], 0x7f);
        assert.equal(c[16 * columns], 0x7f);
      }
    });
    assert.equal(frameChunks, frames);
    assert.ok(bytes > frames * rows * columns);
    assert.ok(growth < RSS_BOUND, `RSS grew ${Math.round(growth / 2 ** 20)} MiB`);
  });
});

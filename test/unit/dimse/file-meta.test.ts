import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encodeFileMeta } from '../../../src/dicom/part10-writer.ts';
import { FileMetaError } from '../../../src/dimse/errors.ts';
import { MAX_FILE_META_BYTES, splitFileMeta } from '../../../src/dimse/file-meta.ts';

const META = { transferSyntaxUID: '1.2.840.10008.1.2.1', mediaStorageSOPClassUID: '1.2.840.10008.5.1.4.1.1.2', mediaStorageSOPInstanceUID: '2.25.12345678901234567890' };
/** A dataset that starts like one (SOP Class UID element) and runs on. */
const DATASET = Buffer.concat([Buffer.from([0x08, 0x00, 0x16, 0x00, 0x55, 0x49, 0x1a, 0x00]), Buffer.from('1.2.840.10008.5.1.4.1.1.2\0'), Buffer.alloc(5000, 7)]);

async function* chunks(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

async function collect(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of source) out.push(c);
  return Buffer.concat(out);
}

describe('splitFileMeta: a Part 10 stream into its File Meta and its dataset (PS3.10 7.1)', () => {
  test('reads the three UIDs and hands on every dataset byte, whatever the chunking', async () => {
    const file = Buffer.concat([encodeFileMeta(META), DATASET]);
    for (const size of [1, 7, 131, 132, 144, 1000, file.length]) {
      const { meta, dataset } = await splitFileMeta(chunks(file, size));
      assert.deepEqual(meta, { sopClassUid: META.mediaStorageSOPClassUID, sopInstanceUid: META.mediaStorageSOPInstanceUID, transferSyntaxUid: META.transferSyntaxUID });
      assert.ok((await collect(dataset)).equals(DATASET), `chunks of ${size}`);
    }
  });

  test('reads no further than the File Meta until the dataset is asked for', async () => {
    const file = Buffer.concat([encodeFileMeta(META), DATASET]);
    let pulled = 0;
    const source = (async function* () {
      for await (const c of chunks(file, 256)) {
        pulled++;
        yield c;
      }
    })();
    const { dataset } = await splitFileMeta(source);
    const head = pulled;
    assert.ok(head * 256 < encodeFileMeta(META).length + 256, 'only the chunks holding the File Meta');
    await collect(dataset);
    assert.equal(pulled, Math.ceil(file.length / 256));
  });

  test('refuses what is not a whole, well-framed File Meta, before any dataset byte', async () => {
    const good = encodeFileMeta(META);
    const cases: [string, Buffer][] = [
      ['no DICM', Buffer.concat([Buffer.alloc(132), good.subarray(132)])],
      ['truncated', good.subarray(0, good.length - 3)],
      ['no group length first', Buffer.concat([good.subarray(0, 132), good.subarray(144)])],
      ['group length past the cap', (() => {
        const b = Buffer.from(good);
        b.writeUInt32LE(MAX_FILE_META_BYTES + 2, 140);
        return Buffer.concat([b, Buffer.alloc(MAX_FILE_META_BYTES + 2)]);
      })()],
      ['group length cuts an element', (() => {
        const b = Buffer.from(good);
        b.writeUInt32LE(b.readUInt32LE(140) - 4, 140);
        return b;
      })()],
      ['no transfer syntax', encodeFileMeta({ ...META, transferSyntaxUID: '' })],
    ];
    for (const [name, bytes] of cases) {
      await assert.rejects(splitFileMeta(chunks(Buffer.concat([bytes, DATASET.subarray(0, 0)]), 64)), FileMetaError, name);
    }
    // An element of another group inside the length the File Meta claims.
    const other = Buffer.from(good);
    other.writeUInt16LE(0x0008, 144);
    await assert.rejects(splitFileMeta(chunks(Buffer.concat([other, DATASET]), 64)), FileMetaError);
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createPolicy } from '../../../src/deid/deidentify.ts';
import { encodeFileMeta } from '../../../src/dicom/part10-writer.ts';
import { bulkKept, bulkTagPath, writtenTransferSyntax } from '../../../src/dicomweb/wado.ts';

const SECRET = 'wado-unit-secret-0123456789abcdef';
const policy = createPolicy({ secret: SECRET, profile: { retainLongitudinalTemporalModifiedDates: true } });

describe('which bulkdata a restricted role may have (PS3.15 E.1.1 through the profile’s one decision)', () => {
  test('values the profile keeps unchanged are served: Pixel Data, Palette Color LUT Data, Waveform Data in its sequence', () => {
    for (const tags of [[0x7fe00010], [0x7fe00008], [0x00281201], [0x00281202], [0x00281203], [0x54000100, 0x54001010]]) {
      assert.ok(bulkKept(policy, tags), tags.map((t) => t.toString(16)).join('>'));
    }
  });

  test('values the profile removes, empties or replaces are not, nor private or unknown ones', () => {
    for (const tags of [
      [0x00420011], // Encapsulated Document
      [0x60003000], // Overlay Data
      [0x00880200, 0x7fe00010], // Pixel Data of an Icon Image Sequence (the sequence is removed)
      [0x00100010], // Patient's Name
      [0x00291010], // a private OB
      [0x7fe00010, 0x7fe00010], // Pixel Data is no sequence
      [],
    ]) {
      assert.equal(bulkKept(policy, tags), false, tags.map((t) => t.toString(16)).join('>'));
    }
  });

  test('an override that removes a value withdraws its bulkdata too', () => {
    const strict = createPolicy({ secret: SECRET, overrides: { '00281201': 'remove', PixelData: 'remove' } });
    assert.equal(bulkKept(strict, [0x00281201]), false);
    assert.equal(bulkKept(strict, [0x7fe00010]), false);
    assert.equal(bulkKept(strict, [0x00281202]), true);
  });

  test('a bulkdata path is a tag, or sequence tag / item / … / tag', () => {
    assert.deepEqual(bulkTagPath(['7FE00010']), [0x7fe00010]);
    assert.deepEqual(bulkTagPath(['54000100', '1', '54001010']), [0x54000100, 0x54001010]);
    for (const bad of [[], ['zz'], ['7FE0001'], ['54000100', '1'], ['54000100', 'x', '54001010'], ['54000100', '1234567', '54001010'], ['7FE00010', '..']]) {
      assert.equal(bulkTagPath(bad), undefined, bad.join('/'));
    }
  });
});

describe('the transfer syntax a rewritten instance is labelled with', () => {
  test('is read from the File Meta the rewriter wrote', () => {
    for (const uid of ['1.2.840.10008.1.2.1', '1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2']) {
      assert.equal(writtenTransferSyntax(encodeFileMeta({ transferSyntaxUID: uid, mediaStorageSOPClassUID: '1.2.3', mediaStorageSOPInstanceUID: '1.2.3.4' })), uid);
    }
  });
  test('anything else is refused', () => {
    for (const bad of [Buffer.alloc(0), Buffer.alloc(200), Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.from([0x08, 0x00, 0x10, 0x00])])]) {
      assert.throws(() => writtenTransferSyntax(bad), { code: 'UPSTREAM_UNUSABLE' });
    }
  });
});

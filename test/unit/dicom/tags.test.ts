import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lookup } from '../../../src/dicom/dictionary.ts';
import { tagToHex } from '../../../src/dicom/tag.ts';
import { TAG } from '../../../src/dicom/tags.ts';

describe('named tags', () => {
  it('every named tag is the PS3.6 attribute of that keyword in the generated dictionary', () => {
    const wrong = Object.entries(TAG).filter(([keyword, tag]) => lookup(tag)?.keyword !== keyword);
    assert.deepEqual(wrong.map(([keyword, tag]) => `${keyword} ${tagToHex(tag)}: ${lookup(tag)?.keyword}`), []);
  });

  it('no tag is named twice', () => {
    assert.equal(new Set(Object.values(TAG)).size, Object.keys(TAG).length);
  });

  it('cannot be changed at run time', () => {
    assert.ok(Object.isFrozen(TAG));
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  formatTag,
  isPrivate,
  isPrivateCreator,
  makeTag,
  parseTag,
  privateBlock,
  privateCreatorTagFor,
  privateElementOffset,
  tagToHex,
} from '../../../src/dicom/tag.ts';

describe('tag', () => {
  it('parses both the parenthesised and the JSON key notation to the same number', () => {
    assert.equal(parseTag('(0010,0010)'), 0x00100010);
    assert.equal(parseTag('00100010'), 0x00100010);
    assert.equal(parseTag('(7fe0,0010)'), 0x7fe00010);
    assert.equal(parseTag('FFFEE000'), 0xfffee000);
  });

  it('refuses text that is not a tag', () => {
    assert.throws(() => parseTag('PatientName'), TypeError);
    assert.throws(() => parseTag('(0010,001)'), TypeError);
  });

  it('formats tags in both notations, upper case', () => {
    assert.equal(formatTag(makeTag(0x7fe0, 0x0010)), '(7FE0,0010)');
    assert.equal(tagToHex(0xfffee0dd), 'FFFEE0DD');
  });

  it('finds the private creator and block offset of a private data element (PS3.5 7.8.1)', () => {
    const t = parseTag('(0019,1023)');
    assert.ok(isPrivate(t));
    assert.ok(!isPrivateCreator(t));
    assert.ok(isPrivateCreator(parseTag('(0019,0010)')));
    assert.equal(privateBlock(t), 0x10);
    assert.equal(privateCreatorTagFor(t), parseTag('(0019,0010)'));
    assert.equal(privateElementOffset(t), 0x23);
    assert.equal(privateCreatorTagFor(parseTag('(0010,0010)')), undefined);
  });
});

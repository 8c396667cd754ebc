import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  formatTag,
  hexKeyTag,
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

  it('reads a DICOM JSON key of either case, and nothing but eight hex digits, as the regular expression did', () => {
    assert.equal(hexKeyTag('7fe00010'), 0x7fe00010);
    assert.equal(hexKeyTag('FFFFFFFF'), 0xffffffff);
    assert.equal(hexKeyTag('00000000'), 0);
    for (const text of ['0010001', '001000100', '0010001G', '0010001g', '0010 010', '+0100010', '0x100010', '00100010\n', '\u0660\u0660100010', '']) {
      assert.equal(hexKeyTag(text), undefined, JSON.stringify(text));
      assert.equal(parseTag(text), undefined, JSON.stringify(text));
    }
    // Every character code around the digit and letter ranges: only 0-9, A-F, a-f count.
    for (let c = 0; c < 0x80; c++) {
      const key = `0010001${String.fromCharCode(c)}`;
      assert.equal(hexKeyTag(key), /^[0-9A-Fa-f]{8}$/.test(key) ? Number.parseInt(key, 16) : undefined, key);
    }
  });

  it('accepts the PS3.6 notation without parentheses, and no padding', () => {
    assert.equal(parseTag('0010,0010'), 0x00100010);
    assert.equal(parseTag(' 00100010'), undefined);
    assert.equal(parseTag('00100010 '), undefined);
  });

  it('answers undefined for text that is not a tag, so that callers decide what that means', () => {
    assert.equal(parseTag('PatientName'), undefined);
    assert.equal(parseTag('(0010,001)'), undefined);
    assert.equal(parseTag('zz'), undefined);
    assert.equal(parseTag('(0010,0010'), undefined);
    assert.equal(parseTag('0010,0010)'), undefined);
    assert.equal(parseTag('0x100010'), undefined);
    assert.equal(parseTag('+0100010'), undefined);
  });

  it('formats tags in both notations, upper case', () => {
    assert.equal(formatTag(makeTag(0x7fe0, 0x0010)), '(7FE0,0010)');
    assert.equal(tagToHex(0xfffee0dd), 'FFFEE0DD');
  });

  it('finds the private creator and block offset of a private data element (PS3.5 7.8.1)', () => {
    const t = makeTag(0x0019, 0x1023);
    assert.ok(isPrivate(t));
    assert.ok(!isPrivateCreator(t));
    assert.ok(isPrivateCreator(makeTag(0x0019, 0x0010)));
    assert.equal(privateBlock(t), 0x10);
    assert.equal(privateCreatorTagFor(t), makeTag(0x0019, 0x0010));
    assert.equal(privateElementOffset(t), 0x23);
    assert.equal(privateCreatorTagFor(makeTag(0x0010, 0x0010)), undefined);
  });
});

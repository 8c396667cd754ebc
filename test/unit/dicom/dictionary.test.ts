import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { DICTIONARY_OUTPUT, generateDictionarySource, readDictionaryRows } from '../../../scripts/generate-dictionary.ts';
import { implicitVr, lookup, tagForKeyword } from '../../../src/dicom/dictionary.ts';
import { parseTag } from '../../../src/dicom/tag.ts';

const tag = (text: string): number => parseTag(text) ?? assert.fail(`not a tag: ${text}`);

describe('dictionary', () => {
  it('matches what the generator makes from ps3.6-dictionary.json', () => {
    assert.equal(readFileSync(DICTIONARY_OUTPUT, 'utf8'), generateDictionarySource(readDictionaryRows()));
  });

  it('looks up exact tags with keyword, VR and VM', () => {
    const e = lookup(tag('(0010,0010)'));
    assert.equal(e?.keyword, 'PatientName');
    assert.deepEqual(e?.vrs, ['PN']);
    assert.equal(e?.vm, '1');
    assert.equal(tagForKeyword('StudyInstanceUID'), tag('(0020,000D)'));
  });

  it('resolves repeating groups only for the even groups PS3.5 7.6 allows', () => {
    assert.equal(lookup(tag('(6000,3000)'))?.keyword, 'OverlayData');
    assert.equal(lookup(tag('(601E,3000)'))?.keyword, 'OverlayData');
    assert.equal(lookup(tag('(6001,3000)')), undefined);
    assert.equal(lookup(tag('(6020,3000)')), undefined);
    assert.equal(lookup(tag('(5002,0005)'))?.keyword, 'CurveDimensions');
    assert.equal(lookup(tag('(0028,0410)'))?.pattern, '(0028,04x0)');
  });

  it('gives implicit VRs: dictionary VR, OW for OB-or-OW, LO for private creators, UN when unknown', () => {
    assert.equal(implicitVr(tag('(7FE0,0010)')), 'OW');
    assert.equal(implicitVr(tag('(0029,0010)')), 'LO');
    assert.equal(implicitVr(tag('(0029,1010)')), 'UN');
    assert.equal(implicitVr(tag('(0008,0000)')), 'UL');
    assert.equal(implicitVr(tag('(0008,1140)')), 'SQ');
  });
});

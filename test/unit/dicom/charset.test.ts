import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeText, encodeText, parseSpecificCharacterSet } from '../../../src/dicom/charset.ts';
import { datasetToJson } from '../../../src/dicom/json-model.ts';
import { readPart10Buffer } from '../../../src/dicom/part10-reader.ts';
import { sample } from '../../helpers/sample.ts';

async function patientName(rel: string): Promise<unknown> {
  const { header } = await readPart10Buffer(sample(rel));
  return datasetToJson(header.dataset, [], true)['00100010']?.Value?.[0];
}

describe('charset', () => {
  const cases: [string, object][] = [
    ['charset/chrFren.dcm', { Alphabetic: 'Buc^Jérôme' }],
    ['charset/chrRuss.dcm', { Alphabetic: 'Люкceмбypг' }],
    ['charset/chrArab.dcm', { Alphabetic: 'قباني^لنزار' }],
    ['charset/chrX1.dcm', { Alphabetic: 'Wang^XiaoDong', Ideographic: '王^小東' }],
    ['charset/chrX2.dcm', { Alphabetic: 'Wang^XiaoDong', Ideographic: '王^小东' }],
    ['charset/chrH31.dcm', { Alphabetic: 'Yamada^Tarou', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' }],
    ['charset/chrH32.dcm', { Alphabetic: 'ﾔﾏﾀﾞ^ﾀﾛｳ', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' }],
    ['charset/chrI2.dcm', { Alphabetic: 'Hong^Gildong', Ideographic: '洪^吉洞', Phonetic: '홍^길동' }],
  ];
  for (const [rel, expected] of cases) {
    it(`decodes the patient name of ${rel}`, async () => {
      assert.deepEqual(await patientName(rel), expected);
    });
  }

  it('honours a Specific Character Set inside a sequence item', async () => {
    const { header } = await readPart10Buffer(sample('charset/chrSQEncoding.dcm'));
    const json = datasetToJson(header.dataset, [], true);
    const item = (json['00321064']?.Value?.[0] ?? {}) as Record<string, { Value?: unknown[] }>;
    assert.deepEqual(item['00100010']?.Value?.[0], { Alphabetic: 'ﾔﾏﾀﾞ^ﾀﾛｳ', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' });
  });

  it('accepts the non-standard "ISO-IR 100" spelling and refuses unknown terms', () => {
    assert.deepEqual(parseSpecificCharacterSet('ISO-IR 100'), ['ISO_IR 100']);
    assert.throws(() => parseSpecificCharacterSet('KLINGON'), { code: 'DICOM_UNSUPPORTED_CHARSET' });
  });

  it('encodes in single-byte sets and reports text it cannot encode', () => {
    assert.deepEqual(encodeText('Jérôme', ['ISO_IR 100']), Buffer.from('4ae972f46d65', 'hex'));
    assert.equal(decodeText(encodeText('Люк', ['ISO_IR 144']) ?? Buffer.alloc(0), ['ISO_IR 144']), 'Люк');
    assert.equal(encodeText('山田', ['ISO_IR 100']), undefined);
    assert.equal(encodeText('山田', ['', 'ISO 2022 IR 87']), undefined);
    assert.deepEqual(encodeText('山田', ['ISO_IR 192']), Buffer.from('山田', 'utf8'));
  });
});

// OCR-assisted redaction's decision (issue 18), pure: which withholds OCR may replace, what its regions make
// of them, and how views of one instance combine. The detection itself is text-regions.ts (dicomweb/).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { tagForKeyword } from '../../../src/dicom/dictionary.ts';
import { checkPixelPolicy, compilePixelPolicy, ocrMayRedact, strictestVerdict, withTextRegions, type AttributeReader, type PixelVerdict } from '../../../src/deid/pixel-policy.ts';

function header(attrs: Readonly<Record<string, unknown>>): AttributeReader {
  const byTag = new Map<number, readonly unknown[]>();
  for (const [k, v] of Object.entries(attrs)) byTag.set(tagForKeyword(k) as number, Array.isArray(v) ? v : [v]);
  return (tag) => byTag.get(tag);
}

const IMAGE = { Rows: 240, Columns: 320, BitsAllocated: 8, SamplesPerPixel: 3, PhotometricInterpretation: 'RGB' };
const US = { ...IMAGE, Modality: 'US', SOPClassUID: '1.2.840.10008.5.1.4.1.1.3.1', Manufacturer: 'Philips' };
const RULE = { rules: [{ name: 'acuson', match: { Manufacturer: 'ACUSON' }, rectangles: [{ x: 0, y: 0, width: 10, height: 10 }] }] };
const REGION = { x: 12, y: 190, width: 240, height: 30 };

describe('pixels.ocr: the one decision whether OCR may replace a withhold', () => {
  test('off (the default), a risky instance is withheld as before, with nothing for OCR to replace', () => {
    const v = compilePixelPolicy({}).verdict(header(US));
    assert.deepEqual(v, { action: 'withhold', reason: 'risky', detail: 'Modality US' });
    assert.equal(ocrMayRedact(v), false);
    assert.deepEqual(withTextRegions(v, [REGION]), v, 'regions change nothing without ocr');
  });

  test('on, a risky instance no rule covers is a withhold OCR may replace; its regions make it a redaction', () => {
    const policy = compilePixelPolicy({ ocr: true });
    assert.equal(policy.ocr, true);
    assert.equal(policy.describe().ocr, true);
    const v = policy.verdict(header(US));
    assert.deepEqual(v, { action: 'withhold', reason: 'risky', detail: 'Modality US', ocr: true });
    assert.ok(ocrMayRedact(v));
    assert.deepEqual(withTextRegions(v, [REGION]), { action: 'redact', rule: 'ocr', rectangles: [REGION] });
    // OCR ran and found nothing: a redaction of nothing (Burned In Annotation NO), never the raw withhold lifted otherwise.
    assert.deepEqual(withTextRegions(v, []), { action: 'redact', rule: 'ocr', rectangles: [] });
  });

  test('on, filters, rules, unblankable layouts and kept instances are untouched by OCR', () => {
    const policy = compilePixelPolicy({ ocr: true, ...RULE });
    const cases: [Record<string, unknown>, PixelVerdict['action'], boolean][] = [
      [{ ...US, Manufacturer: 'ACUSON' }, 'redact', false],
      [{ ...US, Modality: 'SR', SOPClassUID: '1.2.840.10008.5.1.4.1.1.88.11' }, 'withhold', false],
      [{ ...US, PhotometricInterpretation: 'YBR_PARTIAL_420' }, 'withhold', false],
      [{ ...US, BitsAllocated: 12 }, 'withhold', false],
      [{ ...IMAGE, Modality: 'CT', SOPClassUID: '1.2.840.10008.5.1.4.1.1.2' }, 'keep', false],
    ];
    for (const [attrs, action, ocr] of cases) {
      const v = policy.verdict(header(attrs));
      assert.equal(v.action, action, JSON.stringify(attrs));
      assert.equal(ocrMayRedact(v), ocr, JSON.stringify(attrs));
      if (v.action !== 'withhold' || !ocr) assert.deepEqual(withTextRegions(v, [REGION]), v);
    }
  });

  test('views combine stricter: a withhold OCR may not replace beats one it may, and regions union with a rule', () => {
    const ocrWithhold = compilePixelPolicy({ ocr: true }).verdict(header(US));
    const filtered: PixelVerdict = { action: 'withhold', reason: 'filtered', detail: 'filter sr' };
    assert.deepEqual(strictestVerdict(ocrWithhold, filtered), filtered);
    assert.deepEqual(strictestVerdict(filtered, ocrWithhold), filtered);
    const rule: PixelVerdict = { action: 'redact', rule: 'acuson', rectangles: [{ x: 0, y: 0, width: 10, height: 10 }] };
    assert.deepEqual(strictestVerdict(ocrWithhold, rule), ocrWithhold, 'before OCR: withheld');
    const after = strictestVerdict(withTextRegions(ocrWithhold, [REGION]), withTextRegions(rule, [REGION]));
    assert.deepEqual(after, { action: 'redact', rule: 'ocr + acuson', rectangles: [REGION, { x: 0, y: 0, width: 10, height: 10 }] });
  });

  test('pixels.ocr must be a boolean, reported by its key', () => {
    assert.deepEqual(checkPixelPolicy({ ocr: 'yes' } as never).issues, ['pixels.ocr: true or false']);
    assert.deepEqual(checkPixelPolicy({ ocr: true, orc: true } as never).issues, ['pixels.orc: not a pixels field (enabled, risky, filters, rules, ctpScripts, ocr)']);
  });
});

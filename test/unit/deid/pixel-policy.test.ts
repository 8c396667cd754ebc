// The pixel policy (issue 16): per instance, from its header, keep / redact / withhold; conditions as a
// PACS administrator writes them; every config problem reported at once by its key.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { tagForKeyword } from '../../../src/dicom/dictionary.ts';
import type { JsonDataset } from '../../../src/dicom/json-model.ts';
import { createPolicy, createSession, deidentifyJson } from '../../../src/deid/deidentify.ts';
import { DeidPolicyError, PixelWithheldError } from '../../../src/deid/errors.ts';
import { KEEP_ALL, checkPixelPolicy, compilePixelPolicy, type AttributeReader, type PixelPolicyConfig } from '../../../src/deid/pixel-policy.ts';
import { compileCondition } from '../../../src/deid/redaction-rules.ts';

const FIXTURE = path.resolve(import.meta.dirname, '../../fixtures/pixel-rules/us-fleet.script');

/** A header from keyword → value(s), as DICOM JSON Value arrays. */
function header(attrs: Readonly<Record<string, unknown>>): AttributeReader {
  const byTag = new Map<number, readonly unknown[]>();
  for (const [k, v] of Object.entries(attrs)) {
    const tag = tagForKeyword(k);
    assert.ok(tag !== undefined, k);
    byTag.set(tag, Array.isArray(v) ? v : [v]);
  }
  return (tag) => byTag.get(tag);
}

const IMAGE = { Rows: 480, Columns: 640, BitsAllocated: 8, SamplesPerPixel: 3, PhotometricInterpretation: 'RGB' };
const CT = { ...IMAGE, Modality: 'CT', SOPClassUID: '1.2.840.10008.5.1.4.1.1.2', ImageType: ['ORIGINAL', 'PRIMARY', 'AXIAL'] };
const ACUSON = { ...IMAGE, Modality: 'US', SOPClassUID: '1.2.840.10008.5.1.4.1.1.6.1', Manufacturer: 'ACUSON', ImageType: ['ORIGINAL', 'PRIMARY'] };
const BANNER: PixelPolicyConfig = {
  rules: [{ name: 'acuson-banner', match: { Modality: 'US', Manufacturer: { containsIgnoreCase: 'acuson' } }, rectangles: [{ x: 0, y: 0, width: 640, height: 48 }] }],
};

function issuesOf(config: unknown, context = {}): string[] {
  try {
    compilePixelPolicy(config as PixelPolicyConfig, context);
  } catch (error) {
    assert.ok(error instanceof DeidPolicyError, String(error));
    return [...error.issues];
  }
  assert.fail('expected a DeidPolicyError');
}

describe('the policy matrix', () => {
  const defaults = compilePixelPolicy(undefined);

  test('a plain CT image is kept', () => {
    assert.deepEqual(defaults.verdict(header(CT)), { action: 'keep' });
  });

  test('each risky criterion without a rule withholds, naming the criterion', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ ...CT, BurnedInAnnotation: 'YES' }, 'BurnedInAnnotation'],
      [{ ...CT, RecognizableVisualFeatures: 'YES ' }, 'RecognizableVisualFeatures'],
      [ACUSON, 'Modality US'],
      ...['SC', 'OT', 'XC', 'ES', 'DOC'].map((m): [Record<string, unknown>, string] => [{ ...CT, Modality: m }, `Modality ${m}`]),
      ...['7', '7.1', '7.2', '7.3', '7.4'].map((s): [Record<string, unknown>, string] => [{ ...CT, SOPClassUID: `1.2.840.10008.5.1.4.1.1.${s}` }, 'SOPClass secondaryCapture']),
      ...['77.1.1.1', '77.1.2.1', '77.1.4.1'].map((s): [Record<string, unknown>, string] => [{ ...CT, Modality: 'OP', SOPClassUID: `1.2.840.10008.5.1.4.1.1.${s}` }, 'SOPClass video']),
      [{ ...CT, ImageType: ['DERIVED', 'SECONDARY'] }, 'ImageType SECONDARY'],
      [{ ...CT, ImageType: ['ORIGINAL', 'SCREEN SAVE'] }, 'ImageType SCREEN SAVE'],
    ];
    for (const [attrs, detail] of cases) assert.deepEqual(defaults.verdict(header(attrs)), { action: 'withhold', reason: 'risky', detail }, detail);
  });

  test('the encapsulated PDF criterion applies when the filters leave such documents in', () => {
    const policy = compilePixelPolicy({ filters: [] });
    assert.deepEqual(policy.verdict(header({ Modality: 'OT', SOPClassUID: '1.2.840.10008.5.1.4.1.1.104.1' })), { action: 'withhold', reason: 'risky', detail: 'Modality OT' });
    const allowOt = compilePixelPolicy({ filters: [], risky: { modality: { OT: 'allow' } } });
    assert.deepEqual(allowOt.verdict(header({ Modality: 'OT', SOPClassUID: '1.2.840.10008.5.1.4.1.1.104.2' })), { action: 'withhold', reason: 'risky', detail: 'SOPClass encapsulatedDocument' });
  });

  test('a risky instance a rule matches is redacted with the rule\'s rectangles', () => {
    const policy = compilePixelPolicy(BANNER);
    assert.deepEqual(policy.verdict(header({ ...ACUSON, BurnedInAnnotation: 'YES' })), { action: 'redact', rule: 'acuson-banner', rectangles: [{ x: 0, y: 0, width: 640, height: 48 }] });
    assert.deepEqual(policy.verdict(header({ ...ACUSON, Manufacturer: 'GE Healthcare' })), { action: 'withhold', reason: 'risky', detail: 'Modality US' });
  });

  test('SR, PR, KO and encapsulated documents are filtered by default; SR is not under Clean Structured Content', () => {
    const sr = header({ Modality: 'SR', SOPClassUID: '1.2.840.10008.5.1.4.1.1.88.33' });
    const cases: [AttributeReader, string][] = [
      [sr, 'filter sr'],
      [header({ Modality: 'OT', SOPClassUID: '1.2.840.10008.5.1.4.1.1.88.22' }), 'filter sr'],
      [header({ Modality: 'PR', SOPClassUID: '1.2.840.10008.5.1.4.1.1.11.1' }), 'filter pr'],
      [header({ Modality: 'KO', SOPClassUID: '1.2.840.10008.5.1.4.1.1.88.59' }), 'filter ko'],
      [header({ Modality: 'DOC', SOPClassUID: '1.2.840.10008.5.1.4.1.1.104.1' }), 'filter encapsulated-document'],
    ];
    for (const [read, detail] of cases) assert.deepEqual(defaults.verdict(read), { action: 'withhold', reason: 'filtered', detail });
    const clean = compilePixelPolicy(undefined, { cleanStructuredContent: true });
    assert.deepEqual(clean.verdict(sr), { action: 'keep' });
    assert.equal(clean.verdict(header({ Modality: 'KO', SOPClassUID: '1.2.840.10008.5.1.4.1.1.88.59' })).action, 'withhold');
  });

  test('a filter wins over a rule, and configured filters replace the defaults', () => {
    const policy = compilePixelPolicy({ ...BANNER, filters: [{ name: 'localizers', exclude: [{ ImageType: { contains: 'LOCALIZER' } }, { SeriesDescription: { matches: '(?i).*scout.*' } }] }] });
    assert.deepEqual(policy.verdict(header({ ...ACUSON, ImageType: ['ORIGINAL', 'LOCALIZER'] })), { action: 'withhold', reason: 'filtered', detail: 'filter localizers' });
    assert.equal(policy.verdict(header({ Modality: 'SR', SOPClassUID: '1.2.840.10008.5.1.4.1.1.88.33', Rows: 1 })).action, 'keep');
  });

  test('"allow" is explicit and merges over the defaults', () => {
    const policy = compilePixelPolicy({ risky: { modality: { US: 'allow', MG: 'withhold' }, burnedInAnnotation: 'allow', imageType: { SECONDARY: 'allow' } } });
    assert.deepEqual(policy.verdict(header(ACUSON)), { action: 'keep' });
    assert.deepEqual(policy.verdict(header({ ...CT, BurnedInAnnotation: 'YES', ImageType: ['DERIVED', 'SECONDARY'] })), { action: 'keep' });
    assert.deepEqual(policy.verdict(header({ ...CT, Modality: 'MG' })), { action: 'withhold', reason: 'risky', detail: 'Modality MG' });
    assert.deepEqual(policy.verdict(header({ ...CT, Modality: 'SC' })), { action: 'withhold', reason: 'risky', detail: 'Modality SC' });
    const d = policy.describe();
    assert.ok(d.allowed.includes('Modality US') && d.allowed.includes('BurnedInAnnotation') && d.risky.includes('Modality MG'));
  });

  test('disabled keeps everything and is inactive', () => {
    const off = compilePixelPolicy({ enabled: false, rules: BANNER.rules });
    assert.equal(off, KEEP_ALL);
    assert.equal(off.active, false);
    assert.deepEqual(off.verdict(header({ ...ACUSON, BurnedInAnnotation: 'YES' })), { action: 'keep' });
    assert.deepEqual(issuesOf({ enabled: false, rules: [{ name: 'x', match: { Modalty: 'US' }, rectangles: [{ x: 0, y: 0, width: 1, height: 1 }] }] }), ['pixels.rules.0.match.Modalty: not an attribute keyword or tag']);
  });

  test('a matched rule on a layout the gateway cannot blank withholds the instance as unredactable', () => {
    const policy = compilePixelPolicy(BANNER);
    const cases: [Record<string, unknown>, string][] = [
      [{ ...ACUSON, PhotometricInterpretation: 'YBR_PARTIAL_420' }, 'PhotometricInterpretation YBR_PARTIAL_420'],
      [{ ...ACUSON, PhotometricInterpretation: 'YBR_PARTIAL_422' }, 'PhotometricInterpretation YBR_PARTIAL_422'],
      [{ ...ACUSON, BitsAllocated: 12 }, 'BitsAllocated 12'],
      [{ ...ACUSON, FloatPixelData: [] }, 'FloatPixelData'],
      [{ ...ACUSON, DoubleFloatPixelData: [] }, 'DoubleFloatPixelData'],
      [{ ...ACUSON, Rows: [] }, 'Rows absent'],
    ];
    for (const [attrs, why] of cases) assert.deepEqual(policy.verdict(header(attrs)), { action: 'withhold', reason: 'unredactable', detail: `rule acuson-banner: ${why}` });
    for (const bits of [1, 16, 32]) assert.equal(policy.verdict(header({ ...ACUSON, BitsAllocated: bits })).action, 'redact');
  });

  test('attributeTags holds the geometry, the built-in criteria and every tag a rule or filter names', () => {
    const policy = compilePixelPolicy({ ...BANNER, filters: [{ name: 'f', exclude: { StationName: 'X' } }] });
    for (const k of ['Rows', 'Columns', 'SamplesPerPixel', 'BitsAllocated', 'BitsStored', 'HighBit', 'PixelRepresentation', 'PlanarConfiguration', 'PhotometricInterpretation', 'NumberOfFrames', 'SOPClassUID', 'Modality', 'ImageType', 'SeriesDescription', 'Manufacturer', 'ManufacturerModelName', 'BurnedInAnnotation', 'RecognizableVisualFeatures', 'StationName']) {
      assert.ok(policy.attributeTags.includes(tagForKeyword(k) as number), k);
    }
  });

  test('a CTP script\'s signatures become rules named ctp:<file>:<line>, after the configured rules', () => {
    const scripts = new Map([['us-fleet.script', readFileSync(FIXTURE, 'utf8')]]);
    const policy = compilePixelPolicy({ ...BANNER, ctpScripts: ['us-fleet.script'] }, { scripts });
    assert.equal(policy.verdict(header(ACUSON)).action === 'redact' && (policy.verdict(header(ACUSON)) as { rule: string }).rule, 'acuson-banner');
    const ge = policy.verdict(header({ ...ACUSON, Manufacturer: 'GE Healthcare', ManufacturerModelName: 'LOGIQ E9', Rows: 600, Columns: 800 }));
    assert.deepEqual(ge, { action: 'redact', rule: 'ctp:us-fleet.script:17', rectangles: [{ x: 0, y: 0, width: 800, height: 60 }, { x: 600, y: 520, width: 200, height: 80 }] });
    const rules = policy.describe().rules;
    assert.deepEqual(rules.map((r) => r.source), ['config', ...Array(5).fill('ctp:us-fleet.script')]);
  });
});

describe('conditions', () => {
  const holds = (condition: unknown, attrs: Record<string, unknown>): boolean => {
    const issues: string[] = [];
    const c = compileCondition(condition, 'match', issues);
    assert.deepEqual(issues, []);
    return (c as NonNullable<typeof c>).test(header(attrs));
  };

  test('a value equals after trimming; a multi-valued attribute matches when any value does; a number matches numerically', () => {
    assert.equal(holds({ Modality: 'US' }, { Modality: 'US ' }), true);
    assert.equal(holds({ ImageType: 'SECONDARY' }, { ImageType: ['DERIVED', 'SECONDARY'] }), true);
    assert.equal(holds({ ImageType: 'SECONDARY' }, { ImageType: ['DERIVED', 'PRIMARY'] }), false);
    assert.equal(holds({ Rows: 480 }, { Rows: 480 }), true);
    assert.equal(holds({ SliceThickness: 1.5 }, { SliceThickness: '1.50' }), true);
    assert.equal(holds({ Rows: '480' }, { Rows: 480 }), true);
    assert.equal(holds({ Modality: 'US' }, {}), false);
  });

  test('a list is any of; all attributes must hold', () => {
    assert.equal(holds({ Modality: ['US', 'IVUS'] }, { Modality: 'IVUS' }), true);
    assert.equal(holds({ Modality: 'US', Manufacturer: 'ACUSON' }, { Modality: 'US', Manufacturer: 'GE' }), false);
  });

  test('operators', () => {
    const m = { Manufacturer: 'Philips Medical Systems', Rows: 600, PatientName: { Alphabetic: 'DOE^J' } };
    assert.equal(holds({ Manufacturer: { containsIgnoreCase: 'PHILIPS' } }, m), true);
    assert.equal(holds({ Manufacturer: { contains: 'PHILIPS' } }, m), false);
    assert.equal(holds({ Manufacturer: { startsWith: 'Philips', endsWith: 'Systems' } }, m), true);
    assert.equal(holds({ Manufacturer: { equalsIgnoreCase: 'philips medical systems' } }, m), true);
    assert.equal(holds({ Manufacturer: { matches: 'Phil.*' } }, m), true);
    assert.equal(holds({ Manufacturer: { matches: 'Phil' } }, m), false); // the whole value
    assert.equal(holds({ Rows: { greaterThan: 500, lessThan: 700 } }, m), true);
    assert.equal(holds({ Rows: { lessThan: 500 } }, m), false);
    assert.equal(holds({ BurnedInAnnotation: { present: false } }, m), true);
    assert.equal(holds({ Rows: { present: true } }, m), true);
    assert.equal(holds({ '00080070': { contains: 'Medical' }, '(0028,0010)': 600 }, m), true);
  });

  test('a condition on group 7FE0 and above (never in the header) is refused naming its key', () => {
    const issues: string[] = [];
    assert.equal(compileCondition({ '7FE10010': 'x', '(FFFA,0010)': 'y', PixelData: { present: true }, Modality: 'US' }, 'match', issues), undefined);
    assert.deepEqual(issues, [
      'match.7FE10010: group 7FE0 and above comes at or after Pixel Data and is never seen (attributes before Pixel Data only)',
      'match.(FFFA,0010): group 7FE0 and above comes at or after Pixel Data and is never seen (attributes before Pixel Data only)',
      'match.PixelData: group 7FE0 and above comes at or after Pixel Data and is never seen (attributes before Pixel Data only)',
    ]);
  });

  test('matches: a pattern over 512 characters is refused; only the first 1024 characters of a value are tested', () => {
    const issues: string[] = [];
    assert.equal(compileCondition({ Manufacturer: { matches: 'a'.repeat(513) } }, 'match', issues), undefined);
    assert.deepEqual(issues, ['match.Manufacturer.matches: a regular expression of at most 512 characters']);
    assert.equal(holds({ Manufacturer: { matches: 'a{1024}' } }, { Manufacturer: 'a'.repeat(5000) }), true);
    const started = Date.now();
    assert.equal(holds({ Manufacturer: { matches: '(a|a)*b' } }, { Manufacturer: `${'a'.repeat(20)}c` }), false);
    assert.ok(Date.now() - started < 5000);
  });

  test('every problem is reported at once, each naming its key', () => {
    assert.deepEqual(issuesOf({
      enabled: 'yes',
      risky: { burnedInAnnotation: 'keep', modality: { US: 'no' }, sopClass: { photos: 'allow' }, colour: 'allow' },
      filters: [{ name: 'a', exclude: { Modality: { matches: '([' } } }, { name: 'a', exclude: [] }],
      rules: [
        { name: 'r1', match: { Modalty: 'US', ReferencedImageSequence: 'x', Rows: { between: 1 } }, rectangles: [{ x: -1, y: 0, width: 0, height: 5 }] },
        { name: 'r2', match: { Modality: [] }, rectangles: [] },
      ],
      ctpScripts: ['missing.script'],
    }), [
      'pixels.enabled: true or false',
      'pixels.risky.colour: not a criterion (burnedInAnnotation, recognizableVisualFeatures, encapsulatedDocument, modality, imageType, sopClass)',
      'pixels.risky.sopClass.photos: not a criterion (secondaryCapture, video)',
      'pixels.risky.burnedInAnnotation: withhold or allow',
      'pixels.risky.modality.US: withhold or allow',
      'pixels.filters.0.exclude.Modality.matches: not a valid regular expression',
      'pixels.filters.1.name: "a" is used twice',
      'pixels.filters.1.exclude: a condition or a list of 1 to 256 conditions',
      'pixels.rules.0.match.Modalty: not an attribute keyword or tag',
      'pixels.rules.0.match.ReferencedImageSequence: a sequence cannot be tested (top-level attributes only)',
      'pixels.rules.0.match.Rows.between: not a test (equals, equalsIgnoreCase, contains, containsIgnoreCase, startsWith, endsWith, matches, present, lessThan, greaterThan)',
      'pixels.rules.0.rectangles.0.x: an integer of at least 0',
      'pixels.rules.0.rectangles.0.width: an integer of at least 1',
      'pixels.rules.1.match.Modality: a list of 1 to 256 strings or numbers (any of them)',
      'pixels.rules.1.rectangles: a list of 1 to 256 { x, y, width, height }',
      'pixels.ctpScripts.0: missing.script was not read',
    ]);
  });

  test('a CTP script that does not parse is reported with its file and line', () => {
    const scripts = new Map<string, string | { error: string }>([['bad.script', 'title\n{ Modality.equals("US") *\n  Manufacturer.startsWith(ACUSON) }\n(0,0,10,10)\n'], ['gone.script', { error: 'cannot read file gone.script (ENOENT)' }]]);
    assert.deepEqual(checkPixelPolicy({ ctpScripts: ['bad.script', 'gone.script'] }, { scripts }).issues, [
      'pixels.ctpScripts.0: bad.script line 3: startsWith takes a quoted string',
      'pixels.ctpScripts.1: cannot read file gone.script (ENOENT)',
    ]);
  });
});

describe('the session and a redact verdict', () => {
  const SECRET = 'pixel-policy-test-secret-0123456789';
  const policy = createPolicy({ secret: SECRET, pixels: BANNER });
  const REDACT = policy.pixels.verdict(header(ACUSON));
  const dataset = (pi: string): JsonDataset => ({
    '00080060': { vr: 'CS', Value: ['US'] },
    '00080070': { vr: 'LO', Value: ['ACUSON'] },
    '00100020': { vr: 'LO', Value: ['PID-1'] },
    '00280004': { vr: 'CS', Value: [pi] },
    '00280010': { vr: 'US', Value: [480] },
    '00280301': { vr: 'CS', Value: ['YES'] },
  });
  const codes = (out: JsonDataset): unknown[] => ((out['00120064']?.Value ?? []) as JsonDataset[]).map((item) => item['00080100']?.Value?.[0]);

  test('pixelVerdict delegates to the policy\'s pixel policy', () => {
    assert.equal(REDACT.action, 'redact');
    assert.deepEqual(createSession(policy).pixelVerdict(header(ACUSON)), REDACT);
    assert.equal(createPolicy({ secret: SECRET }).pixels.active, true, 'the defaults apply without a pixels block');
  });

  test('redacted: Burned In Annotation NO, Photometric Interpretation of the decoded frames, code 113101 after 113100', () => {
    const out = deidentifyJson(createSession(policy), dataset('YBR_FULL_422'), { pixelVerdict: REDACT });
    assert.deepEqual(out['00280301'], { vr: 'CS', Value: ['NO'] });
    assert.deepEqual(out['00280004'], { vr: 'CS', Value: ['YBR_FULL'] });
    assert.deepEqual(codes(out).slice(0, 2), ['113100', '113101']);
    const withoutAnnotation = dataset('RGB');
    delete withoutAnnotation['00280301'];
    const added = deidentifyJson(createSession(policy), withoutAnnotation, { pixelVerdict: REDACT });
    assert.deepEqual(added['00280301'], { vr: 'CS', Value: ['NO'] }, 'set even when absent');
    assert.deepEqual(added['00280004'], { vr: 'CS', Value: ['RGB'] });
  });

  test('kept or no verdict: nothing changes', () => {
    const plain = deidentifyJson(createSession(policy), dataset('YBR_FULL_422'));
    for (const verdict of [undefined, { action: 'keep' } as const]) {
      const out = deidentifyJson(createSession(policy), dataset('YBR_FULL_422'), verdict ? { pixelVerdict: verdict } : {});
      assert.deepEqual(out, plain);
      assert.deepEqual(out['00280301'], { vr: 'CS', Value: ['YES'] });
      assert.deepEqual(out['00280004'], { vr: 'CS', Value: ['YBR_FULL_422'] });
      assert.ok(!codes(out).includes('113101'));
    }
  });

  test('redacted: inline Pixel Data, Float and Double Float Pixel Data are dropped; a BulkDataURI stays', () => {
    const inline = {
      ...dataset('RGB'),
      '7FE00008': { vr: 'OF', InlineBinary: 'AAAAAA==' },
      '7FE00009': { vr: 'OD', InlineBinary: 'AAAAAAAAAAA=' },
      '7FE00010': { vr: 'OB', InlineBinary: 'AQIDBA==' },
    } as JsonDataset;
    const kept = deidentifyJson(createSession(policy), inline);
    assert.ok(kept['7FE00010'] !== undefined && kept['7FE00008'] !== undefined && kept['7FE00009'] !== undefined, 'kept when not redacted');
    const out = deidentifyJson(createSession(policy), inline, { pixelVerdict: REDACT });
    assert.equal(out['7FE00010'], undefined);
    assert.equal(out['7FE00008'], undefined);
    assert.equal(out['7FE00009'], undefined);
    const bulk = deidentifyJson(createSession(policy), { ...dataset('RGB'), '7FE00010': { vr: 'OB', BulkDataURI: 'https://pacs/bulk/1' } } as JsonDataset, { pixelVerdict: REDACT });
    assert.deepEqual(bulk['7FE00010'], { vr: 'OB', BulkDataURI: 'https://pacs/bulk/1' });
  });

  test('a withhold verdict is refused before anything of the dataset is decided', () => {
    const session = createSession(policy);
    assert.throws(() => session.beginDataset('PID-1', { action: 'withhold', reason: 'risky', detail: 'Modality US' }), (e: unknown) => e instanceof PixelWithheldError && e.reason === 'risky' && e.detail === 'Modality US');
    assert.throws(() => deidentifyJson(session, dataset('RGB'), { pixelVerdict: { action: 'withhold', reason: 'filtered', detail: 'filter sr' } }), PixelWithheldError);
  });

  test('one session, two datasets: the redaction applies to its own dataset only', () => {
    const session = createSession(policy);
    deidentifyJson(session, dataset('YBR_FULL_422'), { pixelVerdict: REDACT });
    const next = deidentifyJson(session, dataset('YBR_FULL_422'));
    assert.deepEqual(next['00280301'], { vr: 'CS', Value: ['YES'] });
    assert.ok(!codes(next).includes('113101'));
  });

  test('createPolicy reports pixel problems as profile keys, with the others', () => {
    assert.throws(() => createPolicy({ secret: 'short', pixels: { rules: [{ name: 'r', match: { Modalty: 'US' }, rectangles: [{ x: 0, y: 0, width: 1, height: 1 }] }] } }), (e: unknown) =>
      e instanceof DeidPolicyError && e.issues.includes('secret: at least 16 bytes') && e.issues.includes('profile.pixels.rules.0.match.Modalty: not an attribute keyword or tag'));
  });
});

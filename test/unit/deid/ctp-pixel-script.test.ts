// RSNA CTP DicomPixelAnonymizer scripts, loaded as sites keep them (issue 16): the grammar, CTP's
// string methods and operator precedence, and every malformed script refused with its line.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { tagForKeyword } from '../../../src/dicom/dictionary.ts';
import { parseCtpPixelScript } from '../../../src/deid/ctp-pixel-script.ts';
import type { AttributeReader } from '../../../src/deid/pixel-policy.ts';

const FIXTURE = path.resolve(import.meta.dirname, '../../fixtures/pixel-rules/us-fleet.script');

function header(attrs: Readonly<Record<string, unknown>>): AttributeReader {
  const byTag = new Map<number, readonly unknown[]>();
  for (const [k, v] of Object.entries(attrs)) byTag.set(tagForKeyword(k) as number, Array.isArray(v) ? v : [v]);
  return (tag) => byTag.get(tag);
}

/** The truth of one expression over a header. */
function holds(expression: string, attrs: Readonly<Record<string, unknown>>): boolean {
  const script = parseCtpPixelScript(`{ ${expression} }\n(0,0,1,1)`);
  assert.deepEqual(script.issues, [], expression);
  return (script.signatures[0] as (typeof script.signatures)[number]).condition.test(header(attrs));
}

const issuesOf = (text: string): readonly string[] => parseCtpPixelScript(text).issues;

describe('the script format', () => {
  test('the fleet fixture loads: signatures with their lines and regions, commentary ignored', () => {
    const script = parseCtpPixelScript(readFileSync(FIXTURE, 'utf8'));
    assert.deepEqual(script.issues, []);
    assert.deepEqual(script.signatures.map((s) => [s.line, s.rectangles.length]), [[7, 1], [13, 1], [17, 2], [23, 1], [28, 1]]);
    assert.deepEqual(script.signatures[2]?.rectangles, [{ x: 0, y: 0, width: 800, height: 60 }, { x: 600, y: 520, width: 200, height: 80 }]);
    const tags = new Set(script.signatures.flatMap((s) => s.condition.tags));
    for (const k of ['Modality', 'Manufacturer', 'Rows', 'Columns', 'ManufacturerModelName', 'ImageType', 'SOPClassUID']) assert.ok(tags.has(tagForKeyword(k) as number), k);
  });

  test('the fleet fixture tells the fleet apart', () => {
    const signatures = parseCtpPixelScript(readFileSync(FIXTURE, 'utf8')).signatures;
    const first = (attrs: Record<string, unknown>) => signatures.find((s) => s.condition.test(header(attrs)))?.line;
    assert.equal(first({ Modality: 'US', Manufacturer: 'Acuson', Rows: 480, Columns: 640 }), 7);
    assert.equal(first({ Modality: 'US', Manufacturer: 'ACUSON', Rows: 240, Columns: 320 }), 13);
    assert.equal(first({ Modality: 'US', Manufacturer: 'GE Healthcare', ManufacturerModelName: 'Vivid E95' }), 17);
    assert.equal(first({ Modality: 'US', Manufacturer: 'GE Healthcare', ManufacturerModelName: 'LOGIQ E10' }), 17);
    assert.equal(first({ Modality: 'US', Manufacturer: 'GE Healthcare', ManufacturerModelName: 'LOGIQ P9' }), undefined);
    assert.equal(first({ Modality: 'US', Manufacturer: 'Philips', ImageType: ['ORIGINAL', 'PRIMARY'], Columns: 1024 }), 23);
    assert.equal(first({ Modality: 'US', Manufacturer: 'Philips', ImageType: ['ORIGINAL', 'DOPPLER'], Columns: 1024 }), undefined);
    assert.equal(first({ SOPClassUID: '1.2.840.10008.5.1.4.1.1.7', Rows: 1024 }), 28);
  });

  test('CTP\'s string methods, on the value as text (multiple values joined by a backslash, absent as "")', () => {
    const a = { Manufacturer: 'ACUSON', ImageType: ['ORIGINAL', 'PRIMARY'], Rows: 480, SeriesDescription: 'Echo 2D' };
    assert.equal(holds('Manufacturer.equals("ACUSON")', a), true);
    assert.equal(holds('Manufacturer.equals("Acuson")', a), false);
    assert.equal(holds('Manufacturer.equalsIgnoreCase("acuson")', a), true);
    assert.equal(holds('ImageType.equals("ORIGINAL\\PRIMARY")', a), true);
    assert.equal(holds('ImageType.contains("PRIMARY")', a), true);
    assert.equal(holds('SeriesDescription.containsIgnoreCase("echo")', a), true);
    assert.equal(holds('SeriesDescription.startsWith("Echo")', a), true);
    assert.equal(holds('SeriesDescription.startsWithIgnoreCase("ECHO")', a), true);
    assert.equal(holds('SeriesDescription.endsWith("2D")', a), true);
    assert.equal(holds('SeriesDescription.endsWithIgnoreCase("2d")', a), true);
    assert.equal(holds('SeriesDescription.matches("Echo.*")', a), true);
    assert.equal(holds('SeriesDescription.matches("Echo")', a), false);
    assert.equal(holds('SeriesDescription.matches("E.*")', { SeriesDescription: `E${'x'.repeat(4000)}Z` }), true);
    assert.equal(holds('SeriesDescription.matches("E.*Z")', { SeriesDescription: `E${'x'.repeat(4000)}Z` }), false, 'only the first 1024 characters are tested');
    assert.equal(holds('Rows.isLessThan("500")', a), true);
    assert.equal(holds('Rows.isGreaterThan("rows 500")', a), false);
    assert.equal(holds('Rows.isGreaterThan("abc")', a), false);
    assert.equal(holds('StationName.equals("")', a), true);
    assert.equal(holds('[0008,0070].equals("ACUSON")', a), true);
    assert.equal(holds('[00080070].equals("ACUSON")', a), true);
    assert.equal(holds('Manufacturer.equals("AC)USON") + true.', a), true);
  });

  test('! binds tighter than *, which binds tighter than +; parentheses group; // comments to the end of the line', () => {
    const a = { Modality: 'US' };
    assert.equal(holds('true. + false. * false.', a), true);
    assert.equal(holds('(true. + false.) * false.', a), false);
    assert.equal(holds('!false. * true.', a), true);
    assert.equal(holds('!(true. * false.)', a), true);
    assert.equal(holds('!!Modality.equals("US")', a), true);
    assert.equal(holds('Modality.equals("US") // the modality\n * !Modality.equals("CT")', a), true);
  });

  test('every malformed script is refused with its line', () => {
    assert.deepEqual(issuesOf('no signature at all'), ['line 1: no signature ({ expression } followed by regions)']);
    assert.deepEqual(issuesOf('\n{ Modality.equals("US")\n(0,0,1,1)'), ['line 2: "{" is not closed']);
    assert.deepEqual(issuesOf('{ Modality.equals("US") }\nno region here'), ['line 1: the signature has no region ((left,top,width,height) after it)']);
    assert.deepEqual(issuesOf('{ }\n(0,0,1,1)'), ['line 1: empty signature']);
    assert.deepEqual(issuesOf('{ Modality.equals("US") *\n Manufacturer.sounds("x") }\n(0,0,1,1)'), [
      'line 2: unknown method "sounds" (equals, equalsIgnoreCase, matches, contains, containsIgnoreCase, startsWith, startsWithIgnoreCase, endsWith, endsWithIgnoreCase, isLessThan, isGreaterThan)',
    ]);
    assert.deepEqual(issuesOf('{ Modalty.equals("US") }\n(0,0,1,1)'), ['line 1: "Modalty" is not an attribute keyword or [gggg,eeee]']);
    assert.deepEqual(issuesOf('{ Modality.equals("US") * }\n(0,0,1,1)'), ['line 1: the expression ends where an operand is expected']);
    assert.deepEqual(issuesOf('{ (Modality.equals("US") }\n(0,0,1,1)'), ['line 1: "(" is not closed']);
    assert.deepEqual(issuesOf('{ Modality.equals("US") Rows.equals("1") }\n(0,0,1,1)'), ['line 1: unexpected "R"']);
    assert.deepEqual(issuesOf('{ Modality.matches("[") }\n(0,0,1,1)'), ['line 1: matches: not a valid regular expression']);
    assert.deepEqual(issuesOf('{ ReferencedImageSequence::ReferencedSOPClassUID.equals("1") }\n(0,0,1,1)'), ['line 1: sequence paths are not supported (top-level attributes only)']);
    assert.deepEqual(issuesOf('{ ReferencedImageSequence.equals("1") }\n(0,0,1,1)'), ['line 1: ReferencedImageSequence is a sequence (top-level values only)']);
    assert.deepEqual(issuesOf('{ [7FE1,0010].equals("x") }\n(0,0,1,1)'), ['line 1: (7FE1,0010) is at or after Pixel Data (group 7FE0 and above is never seen)']);
    assert.deepEqual(issuesOf('{ PixelData.contains("x") }\n(0,0,1,1)'), ['line 1: PixelData is at or after Pixel Data (group 7FE0 and above is never seen)']);
    assert.deepEqual(issuesOf('{ [FFFA,0010].equals("x") }\n(0,0,1,1)'), ['line 1: (FFFA,0010) is at or after Pixel Data (group 7FE0 and above is never seen)']);
    assert.deepEqual(issuesOf(`{ Modality.matches("${'a'.repeat(513)}") }\n(0,0,1,1)`), ['line 1: matches: a regular expression of at most 512 characters']);
    assert.deepEqual(issuesOf('{ true. }\n\n(0,0,512)'), ['line 3: a region is (left,top,width,height), four integers']);
    assert.deepEqual(issuesOf('{ true. }\n(0,0,0,10) (-1,0,5,5)'), ['line 2: region width and height must be at least 1', 'line 2: region left and top must be at least 0']);
    assert.deepEqual(issuesOf('{ true. }\n(a,b,c,d)'), ['line 2: a region is (left,top,width,height), four integers']);
    assert.deepEqual(issuesOf('{ true. }\n(0,0,1,1)\n}'), ['line 3: "}" without "{"']);
  });

  test('parenthesised prose between signatures is commentary, as CTP reads it', () => {
    const script = parseCtpPixelScript('GE (Vivid series)\n{ true. }\n(0,0,10,10) (see the manual, p. 4)\n');
    assert.deepEqual(script.issues, []);
    assert.deepEqual(script.signatures[0]?.rectangles, [{ x: 0, y: 0, width: 10, height: 10 }]);
  });
});

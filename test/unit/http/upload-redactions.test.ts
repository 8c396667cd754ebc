import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HttpRequestError } from '../../../src/http/errors.ts';
import { MAX_RECTANGLES, NO_REDACTIONS, parseRedactions, rectanglesFor } from '../../../src/http/upload-redactions.ts';

const SERIES = '1.2.3.4';
const SERIES_UID = 0x0020000e;
const ROWS = 0x00280010;
const COLUMNS = 0x00280011;
const reader = (values: [number, unknown][]) => (tag: number) => {
  const found = values.find(([t]) => t === tag);
  return found ? [found[1]] : undefined;
};
const IMAGE = reader([[SERIES_UID, SERIES], [ROWS, 240], [COLUMNS, 320]]);
const refused = (error: unknown) => error instanceof HttpRequestError && error.code === 'UPLOAD_BAD_REDACTIONS';

describe('the upload form\'s redactions field', () => {
  test('no field is no redaction', () => {
    assert.equal(parseRedactions(undefined), NO_REDACTIONS);
    assert.equal(rectanglesFor(NO_REDACTIONS, 0), undefined);
  });

  test("a file gets its own rectangles and its series'", () => {
    const r = parseRedactions(JSON.stringify({ series: { [SERIES]: [{ x: 0, y: 0, width: 320, height: 240 }] }, files: { 1: [{ x: 1, y: 2, width: 3, height: 4 }] } }));
    assert.deepEqual(rectanglesFor(r, 1)?.(IMAGE), [{ x: 1, y: 2, width: 3, height: 4 }, { x: 0, y: 0, width: 320, height: 240 }]);
    assert.deepEqual(rectanglesFor(r, 0)?.(IMAGE), [{ x: 0, y: 0, width: 320, height: 240 }]);
    assert.deepEqual(rectanglesFor(r, 0)?.(reader([[SERIES_UID, '9.9'], [ROWS, 1], [COLUMNS, 1]])), []);
  });

  for (const [what, field] of [
    ['not JSON', '{'],
    ['not an object', '[]'],
    ['another key', '{"all": []}'],
    ['a list that is no list', '{"files": {"0": {}}}'],
    ['a fractional coordinate', '{"files": {"0": [{"x": 0.5, "y": 0, "width": 1, "height": 1}]}}'],
    ['a string coordinate', '{"files": {"0": [{"x": "1", "y": 0, "width": 1, "height": 1}]}}'],
    ['a negative coordinate', '{"files": {"0": [{"x": -1, "y": 0, "width": 1, "height": 1}]}}'],
    ['a zero width', '{"files": {"0": [{"x": 0, "y": 0, "width": 0, "height": 1}]}}'],
    ['a missing height', '{"files": {"0": [{"x": 0, "y": 0, "width": 1}]}}'],
    ['beyond 65535', '{"files": {"0": [{"x": 65536, "y": 0, "width": 1, "height": 1}]}}'],
    ['a file key that is no index', '{"files": {"a": []}}'],
    ['a series key that is no UID', '{"series": {"1.2.x": []}}'],
    ['too many rectangles', JSON.stringify({ files: { 0: Array.from({ length: MAX_RECTANGLES + 1 }, () => ({ x: 0, y: 0, width: 1, height: 1 })) } })],
  ] as const) {
    test(`${what} is refused`, () => assert.throws(() => parseRedactions(field), refused));
  }

  test('the field twice is refused', () => assert.throws(() => parseRedactions(['{}', '{}']), refused));

  test('a rectangle beyond Rows × Columns is refused once the header is read, not clipped', () => {
    const r = parseRedactions(JSON.stringify({ files: { 0: [{ x: 300, y: 0, width: 21, height: 1 }] } }));
    assert.throws(() => rectanglesFor(r, 0)?.(IMAGE), refused);
    const edge = parseRedactions(JSON.stringify({ files: { 0: [{ x: 300, y: 239, width: 20, height: 1 }] } }));
    assert.deepEqual(rectanglesFor(edge, 0)?.(IMAGE), [{ x: 300, y: 239, width: 20, height: 1 }]);
    assert.throws(() => rectanglesFor(edge, 0)?.(reader([])), refused, 'no Rows and Columns');
  });
});

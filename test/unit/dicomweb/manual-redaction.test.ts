import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createPolicy, createSession } from '../../../src/deid/deidentify.ts';
import { PixelWithheldError } from '../../../src/deid/errors.ts';
import type { PixelPolicyConfig, Rectangle } from '../../../src/deid/pixel-policy.ts';
import { rewritePart10Buffer } from '../../../src/deid/rewrite-part10.ts';
import { asciiValue } from '../../../src/dicom/dataset.ts';
import { readPart10Buffer } from '../../../src/dicom/part10-reader.ts';
import { withManualRectangles } from '../../../src/dicomweb/stow.ts';
import { sample } from '../../helpers/sample.ts';

const ECHO = sample('multiframe/IM00001.implicit_little_endian.dcm'); // US, RGB 8-bit, 320 × 240, 8 frames
const GEOMETRY = { rows: 240, columns: 320, samples: 3, frames: 8 };
const BURNED_IN_ANNOTATION = 0x00280301;

async function rewrite(pixels: PixelPolicyConfig, manual: Rectangle[]) {
  const session = createSession(createPolicy({ secret: 'manual-redaction-secret-0123456789', pixels }));
  const { output } = await rewritePart10Buffer(ECHO, withManualRectangles(session, () => manual, () => undefined));
  return readPart10Buffer(output);
}

/** The indexes of samples inside any of `rects`, in every frame. */
function inside(rects: readonly Rectangle[], x: number, y: number): boolean {
  return rects.some((r) => x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height);
}

function assertBlanked(original: Buffer, stored: Buffer, rects: readonly Rectangle[]): void {
  const { rows, columns, samples, frames } = GEOMETRY;
  let zero = 0;
  for (let f = 0; f < frames; f++) {
    for (let y = 0; y < rows; y++) {
      for (let x = 0; x < columns; x++) {
        for (let s = 0; s < samples; s++) {
          const i = ((f * rows + y) * columns + x) * samples + s;
          if (inside(rects, x, y)) {
            assert.equal(stored[i], 0, `frame ${f} (${x}, ${y}) inside`);
            zero++;
          } else if (stored[i] !== original[i]) assert.fail(`frame ${f} (${x}, ${y}) changed outside`);
        }
      }
    }
  }
  assert.ok(zero > 0);
}

describe('manual rectangles joined to the pixel verdict (withManualRectangles)', () => {
  const original = readPart10Buffer(ECHO);
  const allowUs: PixelPolicyConfig = { risky: { modality: { US: 'allow' } } };
  const drawn: Rectangle[] = [{ x: 40, y: 30, width: 100, height: 60 }];

  test('a kept instance is redacted by the manual rectangles and says so like a rule-redacted one', async () => {
    const out = await rewrite(allowUs, drawn);
    assertBlanked((await original).pixelDataBytes as Buffer, out.pixelDataBytes as Buffer, drawn);
    assert.equal(asciiValue(out.header.dataset, BURNED_IN_ANNOTATION)?.trim(), 'NO');
  });

  test('no manual rectangle leaves the verdict as it was: the pixels are byte-identical', async () => {
    const out = await rewrite(allowUs, []);
    assert.ok(((await original).pixelDataBytes as Buffer).equals(out.pixelDataBytes as Buffer));
    assert.equal(asciiValue(out.header.dataset, BURNED_IN_ANNOTATION), undefined);
  });

  test('a withheld instance stays withheld: a drawn rectangle does not make a risky instance acceptable', async () => {
    await assert.rejects(rewrite({}, drawn), (error: unknown) => error instanceof PixelWithheldError && error.reason === 'risky');
  });

  test("a rule's rectangles and the manual ones are both blanked", async () => {
    const rule = { x: 0, y: 0, width: 320, height: 20 };
    const out = await rewrite({ rules: [{ name: 'banner', match: { Modality: 'US' }, rectangles: [rule] }] }, drawn);
    assertBlanked((await original).pixelDataBytes as Buffer, out.pixelDataBytes as Buffer, [rule, ...drawn]);
  });

  test("an error of the caller's rectangles reaches the caller, told first", async () => {
    const session = createSession(createPolicy({ secret: 'manual-redaction-secret-0123456789', pixels: allowUs }));
    const bad = new Error('outside');
    let told: unknown;
    const policy = withManualRectangles(session, () => { throw bad; }, (error) => (told = error));
    await assert.rejects(rewritePart10Buffer(ECHO, policy), (error: unknown) => error === bad);
    assert.equal(told, bad);
  });
});

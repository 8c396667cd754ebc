// The text-region model's pre- and post-processing (src/pixel/text-region-model.ts), on arrays: the model
// itself runs in the detector's tests (text-detector.test.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MODEL_TUNING, modelInput, regionsFromProbability, type ModelInput } from '../../../src/pixel/text-region-model.ts';

describe('text-region model input', () => {
  test('resizes the longer side to 960 and both to multiples of 32, keeping the frame-to-model factors', () => {
    const input = modelInput({ width: 320, height: 240, data: new Uint8Array(320 * 240).fill(128) });
    assert.equal(input.width, 960);
    assert.equal(input.height, 736); // 720 rounded to a multiple of 32
    assert.equal(input.data.length, 3 * 960 * 736);
    assert.equal(input.scaleX, 320 / 960);
    assert.equal(input.scaleY, 240 / 736);
    const large = modelInput({ width: 1024, height: 768, data: new Uint8Array(1024 * 768) });
    assert.deepEqual([large.width, large.height], [960, 736]);
  });

  test('normalizes each channel with the ImageNet mean and deviation, grey repeated as R, G and B', () => {
    const white = modelInput({ width: 64, height: 64, data: new Uint8Array(64 * 64).fill(255) }, 64);
    const plane = 64 * 64;
    assert.ok(Math.abs((white.data[0] as number) - (1 - 0.485) / 0.229) < 1e-5);
    assert.ok(Math.abs((white.data[plane] as number) - (1 - 0.456) / 0.224) < 1e-5);
    assert.ok(Math.abs((white.data[2 * plane + 5] as number) - (1 - 0.406) / 0.225) < 1e-5);
    const black = modelInput({ width: 64, height: 64, data: new Uint8Array(64 * 64) }, 64);
    assert.ok(Math.abs((black.data[100] as number) + 0.485 / 0.229) < 1e-5);
  });

  test('interpolates: a left-to-right ramp stays monotonic after resizing', () => {
    const data = Uint8Array.from({ length: 100 * 10 }, (_, i) => Math.round(((i % 100) / 99) * 255));
    const input = modelInput({ width: 100, height: 10, data }, 256);
    const row = Array.from(input.data.subarray(0, input.width));
    for (let x = 1; x < row.length; x++) assert.ok((row[x] as number) >= (row[x - 1] as number));
  });
});

describe('text-region model output', () => {
  const input = (width: number, height: number, scale: number): ModelInput => ({ data: new Float32Array(0), width, height, scaleX: scale, scaleY: scale });
  const map = (width: number, height: number, blobs: { x: number; y: number; w: number; h: number; p: number }[]): Float32Array => {
    const prob = new Float32Array(width * height);
    for (const b of blobs) for (let y = b.y; y < b.y + b.h; y++) for (let x = b.x; x < b.x + b.w; x++) prob[y * width + x] = b.p;
    return prob;
  };

  test('one box per connected area above the threshold, grown by area × unclip / perimeter, in frame pixels', () => {
    const prob = map(100, 50, [{ x: 10, y: 10, w: 20, h: 4, p: 0.9 }, { x: 60, y: 30, w: 10, h: 10, p: 0.8 }]);
    const boxes = regionsFromProbability(prob, input(100, 50, 2), { width: 200, height: 100 });
    assert.equal(boxes.length, 2);
    const grow1 = (20 * 4 * MODEL_TUNING.unclip) / (2 * 24);
    assert.deepEqual(boxes[0], { x0: Math.floor((10 - grow1) * 2), y0: Math.floor((10 - grow1) * 2), x1: Math.ceil((30 + grow1) * 2), y1: Math.ceil((14 + grow1) * 2) });
    const grow2 = (10 * 10 * MODEL_TUNING.unclip) / (2 * 20);
    assert.deepEqual(boxes[1], { x0: Math.floor((60 - grow2) * 2), y0: Math.floor((30 - grow2) * 2), x1: Math.ceil((70 + grow2) * 2), y1: Math.ceil((40 + grow2) * 2) });
  });

  test('drops areas of low mean probability and specks; clips to the frame', () => {
    const prob = map(40, 40, [{ x: 0, y: 0, w: 10, h: 3, p: 0.95 }, { x: 20, y: 20, w: 8, h: 8, p: 0.4 }, { x: 35, y: 5, w: 1, h: 2, p: 0.99 }]);
    const boxes = regionsFromProbability(prob, input(40, 40, 1), { width: 40, height: 40 });
    assert.equal(boxes.length, 1, 'the 0.4 area (below minScore) and the 2-pixel speck are dropped');
    assert.equal(boxes[0]?.x0, 0);
    assert.equal(boxes[0]?.y0, 0);
  });

  test('areas touching only diagonally are two regions; a map smaller than the input is refused', () => {
    const prob = map(20, 20, [{ x: 2, y: 2, w: 3, h: 3, p: 0.9 }, { x: 5, y: 5, w: 3, h: 3, p: 0.9 }]);
    assert.equal(regionsFromProbability(prob, input(20, 20, 1), { width: 20, height: 20 }).length, 2);
    assert.throws(() => regionsFromProbability(new Float32Array(10), input(20, 20, 1), { width: 20, height: 20 }), RangeError);
  });
});

// OCR-assisted redaction's cache (issue 18, text-regions.ts): one detection per series and layout however
// many ask at once, failures not kept; the frames sampled; regions unioned; no detector, no regions.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TextRegionsUnavailableError } from '../../../src/dicomweb/errors.ts';
import { layoutKey, sampledFrames, textRegionSource, unionRegions } from '../../../src/dicomweb/text-regions.ts';
import { singleFlightCache } from '../../../src/store/cached-store.ts';
import { tagForKeyword } from '../../../src/dicom/dictionary.ts';

const reader = (attrs: Record<string, unknown>) => (tag: number) => {
  for (const [k, v] of Object.entries(attrs)) if (tagForKeyword(k) === tag) return [v];
  return undefined;
};

describe('text regions: cache, single flight and sampling', () => {
  test('concurrent asks for one key wait on one computation; later asks hit the cache', async () => {
    const cache = singleFlightCache<number>({ ttlSeconds: 60, maxKeys: 10 });
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const compute = async () => {
      runs++;
      await gate;
      return 42;
    };
    const asks = [cache.get('k', compute), cache.get('k', compute), cache.get('k', compute)];
    release();
    const answers = await Promise.all(asks);
    assert.equal(runs, 1);
    assert.deepEqual(answers.map((a) => a.value), [42, 42, 42]);
    assert.deepEqual(answers.map((a) => a.hit), [false, true, true]);
    assert.deepEqual(await cache.get('k', compute), { value: 42, hit: true });
    assert.equal(runs, 1);
    await cache.get('other', compute);
    assert.equal(runs, 2, 'another key computes');
  });

  test('a failure is not cached: a waiter computes once for itself, and the next ask computes again', async () => {
    const cache = singleFlightCache<number>({ ttlSeconds: 60, maxKeys: 10 });
    let runs = 0;
    const failing = async () => {
      runs++;
      throw new TextRegionsUnavailableError('TEXT_DETECTION_TIMEOUT');
    };
    const results = await Promise.allSettled([cache.get('k', failing), cache.get('k', failing), cache.get('k', failing)]);
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected', 'rejected']);
    assert.equal(runs, 2, 'the first computation, then one more for the two waiters together');
    assert.deepEqual(await cache.get('k', async () => 7), { value: 7, hit: false });
  });

  test('the request computing for all leaves: a waiter gets the regions from a computation of its own', async () => {
    const cache = singleFlightCache<number>({ ttlSeconds: 60, maxKeys: 10 });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const leaving = cache.get('k', async () => {
      await gate;
      throw new Error('caller gone');
    });
    const waiting = cache.get('k', async () => 5);
    release();
    await assert.rejects(leaving);
    assert.deepEqual(await waiting, { value: 5, hit: false });
  });

  test('ttl 0 keeps nothing (single flight still holds)', async () => {
    const cache = singleFlightCache<number>({ ttlSeconds: 0, maxKeys: 10 });
    let runs = 0;
    await cache.get('k', async () => ++runs);
    await cache.get('k', async () => ++runs);
    assert.equal(runs, 2);
  });

  test('frames sampled: the first and every Nth, widened to keep at most the cap over the whole instance', () => {
    assert.deepEqual(sampledFrames(1, 10, 8), [1]);
    assert.deepEqual(sampledFrames(8, 7, 2), [1, 8]);
    assert.deepEqual(sampledFrames(25, 10, 8), [1, 11, 21]);
    assert.deepEqual(sampledFrames(300, 10, 8), [1, 39, 77, 115, 153, 191, 229, 267]);
    assert.ok(sampledFrames(10_000, 1, 8).length === 8);
  });

  test('regions are unioned, duplicates and empty boxes dropped', () => {
    const a = { x: 1, y: 2, width: 3, height: 4 };
    const b = { x: 10, y: 20, width: 30, height: 40 };
    assert.deepEqual(unionRegions([[a, b], [a], [{ x: 0, y: 0, width: 0, height: 5 }]]), [a, b]);
  });

  test('the key is the series and the layout: another device or size is another key', () => {
    const base = { Manufacturer: 'Acme', ManufacturerModelName: 'E1', Rows: 240, Columns: 320 };
    assert.equal(layoutKey('1.2.3', reader(base)), layoutKey('1.2.3', reader({ ...base })));
    assert.notEqual(layoutKey('1.2.3', reader(base)), layoutKey('1.2.4', reader(base)));
    assert.notEqual(layoutKey('1.2.3', reader(base)), layoutKey('1.2.3', reader({ ...base, Rows: 480 })));
    assert.notEqual(layoutKey('1.2.3', reader(base)), layoutKey('1.2.3', reader({ ...base, ManufacturerModelName: 'E2' })));
  });

  test('without a detector there are no regions (the caller keeps the instance withheld)', async () => {
    const source = textRegionSource(undefined, { sampleEvery: 10, maxSampledFrames: 8, cacheTtlSeconds: 60 });
    await assert.rejects(
      source.regionsOf({ study: '1', series: '2', sop: '3' }, reader({}), () => Promise.reject(new Error('the PACS is not asked'))),
      (e: unknown) => e instanceof TextRegionsUnavailableError && e.reason === 'OCR_NO_DETECTOR',
    );
  });
});

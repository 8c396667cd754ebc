import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createRateLimiter } from '../../../src/http/token-bucket.ts';

describe('the re-identification token bucket', () => {
  test('a subject gets its burst at once, then tokens back at the configured rate, and says when to retry', () => {
    let now = 0;
    const limiter = createRateLimiter({ burst: 5, perMinute: 30, now: () => now });
    assert.deepEqual(limiter.take('a', 5), { ok: true });
    assert.deepEqual(limiter.take('a', 1), { ok: false, retryAfterSeconds: 2 });
    assert.deepEqual(limiter.take('b', 5), { ok: true }, 'buckets are per subject');
    now += 2_000;
    assert.deepEqual(limiter.take('a', 1), { ok: true });
    assert.deepEqual(limiter.take('a', 3), { ok: false, retryAfterSeconds: 6 });
    now += 60_000;
    assert.deepEqual(limiter.take('a', 6), { ok: false, retryAfterSeconds: 2 }, 'never more than the burst');
    assert.deepEqual(limiter.take('a', 5), { ok: true });
  });

  test('the bucket map stays bounded: idle (full) buckets are dropped, busy ones kept', () => {
    let now = 0;
    const limiter = createRateLimiter({ burst: 2, perMinute: 60, now: () => now, maxKeys: 3 });
    limiter.take('busy', 2);
    for (let i = 0; i < 50; i++) limiter.take(`idle-${i}`, 0);
    assert.equal(limiter.take('busy', 1).ok, false, 'the busy subject was not forgotten (forgetting would refill it)');
    now += 1_000;
    assert.equal(limiter.take('busy', 1).ok, true);
  });
});

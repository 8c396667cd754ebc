import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { StoreError } from '../../../src/store/errors.ts';
import { openSqliteStore } from '../../../src/store/sqlite-store.ts';
import { withTiming } from '../../../src/store/timed-store.ts';

test('every store call is timed by method name and outcome, results and errors pass through unchanged', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'deid-timed-'));
  const calls: { operation: string; outcome: string; seconds: number }[] = [];
  try {
    const store = withTiming(openSqliteStore(join(dir, 'store.sqlite')), (operation, outcome, seconds) => calls.push({ operation, outcome, seconds }));
    await store.save('s', [{ kind: 'uid', pseudonym: '2.25.7', original: '1.2.7' }]);
    assert.equal(await store.originalOf('s', 'uid', '2.25.7'), '1.2.7');
    assert.equal(await store.originalOf('s', 'uid', '2.25.8'), undefined);
    await assert.rejects(store.save('s', [{ kind: 'uid', pseudonym: '2.25.7', original: '9.9' }]), (e: unknown) => e instanceof StoreError);
    assert.equal(await store.count(), 1);
    await store.close();
    assert.deepEqual(
      calls.map((c) => `${c.operation}:${c.outcome}`),
      ['save:ok', 'originalOf:ok', 'originalOf:ok', 'save:error', 'count:ok'],
      'close is not timed',
    );
    assert.ok(calls.every((c) => c.seconds >= 0 && c.seconds < 5));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a method the decorator was not written for is timed too, and never sees its arguments', async () => {
  const seen: string[] = [];
  const base = {
    save: async () => undefined,
    originalOf: async () => undefined,
    count: async () => 0,
    close: async () => undefined,
    later: (x: number) => x * 2, // a synchronous method added to a backend after this decorator
    label: 'not a function',
  };
  const store = withTiming(base as never, (operation, outcome) => seen.push(`${operation}:${outcome}`)) as typeof base;
  assert.equal(store.later(21), 42);
  assert.equal(store.label, 'not a function');
  assert.deepEqual(seen, ['later:ok']);
});

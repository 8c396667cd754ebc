import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { withCache } from '../../../src/store/cached-store.ts';
import { StoreError } from '../../../src/store/errors.ts';
import { openSqliteStore } from '../../../src/store/sqlite-store.ts';

describe('the SQLite pseudonym store', () => {
  test('the store and its WAL are readable by the owner only; sync() resolves after a save', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'deid-store-'));
    const file = join(dir, 'sub', 'store.sqlite');
    try {
      const store = openSqliteStore(file);
      await store.save([{ kind: 'uid', pseudonym: '2.25.1', original: '1.2.3' }]);
      await store.sync();
      const { statSync } = await import('node:fs');
      for (const path of [file, `${file}-wal`, `${file}-shm`]) assert.equal(statSync(path).mode & 0o777, 0o600, path);
      assert.equal(statSync(join(dir, 'sub')).mode & 0o777, 0o700);
      await store.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('mappings survive a reopen, re-saving is idempotent, and a colliding pseudonym is refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'deid-store-'));
    const file = join(dir, 'store.sqlite');
    try {
      const store = openSqliteStore(file);
      const pairs = [
        { kind: 'uid', pseudonym: '2.25.1', original: '1.2.3' },
        { kind: 'patientId', pseudonym: 'ABC', original: 'PAT-1' },
      ] as const;
      await store.save(pairs);
      await store.save(pairs);
      assert.equal(await store.count(), 2);
      await assert.rejects(store.save([{ kind: 'uid', pseudonym: '2.25.1', original: '9.9' }]), (e: unknown) => e instanceof StoreError && e.code === 'STORE_PSEUDONYM_COLLISION');
      await store.close();

      const reopened = withCache(openSqliteStore(file), { maxKeys: 10, ttlSeconds: 60 });
      assert.equal(await reopened.originalOf('uid', '2.25.1'), '1.2.3');
      assert.equal(await reopened.originalOf('patientId', 'ABC'), 'PAT-1');
      assert.equal(await reopened.originalOf('uid', 'ABC'), undefined, 'kinds are separate');
      assert.equal(await reopened.originalOf('uid', '1.2.3'), undefined, 'an original is not a pseudonym');
      await reopened.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the cache stays bounded and still answers after it fills', async () => {
    const store = withCache(openSqliteStore(':memory:'), { maxKeys: 3, ttlSeconds: 60 });
    const many = Array.from({ length: 20 }, (_, i) => ({ kind: 'uid' as const, pseudonym: `2.25.${i}`, original: `1.${i}` }));
    await store.save(many);
    for (const m of many) assert.equal(await store.originalOf('uid', m.pseudonym), m.original);
    assert.equal(await store.count(), 20);
    await store.close();
  });
});

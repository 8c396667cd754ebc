import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { withCache } from '../../../src/store/cached-store.ts';
import { StoreError } from '../../../src/store/errors.ts';
import { openSqliteStore } from '../../../src/store/sqlite-store.ts';
import { QUERY_EVENT } from '../../helpers/audit-event.ts';

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

  test('an audit trail from an older release gains the new columns, keeps its records and stays append-only', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'deid-store-'));
    const file = join(dir, 'store.sqlite');
    try {
      // The audit_event table as the first release created it, with one record.
      const old = new Database(file);
      old.exec(`
        CREATE TABLE audit_event (
          id INTEGER PRIMARY KEY AUTOINCREMENT, event_date_time TEXT NOT NULL, event_id TEXT NOT NULL, event_type_code TEXT,
          event_action_code TEXT NOT NULL, event_outcome_indicator INTEGER NOT NULL, user_id TEXT NOT NULL, role_id TEXT NOT NULL,
          route TEXT NOT NULL, http_status INTEGER NOT NULL, participant_object_id TEXT, participant_object_id_type_code TEXT, request_id TEXT);
        INSERT INTO audit_event (event_date_time, event_id, event_action_code, event_outcome_indicator, user_id, role_id, route, http_status)
          VALUES ('2024-01-01T00:00:00.000Z', '110112^DCM^Query', 'E', 0, 'r-1', 'researcher', 'GET /studies', 200);
      `);
      old.close();

      const event = QUERY_EVENT;
      for (let round = 0; round < 2; round++) {
        // Twice: adding the columns is idempotent.
        const store = openSqliteStore(file);
        if (round === 0) await store.append(event);
        const [before, added] = await store.list({ limit: 10 });
        assert.deepEqual([before?.userId, before?.route, before?.participantObjectQuery, before?.seriesInstanceUid], ['r-1', 'GET /studies', undefined, undefined]);
        assert.deepEqual({ ...added, id: undefined }, { ...event, id: undefined });
        await store.close();
      }
      const db = new Database(file);
      assert.throws(() => db.prepare(`UPDATE audit_event SET participant_object_query = NULL`).run(), /append-only/);
      db.close();
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

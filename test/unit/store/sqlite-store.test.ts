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
import { assertStudyIndexContract } from '../../helpers/study-index-store.ts';

describe('the SQLite pseudonym store', () => {
  test('the de-identified study index: entries and keys, byte-wise ranges, scopes apart, state and clear', async () => {
    const store = openSqliteStore(':memory:');
    try {
      await assertStudyIndexContract(store);
    } finally {
      await store.close();
    }
  });

  test('the store and its WAL are readable by the owner only; sync() resolves after a save', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'deid-store-'));
    const file = join(dir, 'sub', 'store.sqlite');
    try {
      const store = openSqliteStore(file);
      await store.save('s', [{ kind: 'uid', pseudonym: '2.25.1', original: '1.2.3' }]);
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
      await store.save('s', pairs);
      await store.save('s', pairs);
      assert.equal(await store.count(), 2);
      await assert.rejects(store.save('s', [{ kind: 'uid', pseudonym: '2.25.1', original: '9.9' }]), (e: unknown) => e instanceof StoreError && e.code === 'STORE_PSEUDONYM_COLLISION');
      await store.close();

      const reopened = withCache(openSqliteStore(file), { maxKeys: 10, ttlSeconds: 60 });
      assert.equal(await reopened.originalOf('s', 'uid', '2.25.1'), '1.2.3');
      assert.equal(await reopened.originalOf('s', 'patientId', 'ABC'), 'PAT-1');
      assert.equal(await reopened.originalOf('s', 'uid', 'ABC'), undefined, 'kinds are separate');
      assert.equal(await reopened.originalOf('s', 'uid', '1.2.3'), undefined, 'an original is not a pseudonym');
      await reopened.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the cache counts the mappings not yet synced: a save of known, synced mappings asks for no disk flush', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'deid-store-'));
    try {
      const backend = openSqliteStore(join(dir, 'store.sqlite'));
      let syncs = 0;
      let failNextSync = false;
      const counted = new Proxy(backend, {
        get(target, property, receiver) {
          if (property === 'sync') {
            return async () => {
              syncs++;
              if (failNextSync) {
                failNextSync = false;
                throw new StoreError('STORE_WRITE_FAILED', 'disk full (test)');
              }
              await target.sync();
            };
          }
          const value: unknown = Reflect.get(target, property, receiver);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      const store = withCache(counted, { maxKeys: 100, ttlSeconds: 60 });
      const m = (n: number) => ({ kind: 'uid' as const, pseudonym: `2.25.${n}`, original: `1.2.${n}` });
      assert.equal(await store.save('s', [m(1), m(2)]), 2);
      assert.equal(await store.save('s', [m(1), m(2)]), 2, 'cached but not yet synced: still counted');
      await store.sync();
      assert.equal(await store.save('s', [m(1), m(2)]), 0, 'known and synced');
      assert.equal(await store.save('s', [m(1), m(3)]), 1);
      assert.equal(await store.save('t', [m(1)]), 1, 'another scope is another mapping');
      failNextSync = true;
      await assert.rejects(store.sync(), StoreError);
      assert.equal(await store.save('s', [m(1), m(3)]), 1, 'a failed sync leaves them counted');
      await store.sync();
      assert.equal(await store.save('s', [m(1), m(3)]), 0);
      assert.equal(await store.save('s', []), 0);
      assert.equal(syncs, 3);
      await store.close();
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
    await store.save('s', many);
    for (const m of many) assert.equal(await store.originalOf('s', 'uid', m.pseudonym), m.original);
    assert.equal(await store.count(), 20);
    await store.close();
  });
});

describe('the SQLite project store', () => {
  test('projects, lists and withdrawals: every change increments the version once, nothing else does', async () => {
    const store = openSqliteStore(':memory:');
    const v = () => store.projectsVersion();
    const start = await v();
    const p = { name: 'alpha', description: 'd', profile: { options: ['retainSafePrivate'], overrides: {} }, allStudies: false, query: { ModalitiesInStudy: 'CT' } };
    assert.equal(await store.createProject(p, ['1.2.3', '1.2.4']), true);
    assert.equal(await v(), start + 1, 'created with its studies in one change');
    assert.equal(await store.createProject({ ...p, description: 'other' }), false);
    assert.equal((await store.project('alpha'))?.description, 'd', 'an existing project is left as it is');
    assert.equal(await v(), start + 1);
    assert.deepEqual((await store.project('alpha'))?.profile, p.profile);
    assert.deepEqual((await store.project('alpha'))?.query, p.query);
    assert.equal(await store.addStudies('alpha', ['1.2.4', '1.2.5']), 1);
    assert.equal(await v(), start + 2);
    assert.equal(await store.addStudies('alpha', ['1.2.5']), 0);
    assert.equal(await v(), start + 2, 'no change, no increment');
    assert.deepEqual([...(await store.membersAmong('alpha', ['1.2.3', '1.2.9', '1.2.5']))].sort(), ['1.2.3', '1.2.5']);
    assert.equal(await store.removeStudies('alpha', ['1.2.3', '1.2.9']), 1);
    assert.deepEqual(await store.studies('alpha', { limit: 10, offset: 0 }), ['1.2.4', '1.2.5']);
    assert.deepEqual(await store.studies('alpha', { limit: 1, offset: 1 }), ['1.2.5']);
    assert.equal(await store.studyCount('alpha'), 2);
    assert.equal(await store.withdraw('alpha', 'PAT-1'), true);
    assert.equal(await store.withdraw('alpha', 'PAT-1'), false);
    assert.equal(await store.withdraw(undefined, 'PAT-2'), true);
    assert.deepEqual([...(await store.withdrawnPatients('alpha'))].sort(), ['PAT-1', 'PAT-2']);
    assert.deepEqual([...(await store.withdrawnPatients('beta'))], ['PAT-2'], 'a withdrawal from every project counts everywhere');
    assert.equal(await v(), start + 5);
    await assert.rejects(store.addStudies('nope', ['1.2.3']), (e: unknown) => e instanceof StoreError, 'a list entry needs its project');
    await store.close();
  });

  test('a store from before projects keeps its mappings, moved to the unscoped scope no caller reads', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'deid-store-'));
    const file = join(dir, 'old.sqlite');
    try {
      const db = new Database(file);
      db.exec(`CREATE TABLE pseudonym (kind TEXT NOT NULL, pseudonym TEXT NOT NULL, original TEXT NOT NULL,
        created_at TEXT NOT NULL DEFAULT 'then', PRIMARY KEY (kind, pseudonym)) WITHOUT ROWID`);
      db.prepare('INSERT INTO pseudonym (kind, pseudonym, original) VALUES (?, ?, ?)').run('uid', '2.25.1', '1.2.3');
      db.close();
      const store = openSqliteStore(file);
      assert.equal(await store.count(), 1);
      assert.equal(await store.originalOf('', 'uid', '2.25.1'), '1.2.3');
      assert.equal(await store.originalOf('project:all', 'uid', '2.25.1'), undefined);
      await store.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

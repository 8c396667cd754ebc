// The PostgreSQL audit trail: a table created by an older release gains the columns added since
// (the query description and the series), keeps its records, and stays append-only. And the study
// index's tables on PostgreSQL (issue 20): the same contract as SQLite's, ranges byte-wise whatever
// the database's collation.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openPostgresStore } from '../../src/store/postgres-store.ts';
import { QUERY_EVENT } from '../helpers/audit-event.ts';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.ts';
import { assertStudyIndexContract } from '../helpers/study-index-store.ts';

describe('the PostgreSQL audit trail', () => {
  let db: TestPostgres;
  before(async () => {
    db = await startTestPostgres();
  });
  after(async () => {
    await db?.stop();
  });

  test('an older trail gains the query and series columns, keeps its records, and stays append-only', async () => {
    await db.query(`
      CREATE TABLE audit_event (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event_date_time timestamptz NOT NULL, event_id text NOT NULL,
        event_type_code text, event_action_code text NOT NULL, event_outcome_indicator smallint NOT NULL, user_id text NOT NULL,
        role_id text NOT NULL, route text NOT NULL, http_status smallint NOT NULL, participant_object_id text,
        participant_object_id_type_code text, request_id text);
      INSERT INTO audit_event (event_date_time, event_id, event_action_code, event_outcome_indicator, user_id, role_id, route, http_status)
        VALUES ('2024-01-01T00:00:00Z', '110112^DCM^Query', 'E', 0, 'r-1', 'researcher', 'GET /studies', 200);
    `);
    const event = QUERY_EVENT;
    // Two stores opened at once (two replicas starting), then a third: the migration is serialised and idempotent.
    const [a, b] = await Promise.all([openPostgresStore({ url: db.url }), openPostgresStore({ url: db.url })]);
    await a.append(event);
    await Promise.all([a.close(), b.close()]);
    const store = await openPostgresStore({ url: db.url });
    try {
      const [old, added] = await store.list({ limit: 10 });
      assert.deepEqual([old?.userId, old?.participantObjectQuery, old?.seriesInstanceUid], ['r-1', undefined, undefined]);
      assert.deepEqual({ ...added, id: undefined }, { ...event, id: undefined });
      // jsonb: a steward can query the trail by key in SQL.
      const { rows } = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM audit_event WHERE participant_object_query->'keys' @> '[{"keyword": "SeriesDate", "mode": "range"}]'`,
      );
      assert.equal(rows[0]?.n, 1);
      await assert.rejects(db.query(`UPDATE audit_event SET participant_object_query = NULL`), /append-only/);
    } finally {
      await store.close();
    }
  });

  test('the trail is filtered by who, what, when and outcome, and pages newest first (GET /audit)', async () => {
    const store = await openPostgresStore({ url: db.url });
    try {
      const at = (day: number) => new Date(`2024-02-0${day}T00:00:00.000Z`);
      await store.append({ ...QUERY_EVENT, eventDateTime: at(1), userId: 's-1', roleId: 'steward', eventTypeCode: { code: 'REIDENTIFY', codingScheme: '99DEIDGW', meaning: 'Re-identification' }, eventId: { code: '110110', codingScheme: 'DCM', meaning: 'Patient Record' } });
      await store.append({ ...QUERY_EVENT, eventDateTime: at(2), userId: 's-1', roleId: 'steward', eventOutcomeIndicator: 4, httpStatus: 404 });
      await store.append({ ...QUERY_EVENT, eventDateTime: at(3), userId: 'r-9', project: 'trial' });
      const ids = async (q: Omit<Parameters<typeof store.list>[0], 'limit'>) => (await store.list({ limit: 100, ...q })).map((e) => e.eventDateTime.toISOString().slice(0, 10));
      assert.deepEqual(await ids({ userId: 's-1' }), ['2024-02-01', '2024-02-02']);
      assert.deepEqual(await ids({ eventCode: 'REIDENTIFY' }), ['2024-02-01']);
      assert.deepEqual(await ids({ eventCode: '110110' }), ['2024-02-01']);
      assert.deepEqual(await ids({ outcome: 4, roleId: 'steward' }), ['2024-02-02']);
      assert.deepEqual(await ids({ project: 'trial', participantObjectId: '2.25.1' }), ['2024-02-03']);
      assert.deepEqual(await ids({ since: at(2), until: at(3) }), ['2024-02-02']);
      const newest = await store.list({ limit: 2, newestFirst: true, since: at(1) });
      assert.deepEqual(newest.map((e) => e.userId), ['r-9', 's-1']);
      const older = await store.list({ limit: 2, newestFirst: true, since: at(1), afterId: newest[1]?.id as string });
      assert.deepEqual(older.map((e) => e.eventDateTime.toISOString().slice(0, 10)), ['2024-02-01']);
    } finally {
      await store.close();
    }
  });
  // After the migration test, which needs a database without tables.
  test('the de-identified study index: entries and keys, byte-wise ranges, scopes apart, state and clear', async () => {
    const store = await openPostgresStore({ url: db.url });
    try {
      await assertStudyIndexContract(store);
    } finally {
      await store.close();
    }
  });
});

import pg from 'pg';
import { AUDIT_ADDED_COLUMNS, AUDIT_COLUMNS, auditRecordOf, auditValues, type AuditRow, type AuditTrail } from './audit-trail.ts';
import { StoreError } from './errors.ts';
import type { Mapping, MappingKind, PseudonymStore } from './pseudonym-store.ts';

export interface PostgresStoreOptions {
  /** `postgres://user@host:port/db` */
  readonly url: string;
  readonly password?: string;
  readonly poolMax?: number;
}

/** Serialises schema creation when several replicas start at once (`CREATE … IF NOT EXISTS` alone races). */
const SCHEMA_LOCK = 0x6465_6964; // "deid"

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS pseudonym (
    kind       text NOT NULL,
    pseudonym  text NOT NULL,
    original   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, pseudonym)
  );
  CREATE TABLE IF NOT EXISTS audit_event (
    id                              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_date_time                 timestamptz NOT NULL,
    event_id                        text NOT NULL,
    event_type_code                 text,
    event_action_code               text NOT NULL CHECK (event_action_code IN ('C', 'R', 'U', 'D', 'E')),
    event_outcome_indicator         smallint NOT NULL CHECK (event_outcome_indicator IN (0, 4, 8, 12)),
    user_id                         text NOT NULL,
    role_id                         text NOT NULL,
    route                           text NOT NULL,
    http_status                     smallint NOT NULL,
    participant_object_id           text,
    participant_object_id_type_code text,
    request_id                      text,
    series_instance_uid             text,
    participant_object_query        jsonb
  );
  -- A trail created by an older release gains the columns added since.
  ${AUDIT_ADDED_COLUMNS.map((c) => `ALTER TABLE audit_event ADD COLUMN IF NOT EXISTS ${c.name} ${c.postgres};`).join('\n  ')}
  CREATE INDEX IF NOT EXISTS audit_event_time ON audit_event (event_date_time);
  -- Append-only: the trail is evidence. (Also grant the gateway's database role INSERT and SELECT only.)
  CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    RAISE EXCEPTION 'audit_event is append-only' USING ERRCODE = 'insufficient_privilege';
  END
  $$;
  CREATE OR REPLACE TRIGGER audit_event_no_update_delete BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
  CREATE OR REPLACE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();
`;

/**
 * Rows are inserted in key order, so two replicas saving overlapping batches take row locks in the same
 * order and never deadlock. `ON CONFLICT DO NOTHING` waits for a concurrent insert of the same key to
 * commit; the SELECT that follows (a new snapshot under READ COMMITTED) then sees the winner's row.
 */
const INSERT = `
  INSERT INTO pseudonym (kind, pseudonym, original)
  SELECT k, p, o FROM unnest($1::text[], $2::text[], $3::text[]) AS t(k, p, o) ORDER BY k, p
  ON CONFLICT (kind, pseudonym) DO NOTHING`;
const STORED = `
  SELECT s.kind, s.pseudonym, s.original
  FROM pseudonym s JOIN unnest($1::text[], $2::text[]) AS t(k, p) ON s.kind = t.k AND s.pseudonym = t.p`;

/** SQLSTATEs worth one more try: serialization failure, deadlock. */
const RETRYABLE = new Set(['40001', '40P01']);

/**
 * The store for several gateway replicas: one PostgreSQL database (pg Pool). The same contract as the
 * SQLite store: a save is committed (durable, `synchronous_commit` as the server has it) before it
 * resolves, and a pseudonym that already maps to another original is refused, the whole batch with it.
 */
export async function openPostgresStore(options: PostgresStoreOptions): Promise<PseudonymStore & AuditTrail> {
  const pool = new pg.Pool({
    connectionString: options.url,
    ...(options.password !== undefined ? { password: options.password } : {}),
    max: options.poolMax ?? 10,
  });
  // An idle client's connection dropping is reported here; the next query reconnects or fails as a StoreError.
  pool.on('error', () => {});
  try {
    await inTransaction(pool, async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
      await client.query(SCHEMA);
    });
  } catch (cause) {
    await pool.end().catch(() => {});
    throw new StoreError('STORE_OPEN_FAILED', 'the pseudonym store could not be opened', { cause });
  }

  async function saveOnce(batch: readonly Mapping[]): Promise<void> {
    const columns = [batch.map((m) => m.kind), batch.map((m) => m.pseudonym), batch.map((m) => m.original)];
    await inTransaction(pool, async (client) => {
      await client.query(INSERT, columns);
      const { rows } = await client.query<{ kind: string; pseudonym: string; original: string }>(STORED, columns.slice(0, 2));
      const stored = new Map(rows.map((r) => [`${r.kind}\u0000${r.pseudonym}`, r.original]));
      const clash = batch.find((m) => stored.get(`${m.kind}\u0000${m.pseudonym}`) !== m.original);
      if (clash) {
        // Two originals behind one pseudonym would make re-identification ambiguous: refuse.
        throw new StoreError('STORE_PSEUDONYM_COLLISION', `a ${clash.kind} pseudonym already maps to another original`);
      }
    });
  }

  return {
    async save(mappings) {
      if (mappings.length === 0) return;
      const batch = uniqueByKey(mappings);
      for (let attempt = 1; ; attempt++) {
        try {
          await saveOnce(batch);
          return;
        } catch (cause) {
          if (cause instanceof StoreError) throw cause;
          if (attempt < 3 && RETRYABLE.has((cause as { code?: string }).code ?? '')) continue;
          throw new StoreError('STORE_WRITE_FAILED', 'the pseudonym store could not be written', { cause });
        }
      }
    },
    async originalOf(kind: MappingKind, pseudonym: string) {
      try {
        const { rows } = await pool.query<{ original: string }>('SELECT original FROM pseudonym WHERE kind = $1 AND pseudonym = $2', [
          kind,
          pseudonym,
        ]);
        return rows[0]?.original;
      } catch (cause) {
        throw new StoreError('STORE_READ_FAILED', 'the pseudonym store could not be read', { cause });
      }
    },
    // Each save commits with PostgreSQL's own durability (synchronous_commit): nothing is left to flush.
    async sync() {},
    async count() {
      const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM pseudonym');
      return rows[0]?.n ?? 0;
    },
    async append(event) {
      try {
        await pool.query(
          `INSERT INTO audit_event (${AUDIT_COLUMNS.join(', ')}) VALUES (${AUDIT_COLUMNS.map((_, i) => `$${i + 1}`).join(', ')})`,
          auditValues(event),
        );
      } catch (cause) {
        throw new StoreError('STORE_AUDIT_WRITE_FAILED', 'the audit trail could not be written', { cause });
      }
    },
    async list({ since, afterId, limit }) {
      try {
        const { rows } = await pool.query<AuditRow>(
          `SELECT * FROM audit_event WHERE ($1::timestamptz IS NULL OR event_date_time >= $1) AND ($2::bigint IS NULL OR id > $2)
           ORDER BY id LIMIT $3`,
          [since?.toISOString() ?? null, afterId ?? null, limit],
        );
        return rows.map(auditRecordOf);
      } catch (cause) {
        throw new StoreError('STORE_READ_FAILED', 'the audit trail could not be read', { cause });
      }
    },
    async close() {
      await pool.end();
    },
  };
}

/** Runs `work` in one transaction on one pooled connection: committed if it resolves, rolled back if not. */
async function inTransaction(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<void>): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await work(client);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

/** One row per key; the same key twice with different originals is a collision within the batch. */
function uniqueByKey(mappings: readonly Mapping[]): Mapping[] {
  const byKey = new Map<string, Mapping>();
  for (const m of mappings) {
    const key = `${m.kind}\u0000${m.pseudonym}`;
    const seen = byKey.get(key);
    if (seen && seen.original !== m.original) {
      throw new StoreError('STORE_PSEUDONYM_COLLISION', `a ${m.kind} pseudonym already maps to another original`);
    }
    byKey.set(key, m);
  }
  return [...byKey.values()];
}

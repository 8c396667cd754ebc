import pg from 'pg';
import { AUDIT_ADDED_COLUMNS, AUDIT_COLUMNS, auditQuerySql, auditRecordOf, auditValues, type AuditRow, type AuditTrail } from './audit-trail.ts';
import { StoreError } from './errors.ts';
import type { Mapping, MappingKind, PseudonymStore } from './pseudonym-store.ts';
import type { NewProject, ProjectStore } from './project-store.ts';
import { projectOfRow, projectValues, UNSCOPED, type ProjectRow } from './project-rows.ts';
import { studyIndexSchema, type StudyIndexStore } from './study-index-store.ts';

export interface PostgresStoreOptions {
  /** `postgres://user@host:port/db` */
  readonly url: string;
  readonly password?: string;
  readonly poolMax?: number;
}

/** Serialises schema creation when several replicas start at once (`CREATE … IF NOT EXISTS` alone races). */
const SCHEMA_LOCK = 0x6465_6964; // "deid"

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS scoped_pseudonym (
    scope      text NOT NULL,
    kind       text NOT NULL,
    pseudonym  text NOT NULL,
    original   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, kind, pseudonym)
  );
  -- A store written before projects: its unscoped mappings move, once, to the scope no caller reads
  -- (project-rows.ts UNSCOPED; see sqlite-store.ts scopeUnscopedMappings).
  DO $$ BEGIN
    IF to_regclass('pseudonym') IS NOT NULL THEN
      INSERT INTO scoped_pseudonym (scope, kind, pseudonym, original, created_at)
        SELECT '${UNSCOPED}', kind, pseudonym, original, created_at FROM pseudonym ON CONFLICT DO NOTHING;
      DROP TABLE pseudonym;
    END IF;
  END $$;
  CREATE TABLE IF NOT EXISTS project (
    name        text PRIMARY KEY,
    description text NOT NULL,
    profile     text,
    all_studies smallint NOT NULL CHECK (all_studies IN (0, 1)),
    query       text,
    created_at  timestamptz NOT NULL DEFAULT now()
  );
  CREATE TABLE IF NOT EXISTS project_study (
    project   text NOT NULL REFERENCES project (name),
    study_uid text NOT NULL,
    PRIMARY KEY (project, study_uid)
  );
  CREATE TABLE IF NOT EXISTS withdrawal (
    project    text NOT NULL,
    patient_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project, patient_id)
  );
  CREATE TABLE IF NOT EXISTS projects_version (
    id      smallint PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL
  );
  INSERT INTO projects_version (id, version) VALUES (1, 0) ON CONFLICT DO NOTHING;
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
  ${studyIndexSchema('text COLLATE "C"')}
`;

/**
 * Rows are inserted in key order, so two replicas saving overlapping batches take row locks in the same
 * order and never deadlock. `ON CONFLICT DO NOTHING` waits for a concurrent insert of the same key to
 * commit; the SELECT that follows (a new snapshot under READ COMMITTED) then sees the winner's row.
 */
const INSERT = `
  INSERT INTO scoped_pseudonym (scope, kind, pseudonym, original)
  SELECT $4, k, p, o FROM unnest($1::text[], $2::text[], $3::text[]) AS t(k, p, o) ORDER BY k, p
  ON CONFLICT (scope, kind, pseudonym) DO NOTHING`;
const STORED = `
  SELECT s.kind, s.pseudonym, s.original
  FROM scoped_pseudonym s JOIN unnest($1::text[], $2::text[]) AS t(k, p) ON s.scope = $3 AND s.kind = t.k AND s.pseudonym = t.p`;

/** SQLSTATEs worth one more try: serialization failure, deadlock. */
const RETRYABLE = new Set(['40001', '40P01']);

/**
 * The store for several gateway replicas: one PostgreSQL database (pg Pool). The same contract as the
 * SQLite store: a save is committed (durable, `synchronous_commit` as the server has it) before it
 * resolves, and a pseudonym that already maps to another original is refused, the whole batch with it.
 */
export async function openPostgresStore(options: PostgresStoreOptions): Promise<PseudonymStore & AuditTrail & ProjectStore & StudyIndexStore> {
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

  async function saveOnce(scope: string, batch: readonly Mapping[]): Promise<void> {
    const columns = [batch.map((m) => m.kind), batch.map((m) => m.pseudonym), batch.map((m) => m.original)];
    await inTransaction(pool, async (client) => {
      await client.query(INSERT, [...columns, scope]);
      const { rows } = await client.query<{ kind: string; pseudonym: string; original: string }>(STORED, [...columns.slice(0, 2), scope]);
      const stored = new Map(rows.map((r) => [`${r.kind}\u0000${r.pseudonym}`, r.original]));
      const clash = batch.find((m) => stored.get(`${m.kind}\u0000${m.pseudonym}`) !== m.original);
      if (clash) {
        // Two originals behind one pseudonym would make re-identification ambiguous: refuse.
        throw new StoreError('STORE_PSEUDONYM_COLLISION', `a ${clash.kind} pseudonym already maps to another original`);
      }
    });
  }

  return {
    async save(scope, mappings) {
      if (mappings.length === 0) return 0;
      const batch = uniqueByKey(mappings);
      for (let attempt = 1; ; attempt++) {
        try {
          await saveOnce(scope, batch);
          return batch.length;
        } catch (cause) {
          if (cause instanceof StoreError) throw cause;
          if (attempt < 3 && RETRYABLE.has((cause as { code?: string }).code ?? '')) continue;
          throw new StoreError('STORE_WRITE_FAILED', 'the pseudonym store could not be written', { cause });
        }
      }
    },
    async originalOf(scope: string, kind: MappingKind, pseudonym: string) {
      try {
        const { rows } = await pool.query<{ original: string }>(
          'SELECT original FROM scoped_pseudonym WHERE scope = $1 AND kind = $2 AND pseudonym = $3',
          [scope, kind, pseudonym],
        );
        return rows[0]?.original;
      } catch (cause) {
        throw new StoreError('STORE_READ_FAILED', 'the pseudonym store could not be read', { cause });
      }
    },
    // Each save commits with PostgreSQL's own durability (synchronous_commit): nothing is left to flush.
    async sync() {},
    async count() {
      const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM scoped_pseudonym');
      return rows[0]?.n ?? 0;
    },
    ...projectQueries(pool),
    ...studyIndexQueries(pool),
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
    async list(query) {
      try {
        const values: Array<string | number> = [];
        const sql = auditQuerySql(query, (value, type) => {
          values.push(value);
          return `$${values.length}::${type === 'int' ? 'integer' : type}`;
        });
        const { rows } = await pool.query<AuditRow>(`SELECT * FROM audit_event ${sql}`, values);
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

/** A query's rows; a failure becomes STORE_READ_FAILED naming `what` (the project store, the study index). */
function rowsReader(pool: pg.Pool, what: string) {
  return async <R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<R[]> => {
    try {
      return (await pool.query<R>(text, values)).rows;
    } catch (cause) {
      throw new StoreError('STORE_READ_FAILED', `${what} could not be read`, { cause });
    }
  };
}

const ADD_STUDIES = 'INSERT INTO project_study (project, study_uid) SELECT $1, u FROM unnest($2::text[]) AS t(u) ORDER BY u ON CONFLICT DO NOTHING';

/** The ProjectStore half: each change and the version increment in one transaction. */
function projectQueries(pool: pg.Pool): ProjectStore {
  const read = rowsReader(pool, 'the project store');
  /** Runs one change (and what follows it, if it changed a row) and increments the version, in one transaction. */
  const change = async (text: string, values: unknown[], then?: (client: pg.PoolClient) => Promise<void>): Promise<number> => {
    let changed = 0;
    try {
      await inTransaction(pool, async (client) => {
        changed = (await client.query(text, values)).rowCount ?? 0;
        if (changed === 0) return;
        await then?.(client);
        await client.query('UPDATE projects_version SET version = version + 1 WHERE id = 1');
      });
    } catch (cause) {
      throw new StoreError('STORE_WRITE_FAILED', 'the project store could not be written', { cause });
    }
    return changed;
  };
  return {
    async projectsVersion() {
      const rows = await read<{ version: string }>('SELECT version FROM projects_version WHERE id = 1', []);
      return Number(rows[0]?.version ?? 0);
    },
    async projects() {
      return (await read<ProjectRow>('SELECT * FROM project ORDER BY name', [])).map(projectOfRow);
    },
    async project(name) {
      const [row] = await read<ProjectRow>('SELECT * FROM project WHERE name = $1', [name]);
      return row && projectOfRow(row);
    },
    async createProject(p: NewProject, uids: readonly string[] = []) {
      const sql = 'INSERT INTO project (name, description, profile, all_studies, query) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING';
      const withStudies = async (client: pg.PoolClient) => {
        if (uids.length > 0) await client.query(ADD_STUDIES, [p.name, [...new Set(uids)]]);
      };
      return (await change(sql, projectValues(p), withStudies)) > 0;
    },
    addStudies: (name, uids) => change(ADD_STUDIES, [name, [...new Set(uids)]]),
    removeStudies: (name, uids) => change('DELETE FROM project_study WHERE project = $1 AND study_uid = ANY($2::text[])', [name, [...uids]]),
    async studies(name, { limit, offset }) {
      const rows = await read<{ study_uid: string }>(
        'SELECT study_uid FROM project_study WHERE project = $1 ORDER BY study_uid LIMIT $2 OFFSET $3',
        [name, limit, offset],
      );
      return rows.map((r) => r.study_uid);
    },
    async studyCount(name) {
      const rows = await read<{ n: number }>('SELECT count(*)::int AS n FROM project_study WHERE project = $1', [name]);
      return rows[0]?.n ?? 0;
    },
    async membersAmong(name, uids) {
      const rows = await read<{ study_uid: string }>(
        'SELECT study_uid FROM project_study WHERE project = $1 AND study_uid = ANY($2::text[])',
        [name, [...uids]],
      );
      return new Set(rows.map((r) => r.study_uid));
    },
    async withdraw(project, patientId) {
      const sql = 'INSERT INTO withdrawal (project, patient_id) VALUES ($1, $2) ON CONFLICT DO NOTHING';
      return (await change(sql, [project ?? '', patientId])) > 0;
    },
    async withdrawnPatients(project) {
      const rows = await read<{ patient_id: string }>("SELECT patient_id FROM withdrawal WHERE project = $1 OR project = ''", [project]);
      return new Set(rows.map((r) => r.patient_id));
    },
  };
}

/** The de-identified study index (study-index-store.ts); its key column compares byte-wise (`COLLATE "C"`). */
function studyIndexQueries(pool: pg.Pool): StudyIndexStore {
  const read = rowsReader(pool, 'the study index');
  const write = async (work: (client: pg.PoolClient) => Promise<void>) => {
    try {
      await inTransaction(pool, work);
    } catch (cause) {
      throw new StoreError('STORE_WRITE_FAILED', 'the study index could not be written', { cause });
    }
  };
  return {
    async studyIndexState(scope) {
      const [row] = await read<{ fingerprint: string; change_seq: string | null; built_at: string }>(
        'SELECT fingerprint, change_seq, built_at FROM study_index_state WHERE scope = $1',
        [scope],
      );
      return row && { fingerprint: row.fingerprint, changeSeq: row.change_seq === null ? null : Number(row.change_seq), builtAt: row.built_at };
    },
    setStudyIndexState: (scope, next, { clear = false } = {}) =>
      write(async (client) => {
        if (clear) {
          await client.query('DELETE FROM study_index_entry WHERE scope = $1', [scope]);
          await client.query('DELETE FROM study_index_key WHERE scope = $1', [scope]);
        }
        if (!next) await client.query('DELETE FROM study_index_state WHERE scope = $1', [scope]);
        else {
          await client.query(
            'INSERT INTO study_index_state (scope, fingerprint, change_seq, built_at) VALUES ($1, $2, $3, $4) ON CONFLICT (scope) DO UPDATE SET fingerprint = excluded.fingerprint, change_seq = excluded.change_seq, built_at = excluded.built_at',
            [scope, next.fingerprint, next.changeSeq, next.builtAt],
          );
        }
      }),
    putStudyIndexEntries: (scope, entries) =>
      write(async (client) => {
        if (entries.length === 0) return;
        const sorted = [...entries].sort((a, b) => (a.study < b.study ? -1 : a.study > b.study ? 1 : 0)); // lock order: no deadlock between replicas
        const studies = sorted.map((e) => e.study);
        await client.query(
          'INSERT INTO study_index_entry (scope, study, doc) SELECT $1, s, d FROM unnest($2::text[], $3::text[]) AS t(s, d) ON CONFLICT (scope, study) DO UPDATE SET doc = excluded.doc',
          [scope, studies, sorted.map((e) => e.doc)],
        );
        await client.query('DELETE FROM study_index_key WHERE scope = $1 AND study = ANY($2::text[])', [scope, studies]);
        const keys = sorted.flatMap((e) => e.keys.map(([tag, value]) => [tag, value, e.study] as const));
        await client.query(
          'INSERT INTO study_index_key (scope, tag, value, study) SELECT $1, g, v, s FROM unnest($2::bigint[], $3::text[], $4::text[]) AS t(g, v, s) ON CONFLICT DO NOTHING',
          [scope, keys.map((k) => k[0]), keys.map((k) => k[1]), keys.map((k) => k[2])],
        );
      }),
    async studyIndexMatches(scope, ranges) {
      const found = new Set<string>();
      for (const r of ranges) {
        const rows = await read<{ study: string }>(
          `SELECT study FROM study_index_key WHERE scope = $1 AND tag = $2 AND value >= $3 AND ($4 = '' OR value < $4)`,
          [scope, r.tag, r.from, r.below],
        );
        for (const row of rows) found.add(row.study);
      }
      return [...found];
    },
    async studyIndexDocs(scope, studies) {
      if (studies === undefined) return read<{ study: string; doc: string }>('SELECT study, doc FROM study_index_entry WHERE scope = $1', [scope]);
      return read<{ study: string; doc: string }>('SELECT study, doc FROM study_index_entry WHERE scope = $1 AND study = ANY($2::text[])', [scope, [...studies]]);
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

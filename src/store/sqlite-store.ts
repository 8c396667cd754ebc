import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { StoreError } from './errors.ts';
import type { Mapping, MappingKind, PseudonymStore } from './pseudonym-store.ts';
import type { NewProject, ProjectStore } from './project-store.ts';
import { projectOfRow, projectValues, UNSCOPED, type ProjectRow } from './project-rows.ts';
import { AUDIT_ADDED_COLUMNS, AUDIT_COLUMNS, auditQuerySql, auditRecordOf, auditValues, type AuditQuery, type AuditRow, type AuditTrail } from './audit-trail.ts';
import { studyIndexSchema, type StudyIndexEntry, type StudyIndexState, type StudyIndexStore } from './study-index-store.ts';

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS scoped_pseudonym (
    scope      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    pseudonym  TEXT NOT NULL,
    original   TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (scope, kind, pseudonym)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS project (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    profile     TEXT,
    all_studies INTEGER NOT NULL CHECK (all_studies IN (0, 1)),
    query       TEXT,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
  );
  CREATE TABLE IF NOT EXISTS project_study (
    project   TEXT NOT NULL REFERENCES project (name),
    study_uid TEXT NOT NULL,
    PRIMARY KEY (project, study_uid)
  ) WITHOUT ROWID;
  -- project '' : withdrawn from every project.
  CREATE TABLE IF NOT EXISTS withdrawal (
    project    TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (project, patient_id)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS projects_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
  );
  INSERT OR IGNORE INTO projects_version (id, version) VALUES (1, 0);
  CREATE TABLE IF NOT EXISTS audit_event (
    id                              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_date_time                 TEXT NOT NULL,
    event_id                        TEXT NOT NULL,
    event_type_code                 TEXT,
    event_action_code               TEXT NOT NULL CHECK (event_action_code IN ('C', 'R', 'U', 'D', 'E')),
    event_outcome_indicator         INTEGER NOT NULL CHECK (event_outcome_indicator IN (0, 4, 8, 12)),
    user_id                         TEXT NOT NULL,
    role_id                         TEXT NOT NULL,
    route                           TEXT NOT NULL,
    http_status                     INTEGER NOT NULL,
    participant_object_id           TEXT,
    participant_object_id_type_code TEXT,
    request_id                      TEXT,
    series_instance_uid             TEXT,
    participant_object_query        TEXT
  );
  CREATE INDEX IF NOT EXISTS audit_event_time ON audit_event (event_date_time);
  -- Append-only: the trail is evidence; nothing in the gateway may rewrite it.
  CREATE TRIGGER IF NOT EXISTS audit_event_no_update BEFORE UPDATE ON audit_event
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END;
  CREATE TRIGGER IF NOT EXISTS audit_event_no_delete BEFORE DELETE ON audit_event
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END;
`;

/**
 * The embedded default: one SQLite file in the data dir (better-sqlite3, built from source at install).
 * WAL with `synchronous = NORMAL`: a committed `save` is in the WAL file (it survives a crash of the
 * process); `sync` fsyncs the WAL, which makes every commit before it durable against power loss
 * (checkpoints under NORMAL sync the WAL and the database themselves). One fsync per response, not one
 * per instance, and it runs off the event loop.
 */
export function openSqliteStore(file: string): PseudonymStore & AuditTrail & ProjectStore & StudyIndexStore {
  // 1. The file, owner only, before SQLite opens it.
  if (file !== ':memory:') createPrivateFile(file);
  // 2. The database in WAL mode, its schema created or brought up to date.
  const db = openDatabase(file);
  // 3. The statements, prepared once.
  const { select, saveAll } = pseudonymStatements(db);
  const { appendAudit, listAudit } = auditStatements(db);
  const projects = projectStatements(db);
  const studyIndex = studyIndexStatements(db);
  // 4. Durability: every write marks the WAL dirty; `sync` fsyncs it once for all the writes before it.
  const sync = groupCommit(file === ':memory:' ? async () => undefined : () => fsyncFile(`${file}-wal`));
  // 5. The store: SQLite failures become StoreErrors with a code.
  return {
    async save(scope, mappings) {
      if (mappings.length === 0) return 0;
      try {
        sync.dirty();
        saveAll(scope, mappings);
        return mappings.length;
      } catch (cause) {
        if (cause instanceof StoreError) throw cause;
        throw new StoreError('STORE_WRITE_FAILED', 'the pseudonym store could not be written', { cause });
      }
    },
    async originalOf(scope: string, kind: MappingKind, pseudonym: string) {
      return select.get(scope, kind, pseudonym)?.original;
    },
    async sync() {
      try {
        await sync.flush();
      } catch (cause) {
        throw new StoreError('STORE_WRITE_FAILED', 'the pseudonym store could not be flushed to disk', { cause });
      }
    },
    async count() {
      return (db.prepare('SELECT count(*) AS n FROM scoped_pseudonym').get() as { n: number }).n;
    },
    ...projects,
    ...studyIndex,
    async append(event) {
      try {
        sync.dirty();
        appendAudit.run(...auditValues(event));
      } catch (cause) {
        throw new StoreError('STORE_AUDIT_WRITE_FAILED', 'the audit trail could not be written', { cause });
      }
    },
    async list(query) {
      return listAudit(query).map(auditRecordOf);
    },
    async close() {
      db.close();
    },
  };
}

/**
 * The file holds originals and the audit trail: owner only. SQLite gives its -wal and -shm files the
 * database file's mode, so creating it 0600 covers all three.
 */
function createPrivateFile(file: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  closeSync(openSync(file, 'a', 0o600));
  chmodSync(file, 0o600);
}

function openDatabase(file: string): Database.Database {
  try {
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON'); // project_study.project REFERENCES project, as PostgreSQL enforces it
    db.exec(SCHEMA);
    db.exec(studyIndexSchema('TEXT'));
    addMissingAuditColumns(db);
    scopeUnscopedMappings(db);
    return db;
  } catch (cause) {
    throw new StoreError('STORE_OPEN_FAILED', 'the pseudonym store could not be opened', { cause });
  }
}

/**
 * A store written by a release before projects holds unscoped mappings (table `pseudonym`): they move,
 * once, to the scope `UNSCOPED`, which no caller reads. Their pseudonyms were keyed without a scope, so
 * no project or upload shows them any more; they are kept (not deleted) for an operator to map back in
 * the database if a pseudonym given out before the upgrade must be re-identified.
 */
function scopeUnscopedMappings(db: Database.Database): void {
  const old = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pseudonym'").get();
  if (!old) return;
  db.transaction(() => {
    db.prepare('INSERT OR IGNORE INTO scoped_pseudonym (scope, kind, pseudonym, original, created_at) SELECT ?, kind, pseudonym, original, created_at FROM pseudonym').run(UNSCOPED);
    db.exec('DROP TABLE pseudonym');
  })();
}

function pseudonymStatements(db: Database.Database) {
  const insert = db.prepare('INSERT INTO scoped_pseudonym (scope, kind, pseudonym, original) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING');
  const select = db.prepare<[string, string, string], { original: string }>(
    'SELECT original FROM scoped_pseudonym WHERE scope = ? AND kind = ? AND pseudonym = ?',
  );
  const saveAll = db.transaction((scope: string, mappings: readonly Mapping[]) => {
    for (const m of mappings) {
      const result = insert.run(scope, m.kind, m.pseudonym, m.original);
      if (result.changes === 0 && select.get(scope, m.kind, m.pseudonym)?.original !== m.original) {
        // Two originals behind one pseudonym would make re-identification ambiguous: refuse.
        throw new StoreError('STORE_PSEUDONYM_COLLISION', `a ${m.kind} pseudonym already maps to another original`);
      }
    }
  });
  return { select, saveAll };
}

/** Runs a write; a failure becomes STORE_WRITE_FAILED naming `what` (the project store, the study index). */
function writer(what: string) {
  return <T>(run: () => T): T => {
    try {
      return run();
    } catch (cause) {
      throw new StoreError('STORE_WRITE_FAILED', `${what} could not be written`, { cause });
    }
  };
}

/** The ProjectStore half: each change and the version increment in one transaction. */
function projectStatements(db: Database.Database): ProjectStore {
  const bump = db.prepare('UPDATE projects_version SET version = version + 1 WHERE id = 1');
  const version = db.prepare<[], { version: number }>('SELECT version FROM projects_version WHERE id = 1');
  const all = db.prepare<[], ProjectRow>('SELECT * FROM project ORDER BY name');
  const one = db.prepare<[string], ProjectRow>('SELECT * FROM project WHERE name = ?');
  const create = db.prepare(
    'INSERT INTO project (name, description, profile, all_studies, query) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
  );
  const add = db.prepare('INSERT INTO project_study (project, study_uid) VALUES (?, ?) ON CONFLICT DO NOTHING');
  const remove = db.prepare('DELETE FROM project_study WHERE project = ? AND study_uid = ?');
  const page = db.prepare<[string, number, number], { study_uid: string }>(
    'SELECT study_uid FROM project_study WHERE project = ? ORDER BY study_uid LIMIT ? OFFSET ?',
  );
  const count = db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM project_study WHERE project = ?');
  const member = db.prepare<[string, string], { one: number }>('SELECT 1 AS one FROM project_study WHERE project = ? AND study_uid = ?');
  const withdraw = db.prepare('INSERT INTO withdrawal (project, patient_id) VALUES (?, ?) ON CONFLICT DO NOTHING');
  const withdrawn = db.prepare<[string, string], { patient_id: string }>(
    'SELECT patient_id FROM withdrawal WHERE project = ? OR project = ?',
  );
  /** Runs `change` and, if it changed anything, increments the version, in one transaction. */
  const changing = <A extends unknown[]>(change: (...args: A) => number) =>
    db.transaction((...args: A): number => {
      const changed = change(...args);
      if (changed > 0) bump.run();
      return changed;
    });
  const createTx = changing((p: NewProject, uids: readonly string[]) => {
    if (create.run(...projectValues(p)).changes === 0) return 0;
    for (const uid of uids) add.run(p.name, uid);
    return 1;
  });
  const addTx = changing((name: string, uids: readonly string[]) => uids.reduce((n, uid) => n + add.run(name, uid).changes, 0));
  const removeTx = changing((name: string, uids: readonly string[]) => uids.reduce((n, uid) => n + remove.run(name, uid).changes, 0));
  const withdrawTx = changing((project: string, patientId: string) => withdraw.run(project, patientId).changes);
  const write = writer('the project store');
  return {
    async projectsVersion() {
      return version.get()?.version ?? 0;
    },
    async projects() {
      return all.all().map(projectOfRow);
    },
    async project(name) {
      const row = one.get(name);
      return row && projectOfRow(row);
    },
    async createProject(p, uids = []) {
      return write(() => createTx(p, uids)) > 0;
    },
    async addStudies(name, uids) {
      return write(() => addTx(name, uids));
    },
    async removeStudies(name, uids) {
      return write(() => removeTx(name, uids));
    },
    async studies(name, { limit, offset }) {
      return page.all(name, limit, offset).map((r) => r.study_uid);
    },
    async studyCount(name) {
      return count.get(name)?.n ?? 0;
    },
    async membersAmong(name, uids) {
      return new Set(uids.filter((uid) => member.get(name, uid) !== undefined));
    },
    async withdraw(project, patientId) {
      return write(() => withdrawTx(project ?? '', patientId)) > 0;
    },
    async withdrawnPatients(project) {
      return new Set(withdrawn.all(project, '').map((r) => r.patient_id));
    },
  } satisfies ProjectStore;
}

/** The de-identified study index (study-index-store.ts); a rebuild's clear and its state in one transaction. */
function studyIndexStatements(db: Database.Database): StudyIndexStore {
  const state = db.prepare<[string], { fingerprint: string; change_seq: number | null; built_at: string }>(
    'SELECT fingerprint, change_seq, built_at FROM study_index_state WHERE scope = ?',
  );
  const upsertState = db.prepare(
    'INSERT INTO study_index_state (scope, fingerprint, change_seq, built_at) VALUES (?, ?, ?, ?) ON CONFLICT (scope) DO UPDATE SET fingerprint = excluded.fingerprint, change_seq = excluded.change_seq, built_at = excluded.built_at',
  );
  const deleteState = db.prepare('DELETE FROM study_index_state WHERE scope = ?');
  const clearEntries = db.prepare('DELETE FROM study_index_entry WHERE scope = ?');
  const clearKeys = db.prepare('DELETE FROM study_index_key WHERE scope = ?');
  const putEntry = db.prepare('INSERT INTO study_index_entry (scope, study, doc) VALUES (?, ?, ?) ON CONFLICT (scope, study) DO UPDATE SET doc = excluded.doc');
  const dropKeys = db.prepare('DELETE FROM study_index_key WHERE scope = ? AND study = ?');
  const putKey = db.prepare('INSERT INTO study_index_key (scope, tag, value, study) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING');
  const range = db.prepare<[string, number, string, string, string], { study: string }>(
    "SELECT study FROM study_index_key WHERE scope = ? AND tag = ? AND value >= ? AND (? = '' OR value < ?)",
  );
  const allDocs = db.prepare<[string], { study: string; doc: string }>('SELECT study, doc FROM study_index_entry WHERE scope = ?');
  const oneDoc = db.prepare<[string, string], { study: string; doc: string }>('SELECT study, doc FROM study_index_entry WHERE scope = ? AND study = ?');
  const setState = db.transaction((scope: string, next: StudyIndexState | undefined, clear: boolean) => {
    if (clear) {
      clearEntries.run(scope);
      clearKeys.run(scope);
    }
    if (next) upsertState.run(scope, next.fingerprint, next.changeSeq, next.builtAt);
    else deleteState.run(scope);
  });
  const putAll = db.transaction((scope: string, entries: readonly StudyIndexEntry[]) => {
    for (const e of entries) {
      putEntry.run(scope, e.study, e.doc);
      dropKeys.run(scope, e.study);
      for (const [tag, value] of e.keys) putKey.run(scope, tag, value, e.study);
    }
  });
  const write = writer('the study index');
  return {
    async studyIndexState(scope) {
      const row = state.get(scope);
      return row && { fingerprint: row.fingerprint, changeSeq: row.change_seq, builtAt: row.built_at };
    },
    async setStudyIndexState(scope, next, { clear = false } = {}) {
      write(() => setState(scope, next, clear));
    },
    async putStudyIndexEntries(scope, entries) {
      write(() => putAll(scope, entries));
    },
    async studyIndexMatches(scope, ranges) {
      const found = new Set<string>();
      for (const r of ranges) for (const row of range.all(scope, r.tag, r.from, r.below, r.below)) found.add(row.study);
      return [...found];
    },
    async studyIndexDocs(scope, studies) {
      if (studies === undefined) return allDocs.all(scope);
      return studies.flatMap((study) => oneDoc.get(scope, study) ?? []);
    },
  };
}

function auditStatements(db: Database.Database) {
  const appendAudit = db.prepare(
    `INSERT INTO audit_event (${AUDIT_COLUMNS.join(', ')}) VALUES (${AUDIT_COLUMNS.map(() => '?').join(', ')})`,
  );
  // ISO 8601 UTC text sorts as time, so `since` and `until` compare as text. One statement per filter shape.
  const shapes = new Map<string, Database.Statement<Array<string | number>, AuditRow>>();
  const listAudit = (query: AuditQuery): AuditRow[] => {
    const values: Array<string | number> = [];
    const sql = `SELECT * FROM audit_event ${auditQuerySql(query, (value, type) => {
      values.push(value);
      return type === 'bigint' ? 'CAST(? AS INTEGER)' : '?';
    })}`;
    let statement = shapes.get(sql);
    if (!statement) {
      statement = db.prepare<Array<string | number>, AuditRow>(sql);
      shapes.set(sql, statement);
    }
    return statement.all(...values);
  };
  return { appendAudit, listAudit };
}

/** A trail created by an older release gains the columns added since (its records keep NULL there). */
function addMissingAuditColumns(db: Database.Database): void {
  const present = new Set((db.pragma('table_info(audit_event)') as Array<{ name: string }>).map((c) => c.name));
  for (const column of AUDIT_ADDED_COLUMNS) {
    if (!present.has(column.name)) db.exec(`ALTER TABLE audit_event ADD COLUMN ${column.name} ${column.sqlite}`);
  }
}

async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Coalesces flushes: `flush()` resolves once a flush that started after the latest `dirty()` has
 * finished; callers arriving while one runs share the next.
 */
function groupCommit(flushToDisk: () => Promise<void>) {
  let written = 0;
  let flushed = 0;
  let running: Promise<void> | undefined;
  return {
    dirty() {
      written++;
    },
    async flush(): Promise<void> {
      while (flushed < written) {
        if (running) {
          await running;
          continue;
        }
        const target = written;
        running = flushToDisk().finally(() => (running = undefined));
        await running;
        flushed = Math.max(flushed, target);
      }
    },
  };
}

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { StoreError } from './errors.ts';
import type { Mapping, MappingKind, PseudonymStore } from './pseudonym-store.ts';

/**
 * The embedded default: one SQLite file in the data dir (better-sqlite3, built from source at install).
 * WAL with `synchronous = FULL` makes each committed transaction durable before `save` resolves.
 */
export function openSqliteStore(file: string): PseudonymStore {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  let db: Database.Database;
  try {
    db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec(`
      CREATE TABLE IF NOT EXISTS pseudonym (
        kind       TEXT NOT NULL,
        pseudonym  TEXT NOT NULL,
        original   TEXT NOT NULL,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        PRIMARY KEY (kind, pseudonym)
      ) WITHOUT ROWID;
    `);
  } catch (cause) {
    throw new StoreError('STORE_OPEN_FAILED', 'the pseudonym store could not be opened', { cause });
  }
  const insert = db.prepare('INSERT INTO pseudonym (kind, pseudonym, original) VALUES (?, ?, ?) ON CONFLICT DO NOTHING');
  const select = db.prepare<[string, string], { original: string }>(
    'SELECT original FROM pseudonym WHERE kind = ? AND pseudonym = ?',
  );
  const saveAll = db.transaction((mappings: readonly Mapping[]) => {
    for (const m of mappings) {
      const result = insert.run(m.kind, m.pseudonym, m.original);
      if (result.changes === 0 && select.get(m.kind, m.pseudonym)?.original !== m.original) {
        // Two originals behind one pseudonym would make re-identification ambiguous: refuse.
        throw new StoreError('STORE_PSEUDONYM_COLLISION', `a ${m.kind} pseudonym already maps to another original`);
      }
    }
  });
  return {
    async save(mappings) {
      if (mappings.length === 0) return;
      try {
        saveAll(mappings);
      } catch (cause) {
        if (cause instanceof StoreError) throw cause;
        throw new StoreError('STORE_WRITE_FAILED', 'the pseudonym store could not be written', { cause });
      }
    },
    async originalOf(kind: MappingKind, pseudonym: string) {
      return select.get(kind, pseudonym)?.original;
    },
    async count() {
      return (db.prepare('SELECT count(*) AS n FROM pseudonym').get() as { n: number }).n;
    },
    async close() {
      db.close();
    },
  };
}

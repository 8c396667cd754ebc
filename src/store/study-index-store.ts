/**
 * The de-identified study index (issue 20, goal 5): per pseudonym scope, one entry per study with the
 * values a researcher sees of the study-level attributes the gateway matches itself (pseudonymous
 * names, shifted dates, …). It holds de-identified values only, keyed by the pseudonymous
 * StudyInstanceUID (mapped back through the pseudonym store like any other the researcher presents).
 * What it means and how it is kept current is decided in src/dicomweb/study-index.ts; this is storage.
 */

/** One study's entry: `doc` is JSON of `{ tag hex: match values }`; `keys` the normalised values by tag, for range look-ups. */
export interface StudyIndexEntry {
  readonly study: string;
  readonly doc: string;
  readonly keys: ReadonlyArray<readonly [tag: number, value: string]>;
}

/** What a scope's index reflects: built under `fingerprint` (the policy), current up to the PACS's change `changeSeq`. */
export interface StudyIndexState {
  readonly fingerprint: string;
  /** The last change of the PACS's feed already applied; null without a change feed. */
  readonly changeSeq: number | null;
  /** ISO 8601 UTC: when the last full scan finished. */
  readonly builtAt: string;
}

/** A key range on one tag's normalised values: `from` inclusive, `below` exclusive ('' = open). */
export interface IndexRange {
  readonly tag: number;
  readonly from: string;
  readonly below: string;
}

export interface StudyIndexStore {
  studyIndexState(scope: string): Promise<StudyIndexState | undefined>;
  /** Records the state; `clear` first removes every entry of the scope (a full rebuild starts). */
  setStudyIndexState(scope: string, state: StudyIndexState | undefined, options?: { clear?: boolean }): Promise<void>;
  /** Inserts or replaces entries (an entry's keys replace all of that study's keys). */
  putStudyIndexEntries(scope: string, entries: readonly StudyIndexEntry[]): Promise<void>;
  /** The studies with a key value in any of `ranges` (all on one tag), in no particular order, each once. */
  studyIndexMatches(scope: string, ranges: readonly IndexRange[]): Promise<readonly string[]>;
  /** The docs of `studies` (all the scope's when undefined). */
  studyIndexDocs(scope: string, studies?: readonly string[]): Promise<ReadonlyArray<{ study: string; doc: string }>>;
}

/**
 * Both backends' tables. `bytewise` is the key column's type: keys must compare byte-wise (SQLite's
 * default; PostgreSQL's `COLLATE "C"`) so that a prefix range holds exactly the values with that prefix.
 */
export const studyIndexSchema = (bytewise: string) => `
  CREATE TABLE IF NOT EXISTS study_index_entry (
    scope TEXT NOT NULL,
    study TEXT NOT NULL,
    doc   TEXT NOT NULL,
    PRIMARY KEY (scope, study)
  );
  CREATE TABLE IF NOT EXISTS study_index_key (
    scope TEXT NOT NULL,
    tag   BIGINT NOT NULL,
    value ${bytewise} NOT NULL,
    study TEXT NOT NULL,
    PRIMARY KEY (scope, tag, value, study)
  );
  CREATE INDEX IF NOT EXISTS study_index_key_study ON study_index_key (scope, study);
  CREATE TABLE IF NOT EXISTS study_index_state (
    scope       TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    change_seq  BIGINT,
    built_at    TEXT NOT NULL
  );
`;

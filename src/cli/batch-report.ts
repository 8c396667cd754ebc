// The offline CLI's report (`--report FILE`): every input's outcome and reason, and for each output its
// size and SHA-256, so a second run over the same input and output can skip what is already done. While
// a run goes, each finished input is appended to `FILE.journal` (one JSON line, written synchronously,
// so a killed run loses nothing it finished); at the end the report is written whole (a temporary name,
// renamed) and the journal removed. Reasons are error codes, tags and policy criteria: never a value.
import { closeSync, fchmodSync, openSync, writeSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';

export const REPORT_FORMAT = 'deid-gateway-deidentify-report';
export const OUTCOMES = ['deidentified', 'withheld', 'refused', 'skipped', 'pending'] as const;
export type Outcome = (typeof OUTCOMES)[number];

export interface FileEntry {
  /** The input, as an absolute path. */
  readonly input: string;
  readonly outcome: Outcome;
  /** Why it was not de-identified: an error code (and tag), the pixel policy's criterion, `DICOM_NOT_DICOM`. */
  readonly reason?: string;
  readonly inputBytes?: number;
  readonly inputMtimeMs?: number;
  /** De-identified inputs: the output (absolute), its size and SHA-256 (hex), checked again on resume. */
  readonly output?: string;
  readonly outputBytes?: number;
  readonly outputSha256?: string;
  /** Found done by an earlier run (checked), not done again by this one. */
  readonly resumed?: boolean;
}

/** What makes two runs' outputs the same: a resume under other settings would mix two de-identifications. */
export interface BatchSettings {
  readonly out: string;
  /** PS3.15 options, sorted. */
  readonly profile: readonly string[];
  readonly pseudonyms: 'keyed' | 'fresh';
  /** SHA-256 of the pixels config and the CTP scripts it names, or `product defaults`. */
  readonly pixels: string;
  /** `--pairs` and its format, or `none`: a resumed run must find the pairs of what it skips where it writes its own. */
  readonly pairs: string;
  /** A keyed check value of the secret (HMAC, truncated): tells two secrets apart, never reveals one. */
  readonly secretCheck: string;
}

export interface SummaryRow {
  readonly outcome: Outcome;
  readonly reason: string;
  readonly files: number;
  /** Of `files`, found done by an earlier run. */
  readonly resumed: number;
}

export interface BatchReport {
  readonly format: typeof REPORT_FORMAT;
  readonly version: 1;
  readonly startedAt: string;
  readonly finishedAt: string;
  /** The run was stopped (SIGINT/SIGTERM): inputs it never reached are `pending`. */
  readonly interrupted: boolean;
  readonly settings: BatchSettings;
  readonly totals: Readonly<Record<Outcome | 'resumed' | 'files', number>>;
  readonly summary: readonly SummaryRow[];
  readonly files: readonly FileEntry[];
}

export const journalOf = (reportFile: string): string => `${reportFile}.journal`;

/** Settings that differ between an earlier run and this one, by name. */
export function settingsDiffer(a: BatchSettings, b: BatchSettings): string[] {
  return (Object.keys(b) as Array<keyof BatchSettings>).filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
}

/**
 * What an earlier run left: its report's entries, then its journal's (a run that was killed has only a
 * journal; a journal line is newer than the report). A malformed last journal line (the write a kill
 * cut short) is ignored; any other malformed content is an error (never guess what was done).
 */
export async function readEarlierRun(reportFile: string): Promise<{ settings: BatchSettings; entries: Map<string, FileEntry> } | undefined> {
  const entries = new Map<string, FileEntry>();
  let settings: BatchSettings | undefined;
  const report = await readFile(reportFile, 'utf8').catch(notFound);
  if (report !== undefined) {
    const parsed = JSON.parse(report) as Partial<BatchReport>;
    if (parsed.format !== REPORT_FORMAT || !parsed.settings || !Array.isArray(parsed.files)) throw new Error('not a deid-gateway deidentify report');
    settings = parsed.settings;
    for (const e of parsed.files) entries.set(e.input, e);
  }
  const journal = await readFile(journalOf(reportFile), 'utf8').catch(notFound);
  if (journal !== undefined) {
    const lines = journal.split('\n');
    lines.forEach((line, i) => {
      if (line === '') return;
      let value: { settings?: BatchSettings; entry?: FileEntry };
      try {
        value = JSON.parse(line) as typeof value;
      } catch (error) {
        if (i >= lines.length - 2) return; // the last line, cut short by a kill
        throw error;
      }
      if (value.settings) settings = value.settings;
      if (value.entry) entries.set(value.entry.input, value.entry);
    });
  }
  return settings ? { settings, entries } : undefined;
}

function notFound(error: NodeJS.ErrnoException): undefined {
  if (error.code === 'ENOENT') return undefined;
  throw error;
}

export interface Journal {
  /** Appends one finished input (synchronously: on disk, as far as the OS goes, before the next). */
  record(entry: FileEntry): void;
  close(): void;
}

/**
 * Starts this run's journal: the settings and what is carried over from an earlier run, written under
 * a temporary name and renamed (a kill at any moment leaves either the old journal or the new one).
 */
export async function startJournal(reportFile: string, settings: BatchSettings, carried: Iterable<FileEntry>): Promise<Journal> {
  const file = journalOf(reportFile);
  const partial = `${file}.${randomBytes(6).toString('hex')}.partial`;
  const lines = [JSON.stringify({ settings })];
  for (const entry of carried) lines.push(JSON.stringify({ entry }));
  await writeFile(partial, `${lines.join('\n')}\n`, { mode: 0o600 });
  await rename(partial, file);
  const fd = openSync(file, 'a', 0o600);
  fchmodSync(fd, 0o600);
  return {
    record(entry) {
      writeSync(fd, `${JSON.stringify({ entry })}\n`);
    },
    close() {
      closeSync(fd);
    },
  };
}

/** By outcome then reason, in OUTCOMES order and then by count (most first). */
export function summarize(entries: Iterable<FileEntry>): SummaryRow[] {
  const rows = new Map<string, { outcome: Outcome; reason: string; files: number; resumed: number }>();
  for (const e of entries) {
    const reason = e.reason ?? '';
    const key = `${e.outcome}\u0000${reason}`;
    const row = rows.get(key) ?? { outcome: e.outcome, reason, files: 0, resumed: 0 };
    row.files++;
    if (e.resumed) row.resumed++;
    rows.set(key, row);
  }
  return [...rows.values()].sort((a, b) => OUTCOMES.indexOf(a.outcome) - OUTCOMES.indexOf(b.outcome) || b.files - a.files || (a.reason < b.reason ? -1 : 1));
}

/** The summary as a text table (what the run prints at its end). */
export function summaryTable(rows: readonly SummaryRow[]): string {
  const total = rows.reduce((n, r) => n + r.files, 0);
  const resumed = rows.reduce((n, r) => n + r.resumed, 0);
  const table: string[][] = [['outcome', 'reason', 'files', 'already done'], ...rows.map((r) => [r.outcome, r.reason || '-', String(r.files), String(r.resumed)])];
  table.push(['total', '', String(total), String(resumed)]);
  const widths = table[0]!.map((_, col) => Math.max(...table.map((row) => row[col]!.length)));
  const line = (row: string[]) =>
    row
      .map((cell, col) => (col >= 2 ? cell.padStart(widths[col]!) : cell.padEnd(widths[col]!)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(table[0]!), rule, ...table.slice(1, -1).map(line), rule, line(table.at(-1)!)].join('\n');
}

/** Totals by outcome, `resumed` and `files`. */
export function totalsOf(rows: readonly SummaryRow[]): BatchReport['totals'] {
  const totals = Object.fromEntries([...OUTCOMES, 'resumed', 'files'].map((k) => [k, 0])) as Record<Outcome | 'resumed' | 'files', number>;
  for (const r of rows) {
    totals[r.outcome] += r.files;
    totals.resumed += r.resumed;
    totals.files += r.files;
  }
  return totals;
}

/** Writes the report whole (temporary name, renamed, 0600), then removes the journal it supersedes. */
export async function writeReport(reportFile: string, report: BatchReport): Promise<void> {
  const partial = `${reportFile}.${randomBytes(6).toString('hex')}.partial`;
  await writeFile(partial, `${JSON.stringify(report, null, 1)}\n`, { mode: 0o600 });
  await rename(partial, reportFile);
  await rm(journalOf(reportFile), { force: true });
}

// `--pairs`: the pseudonym/original pairs of a run, written into the output folder (mode 0600: they are
// the key back to the patients). `jsonl`: every pair, `{ kind, pseudonym, original }` a line. `csv`: the
// crosswalks the MIDI-B validation scripts read (CBIIT/MIDI_validation_script: `uid_mapping_file` and
// `patid_mapping_file`, each `id_old,id_new` with a header line), for UIDs and for Patient IDs. Each file
// is appended as the run goes (synchronously, before the input is journalled as done), so a resumed run
// finds the pairs of the files it skips; a pair is written once.
import { closeSync, fchmodSync, openSync, truncateSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PseudonymPair } from '../deid/pseudonym.ts';

export const PAIRS_FORMATS = ['jsonl', 'csv', 'both'] as const;
export type PairsFormat = (typeof PAIRS_FORMATS)[number];

export const PAIRS_JSONL = 'pseudonyms.jsonl';
export const UID_CROSSWALK = 'uid_mapping.csv';
export const PATIENT_ID_CROSSWALK = 'patid_mapping.csv';
const CSV_HEADER = 'id_old,id_new';

/** RFC 4180: a field holding a comma, a quote or a line break is quoted, its quotes doubled. */
export function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/** The rows of a two-column RFC 4180 file written by csvField (header skipped). */
export function parseCrosswalk(text: string): Array<[string, string]> {
  const rows: Array<[string, string]> = [];
  const field = /"((?:[^"]|"")*)"|([^",\r\n]*)/y;
  let at = 0;
  let row: string[] = [];
  while (at < text.length) {
    field.lastIndex = at;
    const m = field.exec(text) as RegExpExecArray;
    row.push(m[1] !== undefined ? m[1].replaceAll('""', '"') : (m[2] as string));
    at = field.lastIndex;
    if (text[at] === ',') {
      at++;
      continue;
    }
    if (text[at] === '\r') at++;
    if (text[at] === '\n' || at >= text.length) {
      at++;
      if (row.length === 2) rows.push([row[0] as string, row[1] as string]);
      row = [];
      continue;
    }
    break; // not what csvField writes: stop there
  }
  return rows[0]?.[0] === 'id_old' ? rows.slice(1) : rows;
}

interface Sink {
  readonly file: string;
  /** The line for a pair, or undefined if this file does not take its kind. */
  readonly line: (p: PseudonymPair) => string | undefined;
  readonly header?: string;
  /** The pairs an earlier run's file holds. */
  readonly load: (text: string) => PseudonymPair[];
}

function sinks(out: string, format: PairsFormat): Sink[] {
  const list: Sink[] = [];
  if (format !== 'csv') {
    list.push({
      file: join(out, PAIRS_JSONL),
      line: (p) => JSON.stringify({ kind: p.kind, pseudonym: p.pseudonym, original: p.original }),
      load: (text) =>
        text
          .split('\n')
          .flatMap((l) => {
            try {
              return [JSON.parse(l) as PseudonymPair];
            } catch {
              return []; // the blank line at the end
            }
          }),
    });
  }
  if (format !== 'jsonl') {
    for (const [name, kind] of [[UID_CROSSWALK, 'uid'], [PATIENT_ID_CROSSWALK, 'patientId']] as const) {
      list.push({
        file: join(out, name),
        header: CSV_HEADER,
        line: (p) => (p.kind === kind ? `${csvField(p.original)},${csvField(p.pseudonym)}` : undefined),
        load: (text) => parseCrosswalk(text).map(([original, pseudonym]) => ({ kind, original, pseudonym })),
      });
    }
  }
  return list;
}

export interface PairFiles {
  /** Resuming: pair files an earlier run should have left and did not (their pairs are lost). */
  readonly missing: readonly string[];
  /** Writes the pairs not written yet. */
  add(pairs: readonly PseudonymPair[]): void;
  /** Distinct pairs written, this run and (resumed) before. */
  readonly count: number;
  close(): void;
}

/**
 * Opens the pair files in `out`: new and empty, or (`resume`) kept, with the pairs they already hold
 * known so that none is written twice.
 */
export async function openPairFiles(out: string, format: PairsFormat, resume: boolean): Promise<PairFiles> {
  const seen = new Set<string>();
  const key = (p: PseudonymPair) => `${p.kind}\u0000${p.original}`;
  const open: Array<{ fd: number; sink: Sink }> = [];
  const missing: string[] = [];
  for (const sink of sinks(out, format)) {
    let earlier = resume ? await readFile(sink.file, 'utf8').catch(() => undefined) : undefined;
    if (resume && earlier === undefined) missing.push(sink.file);
    if (earlier !== undefined && earlier !== '' && !earlier.endsWith('\n')) {
      // A line a kill cut short: cut it off (a truncated pseudonym must never stand as a pair).
      earlier = earlier.slice(0, earlier.lastIndexOf('\n') + 1);
      truncateSync(sink.file, Buffer.byteLength(earlier));
    }
    for (const p of earlier === undefined ? [] : sink.load(earlier)) seen.add(key(p));
    const fd = openSync(sink.file, earlier === undefined ? 'w' : 'a', 0o600);
    fchmodSync(fd, 0o600);
    if (sink.header && (earlier === undefined || earlier === '')) writeSync(fd, `${sink.header}\n`);
    open.push({ fd, sink });
  }
  return {
    missing,
    add(pairs) {
      const fresh = pairs.filter((p) => {
        if (seen.has(key(p))) return false;
        seen.add(key(p));
        return true;
      });
      if (fresh.length === 0) return;
      for (const { fd, sink } of open) {
        const lines = fresh.flatMap((p) => sink.line(p) ?? []);
        if (lines.length > 0) writeSync(fd, `${lines.join('\n')}\n`);
      }
    },
    get count() {
      return seen.size;
    },
    close() {
      for (const { fd } of open) closeSync(fd);
    },
  };
}

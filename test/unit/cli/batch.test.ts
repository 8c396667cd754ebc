// Issue 21 §2: `deid-gateway deidentify` for real batches, run as a user runs it (bin/): progress lines,
// the report (every input's outcome, reason, output size and SHA-256), the summary table, the MIDI-B
// crosswalk CSVs, and resume (nothing done twice, after a clean end or a kill). The tree is synthetic:
// CLI_BATCH_FILES instances (2,000 by default, to keep this file fast on two shared cores; run it with
// CLI_BATCH_FILES=20000 for the issue's 20,000-file tree), some withheld, two refused, one not DICOM.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import type { BatchReport, FileEntry } from '../../../src/cli/batch-report.ts';
import { summarize, summaryTable } from '../../../src/cli/batch-report.ts';
import { csvField, parseCrosswalk } from '../../../src/cli/pair-files.ts';
import { createProgress, formatDuration, progressLine } from '../../../src/cli/progress.ts';
import { deidentifyCommand } from '../../../src/cli-deidentify.ts';
import { asciiValue } from '../../../src/dicom/dataset.ts';
import { readPart10Buffer } from '../../../src/dicom/part10-reader.ts';
import { syntheticInstance } from '../../helpers/synthetic-instance.ts';

const BIN = path.resolve(import.meta.dirname, '../../../bin/deid-gateway.js');
const SECRET = 'cli-batch-secret-0123456789abcdef';
const FILES = Number(process.env['CLI_BATCH_FILES'] ?? 2_000);
const PER_STUDY = 100;
const WITHHELD_EVERY = 250; // every 250th instance is OT: withheld by the pixel policy
const work = mkdtempSync(path.join(tmpdir(), 'deid-cli-batch-'));
after(() => rmSync(work, { recursive: true, force: true }));
const secretFile = path.join(work, 'secret');
writeFileSync(secretFile, SECRET);

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** As a user runs it: bin/, its own process. */
function cli(args: readonly string[]): Promise<Result> {
  const started = performance.now();
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'deidentify', ...args], { env: { ...process.env, DEID_GATEWAY_SECRET: SECRET }, maxBuffer: 1 << 26 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
      resolve({ code, signal: error?.signal ?? null, stdout, stderr, ms: performance.now() - started });
    });
  });
}

/** The same command in this process (no start-up to pay), its output captured. */
async function inProcess(args: readonly string[]): Promise<Result> {
  const started = performance.now();
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t), isTTY: false, columns: () => 80 };
  const code = await deidentifyCommand(['--secret-file', secretFile, ...args], io);
  return { code, signal: null, stdout: out.join(''), stderr: err.join(''), ms: performance.now() - started };
}

const studyUid = (s: number) => `1.2.826.0.1.3680043.8.498.77.${s + 1}`;
/** The synthetic tree: study folders of PER_STUDY instances; a truncated pair and a text file beside them. */
function writeTree(root: string, count: number): string[] {
  const inputs: string[] = [];
  for (let i = 0; i < count; i++) {
    const s = Math.floor(i / PER_STUDY);
    const dir = path.join(root, `study-${String(s).padStart(4, '0')}`);
    if (i % PER_STUDY === 0) mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `i${String(i % PER_STUDY).padStart(3, '0')}.dcm`);
    writeFileSync(
      file,
      syntheticInstance(`${studyUid(s)}.${(i % PER_STUDY) + 1}`, [
        [0x00080020, 'DA', '20240102'],
        [0x00080060, 'CS', i % WITHHELD_EVERY === WITHHELD_EVERY - 1 ? 'OT' : 'CT'],
        [0x00100010, 'PN', 'CANARY^BATCH'],
        [0x00100020, 'LO', `PID,${s}`], // a comma: the crosswalk must quote it
        [0x0020000d, 'UI', studyUid(s)],
        [0x0020000e, 'UI', `${studyUid(s)}.1`],
      ]),
    );
    inputs.push(file);
  }
  const whole = syntheticInstance(`${studyUid(0)}.999`, [[0x00100020, 'LO', 'PID-T'], [0x0020000d, 'UI', studyUid(0)]]);
  for (const name of ['cut-a.dcm', 'cut-b.dcm']) {
    writeFileSync(path.join(root, name), whole.subarray(0, whole.length - 7));
    inputs.push(path.join(root, name));
  }
  writeFileSync(path.join(root, 'notes.txt'), 'not DICOM\n');
  inputs.push(path.join(root, 'notes.txt'));
  return inputs;
}

const input = path.join(work, 'in');
const inputs = writeTree(input, FILES);
const withheldCount = Math.floor(FILES / WITHHELD_EVERY);
const pixels = path.join(work, 'pixels.yaml');
// The product's pixel policy, but for synthetic Secondary Captures without pixels: OT stays risky.
writeFileSync(pixels, 'risky:\n  sopClass: { secondaryCapture: allow }\n');
const out = path.join(work, 'out');
const report = path.join(work, 'report.json');
const args = ['--pixels-config', pixels, '--jobs', '4', '--pairs', '--pairs-format', 'both', '--report', report, '--progress', 'lines', '--progress-interval', '0.2', input, '--out', out];

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const readReport = () => JSON.parse(readFileSync(report, 'utf8')) as BatchReport;
const progressDone = (stderr: string) => [...stderr.matchAll(/^progress: (\d+)\/(\d+) files/gm)].map((m) => [Number(m[1]), Number(m[2])] as const);
const mtimes = (entries: readonly FileEntry[]) => new Map(entries.filter((e) => e.output).map((e) => [e.output as string, statSync(e.output as string).mtimeMs]));

describe('deid-gateway deidentify on a batch', () => {
  const firstRun: { entries?: FileEntry[]; uidRows?: number } = {};

  test(`${FILES} files: progress lines update as it goes, the report lists every input with its outcome, reason, size and hash, and a table sums them up`, async () => {
    const r = await cli(args);
    assert.equal(r.code, 1, r.stderr.slice(-2000)); // two refused
    process.stdout.write(`# first run: ${FILES + 3} inputs in ${Math.round(r.ms)} ms (${Math.round(((FILES + 3) * 1000) / r.ms)} files/s)\n`);
    // Progress: plain lines (not a terminal), counts that grow, the last one complete.
    const seen = progressDone(r.stderr);
    assert.ok(seen.length >= 3, `progress lines: ${seen.length}`);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]![0] >= seen[i - 1]![0], 'done never goes back');
    assert.ok(seen.some(([done]) => done > 0 && done < FILES + 3), 'a line while the run was under way');
    assert.deepEqual(seen.at(-1), [FILES + 3, FILES + 3]);
    assert.match(r.stderr, /^progress: .* MB at [\d.]+ MB\/s \(\d+ files\/s\), ETA \d+:\d\d, 2 refused, \d+ withheld$/m);
    // The report: every input once, with what happened to it.
    const rep = readReport();
    assert.equal(statSync(report).mode & 0o077, 0, 'the report is private to the user');
    assert.equal(existsSync(`${report}.journal`), false, 'the journal is gone once the report is written');
    assert.equal(rep.interrupted, false);
    assert.deepEqual(rep.files.map((e) => e.input).sort(), [...inputs].sort());
    const by = (outcome: string) => rep.files.filter((e) => e.outcome === outcome);
    assert.deepEqual(
      [by('deidentified').length, by('withheld').length, by('refused').length, by('skipped').length],
      [FILES - withheldCount, withheldCount, 2, 1],
    );
    for (const e of by('refused')) assert.match(e.reason ?? '', /^DICOM_TRUNCATED/);
    for (const e of by('withheld')) assert.equal(e.reason, 'risky (Modality OT)');
    assert.equal(by('skipped')[0]?.reason, 'DICOM_NOT_DICOM');
    for (const e of by('deidentified')) {
      assert.equal(statSync(e.output as string).size, e.outputBytes);
      assert.equal(sha256(e.output as string), e.outputSha256, e.output);
    }
    assert.deepEqual(rep.totals, { deidentified: FILES - withheldCount, withheld: withheldCount, refused: 2, skipped: 1, pending: 0, resumed: 0, files: FILES + 3 });
    // The table (stdout) by outcome and reason, then the one-line summary.
    assert.match(r.stdout, new RegExp(`^deidentified +- +${FILES - withheldCount} +0$`, 'm'));
    assert.match(r.stdout, new RegExp(`^withheld +risky \\(Modality OT\\) +${withheldCount} +0$`, 'm'));
    assert.match(r.stdout, /^refused +DICOM_TRUNCATED.* +2 +0$/m);
    assert.match(r.stdout, /^skipped +DICOM_NOT_DICOM +1 +0$/m);
    assert.match(r.stdout, new RegExp(`^total +${FILES + 3} +0$`, 'm'));
    assert.match(r.stdout, new RegExp(`^${FILES - withheldCount} de-identified, ${withheldCount} withheld by the pixel policy, 2 refused, 1 skipped \\(not DICOM\\)$`, 'm'));
    assert.ok(!r.stdout.includes('CANARY') && !r.stderr.includes('CANARY') && !readFileSync(report, 'utf8').includes('CANARY'), 'no patient data printed or reported');
    firstRun.entries = rep.files as FileEntry[];
  });

  test('the pairs are written as JSON lines and as the MIDI-B crosswalks (id_old,id_new), each pair once, mode 0600', async () => {
    const uidCsv = readFileSync(path.join(out, 'uid_mapping.csv'), 'utf8');
    const patCsv = readFileSync(path.join(out, 'patid_mapping.csv'), 'utf8');
    for (const f of ['uid_mapping.csv', 'patid_mapping.csv', 'pseudonyms.jsonl']) assert.equal(statSync(path.join(out, f)).mode & 0o077, 0, f);
    assert.ok(uidCsv.startsWith('id_old,id_new\n') && patCsv.startsWith('id_old,id_new\n'));
    const uids = new Map(parseCrosswalk(uidCsv));
    const patients = new Map(parseCrosswalk(patCsv));
    assert.equal(uids.size, parseCrosswalk(uidCsv).length, 'each UID once');
    // The Patient ID holds a comma: quoted as RFC 4180 says, so pandas.read_csv reads it back whole.
    assert.match(patCsv, /^"PID,0",[A-Z2-7]{16}$/m);
    const jsonl = readFileSync(path.join(out, 'pseudonyms.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string; original: string; pseudonym: string });
    assert.equal(jsonl.filter((p) => p.kind === 'uid').length, uids.size);
    // Every output's UIDs and Patient ID map back to its input's, through the crosswalks.
    const done = (firstRun.entries ?? []).filter((e) => e.outcome === 'deidentified');
    for (const e of done.filter((_, i) => i % 97 === 0)) {
      const [original, deidentified] = await Promise.all([e.input, e.output as string].map(async (f) => (await readPart10Buffer(readFileSync(f))).header.dataset));
      for (const tag of [0x00080018, 0x0020000d, 0x0020000e]) assert.equal(uids.get(asciiValue(original!, tag) as string), asciiValue(deidentified!, tag));
      assert.equal(patients.get(asciiValue(original!, 0x00100020) as string), asciiValue(deidentified!, 0x00100020));
    }
    firstRun.uidRows = uids.size;
  });

  test('a resumed run does no work twice: outputs untouched, counted as already done; an output removed or altered is done again', async () => {
    const entries = firstRun.entries ?? [];
    const before = mtimes(entries);
    const done = entries.filter((e) => e.outcome === 'deidentified');
    const [removed, altered] = [done[3]!, done[FILES >> 1]!];
    rmSync(removed.output as string);
    const bytes = readFileSync(altered.output as string);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1); // same size, another hash
    writeFileSync(altered.output as string, bytes);
    const alteredMtime = statSync(altered.output as string).mtimeMs;
    await new Promise((r) => setTimeout(r, 20)); // a rewrite would show in the mtime
    const r = await inProcess(args);
    assert.equal(r.code, 1, r.stderr.slice(-2000)); // the truncated files are tried again, and refused again
    process.stdout.write(`# resumed run: ${FILES + 3} inputs in ${Math.round(r.ms)} ms\n`);
    const already = FILES + 1 - 2; // all but the two refused and the two damaged outputs; the text file counts
    assert.match(r.stdout, new RegExp(`, ${already} already done \\(checked\\)$`, 'm'));
    assert.match(r.stdout, new RegExp(`^deidentified +- +${FILES - withheldCount} +${FILES - withheldCount - 2}$`, 'm'));
    const rep = readReport();
    assert.equal(rep.totals.resumed, already);
    for (const e of rep.files) {
      if (e.input === removed.input || e.input === altered.input) {
        assert.equal(e.resumed, undefined, 'done again');
        assert.equal(sha256(e.output as string), e.outputSha256);
      } else if (e.outcome !== 'refused') assert.equal(e.resumed, true, e.input);
    }
    for (const [file, mtime] of before) {
      if (file === removed.output) continue;
      const now = statSync(file).mtimeMs;
      if (file === altered.output) assert.notEqual(now, alteredMtime, 'the altered output was rewritten');
      else assert.equal(now, mtime, `${file} untouched`);
    }
    assert.equal(sha256(altered.output as string), altered.outputSha256, 'the same bytes as the first run made');
    // The pairs: none written twice.
    const uidCsv = readFileSync(path.join(out, 'uid_mapping.csv'), 'utf8');
    assert.equal(parseCrosswalk(uidCsv).length, firstRun.uidRows);
  });

  test('a killed run loses nothing it finished: the journal lets the next run resume, and the crosswalks stay complete', async () => {
    const killedOut = path.join(work, 'out-killed');
    const killedReport = path.join(work, 'killed.json');
    const runArgs = args.map((a) => (a === out ? killedOut : a === report ? killedReport : a));
    const child = spawn(process.execPath, [BIN, 'deidentify', ...runArgs], { env: { ...process.env, DEID_GATEWAY_SECRET: SECRET } });
    let stderr = '';
    const killedAt = await new Promise<number>((resolve) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk;
        const counts = progressDone(stderr);
        const done = counts.at(-1)?.[0] ?? 0;
        if (done >= FILES / 4 && child.exitCode === null && !child.killed) {
          child.kill('SIGKILL');
          resolve(done);
        }
      });
    });
    await new Promise((resolve) => child.once('close', resolve));
    assert.equal(existsSync(killedReport), false, 'no report: the run never ended');
    const journal = readFileSync(`${killedReport}.journal`, 'utf8').trim().split('\n');
    assert.ok(journal.length - 1 >= killedAt, `the journal holds what was done (${journal.length - 1} ≥ ${killedAt})`);
    const r = await inProcess(runArgs);
    assert.equal(r.code, 1, r.stderr.slice(-2000));
    const rep = JSON.parse(readFileSync(killedReport, 'utf8')) as BatchReport;
    assert.ok(rep.totals.resumed >= killedAt - 4, `resumed ${rep.totals.resumed} of the ${killedAt} done before the kill`);
    assert.equal(rep.totals.deidentified, FILES - withheldCount);
    // Every output's UIDs are in the crosswalk, whichever run wrote it, once.
    const rows = parseCrosswalk(readFileSync(path.join(killedOut, 'uid_mapping.csv'), 'utf8'));
    assert.equal(new Set(rows.map(([old]) => old)).size, rows.length, 'each UID once');
    const uids = new Map(rows);
    for (const e of rep.files.filter((f, i) => f.outcome === 'deidentified' && i % 53 === 0)) {
      const ds = (await readPart10Buffer(readFileSync(e.output as string))).header.dataset;
      const original = (await readPart10Buffer(readFileSync(e.input))).header.dataset;
      assert.equal(uids.get(asciiValue(original, 0x00080018) as string), asciiValue(ds, 0x00080018));
    }
  });

  test('a report made under other settings is not resumed (exit 2, naming them); a --fresh run is done again in full', async () => {
    const r = await inProcess(['--profile', 'retainDeviceIdentity', ...args]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /made with other settings \(profile\)/);
    const other = await inProcess(args.map((a) => (a === out ? path.join(work, 'elsewhere') : a)));
    assert.equal(other.code, 2);
    assert.match(other.stderr, /other settings \(out\)/);
    assert.equal(existsSync(path.join(work, 'elsewhere', 'study-0000')), false, 'nothing done');
    const small = path.join(work, 'small');
    writeTree(small, 3);
    const freshArgs = ['--fresh', '--pixels-config', pixels, '--report', path.join(work, 'fresh.json'), '--progress', 'none', small, '--out', path.join(work, 'fresh-out')];
    assert.equal((await inProcess(freshArgs)).code, 1);
    const again = await inProcess(freshArgs);
    assert.match(again.stderr, /a --fresh run is not resumed/);
    assert.doesNotMatch(again.stdout, /already done \(checked\)/);
  });
});

describe('the batch pieces', () => {
  test('the bar and the lines: counts, MB/s, ETA and refusals, from the time passed in', () => {
    let now = 1_000;
    const written: string[] = [];
    const counts = { done: 0, total: 200, bytes: 0, processed: 0, refused: 0, withheld: 0, resumed: 0 };
    const bar = createProgress({ mode: 'bar', write: (t) => written.push(t), now: () => now, intervalSeconds: 10, columns: () => 100 });
    now += 10_000;
    bar.render({ ...counts, done: 100, processed: 100, bytes: 50_000_000, refused: 3 });
    assert.equal(written.at(-1), `\r\x1b[2K[####################--------------------] 100/200  50% 5.0 MB/s ETA 0:10 refused 3`);
    bar.finish({ ...counts, done: 200, processed: 200, bytes: 50_000_000, refused: 3 });
    assert.deepEqual(written.slice(-2), [`\r\x1b[2K[########################################] 200/200 100% 5.0 MB/s ETA 0:00 refused 3`, '\n']);
    // Lines: at most one an interval.
    const lines: string[] = [];
    now = 0;
    const plain = createProgress({ mode: 'lines', write: (t) => lines.push(t), now: () => now, intervalSeconds: 5 });
    plain.render(counts);
    now = 1_000;
    plain.render({ ...counts, done: 10, processed: 10 });
    now = 5_000;
    plain.render({ ...counts, done: 50, processed: 40, resumed: 10, bytes: 2_000_000 });
    assert.equal(lines.length, 2);
    assert.equal(lines[1], 'progress: 50/200 files (25%), 2.0 MB at 0.4 MB/s (8 files/s), ETA 0:19, 0 refused, 0 withheld, 10 already done\n');
    assert.equal(progressLine(counts, 0), 'progress: 0/200 files (0%), 0.0 MB at 0.0 MB/s (0 files/s), ETA --:--, 0 refused, 0 withheld');
    assert.deepEqual([formatDuration(59.6), formatDuration(3_725), formatDuration(undefined)], ['1:00', '1:02:05', '--:--']);
  });

  test('the summary sorts by outcome then count; the crosswalk quoting reads back', () => {
    const rows = summarize([
      { input: 'a', outcome: 'refused', reason: 'DICOM_TRUNCATED' },
      { input: 'b', outcome: 'deidentified', resumed: true },
      { input: 'c', outcome: 'withheld', reason: 'risky (Modality US)' },
      { input: 'd', outcome: 'deidentified' },
    ]);
    assert.deepEqual(rows.map((r) => [r.outcome, r.files, r.resumed]), [['deidentified', 2, 1], ['withheld', 1, 0], ['refused', 1, 0]]);
    assert.match(summaryTable(rows), /^total +4 +1$/m);
    const tricky = ['plain', 'a,b', 'say "hi"', 'two\nlines'];
    const text = `id_old,id_new\n${tricky.map((t) => `${csvField(t)},x`).join('\n')}\n`;
    assert.deepEqual(parseCrosswalk(text), tricky.map((t) => [t, 'x']));
  });
});

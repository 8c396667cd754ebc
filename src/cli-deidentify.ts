// `deid-gateway deidentify`: the gateway's engine, offline, over files and folders, as gdcmanon or CTP
// would be used, for batches of any size: a progress bar (or lines), a report of every input's outcome,
// a summary table, the pseudonym pairs as JSON lines and as MIDI-B crosswalks, and resume. The pieces
// are in cli/: input-tree (what to do), file-rewrite (one file), batch-report, pair-files, progress.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import {
  journalOf,
  readEarlierRun,
  REPORT_FORMAT,
  settingsDiffer,
  startJournal,
  summarize,
  summaryTable,
  totalsOf,
  writeReport,
  type BatchSettings,
  type FileEntry,
  type Journal,
} from './cli/batch-report.ts';
import { UsageError } from './cli/errors.ts';
import { describeError, failedEntry, type FileFailure } from './cli/file-outcome.ts';
import { outputMatches, rewriteFile, type Rewritten, type RewriteContext } from './cli/file-rewrite.ts';
import { listJobs, type Job } from './cli/input-tree.ts';
import { openPairFiles, PAIRS_FORMATS, type PairFiles, type PairsFormat } from './cli/pair-files.ts';
import { createProgress, type ProgressCounts, type ProgressMode } from './cli/progress.ts';
import { createRewritePool, type RewritePool } from './cli/rewrite-pool.ts';
import { createPolicy, type DeidPolicy, type DeidPolicyOptions } from './deid/deidentify.ts';
import { DeidError } from './deid/errors.ts';
import type { PixelPolicyConfig } from './deid/pixel-policy.ts';
import { parseProfileList } from './deid/profile-options.ts';
import { PROFILE_OPTIONS } from './deid/profile.ts';

const USAGE = `usage: deid-gateway deidentify [--profile basic|OPT,OPT…] [--pixels-config F] [--secret-file F] [--fresh] [--jobs N]
                              [--pairs [--pairs-format jsonl|csv|both]] [--report F] [--progress MODE] IN… --out DIR

  De-identifies DICOM files and folders (recursively) into DIR with the PS3.15 Annex E Basic Profile
  plus the options named, mirroring each input folder's tree. Files that are not DICOM are reported
  and skipped; a file that cannot be de-identified safely is refused and leaves no output.

  Pixels (PS3.15 E.3.1) follow the same policy as the gateway's profiles: a file a redaction rule matches
  is written with the rule's rectangles blanked in every frame (an encapsulated one as native Explicit VR
  Little Endian); a file the policy withholds (risky and no rule matches: Burned In Annotation YES, US, SC,
  OT, XC, ES, DOC, screen captures …; or filtered: SR, PR, KO, encapsulated documents) is skipped, leaves
  no output and is listed with its reason. Without --pixels-config the product defaults apply.

  --profile        basic (default) or a comma-separated list of: ${PROFILE_OPTIONS.join(', ')}
  --pixels-config  YAML or JSON file holding a profile's \`pixels\` block, as in config/gateway.yaml
                   (enabled, risky, filters, rules, ctpScripts; a CTP script is read relative to this file)
  --secret-file    file holding the pseudonym/date-shift key (else env DEID_GATEWAY_SECRET); required
  --fresh          random pseudonyms for this run (consistent within the run, unlinkable across runs;
                   such a run is never resumed: its salt is not kept)
  --jobs N         worker threads rewriting files, each with two in flight (default 2; this machine
                   has ${availableParallelism()} cores); 1: in this thread, one file at a time
  --pairs          also write the pseudonym/original pairs into DIR (mode 0600), as --pairs-format says:
                   jsonl (default): pseudonyms.jsonl, one { kind, pseudonym, original } a line;
                   csv: the MIDI-B validator's crosswalks uid_mapping.csv and patid_mapping.csv (id_old,id_new);
                   both
  --report F       JSON: every input's outcome and reason, each output's size and SHA-256, a summary
                   (mode 0600; F.journal while the run goes). Run again with the same F, input and DIR to
                   resume: outputs that still have the recorded size and SHA-256 (and inputs, withheld
                   or skipped, that kept their size and time) are not done again; refused ones are
  --progress MODE  auto (default: a bar on a terminal, else lines), bar, lines or none (on stderr)
  --progress-interval S  seconds between progress lines (default 10)
  --out DIR        output folder

  Exit status: 0 every file de-identified or withheld by the pixel policy (a policy outcome, not an
  error), 1 some refused, 2 usage error, 130 / 143 stopped by SIGINT / SIGTERM (the report says which
  files are pending; run again to resume).
`;

/**
 * A `pixels` block from a YAML or JSON file (the same fields as a profile's in the gateway's config), and
 * the text of each CTP script it names, read relative to the file (an unreadable one is an issue of the
 * policy, reported by createPolicy with its key).
 */
async function readPixelsConfig(file: string): Promise<{ config: PixelPolicyConfig; scripts: Map<string, string | { error: string }>; sha256: string }> {
  let config: unknown;
  const hash = createHash('sha256');
  try {
    const text = await readFile(file, 'utf8');
    hash.update(text);
    config = parseYaml(text) ?? {};
  } catch (error) {
    throw new UsageError(`--pixels-config: cannot read ${file} as YAML or JSON (${(error as { code?: string }).code ?? (error as Error).name})`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new UsageError('--pixels-config: a map (enabled, risky, filters, rules, ctpScripts)');
  const scripts = new Map<string, string | { error: string }>();
  const named = (config as { ctpScripts?: unknown }).ctpScripts;
  for (const name of Array.isArray(named) ? named : []) {
    if (typeof name !== 'string') continue;
    try {
      const script = await readFile(resolve(dirname(resolve(file)), name), 'utf8');
      hash.update(`\u0000${name}\u0000${script}`);
      scripts.set(name, script);
    } catch (error) {
      scripts.set(name, { error: `cannot read ${name} (${(error as { code?: string }).code ?? 'error'})` });
    }
  }
  return { config: config as PixelPolicyConfig, scripts, sha256: hash.digest('hex') };
}

async function readSecret(file: string | undefined): Promise<string | undefined> {
  if (file !== undefined) {
    try {
      return (await readFile(file, 'utf8')).replace(/\r?\n$/, '');
    } catch {
      throw new UsageError(`cannot read the secret file ${file}`);
    }
  }
  const env = process.env['DEID_GATEWAY_SECRET'];
  return env === undefined || env === '' ? undefined : env;
}

/** The command line's options; a malformed one is a UsageError. */
function parseOptions(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        profile: { type: 'string', default: 'basic' },
        'pixels-config': { type: 'string' },
        'secret-file': { type: 'string' },
        fresh: { type: 'boolean', default: false },
        jobs: { type: 'string', default: '2' },
        out: { type: 'string', short: 'o' },
        pairs: { type: 'boolean', default: false },
        'pairs-format': { type: 'string' },
        report: { type: 'string' },
        progress: { type: 'string', default: 'auto' },
        'progress-interval': { type: 'string', default: '10' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** Everything a run needs, from a command line that made sense. */
interface Run {
  readonly policy: DeidPolicy;
  /** What the policy was made from: each worker thread makes its own from the same (--jobs N > 1). */
  readonly policyInputs: DeidPolicyOptions;
  readonly settings: BatchSettings;
  readonly jobs: readonly Job[];
  /** Inputs that are neither files nor folders: skipped without being read. */
  readonly unreadable: ReadonlyArray<{ job: Job; reason: string }>;
  readonly jobCount: number;
  readonly pairs: PairsFormat | undefined;
  readonly report: string | undefined;
  readonly progress: ProgressMode;
  readonly progressInterval: number;
}

/** The command line → a Run (every UsageError before anything is written but DIR itself). */
async function prepare(argv: string[], io: CommandIo): Promise<Run | 'help'> {
  const { values, positionals } = parseOptions(argv);
  if (values.help) return 'help';
  if (values.out === undefined) throw new UsageError('--out DIR is required');
  if (positionals.length === 0) throw new UsageError('no input files or folders');
  const jobCount = Number(values.jobs);
  if (!Number.isInteger(jobCount) || jobCount < 1 || jobCount > 64) throw new UsageError('--jobs: an integer from 1 to 64');
  const pairsFormat = values['pairs-format'];
  if (pairsFormat !== undefined && !(PAIRS_FORMATS as readonly string[]).includes(pairsFormat)) throw new UsageError(`--pairs-format: one of ${PAIRS_FORMATS.join(', ')}`);
  if (pairsFormat !== undefined && !values.pairs) throw new UsageError('--pairs-format goes with --pairs');
  const progress = values.progress === 'auto' ? (io.isTTY ? 'bar' : 'lines') : values.progress;
  if (!['bar', 'lines', 'none'].includes(progress)) throw new UsageError('--progress: auto, bar, lines or none');
  const progressInterval = Number(values['progress-interval']);
  if (!(progressInterval >= 0.05 && progressInterval <= 86_400)) throw new UsageError('--progress-interval: seconds, from 0.05');
  const profile = parseProfileList(values.profile);
  if (profile.unknown.length > 0) throw new UsageError(`--profile: not a PS3.15 option: ${profile.unknown.join(', ')}`);
  const secret = await readSecret(values['secret-file']);
  if (secret === undefined) throw new UsageError('a secret is required: --secret-file F or DEID_GATEWAY_SECRET');
  const pixels = values['pixels-config'] === undefined ? undefined : await readPixelsConfig(values['pixels-config']);
  const policyInputs: DeidPolicyOptions = {
    secret,
    profile: profile.options,
    pseudonymMode: values.fresh ? 'fresh' : 'deterministic',
    ...(pixels ? { pixels: pixels.config, pixelScripts: pixels.scripts } : {}),
  };
  let policy: DeidPolicy;
  try {
    policy = createPolicy(policyInputs);
  } catch (error) {
    // DeidPolicyError issues name keys and limits, never the secret.
    throw new UsageError(error instanceof DeidError && 'issues' in error ? (error.issues as string[]).join('; ') : 'invalid policy');
  }
  const out = resolve(values.out);
  const report = values.report === undefined ? undefined : resolve(values.report);
  const pairs = values.pairs ? ((pairsFormat ?? 'jsonl') as PairsFormat) : undefined;
  const settings: BatchSettings = {
    out,
    profile: Object.keys(profile.options).sort(),
    pseudonyms: values.fresh ? 'fresh' : 'keyed',
    pixels: pixels ? `sha256:${pixels.sha256}` : 'product defaults',
    pairs: pairs ?? 'none',
    // Tells two secrets apart without revealing one (as any keyed pseudonym does already).
    secretCheck: createHmac('sha256', secret).update('deid-gateway deidentify: resume check').digest('hex').slice(0, 16),
  };
  const unreadable: Array<{ job: Job; reason: string }> = [];
  const jobs = await listJobs(positionals, out, unreadable, new Set(report ? [report, journalOf(report)] : []));
  await mkdir(out, { recursive: true });
  if (report) await mkdir(dirname(report), { recursive: true });
  return { policy, policyInputs, settings, jobs, unreadable, jobCount, pairs, report, progress: progress as ProgressMode, progressInterval };
}

/**
 * What an earlier run with this report did, for resume: undefined to start over (no report, or a
 * --fresh run: its salt is not kept). Other settings are a usage error: resuming would mix two
 * de-identifications in one folder.
 */
async function earlierEntries(run: Run, note: (line: string) => void): Promise<Map<string, FileEntry> | undefined> {
  if (!run.report) return undefined;
  let earlier: Awaited<ReturnType<typeof readEarlierRun>>;
  try {
    earlier = await readEarlierRun(run.report);
  } catch (error) {
    throw new UsageError(`--report: ${run.report} is not a report this command wrote (${(error as { code?: string }).code ?? (error as Error).name}); give another file`);
  }
  if (!earlier) return undefined;
  if (run.settings.pseudonyms === 'fresh' || earlier.settings.pseudonyms === 'fresh') {
    note('a --fresh run is not resumed (its salt is never kept): every file is done again');
    return undefined;
  }
  const differ = settingsDiffer(earlier.settings, run.settings);
  if (differ.length > 0) {
    throw new UsageError(`--report: ${run.report} was made with other settings (${differ.join(', ')}); resuming would mix them: give another --report, or remove it to start over`);
  }
  return earlier.entries;
}

/**
 * Files handed to each worker thread at once: when it finishes one, the next is already there, not a
 * round trip through this thread (a stat, two messages) away. Memory: up to twice --jobs files of
 * WHOLE_FILE_BYTES held.
 */
const IN_FLIGHT_PER_WORKER = 2;

/** Where the command writes: the process's stdout and stderr, or a test's. */
export interface CommandIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** stderr is a terminal: `--progress auto` draws a bar. */
  readonly isTTY: boolean;
  readonly columns: () => number;
}

const PROCESS_IO: CommandIo = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  isTTY: process.stderr.isTTY === true,
  columns: () => process.stderr.columns || 80,
};

/** `deid-gateway deidentify …`. Returns the exit code: 0 all done (withheld files included), 1 some refused, 2 usage error, 130/143 stopped. */
export async function deidentifyCommand(argv: string[], io: CommandIo = PROCESS_IO): Promise<number> {
  const stdout = (line: string): void => io.out(`${line}\n`);
  const stderr = (line: string): void => io.err(`${line}\n`);
  let run: Run;
  let earlier: Map<string, FileEntry> | undefined;
  try {
    const prepared = await prepare(argv, io);
    if (prepared === 'help') {
      io.out(USAGE);
      return 0;
    }
    run = prepared;
    earlier = await earlierEntries(run, (line) => stderr(`deidentify: ${line}`));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    stderr(`deidentify: ${error.message}`);
    io.err(USAGE);
    return 2;
  }
  const startedAt = new Date();
  let pairFiles: PairFiles | undefined;
  if (run.pairs) {
    pairFiles = await openPairFiles(run.settings.out, run.pairs, earlier !== undefined);
    if (pairFiles.missing.length > 0) {
      // The pairs of the files already done are gone with the file: do them again to write their pairs.
      stderr(`deidentify: ${pairFiles.missing.join(', ')} missing: not resuming, every file is done again`);
      pairFiles.close();
      earlier = undefined;
      pairFiles = await openPairFiles(run.settings.out, run.pairs, false);
    }
  }
  const inputs = new Set(run.jobs.map((j) => j.input));
  const journal: Journal | undefined = run.report
    ? await startJournal(run.report, run.settings, [...(earlier?.values() ?? [])].filter((e) => inputs.has(e.input)))
    : undefined;

  // Fresh mode: one salt for the run, so the files of one study stay linked to each other. Blocking I/O:
  // this thread rewrites here only one file at a time (--jobs 1, or a single input), with nothing to do
  // meanwhile; signals and progress wait for the file in hand (about a millisecond).
  const context: RewriteContext = {
    policy: run.policy,
    salt: run.settings.pseudonyms === 'fresh' ? randomBytes(16) : undefined,
    folders: new Map(),
    hashOutputs: run.report !== undefined,
    blockingIo: true,
  };
  // --jobs N > 1: N worker threads rewrite (the engine is CPU-bound: files in flight on one thread do not
  // add up), each file in flight on one of them; --jobs 1: this thread, one file at a time. Started in
  // the try below, whose finally stops them (a live worker would keep the process from exiting).
  let pool: RewritePool | undefined;
  const rewrite = (job: Job, size: number): Promise<Rewritten | FileFailure> => (pool ? pool.rewrite(job.input, size, job.output) : rewriteFile(context, job.input, size, job.output));
  const entries = new Map<string, FileEntry>();
  const counts = { done: 0, total: run.jobs.length + run.unreadable.length, bytes: 0, processed: 0, refused: 0, withheld: 0, resumed: 0 };
  const finished = (entry: FileEntry, processedBytes: number | undefined): void => {
    entries.set(entry.input, entry);
    journal?.record(entry);
    counts.done++;
    if (processedBytes !== undefined) {
      counts.processed++;
      counts.bytes += processedBytes;
    }
    if (entry.resumed) counts.resumed++;
    if (entry.outcome === 'refused') counts.refused++;
    if (entry.outcome === 'withheld') counts.withheld++;
  };
  for (const { job, reason } of run.unreadable) finished({ input: job.input, outcome: 'skipped', reason }, undefined);

  const processJob = async (job: Job): Promise<void> => {
    const info = await stat(job.input).catch((error: unknown) => error as Error);
    if (info instanceof Error) return finished({ input: job.input, outcome: 'refused', reason: describeError(info) }, undefined);
    const base = { input: job.input, inputBytes: info.size, inputMtimeMs: info.mtimeMs };
    const previous = earlier?.get(job.input);
    if (previous && previous.inputBytes === info.size && previous.inputMtimeMs === info.mtimeMs) {
      const done =
        previous.outcome === 'withheld' ||
        previous.outcome === 'skipped' ||
        (previous.outcome === 'deidentified' &&
          previous.output === job.output &&
          previous.outputBytes !== undefined &&
          previous.outputSha256 !== undefined &&
          (await outputMatches(job.output, previous.outputBytes, previous.outputSha256)));
      if (done) return finished({ ...previous, resumed: true }, undefined);
    }
    try {
      const rewritten = await rewrite(job, info.size);
      if ('outcome' in rewritten) return finished({ ...base, ...rewritten }, info.size);
      const { pairs, outputBytes, outputSha256 } = rewritten;
      pairFiles?.add(pairs); // before the journal says done: a resumed run finds the pairs of what it skips
      finished({ ...base, outcome: 'deidentified', output: job.output, outputBytes, ...(outputSha256 === undefined ? {} : { outputSha256 }) }, info.size);
    } catch (error) {
      finished(failedEntry(base, error), info.size);
    }
  };

  const progress = createProgress({
    mode: run.progress,
    write: io.err,
    now: () => Date.now(),
    intervalSeconds: run.progressInterval,
    columns: io.columns,
  });
  const snapshot = (): ProgressCounts => ({ ...counts });
  progress.render(snapshot());
  const timer = run.progress === 'none' ? undefined : setInterval(() => progress.render(snapshot()), run.progress === 'bar' ? 100 : run.progressInterval * 1000);
  // SIGINT / SIGTERM: no new file is started; those in flight finish; the report lists the rest as pending.
  let stoppedBy: 'SIGINT' | 'SIGTERM' | undefined;
  const stop = (signal: 'SIGINT' | 'SIGTERM') => () => {
    stoppedBy = signal;
  };
  const onInt = stop('SIGINT');
  const onTerm = stop('SIGTERM');
  process.once('SIGINT', onInt);
  process.once('SIGTERM', onTerm);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let job = run.jobs[next++]; job !== undefined && stoppedBy === undefined; job = run.jobs[next++]) await processJob(job);
  };
  try {
    if (run.jobCount > 1 && run.jobs.length > 1) {
      pool = createRewritePool(Math.min(run.jobCount, run.jobs.length), { policy: run.policyInputs, salt: context.salt, hashOutputs: context.hashOutputs });
    }
    await Promise.all(Array.from({ length: Math.min(run.jobCount * (pool ? IN_FLIGHT_PER_WORKER : 1), Math.max(run.jobs.length, 1)) }, worker));
  } finally {
    await pool?.close();
    clearInterval(timer);
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    pairFiles?.close();
    journal?.close();
  }
  progress.finish(snapshot());
  for (const job of run.jobs) if (!entries.has(job.input)) entries.set(job.input, { input: job.input, outcome: 'pending' });

  const labelOf = new Map([...run.jobs, ...run.unreadable.map((u) => u.job)].map((j) => [j.input, j.label]));
  const listed = [...entries.values()].filter((e) => !e.resumed && e.outcome !== 'deidentified' && e.outcome !== 'pending');
  for (const outcome of ['skipped', 'withheld', 'refused'] as const) {
    const lines = listed.filter((e) => e.outcome === outcome).map((e) => `${outcome} ${labelOf.get(e.input)}: ${e.reason}`);
    for (const line of lines.sort()) stderr(line);
  }
  const summary = summarize(entries.values());
  const totals = totalsOf(summary);
  if (run.report) {
    await writeReport(run.report, {
      format: REPORT_FORMAT,
      version: 1,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      interrupted: stoppedBy !== undefined,
      settings: run.settings,
      totals,
      summary,
      files: [...entries.values()].sort((a, b) => (a.input < b.input ? -1 : a.input > b.input ? 1 : 0)),
    });
  }
  stdout(summaryTable(summary));
  const withheldText = totals.withheld > 0 ? `, ${totals.withheld} withheld by the pixel policy` : '';
  const skippedText = totals.skipped > 0 ? `, ${totals.skipped} skipped (not DICOM)` : '';
  const resumedText = totals.resumed > 0 ? `, ${totals.resumed} already done (checked)` : '';
  const pendingText = totals.pending > 0 ? `, ${totals.pending} pending (stopped by ${stoppedBy})` : '';
  stdout(`${totals.deidentified} de-identified${withheldText}, ${totals.refused} refused${skippedText}${resumedText}${pendingText}`);
  if (stoppedBy) return stoppedBy === 'SIGINT' ? 130 : 143;
  return totals.refused > 0 ? 1 : 0;
}

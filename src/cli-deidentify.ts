// `deid-gateway deidentify`: the gateway's engine, offline, over files and folders, as gdcmanon or CTP
// would be used. Each file streams reader -> policy -> writer (rewrite-part10.ts) into a temporary
// name that is renamed only when the whole file rewrote cleanly, so a refused file leaves no output.
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type Stats } from 'node:fs';
import { lstat, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { createPolicy, createSession, type DeidPolicy } from './deid/deidentify.ts';
import { DeidError, PixelWithheldError } from './deid/errors.ts';
import type { PixelPolicyConfig } from './deid/pixel-policy.ts';
import { parseProfileList } from './deid/profile-options.ts';
import { PROFILE_OPTIONS } from './deid/profile.ts';
import type { PseudonymPair } from './deid/pseudonym.ts';
import { rewritePart10 } from './deid/rewrite-part10.ts';
import { DicomError } from './dicom/errors.ts';
import { formatTag } from './dicom/tag.ts';

const USAGE = `usage: deid-gateway deidentify [--profile basic|OPT,OPT…] [--pixels-config F] [--secret-file F] [--fresh] [--jobs N] [--pairs] IN… --out DIR

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
  --fresh          random pseudonyms for this run (consistent within the run, unlinkable across runs)
  --jobs N         files in flight at once (default 2)
  --pairs          also write the pseudonym/original pairs to DIR/pseudonyms.jsonl (mode 0600)
  --out DIR        output folder

  Exit status: 0 every file de-identified or withheld by the pixel policy (a policy outcome, not an
  error), 1 some refused, 2 usage error.
`;

const PAIRS_FILE = 'pseudonyms.jsonl';
const READ_CHUNK = 256 * 1024;

interface Job {
  readonly input: string;
  /** What the report shows: the path relative to the input folder (or the file as given). */
  readonly label: string;
  readonly output: string;
}

class UsageError extends Error {}

function isInside(path: string, folder: string): boolean {
  return path === folder || path.startsWith(folder.endsWith(sep) ? folder : folder + sep);
}

/** Files under each input, in a stable order; folders map onto `out` one to one. Symlinks are not followed. */
async function listJobs(inputs: readonly string[], out: string, skipped: { label: string; reason: string }[]): Promise<Job[]> {
  const jobs: Job[] = [];
  for (const input of inputs) {
    const root = resolve(input);
    let info: Stats;
    try {
      info = await lstat(root);
    } catch {
      throw new UsageError(`input not found: ${input}`);
    }
    if (info.isFile()) {
      jobs.push({ input: root, label: input, output: join(out, basename(root)) });
      continue;
    }
    if (!info.isDirectory()) throw new UsageError(`input is neither a file nor a folder: ${input}`);
    const walk = async (dir: string): Promise<void> => {
      const entries = await readdir(dir, { withFileTypes: true });
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const entry of entries) {
        const full = join(dir, entry.name);
        if (isInside(full, out)) continue; // an output folder inside the input is not input
        const rel = relative(root, full);
        if (entry.isDirectory()) await walk(full);
        else if (entry.isFile()) jobs.push({ input: full, label: join(input, rel), output: join(out, rel) });
        else skipped.push({ label: join(input, rel), reason: 'not a regular file' });
      }
    };
    await walk(root);
  }
  const seen = new Map<string, string>();
  for (const job of jobs) {
    if (job.output === job.input) throw new UsageError(`output would overwrite its input: ${job.label}`);
    const other = seen.get(job.output);
    if (other !== undefined) throw new UsageError(`two inputs map to one output (${other}, ${job.label}): give them separately`);
    seen.set(job.output, job.label);
  }
  return jobs;
}

/** Streams one file through the engine into a temporary name, renamed on success. Returns its pairs. */
async function deidentifyFile(policy: DeidPolicy, job: Job, salt: Uint8Array | undefined, made: Map<string, Promise<unknown>>): Promise<readonly PseudonymPair[]> {
  const session = createSession(policy, salt ? { fresh: true, salt } : { fresh: false });
  const dir = dirname(job.output);
  const partial = join(dir, `.${basename(job.output)}.${randomBytes(6).toString('hex')}.partial`);
  let folder = made.get(dir); // one mkdir per output folder, not per file
  if (folder === undefined) {
    folder = mkdir(dir, { recursive: true });
    made.set(dir, folder);
  }
  await folder;
  try {
    const { output } = rewritePart10(createReadStream(job.input, { highWaterMark: READ_CHUNK }), session);
    await pipeline(output, createWriteStream(partial, { mode: 0o600 }));
    await rename(partial, job.output);
    return session.pairs();
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
}

/** The refusal as printed: a code and, where known, the tag; never a value or a message. */
function describeError(error: unknown): string {
  if (error instanceof DicomError) return error.tag === undefined ? error.code : `${error.code} at ${formatTag(error.tag)}`;
  if (error instanceof DeidError) return 'tag' in error && typeof error.tag === 'string' ? `${error.code} at ${error.tag}` : error.code;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Z0-9_]+$/.test(code) ? code : 'INTERNAL_ERROR';
}

/**
 * A `pixels` block from a YAML or JSON file (the same fields as a profile's in the gateway's config), and
 * the text of each CTP script it names, read relative to the file (an unreadable one is an issue of the
 * policy, reported by createPolicy with its key).
 */
async function readPixelsConfig(file: string): Promise<{ config: PixelPolicyConfig; scripts: Map<string, string | { error: string }> }> {
  let config: unknown;
  try {
    config = parseYaml(await readFile(file, 'utf8')) ?? {};
  } catch (error) {
    throw new UsageError(`--pixels-config: cannot read ${file} as YAML or JSON (${(error as { code?: string }).code ?? (error as Error).name})`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new UsageError('--pixels-config: a map (enabled, risky, filters, rules, ctpScripts)');
  const scripts = new Map<string, string | { error: string }>();
  const named = (config as { ctpScripts?: unknown }).ctpScripts;
  for (const name of Array.isArray(named) ? named : []) {
    if (typeof name !== 'string') continue;
    try {
      scripts.set(name, await readFile(resolve(dirname(resolve(file)), name), 'utf8'));
    } catch (error) {
      scripts.set(name, { error: `cannot read ${name} (${(error as { code?: string }).code ?? 'error'})` });
    }
  }
  return { config: config as PixelPolicyConfig, scripts };
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
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** `deid-gateway deidentify …`. Returns the exit code: 0 all done (withheld files included), 1 some refused, 2 usage error. */
export async function deidentifyCommand(argv: string[]): Promise<number> {
  const stdout = (line: string): void => void process.stdout.write(`${line}\n`);
  const stderr = (line: string): void => void process.stderr.write(`${line}\n`);
  let policy: DeidPolicy;
  let jobs: Job[];
  let out: string;
  let jobCount: number;
  let fresh: boolean;
  let writePairs: boolean;
  const skipped: { label: string; reason: string }[] = [];
  try {
    const { values, positionals } = parseOptions(argv);
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (values.out === undefined) throw new UsageError('--out DIR is required');
    if (positionals.length === 0) throw new UsageError('no input files or folders');
    jobCount = Number(values.jobs);
    if (!Number.isInteger(jobCount) || jobCount < 1 || jobCount > 64) throw new UsageError('--jobs: an integer from 1 to 64');
    const profile = parseProfileList(values.profile);
    if (profile.unknown.length > 0) throw new UsageError(`--profile: not a PS3.15 option: ${profile.unknown.join(', ')}`);
    const secret = await readSecret(values['secret-file']);
    if (secret === undefined) throw new UsageError('a secret is required: --secret-file F or DEID_GATEWAY_SECRET');
    fresh = values.fresh;
    writePairs = values.pairs;
    const pixels = values['pixels-config'] === undefined ? undefined : await readPixelsConfig(values['pixels-config']);
    try {
      policy = createPolicy({
        secret,
        profile: profile.options,
        pseudonymMode: fresh ? 'fresh' : 'deterministic',
        ...(pixels ? { pixels: pixels.config, pixelScripts: pixels.scripts } : {}),
      });
    } catch (error) {
      // DeidPolicyError issues name keys and limits, never the secret.
      throw new UsageError(error instanceof DeidError && 'issues' in error ? (error.issues as string[]).join('; ') : 'invalid policy');
    }
    out = resolve(values.out);
    jobs = await listJobs(positionals, out, skipped);
    await mkdir(out, { recursive: true });
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    stderr(`deidentify: ${error.message}`);
    process.stderr.write(USAGE);
    return 2;
  }

  // Fresh mode: one salt for the run, so the files of one study stay linked to each other.
  const salt = fresh ? randomBytes(16) : undefined;
  const refused: { label: string; reason: string }[] = [];
  const withheld: { label: string; reason: string }[] = [];
  const pairs = new Map<string, PseudonymPair>();
  const folders = new Map<string, Promise<unknown>>();
  let done = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let job = jobs[next++]; job !== undefined; job = jobs[next++]) {
      try {
        for (const p of await deidentifyFile(policy, job, salt, folders)) pairs.set(`${p.kind}\u0000${p.original}`, p);
        done++;
      } catch (error) {
        // PS3.10 7.1: no preamble/"DICM" and no recognisable dataset: not a DICOM file at all.
        if (error instanceof DicomError && error.code === 'DICOM_NOT_DICOM') skipped.push({ label: job.label, reason: error.code });
        // The pixel policy's outcome, not a failure: its reason and the criterion or filter (never a value).
        else if (error instanceof PixelWithheldError) withheld.push({ label: job.label, reason: `${error.reason} (${error.detail})` });
        else refused.push({ label: job.label, reason: describeError(error) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobCount, Math.max(jobs.length, 1)) }, worker));

  const byLabel = (a: { label: string }, b: { label: string }): number => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0);
  for (const s of skipped.sort(byLabel)) stderr(`skipped ${s.label}: ${s.reason}`);
  for (const w of withheld.sort(byLabel)) stderr(`withheld ${w.label}: ${w.reason}`);
  for (const r of refused.sort(byLabel)) stderr(`refused ${r.label}: ${r.reason}`);
  if (writePairs) {
    const file = join(out, PAIRS_FILE);
    const partial = `${file}.${randomBytes(6).toString('hex')}.partial`;
    const lines = [...pairs.values()].map((p) => JSON.stringify({ kind: p.kind, pseudonym: p.pseudonym, original: p.original }));
    await writeFile(partial, lines.length > 0 ? `${lines.join('\n')}\n` : '', { mode: 0o600 });
    await rename(partial, file);
  }
  const withheldText = withheld.length > 0 ? `, ${withheld.length} withheld by the pixel policy` : '';
  stdout(`${done} de-identified${withheldText}, ${refused.length} refused${skipped.length > 0 ? `, ${skipped.length} skipped (not DICOM)` : ''}`);
  return refused.length > 0 ? 1 : 0;
}

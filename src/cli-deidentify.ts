// `deid-gateway deidentify`: the same engine as the gateway, offline, over files and folders, as
// gdcmanon or CTP would be used. Admins use it, and the benchmarks measure it.
import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { createPolicy, createSession, type DeidPolicy } from './deid/deidentify.ts';
import { PROFILE_OPTIONS, type ProfileOption } from './deid/profile.ts';
import { rewritePart10 } from './deid/rewrite-part10.ts';
import type { PseudonymPair } from './deid/pseudonym.ts';

const USAGE = `usage: deid-gateway deidentify [--profile OPT,OPT…|basic] [--secret-file F] [--fresh] [--jobs N] [--pairs] IN… --out DIR

  De-identifies DICOM files and folders (PS3.15 Annex E Basic Profile + the options named) into DIR,
  mirroring the input tree. The secret comes from --secret-file or DEID_GATEWAY_SECRET.
  Options: ${PROFILE_OPTIONS.join(', ')}
`;

interface Job {
  input: string;
  output: string;
}

async function listJobs(inputs: string[], out: string): Promise<Job[]> {
  const jobs: Job[] = [];
  for (const input of inputs) {
    const root = resolve(input);
    if ((await stat(root)).isDirectory()) {
      for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
        if (!entry.isFile()) continue;
        const file = join(entry.parentPath, entry.name);
        jobs.push({ input: file, output: join(out, relative(root, file)) });
      }
    } else {
      jobs.push({ input: root, output: join(out, basename(root)) });
    }
  }
  return jobs.sort((a, b) => a.input.localeCompare(b.input));
}

/** De-identifies one file; writes to a temporary name and renames, so a refused file leaves nothing. */
async function deidentifyFile(policy: DeidPolicy, job: Job, fresh: boolean, salt: Uint8Array | undefined): Promise<readonly PseudonymPair[]> {
  const session = createSession(policy, fresh ? { fresh, ...(salt ? { salt } : {}) } : {});
  const partial = `${job.output}.partial`;
  await mkdir(dirname(job.output), { recursive: true });
  try {
    const { output } = rewritePart10(createReadStream(job.input, { highWaterMark: 256 * 1024 }), session);
    await pipeline(output, createWriteStream(partial, { mode: 0o600 }));
    await rename(partial, job.output);
    return session.pairs();
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
}

export async function deidentifyCommand(argv: string[]): Promise<number> {
  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        profile: { type: 'string', default: 'retainLongitudinalTemporalModifiedDates' },
        'secret-file': { type: 'string' },
        fresh: { type: 'boolean', default: false },
        jobs: { type: 'string', default: '2' },
        out: { type: 'string', short: 'o' },
        pairs: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const options = values.profile === 'basic' ? [] : values.profile.split(',').filter(Boolean);
  const unknown = options.filter((o) => !(PROFILE_OPTIONS as readonly string[]).includes(o));
  const jobsWanted = Number(values.jobs);
  if (!values.out || positionals.length === 0 || unknown.length > 0 || !Number.isInteger(jobsWanted) || jobsWanted < 1) {
    if (unknown.length > 0) process.stderr.write(`unknown profile option: ${unknown.join(', ')}\n`);
    process.stderr.write(USAGE);
    return 2;
  }
  const secret = values['secret-file'] ? readFileSync(values['secret-file'], 'utf8').trim() : process.env['DEID_GATEWAY_SECRET'];
  if (!secret) {
    process.stderr.write('a secret is required: --secret-file F or DEID_GATEWAY_SECRET\n');
    return 2;
  }
  const policy = createPolicy({
    secret,
    profile: Object.fromEntries(options.map((o) => [o as ProfileOption, true])),
    pseudonymMode: values.fresh ? 'fresh' : 'deterministic',
  });
  const out = resolve(values.out);
  const jobs = await listJobs(positionals, out);
  // Fresh mode: one salt for the whole run, so one run is consistent and two runs are unlinkable.
  const salt = values.fresh ? (await import('node:crypto')).randomBytes(16) : undefined;
  const refused: { input: string; code: string }[] = [];
  const pairs: PseudonymPair[] = [];
  let next = 0;
  let done = 0;
  const worker = async () => {
    for (;;) {
      const job = jobs[next++];
      if (!job) return;
      try {
        pairs.push(...(await deidentifyFile(policy, job, values.fresh, salt)));
        done++;
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        refused.push({ input: job.input, code: typeof code === 'string' ? code : 'ERROR' });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobsWanted, jobs.length || 1) }, worker));
  for (const r of refused) process.stderr.write(`refused ${r.input}: ${r.code}\n`);
  if (values.pairs) {
    const unique = new Map(pairs.map((p) => [`${p.kind}\u0000${p.pseudonym}`, p]));
    await writeFile(join(out, 'pseudonyms.jsonl'), [...unique.values()].map((p) => JSON.stringify(p)).join('\n') + '\n', { mode: 0o600 });
  }
  process.stdout.write(`${done} de-identified, ${refused.length} refused\n`);
  return refused.length > 0 ? 1 : 0;
}

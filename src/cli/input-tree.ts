// The offline CLI's inputs: files and folders given on the command line, each folder walked (in a stable
// order, symlinks not followed) and mirrored onto the output folder one to one.
import type { Stats } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { basename, join, relative, resolve, sep } from 'node:path';
import { UsageError } from './errors.ts';

export interface Job {
  /** The input, absolute. */
  readonly input: string;
  /** What messages show: the path relative to the input folder given (or the file as given). */
  readonly label: string;
  /** The output, absolute. */
  readonly output: string;
}

function isInside(path: string, folder: string): boolean {
  return path === folder || path.startsWith(folder.endsWith(sep) ? folder : folder + sep);
}

const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * Files under each input, in a stable order; folders map onto `out` one to one. `skipped` gets what is
 * neither a file nor a folder. Paths that `exclude` names (the report, its journal) are not input.
 */
export async function listJobs(
  inputs: readonly string[],
  out: string,
  skipped: Array<{ job: Job; reason: string }>,
  exclude: ReadonlySet<string> = new Set(),
): Promise<Job[]> {
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
      const entries = (await readdir(dir, { withFileTypes: true })).sort(byName);
      for (const entry of entries) {
        const full = join(dir, entry.name);
        if (isInside(full, out) || exclude.has(full)) continue; // an output folder inside the input is not input
        const rel = relative(root, full);
        const job = { input: full, label: join(input, rel), output: join(out, rel) };
        if (entry.isDirectory()) await walk(full);
        else if (entry.isFile()) jobs.push(job);
        else skipped.push({ job, reason: 'not a regular file' });
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

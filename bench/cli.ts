// The CLI against gdcmanon (issue 20, goal 4), with the I/O floor: the same tree of CT-size instances
// (bench/synthetic.ts) copied with `cp -r` (the floor), de-identified with gdcmanon -e (GDCM's PS3.15
// E.1.1 Basic Profile, attributes encrypted into the Encrypted Attributes Sequence with a throwaway
// certificate), and with `deid-gateway deidentify` at --jobs 1 and 2, in interleaved rounds; each output
// tree is removed before the next tool runs. Reported: medians, each tool as a fraction of the floor's
// time, and ours against gdcmanon. Callable from bench/run.ts (`benchCli`) or alone:
//   node --import tsx bench/cli.ts [files] [rounds]
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CT_INSTANCE_BYTES, syntheticCtStudy } from './synthetic.ts';

const CLI = resolve(fileURLToPath(new URL('../bin/deid-gateway.js', import.meta.url)));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

export interface CliBenchResult {
  readonly files: number;
  readonly megabytes: number;
  /** Seconds per round, per tool. */
  readonly seconds: Record<string, number[]>;
  readonly medians: Record<string, number>;
  readonly rows: string[];
}

/** Runs `command` to completion; its wall time in seconds. Throws with its stderr when it fails. */
function timed(command: string, args: string[]): number {
  const started = process.hrtime.bigint();
  const run = spawnSync(command, args, { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 16 << 20 });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (run.status !== 0) throw new Error(`${command} exited ${run.status}: ${String(run.stderr).slice(-2000)}`);
  return seconds;
}

/** The CLI as users run it: the compiled build (bin/deid-gateway.js falls back to tsx, and its start-up, when dist/ is stale). */
function ensureBuilt(): void {
  execFileSync('npm', ['run', '-s', 'build'], { cwd: resolve(fileURLToPath(new URL('..', import.meta.url))), stdio: 'ignore' });
}

export async function benchCli(files = 2_000, rounds = 3): Promise<CliBenchResult> {
  ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'deid-bench-cli-'));
  try {
    const input = join(dir, 'in');
    mkdirSync(input);
    let n = 0;
    for (const file of syntheticCtStudy(files, 31)) writeFileSync(join(input, `i${String(n++).padStart(5, '0')}.dcm`), file);
    const secret = join(dir, 'secret');
    writeFileSync(secret, 'bench-cli-secret-0123456789abcdef');
    const key = join(dir, 'key.pem');
    const certificate = join(dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', certificate, '-subj', '/CN=deid-bench', '-days', '1'], { stdio: 'ignore' });
    const out = join(dir, 'out');
    const tools: Record<string, () => number> = {
      'cp -r': () => timed('cp', ['-r', input, out]),
      'gdcmanon -e': () => timed('gdcmanon', ['-e', '-c', certificate, '-r', '--continue', '-i', input, '-o', out]),
      'ours --jobs 1': () => timed(process.execPath, [CLI, 'deidentify', '--secret-file', secret, '--jobs', '1', '--progress', 'none', input, '--out', out]),
      'ours --jobs 2': () => timed(process.execPath, [CLI, 'deidentify', '--secret-file', secret, '--jobs', '2', '--progress', 'none', input, '--out', out]),
    };
    const seconds: Record<string, number[]> = Object.fromEntries(Object.keys(tools).map((name) => [name, []]));
    for (let r = 0; r < rounds; r++) {
      // Interleaved, and the order rotated each round, so a slow spell of the machine falls on every tool.
      const names = Object.keys(tools);
      const order = [...names.slice(r % names.length), ...names.slice(0, r % names.length)];
      for (const name of order) {
        rmSync(out, { recursive: true, force: true });
        spawnSync('sync');
        seconds[name]?.push((tools[name] as () => number)());
      }
    }
    rmSync(out, { recursive: true, force: true });
    const medians = Object.fromEntries(Object.entries(seconds).map(([name, xs]) => [name, median(xs)]));
    const floor = medians['cp -r'] as number;
    const gdcm = medians['gdcmanon -e'] as number;
    const one = medians['ours --jobs 1'] as number;
    const two = medians['ours --jobs 2'] as number;
    const megabytes = (files * CT_INSTANCE_BYTES) / (1 << 20);
    const rows = [
      `| CLI, ${files} CT instances (${megabytes.toFixed(0)} MiB), ${rounds} rounds: s for cp -r / gdcmanon -e / ours --jobs 1 / ours --jobs 2 | ${floor.toFixed(2)} / ${gdcm.toFixed(2)} / ${one.toFixed(2)} / ${two.toFixed(2)} | as a fraction of the floor's speed (cp time / tool time): gdcmanon **${(floor / gdcm).toFixed(2)}**, ours **${(floor / one).toFixed(2)}** · **${(floor / two).toFixed(2)}**; ours / gdcmanon speed **${(gdcm / one).toFixed(2)}** · **${(gdcm / two).toFixed(2)}** (goal ≥ 1); jobs 2 / jobs 1 **${(one / two).toFixed(2)}** |`,
    ];
    return { files, megabytes, seconds, medians, rows };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const result = await benchCli(Number(process.argv[2] ?? 2_000), Number(process.argv[3] ?? 3));
  process.stdout.write(`${result.rows.join('\n')}\n${JSON.stringify(result.seconds)}\n`);
}

// The engine alone, side by side in one run: `deid-gateway deidentify` against gdcmanon (GDCM, Debian
// libgdcm-tools) on the same folder of CT-size files, rounds interleaved, reported as instances/s and
// as median ratios (these machines are noisy: compare within a run, never across runs).
//
//   node --import tsx bench/engine.ts [--count 2000] [--rounds 3] [--cpu-prof]
//
// Issue 20: `cp -r` of the same folder is the I/O floor, and each tool is also reported as a fraction of
// the floor's speed; ours runs with --jobs 1 (in its main thread) and 2 (two worker threads: this
// machine's cores), to show how it scales. The 1-minute load average is kept before each run: figures
// taken while others load the cores say so. The CLI
// runs from the compiled build (`npm run build` first), as users run it, not through tsx.
//
// What each tool does to every file:
//   ours       PS3.15 Annex E Basic Profile (Table E.1-1, all 657 rows, at every sequence depth):
//              keyed HMAC pseudonyms for PatientID/Name/AccessionNumber, keyed 2.25 UIDs for every
//              U-action UID, private groups removed, method attributes added, File Meta rewritten;
//              streamed, written to a temporary name and renamed.
//   gdcmanon -e  PS3.15 E.1.1 in GDCM's own reading of the Basic Profile: the same kind of attribute
//              actions and new UIDs (random, not keyed: not reproducible across runs), plus the
//              originals encrypted (AES-256, RSA-wrapped for a certificate) into the Encrypted
//              Attributes Sequence for E.1.2 re-identification. Reads each file whole.
//   gdcmanon --dumb  only the tags named on the command line (here: PatientName, PatientID,
//              PatientBirthDate, InstitutionName, ReferringPhysicianName emptied or removed); no UID
//              remapping, no private-tag removal, no sequence traversal: not a PS3.15 profile, a floor.
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { syntheticCtStudy } from './synthetic.ts';
import { median } from './stats.ts';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '3' },
    'cpu-prof': { type: 'boolean', default: false },
  },
});
const count = Number(values.count);
const rounds = Number(values.rounds);
const BIN = resolve(import.meta.dirname, '../bin/deid-gateway.js');
const RESULTS = resolve(import.meta.dirname, 'results');

function run(cmd: string, args: readonly string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((res) => {
    execFile(cmd, args, { maxBuffer: 1 << 26 }, (error, _stdout, stderr) => res({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stderr }));
  });
}

const countFiles = (dir: string): number => readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && e.name.endsWith('.dcm')).length;

execFileSync('npm', ['run', '-s', 'build'], { cwd: resolve(import.meta.dirname, '..'), stdio: 'ignore' });
const work = mkdtempSync(join(tmpdir(), 'deid-bench-engine-'));
try {
  // 1. The folder: copies of the 530 KB CT sample, each with its own SOP Instance UID (same length).
  const input = join(work, 'ct');
  mkdirSync(input);
  let i = 0;
  for (const file of syntheticCtStudy(count, 3)) writeFileSync(join(input, `ct-${String(i++).padStart(5, '0')}.dcm`), file);
  const secret = join(work, 'secret');
  writeFileSync(secret, 'bench-engine-secret-0123456789abcdef');
  const cert = join(work, 'cert.pem');
  const key = join(work, 'key.pem');
  const ssl = await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=deid-bench', '-days', '1', '-keyout', key, '-out', cert]);
  if (ssl.code !== 0) throw new Error(`openssl: ${ssl.stderr}`);

  const ours = (jobs: number) => (out: string): [string, string[]] => [process.execPath, [BIN, 'deidentify', '--profile', 'basic', '--secret-file', secret, '--jobs', String(jobs), '--progress', 'none', input, '--out', out]];
  const tools: Record<string, (out: string) => [string, string[]]> = {
    'cp -r': (out) => ['cp', ['-r', `${input}/.`, out]],
    ours: ours(2),
    'ours --jobs 1': ours(1),
    'gdcmanon -e': (out) => ['gdcmanon', ['-e', '-c', cert, '-r', '--continue', '-i', input, '-o', out]],
    'gdcmanon --dumb': (out) => ['gdcmanon', ['--dumb', '--empty', '10,10', '--empty', '10,20', '--remove', '10,30', '--remove', '8,80', '--empty', '8,90', '-r', '--continue', '-i', input, '-o', out]],
  };
  const rates: Record<string, number[]> = Object.fromEntries(Object.keys(tools).map((t) => [t, []]));
  const loads: number[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const [name, make] of Object.entries(tools)) {
      const out = join(work, `out-${r}-${name.replace(/\W+/g, '_')}`);
      mkdirSync(out);
      const [cmd, args] = make(out);
      loads.push(loadavg()[0] as number);
      const t0 = process.hrtime.bigint();
      const res = await run(cmd, args);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const made = countFiles(out);
      if (res.code !== 0 || made !== count) throw new Error(`${name}: exit ${res.code}, ${made}/${count} files: ${res.stderr.slice(0, 500)}`);
      rates[name]?.push(count / seconds);
      rmSync(out, { recursive: true, force: true });
    }
  }

  if (values['cpu-prof']) {
    // One profiled run of ours; open the .cpuprofile in Chrome DevTools or speedscope.
    const dir = join(RESULTS, 'cpu-prof');
    mkdirSync(dir, { recursive: true });
    const [, args] = ours(2)(join(work, 'out-prof'));
    await run(process.execPath, ['--cpu-prof', '--cpu-prof-dir', dir, ...args]);
    console.log(`cpu profile written under ${dir}`);
  }

  const m = (t: string): number => median(rates[t] ?? []);
  const result = {
    count,
    rounds,
    jobs: { ours: 2, 'ours --jobs 1': 1 },
    cores: availableParallelism(),
    loadAverage1m: { min: Math.min(...loads), median: median(loads), max: Math.max(...loads) },
    file: 'transfer-syntax/CT1_UNC.explicit_little_endian.dcm (530 KB), fresh SOP Instance UID each',
    instancesPerSecond: rates,
    medians: Object.fromEntries(Object.keys(tools).map((t) => [t, m(t)])),
    ratioOursOverGdcmanonE: m('ours') / m('gdcmanon -e'),
    ratioOursOverGdcmanonDumb: m('ours') / m('gdcmanon --dumb'),
    fractionOfFloor: Object.fromEntries(Object.keys(tools).map((t) => [t, m(t) / m('cp -r')])),
    jobs2OverJobs1: m('ours') / m('ours --jobs 1'),
  };
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, 'engine.json'), `${JSON.stringify(result, null, 2)}\n`);
  console.log(`\n| engine, ${count} CT files, ${rounds} interleaved rounds (ours: --jobs 2) | instances/s (median) | rounds | fraction of the cp -r floor | ours / this (median ratio) |`);
  console.log('|---|---|---|---|---|');
  for (const t of Object.keys(tools)) {
    console.log(`| ${t} | ${m(t).toFixed(0)} | ${(rates[t] ?? []).map((x) => x.toFixed(0)).join(', ')} | ${(m(t) / m('cp -r')).toFixed(3)} | ${(m('ours') / m(t)).toFixed(2)} |`);
  }
  console.log(`\nours --jobs 2 / --jobs 1: ${(m('ours') / m('ours --jobs 1')).toFixed(2)}`);
  console.log(`load average (1 min) before each run: ${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)}, median ${median(loads).toFixed(2)}, on ${availableParallelism()} cores`);
  console.log(`\nJSON: ${join(RESULTS, 'engine.json')}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}

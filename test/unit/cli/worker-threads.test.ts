// Issue 20, goal 4: `deidentify --jobs N` (N > 1) rewrites in N worker threads. What a run makes must not
// depend on it: outputs byte for byte, the pairs, the report (but for its times and DIR), each file's
// outcome and reason, fresh mode's links within a run; and a worker that stops never loses a file.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { BatchReport } from '../../../src/cli/batch-report.ts';
import { createRewritePool } from '../../../src/cli/rewrite-pool.ts';
import { asciiValue } from '../../../src/dicom/dataset.ts';
import { readPart10Buffer } from '../../../src/dicom/part10-reader.ts';
import { SAMPLES_DIR } from '../../helpers/sample.ts';
import { syntheticInstance } from '../../helpers/synthetic-instance.ts';

const BIN = path.resolve(import.meta.dirname, '../../../bin/deid-gateway.js');
const SECRET = 'cli-workers-secret-0123456789abcdef';
const work = mkdtempSync(path.join(tmpdir(), 'deid-cli-workers-'));
after(() => rmSync(work, { recursive: true, force: true }));

function cli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'deidentify', ...args], { env: { ...process.env, DEID_GATEWAY_SECRET: SECRET } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

const files = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();

// Two studies of synthetic instances (one an OT: withheld), two CTs, a CT cut inside its Pixel Data
// (refused), a text file (skipped).
const input = path.join(work, 'in');
for (let i = 0; i < 16; i++) {
  const study = `1.2.826.0.1.3680043.8.498.20.${(i % 2) + 1}`;
  const dir = path.join(input, `study-${i % 2}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, `i${String(i).padStart(2, '0')}.dcm`),
    syntheticInstance(`${study}.${i + 1}`, [
      [0x00080060, 'CS', i === 5 ? 'OT' : 'CT'],
      [0x00100010, 'PN', 'CANARY^WORKERS'],
      [0x00100020, 'LO', `PID-${i % 2}`],
      [0x0020000d, 'UI', study],
      [0x0020000e, 'UI', `${study}.1`],
    ]),
  );
}
copyFileSync(path.join(SAMPLES_DIR, 'private-tags/CT_small.dcm'), path.join(input, 'ct-a.dcm'));
copyFileSync(path.join(SAMPLES_DIR, 'private-tags/CT_small.dcm'), path.join(input, 'ct-b.dcm'));
writeFileSync(path.join(input, 'ct-cut.dcm'), readFileSync(path.join(SAMPLES_DIR, 'private-tags/CT_small.dcm')).subarray(0, 30_000));
writeFileSync(path.join(input, 'notes.txt'), 'not DICOM\n');
const pixels = path.join(work, 'pixels.yaml');
writeFileSync(pixels, 'risky:\n  sopClass: { secondaryCapture: allow }\n');

describe('deid-gateway deidentify --jobs 2 (worker threads)', () => {
  test('makes what --jobs 1 makes: outputs byte for byte, the same pairs, the same report but for its times, each outcome with its reason', async () => {
    const runs = await Promise.all(
      [1, 2].map(async (jobs) => {
        const out = path.join(work, `out-${jobs}`);
        const report = path.join(work, `report-${jobs}.json`);
        const r = await cli(['--jobs', String(jobs), '--pixels-config', pixels, '--pairs', '--pairs-format', 'both', '--report', report, '--progress', 'none', input, '--out', out]);
        return { ...r, out, report: JSON.parse(readFileSync(report, 'utf8')) as BatchReport };
      }),
    );
    const [one, two] = runs as [(typeof runs)[0], (typeof runs)[0]];
    for (const r of runs) {
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stdout, /^17 de-identified, 1 withheld by the pixel policy, 1 refused, 1 skipped \(not DICOM\)$/m);
      assert.match(r.stderr, /^withheld .*i05\.dcm: risky \(Modality OT\)$/m);
      assert.match(r.stderr, /^refused .*ct-cut\.dcm: DICOM_TRUNCATED at \(7FE0,0010\)$/m);
      assert.match(r.stderr, /^skipped .*notes\.txt: DICOM_NOT_DICOM$/m);
    }
    assert.equal(two.stdout, one.stdout, 'the same table and summary');
    assert.deepEqual(files(two.out), files(one.out));
    assert.equal(files(one.out).length, 17 + 3, 'the outputs and three pair files, no partial file');
    for (const f of files(one.out)) {
      const [a, b] = [readFileSync(path.join(one.out, f)), readFileSync(path.join(two.out, f))];
      // Pair files are appended as files finish (in another order with workers): the same lines.
      if (/\.(jsonl|csv)$/.test(f)) assert.deepEqual(b.toString().split('\n').sort(), a.toString().split('\n').sort(), f);
      else assert.ok(a.equals(b), `${f}: byte for byte`);
    }
    const comparable = (r: BatchReport, out: string) => JSON.parse(JSON.stringify({ ...r, startedAt: 0, finishedAt: 0 }).replaceAll(out, 'OUT')) as unknown;
    assert.deepEqual(comparable(two.report, two.out), comparable(one.report, one.out));
  });

  test('fresh mode links the files of one study across the workers of a run', async () => {
    const out = path.join(work, 'fresh');
    const r = await cli(['--fresh', '--jobs', '2', '--pixels-config', pixels, '--progress', 'none', path.join(input, 'study-0'), '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const outputs = files(out);
    assert.equal(outputs.length, 8);
    const studies = await Promise.all(outputs.map(async (f) => asciiValue((await readPart10Buffer(readFileSync(path.join(out, f)))).header.dataset, 0x0020000d)));
    assert.equal(new Set(studies).size, 1, 'one study within the run, whichever worker rewrote the file');
    assert.notEqual(studies[0], '1.2.826.0.1.3680043.8.498.20.1');
  });

  test('a worker that stops refuses its files in flight (CLI_WORKER_FAILED) and is not restarted if it never finished one: no hang', async () => {
    // A policy a worker cannot build (the main thread checks it first; here nothing did): each worker stops as it starts.
    const pool = createRewritePool(2, { policy: { secret: 'short' }, salt: undefined, hashOutputs: false });
    const out = path.join(work, 'crashed');
    mkdirSync(out);
    try {
      const tried = await Promise.allSettled([0, 1, 2].map((i) => pool.rewrite(path.join(input, 'ct-a.dcm'), 1, path.join(out, `${i}.dcm`))));
      for (const t of tried) assert.equal(t.status === 'rejected' && (t.reason as { code?: string }).code, 'CLI_WORKER_FAILED');
      await assert.rejects(pool.rewrite(path.join(input, 'ct-a.dcm'), 1, path.join(out, 'later.dcm')), { code: 'CLI_WORKER_FAILED' });
    } finally {
      await pool.close();
    }
    assert.equal(existsSync(path.join(out, '0.dcm')), false);
  });

  test('a worker that crashes mid-run refuses only its file in flight, and a fresh worker takes the next', async () => {
    const pool = createRewritePool(1, { policy: { secret: SECRET }, salt: undefined, hashOutputs: false });
    const out = path.join(work, 'crash-mid-run');
    mkdirSync(out);
    const ct = path.join(input, 'ct-a.dcm');
    const size = readFileSync(ct).length;
    const post = Object.getOwnPropertyDescriptor(Worker.prototype, 'postMessage') as PropertyDescriptor;
    try {
      const first = await pool.rewrite(ct, size, path.join(out, 'first.dcm'));
      assert.ok('outputBytes' in first && existsSync(path.join(out, 'first.dcm')));
      // The next message is not a batch: the worker throws outside any file's try (an uncaught exception) and stops.
      Worker.prototype.postMessage = function (this: Worker) {
        Object.defineProperty(Worker.prototype, 'postMessage', post);
        post.value.call(this, { not: 'a batch' });
      };
      await assert.rejects(pool.rewrite(ct, size, path.join(out, 'lost.dcm')), { code: 'CLI_WORKER_FAILED' });
      const next = await pool.rewrite(ct, size, path.join(out, 'next.dcm'));
      assert.ok('outputBytes' in next && readFileSync(path.join(out, 'next.dcm')).equals(readFileSync(path.join(out, 'first.dcm'))));
    } finally {
      Object.defineProperty(Worker.prototype, 'postMessage', post);
      await pool.close();
    }
    assert.deepEqual(files(out), ['first.dcm', 'next.dcm']);
  });
});

// `deid-gateway deidentify`: the offline CLI over files and folders, run as a user runs it (bin/).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { asciiValue } from '../../../src/dicom/dataset.ts';
import { readPart10Buffer } from '../../../src/dicom/part10-reader.ts';
import { createPolicy, createSession } from '../../../src/deid/deidentify.ts';
import { parseProfileList } from '../../../src/deid/profile-options.ts';
import { rewritePart10Buffer } from '../../../src/deid/rewrite-part10.ts';
import { SAMPLES_DIR } from '../../helpers/sample.ts';

const BIN = path.resolve(import.meta.dirname, '../../../bin/deid-gateway.js');
const SECRET = 'cli-test-secret-0123456789abcdef';
const work = mkdtempSync(path.join(tmpdir(), 'deid-cli-'));
after(() => rmSync(work, { recursive: true, force: true }));

function cli(args: readonly string[], env: Record<string, string | undefined> = { DEID_GATEWAY_SECRET: SECRET }): Promise<{ code: number; stdout: string; stderr: string }> {
  const childEnv = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete childEnv[k];
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'deidentify', ...args], { env: childEnv }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

// A small tree: good files two levels deep, a truncated one, a text file.
const input = path.join(work, 'in');
mkdirSync(path.join(input, 'study', 'series'), { recursive: true });
copyFileSync(path.join(SAMPLES_DIR, 'transfer-syntax/MR_small.dcm'), path.join(input, 'study', 'series', 'a.dcm'));
copyFileSync(path.join(SAMPLES_DIR, 'transfer-syntax/image_dfl.dcm'), path.join(input, 'study', 'b'));
copyFileSync(path.join(SAMPLES_DIR, 'edge-cases/MR_truncated.dcm'), path.join(input, 'study', 'truncated.dcm'));
writeFileSync(path.join(input, 'README.txt'), 'not DICOM\n');

describe('deid-gateway deidentify', () => {
  test('mirrors the input tree, skips non-DICOM files, refuses the truncated one with its code and leaves nothing of it', async () => {
    const out = path.join(work, 'out1');
    const r = await cli(['--jobs', '3', input, '--out', out]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /^2 de-identified, 1 refused, 1 skipped \(not DICOM\)$/m);
    assert.match(r.stderr, /refused .*truncated\.dcm: DICOM_TRUNCATED/);
    assert.match(r.stderr, /skipped .*README\.txt: DICOM_NOT_DICOM/);
    assert.deepEqual(files(out), ['study/b', 'study/series/a.dcm']); // no partial files, no pairs file
    assert.equal(statSync(path.join(out, 'study/b')).mode & 0o077, 0, 'outputs are private to the user');
    // The same engine as the gateway: byte for byte what rewritePart10 makes.
    const policy = createPolicy({ secret: SECRET });
    const direct = await rewritePart10Buffer(readFileSync(path.join(input, 'study/series/a.dcm')), createSession(policy));
    assert.ok(readFileSync(path.join(out, 'study/series/a.dcm')).equals(direct.output));
  });

  test('exits 0 when every file is de-identified and writes the pseudonym pairs only when asked', async () => {
    const one = path.join(input, 'study', 'series', 'a.dcm');
    const out = path.join(work, 'out2');
    const r = await cli(['--profile', 'retainLongitudinalTemporalModifiedDates,retainPatientCharacteristics', '--pairs', one, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^1 de-identified, 0 refused$/m);
    const pairsFile = path.join(out, 'pseudonyms.jsonl');
    assert.equal(statSync(pairsFile).mode & 0o077, 0);
    const pairs = readFileSync(pairsFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string; pseudonym: string; original: string });
    const ds = (await readPart10Buffer(readFileSync(path.join(out, 'a.dcm')))).header.dataset;
    const study = asciiValue(ds, 0x0020000d);
    assert.ok(pairs.some((p) => p.kind === 'uid' && p.pseudonym === study));
    assert.ok(pairs.some((p) => p.kind === 'patientId' && p.pseudonym === asciiValue(ds, 0x00100020)));
    assert.equal(asciiValue(ds, 0x00280303), 'MODIFIED');
  });

  test('fresh mode links the files of one run and unlinks two runs', async () => {
    const one = path.join(input, 'study', 'series', 'a.dcm');
    const twin = path.join(work, 'twin');
    mkdirSync(twin);
    copyFileSync(one, path.join(twin, 'a.dcm'));
    copyFileSync(one, path.join(twin, 'a-copy.dcm'));
    const study = async (file: string) => asciiValue((await readPart10Buffer(readFileSync(file))).header.dataset, 0x0020000d);
    const runs = [path.join(work, 'fresh1'), path.join(work, 'fresh2')];
    for (const out of runs) assert.equal((await cli(['--fresh', twin, '--out', out])).code, 0);
    const [a1, b1, a2] = await Promise.all([study(path.join(runs[0]!, 'a.dcm')), study(path.join(runs[0]!, 'a-copy.dcm')), study(path.join(runs[1]!, 'a.dcm'))]);
    assert.equal(a1, b1, 'one study within a run');
    assert.notEqual(a1, a2, 'unlinkable across runs');
  });

  test('usage errors exit 2 with a reason and never print the secret', async () => {
    const out = path.join(work, 'never');
    const cases: [string[], Record<string, string | undefined>, RegExp][] = [
      [[input, '--out', out], { DEID_GATEWAY_SECRET: undefined }, /a secret is required/],
      [[input, '--out', out], { DEID_GATEWAY_SECRET: 'short' }, /secret: at least 16 bytes/],
      [['--secret-file', path.join(work, 'missing'), input, '--out', out], {}, /cannot read the secret file/],
      [['--profile', 'retainEverything', input, '--out', out], {}, /not a PS3\.15 option: retainEverything/],
      [['--profile', 'retainLongitudinalTemporalFullDates,retainLongitudinalTemporalModifiedDates', input, '--out', out], {}, /exclude each other/],
      [[input], {}, /--out DIR is required/],
      [['--out', out], {}, /no input/],
      [['--jobs', '0', input, '--out', out], {}, /--jobs/],
      [[path.join(work, 'nope'), '--out', out], {}, /input not found/],
      [['--bogus', input, '--out', out], {}, /bogus/],
    ];
    for (const [args, env, reason] of cases) {
      const r = await cli(args, { DEID_GATEWAY_SECRET: SECRET, ...env });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, reason);
      assert.ok(!r.stderr.includes(SECRET) && !r.stdout.includes(SECRET));
    }
    assert.equal(existsSync(out), false, 'nothing written on a usage error');
  });

  test('the secret may come from a file; --profile basic means no option', async () => {
    const secretFile = path.join(work, 'secret');
    writeFileSync(secretFile, `${SECRET}\n`);
    const out = path.join(work, 'out3');
    const r = await cli(['--profile', 'basic', '--secret-file', secretFile, path.join(input, 'study', 'series', 'a.dcm'), '--out', out], { DEID_GATEWAY_SECRET: undefined });
    assert.equal(r.code, 0, r.stderr);
    const direct = await rewritePart10Buffer(readFileSync(path.join(input, 'study/series/a.dcm')), createSession(createPolicy({ secret: SECRET })));
    assert.ok(readFileSync(path.join(out, 'a.dcm')).equals(direct.output), 'the trailing newline is not part of the secret');
    assert.deepEqual(parseProfileList('basic'), { options: {}, unknown: [] });
    assert.deepEqual(parseProfileList('basic, cleanGraphics,,x'), { options: { cleanGraphics: true }, unknown: ['x'] });
  });
});

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
// A CT: no risky criterion of the pixel policy holds for it (MR_small's Image Type says SECONDARY).
copyFileSync(path.join(SAMPLES_DIR, 'private-tags/CT_small.dcm'), path.join(input, 'study', 'series', 'a.dcm'));
// A Secondary Capture (OT): withheld under the product's pixel policy.
copyFileSync(path.join(SAMPLES_DIR, 'transfer-syntax/image_dfl.dcm'), path.join(input, 'study', 'b'));
// The same CT cut inside its Pixel Data: the header passes, the truncation is found as the pixels stream.
writeFileSync(path.join(input, 'study', 'truncated.dcm'), readFileSync(path.join(SAMPLES_DIR, 'private-tags/CT_small.dcm')).subarray(0, 30_000));
writeFileSync(path.join(input, 'README.txt'), 'not DICOM\n');

describe('deid-gateway deidentify', () => {
  test('mirrors the input tree, skips non-DICOM files, withholds the secondary capture, refuses the truncated one with its code and leaves nothing of either', async () => {
    const out = path.join(work, 'out1');
    const r = await cli(['--jobs', '3', input, '--out', out]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /^1 de-identified, 1 withheld by the pixel policy, 1 refused, 1 skipped \(not DICOM\)$/m);
    assert.match(r.stderr, /refused .*truncated\.dcm: DICOM_TRUNCATED/);
    assert.match(r.stderr, /skipped .*README\.txt: DICOM_NOT_DICOM/);
    // image_dfl.dcm is a Secondary Capture (OT): risky under the product defaults, and no rule covers it.
    assert.match(r.stderr, /withheld .*study\/b: risky \(.+\)$/m);
    assert.deepEqual(files(out), ['study/series/a.dcm']); // no partial files, no pairs file
    assert.equal(statSync(path.join(out, 'study/series/a.dcm')).mode & 0o077, 0, 'outputs are private to the user');
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
      [['--pixels-config', path.join(work, 'missing.yaml'), input, '--out', out], {}, /--pixels-config: cannot read/],
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

// Issue 16: the CLI applies the same pixel policy as the gateway's profiles (--pixels-config: a profile's
// `pixels` block). Withheld files are skipped with their reason (exit 0: a policy outcome), redacted ones
// written with the rule's rectangle blank in every frame, untouched ones with Pixel Data byte for byte.
describe('deid-gateway deidentify: pixels', () => {
  const BANNER = { x: 0, y: 0, width: 320, height: 40 };
  const pixelsIn = path.join(work, 'pixels-in');
  mkdirSync(pixelsIn, { recursive: true });
  const copies: Record<string, string> = {
    'cine-native.dcm': 'multiframe/IM00001.implicit_little_endian.dcm',
    'cine-jpeg.dcm': 'multiframe/IM00001.fragmented_no_bot_jpeg_baseline.50.dcm',
    'capture.dcm': 'charset/chrArab.dcm',
    'report.dcm': 'sr/test-SR.dcm',
    'ct.dcm': 'transfer-syntax/CT1_UNC.explicit_little_endian.dcm',
  };
  for (const [name, rel] of Object.entries(copies)) copyFileSync(path.join(SAMPLES_DIR, rel), path.join(pixelsIn, name));
  const rules = path.join(work, 'pixels.yaml');
  writeFileSync(rules, `rules:\n  - name: acuson-us-banner\n    match: { Modality: US, Manufacturer: ACUSON }\n    rectangles: [{ x: 0, y: 0, width: 320, height: 40 }]\n`);

  /** Samples inside the banner that are not the blank value (0; mid-scale chroma for YBR_FULL), over every frame of an 8-bit native instance. */
  const notBlank = async (file: string): Promise<{ count: number; transferSyntax: string }> => {
    const parsed = await readPart10Buffer(readFileSync(file));
    const ds = parsed.header.dataset;
    const us = (tag: number) => ds.find((e) => e.tag === tag)?.value?.readUInt16LE(0) ?? 0;
    const [rows, columns, spp] = [us(0x00280010), us(0x00280011), us(0x00280002)];
    const planar = us(0x00280006);
    const frames = Number(asciiValue(ds, 0x00280008) ?? '1');
    const blank = asciiValue(ds, 0x00280004)?.trim() === 'YBR_FULL' ? [0, 128, 128] : [0, 0, 0];
    const px = parsed.pixelDataBytes as Buffer;
    let count = 0;
    for (let f = 0; f < frames; f++) {
      for (let y = BANNER.y; y < BANNER.y + BANNER.height; y++) {
        for (let x = BANNER.x; x < BANNER.x + BANNER.width; x++) {
          for (let s = 0; s < spp; s++) {
            const at = f * rows * columns * spp + (planar === 0 ? (y * columns + x) * spp + s : s * rows * columns + y * columns + x);
            if (px[at] !== blank[s]) count++;
          }
        }
      }
    }
    return { count, transferSyntax: parsed.header.transferSyntaxUID };
  };

  test('withheld files are skipped with their reason and leave no output; the cine is redacted in every frame; the CT keeps its Pixel Data; exit 0', async () => {
    const out = path.join(work, 'pixels-out');
    const r = await cli(['--pixels-config', rules, pixelsIn, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^3 de-identified, 2 withheld by the pixel policy, 0 refused$/m);
    assert.match(r.stderr, /^withheld .*capture\.dcm: risky \(.+\)$/m);
    assert.match(r.stderr, /^withheld .*report\.dcm: filtered \(.+\)$/m);
    assert.deepEqual(files(out), ['cine-jpeg.dcm', 'cine-native.dcm', 'ct.dcm']);
    assert.ok((await notBlank(path.join(pixelsIn, 'cine-native.dcm'))).count > 0, 'the original banner is not blank');
    for (const [name, syntax] of [['cine-native.dcm', '1.2.840.10008.1.2'], ['cine-jpeg.dcm', '1.2.840.10008.1.2.1']] as const) {
      const seen = await notBlank(path.join(out, name));
      assert.equal(seen.count, 0, `${name}: the banner is blank in every frame`);
      // Native pixels are blanked in place, in the file's own transfer syntax; JPEG frames are decoded and written native Explicit VR LE.
      assert.equal(seen.transferSyntax, syntax, name);
    }
    const [ct, original] = await Promise.all([readPart10Buffer(readFileSync(path.join(out, 'ct.dcm'))), readPart10Buffer(readFileSync(path.join(pixelsIn, 'ct.dcm')))]);
    assert.ok(ct.pixelDataBytes?.equals(original.pixelDataBytes as Buffer), 'Pixel Data byte for byte');
  });

  test('a pixels config with an unknown field or a bad rectangle is a usage error naming its keys', async () => {
    const bad = path.join(work, 'pixels-bad.yaml');
    writeFileSync(bad, 'bogus: 1\nrules: [{ name: r, match: { Modality: US }, rectangles: [{ x: 0, y: 0, width: -3, height: 4 }] }]\n');
    const r = await cli(['--pixels-config', bad, pixelsIn, '--out', path.join(work, 'never-pixels')]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /pixels\.bogus/);
    assert.match(r.stderr, /pixels\.rules\.0/);
    assert.equal(existsSync(path.join(work, 'never-pixels')), false);
  });
});

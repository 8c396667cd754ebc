// The `pixels` block of a profile (issue 16): shape by the schema, meaning by the policy, CTP scripts read
// at start from the config file's directory; every problem at once, named by its key.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError } from '../../../src/config/errors.ts';
import { loadResolvedConfig } from '../../../src/config/resolve.ts';

const work = mkdtempSync(path.join(tmpdir(), 'deid-pixels-config-'));
after(() => rmSync(work, { recursive: true, force: true }));
const secretFile = path.join(work, 'deid.secret');
writeFileSync(secretFile, 'a-pixels-config-test-secret-0123456789\n');
copyFileSync(path.resolve(import.meta.dirname, '../../fixtures/pixel-rules/us-fleet.script'), path.join(work, 'us-fleet.script'));
writeFileSync(path.join(work, 'broken.script'), '{ Modality.equals("US") *\n  Manufacturer.equals(ACUSON) }\n(0,0,10,10)\n');

function config(profiles: string, projects = ''): string {
  const file = path.join(work, `config-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, `
upstream: { url: 'http://127.0.0.1:8042/dicom-web' }
auth: { issuer: 'https://idp.test', audience: deid-gateway, sharedSecret: { env: HS }, algorithms: [HS256] }
deid:
  secret: { file: ${secretFile} }
  profiles:
${profiles}
${projects}
dataDir: ${path.join(work, 'data')}
`);
  return file;
}

function problemsOf(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return [...error.problems];
  }
  assert.fail('expected a ConfigError');
}

const ENV = { HS: 'a-shared-secret-for-tests-0123456789' };

describe('the pixels block', () => {
  test('absent: the defaults, active, for both roles', () => {
    const resolved = loadResolvedConfig(config('    researcher: { options: [] }'), ENV);
    for (const role of ['researcher', 'uploader'] as const) {
      const pixels = resolved.deid?.policies[role].pixels;
      assert.equal(pixels?.active, true);
      assert.ok(pixels?.describe().risky.includes('Modality US'));
      assert.ok(pixels?.describe().filters.some((f) => f.startsWith('sr:')));
    }
    assert.deepEqual(resolved.deid?.pixelsOff, []);
  });

  test('rules, allow choices and a CTP script relative to the config file are in force', () => {
    const resolved = loadResolvedConfig(config(`    researcher:
      options: [cleanStructuredContent]
      pixels:
        risky: { modality: { US: allow } }
        rules:
          - { name: acuson-banner, match: { Modality: US, Manufacturer: { containsIgnoreCase: acuson } }, rectangles: [{ x: 0, y: 0, width: 320, height: 30 }] }
        ctpScripts: [us-fleet.script]
    uploader: { pixels: { enabled: false } }`), ENV);
    const d = resolved.deid?.policies.researcher.pixels.describe();
    assert.deepEqual(d?.rules.map((r) => r.name), ['acuson-banner', 'ctp:us-fleet.script:7', 'ctp:us-fleet.script:13', 'ctp:us-fleet.script:17', 'ctp:us-fleet.script:23', 'ctp:us-fleet.script:28']);
    assert.ok(d?.allowed.includes('Modality US'));
    assert.ok(!d?.filters.some((f) => f.startsWith('sr:')), 'Clean Structured Content keeps SR');
    assert.equal(resolved.deid?.policies.uploader.pixels.active, false);
    assert.deepEqual(resolved.deid?.pixelsOff, ['deid.profiles.uploader']);
  });

  test('a project profile carries its own pixels; the scoped policy builds it', () => {
    const resolved = loadResolvedConfig(config('    researcher: { options: [] }', `projects:
  echo:
    profile: { options: [], pixels: { risky: { burnedInAnnotation: allow } } }
    membership: { all: true }`), ENV);
    const profile = resolved.config.projects['echo']?.profile;
    const policy = resolved.deid?.scopedPolicy(profile, 'project:echo');
    assert.ok(policy?.pixels.describe().allowed.includes('BurnedInAnnotation'));
    assert.ok(!resolved.deid?.scopedPolicy(undefined, 'project:other').pixels.describe().allowed.includes('BurnedInAnnotation'));
  });

  test('a shape the schema refuses is named by its key', () => {
    const problems = problemsOf(() => loadResolvedConfig(config('    uploader: { pixels: { risky: { modality: { US: keep } } }, colour: true }'), ENV));
    assert.ok(problems.some((p) => p.startsWith('deid.profiles.uploader.pixels.risky.modality.US')), problems.join('\n'));
  });

  test('every problem at once, each named by its config key', () => {
    const problems = problemsOf(() => loadResolvedConfig(config(`    researcher:
      pixels:
        rules: [{ name: r, match: { Modalty: US }, rectangles: [{ x: 0, y: 0, width: 5, height: 5 }] }]
        filters: [{ name: f, exclude: { SeriesDescription: { matches: '(' } } }]
        ctpScripts: [broken.script, absent.script]
    uploader:
      pixels: { risky: { modality: { ULTRASOUND-LONG-CODE: withhold } } }`, `projects:
  p1:
    profile: { pixels: { rules: [{ name: x, match: { Rows: { between: 1 } }, rectangles: [{ x: 0, y: 0, width: 1, height: 1 }] }] } }
    membership: { all: true }`), ENV));
    assert.deepEqual(problems.sort(), [
      'deid.profiles.researcher.pixels.ctpScripts.0: broken.script line 2: equals takes a quoted string',
      'deid.profiles.researcher.pixels.ctpScripts.1: cannot read file absent.script (ENOENT)',
      'deid.profiles.researcher.pixels.filters.0.exclude.SeriesDescription.matches: not a valid regular expression',
      'deid.profiles.researcher.pixels.rules.0.match.Modalty: not an attribute keyword or tag',
      'deid.profiles.uploader.pixels.risky.modality.ULTRASOUND-LONG-CODE: a code string of 1 to 16 characters',
      'projects.p1.profile.pixels.rules.0.match.Rows.between: not a test (equals, equalsIgnoreCase, contains, containsIgnoreCase, startsWith, endsWith, matches, present, lessThan, greaterThan)',
    ].sort());
  });
});

describe('OCR-assisted redaction (issue 18): pixels.ocr per profile and project, the top-level ocr engine block', () => {
  test('pixels.ocr is off by default and on where a profile or project says so; the engine block has its defaults', () => {
    const resolved = loadResolvedConfig(
      config('    researcher: { options: [], pixels: { ocr: true } }', "projects:\n  plain: { membership: { all: true }, profile: { options: [], pixels: { ocr: false } } }"),
      ENV,
    );
    assert.equal(resolved.deid?.policies.researcher.pixels.ocr, true);
    assert.equal(resolved.deid?.policies.uploader.pixels.ocr, false);
    assert.deepEqual(resolved.config.ocr, { workers: 1, timeoutMs: 20_000, marginPx: 4, maxQueue: 32, sampleEvery: 10, maxSampledFrames: 8, cacheTtlSeconds: 600 });
  });

  test('unknown keys and bad values are refused, each named by its key', () => {
    const file = config('    researcher: { options: [], pixels: { ocr: "yes" } }');
    writeFileSync(file, `${readFileSync(file, 'utf8')}ocr: { workers: 0, sampleEvry: 5 }\n`);
    const problems = problemsOf(() => loadResolvedConfig(file, ENV)).join('\n');
    assert.match(problems, /pixels\.ocr/);
    assert.match(problems, /ocr\.workers/);
    assert.match(problems, /sampleEvry/);
  });
});

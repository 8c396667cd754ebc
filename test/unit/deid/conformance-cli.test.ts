// `deid-gateway conformance`: run as a user runs it (bin/), from a config file.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

const BIN = path.resolve(import.meta.dirname, '../../../bin/deid-gateway.js');
const work = mkdtempSync(path.join(tmpdir(), 'deid-conformance-'));
after(() => rmSync(work, { recursive: true, force: true }));

function cli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  // The secret's environment variable is deliberately unset: the statement must not need it.
  const env = { ...process.env };
  delete env['CONFORMANCE_TEST_SECRET'];
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'conformance', ...args], { env, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

const base = `
upstream: { url: 'http://127.0.0.1:8042/dicom-web' }
auth: { issuer: 'https://idp.test', audience: deid-gateway, publicKeyFiles: [/nonexistent/key.pem] }
`;
const config = path.join(work, 'gateway.yaml');
writeFileSync(
  config,
  `${base}
deid:
  secret: { env: CONFORMANCE_TEST_SECRET }
  profiles:
    researcher: { options: [retainPatientCharacteristics, retainLongitudinalTemporalModifiedDates], overrides: { InstitutionName: keep } }
    uploader: { options: [] }
  uploadPseudonyms: fresh
  researcherRendered: true
`,
);

test('conformance --format json states the role\'s options, overrides and per-attribute effects, without the secret', async () => {
  const { code, stdout, stderr } = await cli(['--config', config, '--role', 'researcher', '--format', 'json']);
  assert.equal(code, 0, stderr);
  const s = JSON.parse(stdout) as {
    role: string;
    options: { name: string; enabled: boolean }[];
    overrides: { keyword: string; override: string }[];
    attributes: { keyword: string; category: string; source: string }[];
    renderedOffered: boolean;
    pseudonyms: { mode: string };
  };
  assert.equal(s.role, 'researcher');
  assert.deepEqual(s.options.filter((o) => o.enabled).map((o) => o.name).sort(), ['retainLongitudinalTemporalModifiedDates', 'retainPatientCharacteristics']);
  assert.deepEqual(s.overrides.map((o) => `${o.keyword}=${o.override}`), ['InstitutionName=keep']);
  const row = (k: string) => s.attributes.find((a) => a.keyword === k);
  assert.deepEqual([row('InstitutionName')?.category, row('InstitutionName')?.source], ['kept', 'override']);
  assert.deepEqual([row('PatientSex')?.category, row('PatientSex')?.source], ['kept', 'retainPatientCharacteristics']);
  assert.equal(row('StudyDate')?.category, 'cleaned');
  assert.equal(s.renderedOffered, true);
  assert.equal(s.pseudonyms.mode, 'keyed');
});

test('conformance (markdown, the default) for the uploader follows that role\'s profile', async () => {
  const { code, stdout } = await cli(['--config', config, '--role', 'uploader']);
  assert.equal(code, 0);
  assert.match(stdout, /^# De-identification conformance statement: uploader/);
  assert.match(stdout, /- Mode: fresh/);
  assert.match(stdout, /\| retainLongitudinalTemporalModifiedDates \| no \|/);
  assert.match(stdout, /\| \(0008,0020\) \| StudyDate \| DA \| Z \| basic \| empty \(zero length\) \|/);
  assert.match(stdout, /^## Safe list: attributes outside Table E\.1-1 kept although their VR can carry identity \(\d+\)$/m);
  assert.match(stdout, /^\| \(0008,0104\) \| CodeMeaning \| LO \| coded entry .* \| keep \|$/m);
  assert.match(stdout, /Standard attributes Table E\.1-1 does not list \(Note 1\): removed when their VR can carry identity/);
});

test('a bad role is a usage error (2); a config without deid is a config error (78)', async () => {
  const plain = path.join(work, 'plain.yaml');
  writeFileSync(plain, base);
  const broken = path.join(work, 'broken.yaml');
  writeFileSync(broken, `${base}\ndeid: { secret: { env: X }, profiles: { researcher: { overrides: { NotAKeyword: keep } } } }\n`);
  const [bad, none, invalid] = await Promise.all([cli(['--config', config, '--role', 'clinician']), cli(['--config', plain]), cli(['--config', broken])]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--role researcher\|uploader/);
  assert.equal(none.code, 78);
  assert.match(none.stderr, /no deid section/);
  assert.equal(invalid.code, 78);
  assert.match(invalid.stderr, /deid\.profiles\.researcher\..*overrides\.NotAKeyword: not a tag or known keyword/);
});

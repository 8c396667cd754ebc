// Config resolved in one pass (issue 14): secrets, key files and policies are read and checked by
// config/ before anything starts, every problem at once with its key, and `serve` exits 78 (EX_CONFIG).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError } from '../../../src/config/errors.ts';
import { validateConfig } from '../../../src/config/load.ts';
import { loadResolvedConfig, resolveConfig } from '../../../src/config/resolve.ts';

const BIN = path.resolve(import.meta.dirname, '../../../bin/deid-gateway.js');
const work = mkdtempSync(path.join(tmpdir(), 'deid-resolve-'));
after(() => rmSync(work, { recursive: true, force: true }));

const publicKeyFile = path.join(work, 'public.pem');
writeFileSync(publicKeyFile, generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }));
const secretFile = path.join(work, 'deid.secret');
writeFileSync(secretFile, 'a-resolve-test-secret-0123456789\n');
const missingKey = path.join(work, 'absent-public.pem');
const missingSecret = path.join(work, 'absent.secret');

/** The three problems of the issue: a missing public key file, a missing secret file, a bad profile option. */
const BROKEN = `
upstream: { url: 'http://127.0.0.1:8042/dicom-web' }
auth: { issuer: 'https://idp.test', audience: deid-gateway, publicKeyFiles: [${publicKeyFile}, ${missingKey}] }
deid:
  secret: { file: ${missingSecret} }
  profiles:
    researcher: { options: [retainLongitudinalTemporalModifiedDates, notAnOption] }
dataDir: ${path.join(work, 'data')}
`;

function problemsOf(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return [...error.problems];
  }
  assert.fail('expected a ConfigError');
}

function write(name: string, text: string): string {
  const file = path.join(work, name);
  writeFileSync(file, text);
  return file;
}

function serve(configFile: string): Promise<{ code: number | string | null; stderr: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env };
    for (const name of Object.keys(env)) if (name.startsWith('DEID_GATEWAY')) delete env[name];
    execFile(process.execPath, [BIN, 'serve', '--config', configFile], { env, timeout: 30_000 }, (error, _stdout, stderr) => {
      resolve({ code: error ? (error.code ?? error.signal ?? null) : 0, stderr });
    });
  });
}

describe('config resolved in one pass', () => {
  test('a missing public key file, a missing secret file and a bad profile option are reported at once, each by key', () => {
    const problems = problemsOf(() => loadResolvedConfig(write('broken.yaml', BROKEN), {}));
    const text = problems.join('\n');
    assert.match(text, /^auth\.publicKeyFiles\.1: cannot read file .*absent-public\.pem \(ENOENT\)$/m);
    assert.match(text, /^deid\.secret: cannot read file .*absent\.secret \(ENOENT\)$/m);
    assert.match(text, /^deid\.profiles\.researcher\.options\.1: /m);
    assert.equal(problems.length, 3, text);
    assert.ok(!/publicKeyFiles\.0/.test(text), 'the readable key file is not a problem');
  });

  test('a policy problem found by the engine is named by its config key, beside the other problems', () => {
    const file = write(
      'overrides.yaml',
      `
upstream: { url: 'http://127.0.0.1:8042/dicom-web', auth: { type: bearer, token: { env: PACS_TOKEN_UNSET } } }
auth: { issuer: 'https://idp.test', audience: deid-gateway, publicKeyFiles: [${write('not-a-key.pem', 'hello')}] }
deid:
  secret: { file: ${secretFile} }
  profiles:
    uploader: { overrides: { NotAKeyword: keep, PatientName: frobnicate } }
`,
    );
    const problems = problemsOf(() => loadResolvedConfig(file, {}));
    assert.deepEqual(problems.sort(), [
      `auth.publicKeyFiles.0: ${path.join(work, 'not-a-key.pem')} is not a public key (PEM SPKI or certificate, JWK or JWKS)`,
      'deid.profiles.uploader.overrides.NotAKeyword: not a tag or known keyword',
      'deid.profiles.uploader.overrides.PatientName: expected keep | remove | empty | replace:<value> | hash',
      'upstream.auth.token: environment variable PACS_TOKEN_UNSET is not set',
    ]);
  });

  test('a secret shorter than 16 bytes is named as deid.secret, once for both roles', () => {
    const short = write('short.secret', 'short');
    const config = validateConfig({
      upstream: { url: 'http://127.0.0.1:8042/dicom-web' },
      auth: { issuer: 'i', audience: 'a', publicKeyFiles: [publicKeyFile] },
      deid: { secret: { file: short } },
    });
    assert.deepEqual(problemsOf(() => resolveConfig(config, {})), ['deid.secret: at least 16 bytes']);
  });

  test('a good config resolves to the keys, secrets and both policies; no secret value is in a message', () => {
    const config = validateConfig({
      upstream: { url: 'http://127.0.0.1:8042/dicom-web', auth: { type: 'basic', username: 'gw', password: { env: 'PACS_PW' } } },
      auth: { issuer: 'i', audience: 'a', publicKeyFiles: [publicKeyFile] },
      deid: { secret: { file: secretFile }, profiles: { researcher: { overrides: { InstitutionName: 'keep' } } } },
      metrics: { auth: { type: 'bearer', token: { env: 'SCRAPE' } } },
    });
    const resolved = resolveConfig(config, { PACS_PW: 'pw', SCRAPE: 'scrape-token' });
    assert.equal(resolved.publicKeys.length, 1);
    assert.equal(resolved.secrets.upstreamAuthorization, `Basic ${Buffer.from('gw:pw').toString('base64')}`);
    assert.equal(resolved.secrets.metricsToken, 'scrape-token');
    assert.ok(resolved.deid?.policies.researcher && resolved.deid.policies.uploader);
    assert.deepEqual(
      resolved.deid.keptOverrides.map((k) => `${k.role} ${k.keyword}`),
      ['researcher InstitutionName'],
    );
    assert.ok(Object.isFrozen(resolved) && Object.isFrozen(resolved.secrets));
    const problems = problemsOf(() => resolveConfig(config, { PACS_PW: 'pw' }));
    assert.deepEqual(problems, ['metrics.auth.token: environment variable SCRAPE is not set']);
  });

  test('server.trustProxy: true is refused with the key that replaces it; false is still accepted', () => {
    const base = { upstream: { url: 'http://127.0.0.1:8042/dicom-web' }, auth: { issuer: 'i', audience: 'a', jwksUrl: 'https://idp/jwks' } };
    assert.match(problemsOf(() => validateConfig({ ...base, server: { trustProxy: true } })).join('\n'), /^server\.trustProxy: replaced by server\.trustedProxies/m);
    assert.deepEqual(validateConfig({ ...base, server: { trustProxy: false } }).server.trustedProxies, []);
    const problems = problemsOf(() =>
      validateConfig({ ...base, server: { trustedProxies: ['10.0.0.0/8', 'fd00::/8', '192.0.2.7', 'proxy.local', '10.0.0.0/33'], publicUrl: 'https://u:p@x/dicom-web?q' } }),
    );
    assert.deepEqual(problems.map((p) => p.replace(/:.*/, '')).sort(), ['server.publicUrl', 'server.trustedProxies.3', 'server.trustedProxies.4']);
  });

  test('`serve` with such a config exits 78 (EX_CONFIG) and lists every problem by key on stderr', async () => {
    const { code, stderr } = await serve(write('serve-broken.yaml', BROKEN));
    assert.equal(code, 78, stderr);
    for (const key of ['auth.publicKeyFiles.1', 'deid.secret', 'deid.profiles.researcher.options.1']) {
      assert.ok(stderr.includes(`  - ${key}: `), `${key} in:\n${stderr}`);
    }
    assert.ok(!/ENOENT: no such file/.test(stderr), 'not a bare ENOENT');
  });
});

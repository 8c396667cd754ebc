import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError } from '../../../src/config/errors.ts';
import { applyEnvOverrides, loadConfig, readSecret, validateConfig } from '../../../src/config/load.ts';

const minimal = {
  upstream: { url: 'http://127.0.0.1:8042/dicom-web' },
  auth: { issuer: 'https://idp', audience: 'gw', publicKeyFiles: ['/keys/pub.pem'] },
};

function problemsOf(raw: unknown): string[] {
  try {
    validateConfig(raw);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return [...error.problems];
  }
  assert.fail('expected a ConfigError');
}

describe('configuration', () => {
  test('a minimal config gets safe defaults and is frozen', () => {
    const config = validateConfig(minimal);
    assert.equal(config.server.basePath, '/dicom-web');
    assert.equal(config.server.host, '127.0.0.1');
    assert.equal(config.upstream.forwardCallerToken, false);
    assert.deepEqual(config.upstream.auth, { type: 'none' });
    assert.ok(!config.auth.algorithms.some((a) => a.startsWith('HS')), 'asymmetric only by default');
    assert.deepEqual(config.auth.rolePrecedence, ['researcher', 'uploader', 'steward', 'clinician']);
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.auth.algorithms));
  });

  test('every problem is reported at once, each naming its key', () => {
    const problems = problemsOf({ upstream: { url: 'ftp://x', bogus: 1 }, auth: { audience: 'gw' }, server: { port: 70000 } });
    const text = problems.join('\n');
    assert.match(text, /^upstream\.url:/m);
    assert.match(text, /upstream: .*bogus/m);
    assert.match(text, /^auth\.issuer:/m);
    assert.match(text, /^server\.port:/m);
    assert.ok(problems.length >= 4);
  });

  test("the DICOMweb base path may not lie on or under one of the gateway's own paths", () => {
    for (const basePath of ['/projects', '/projects/x', '/audit', '/steward', '/withdrawals', '/reidentify']) {
      assert.match(problemsOf({ ...minimal, server: { basePath } }).join('\n'), /^server\.basePath: not one of the gateway's own paths/m, basePath);
    }
    assert.equal(validateConfig({ ...minimal, server: { basePath: '/projects-dicom' } }).server.basePath, '/projects-dicom');
  });

  test('a missing upstream section is named', () => {
    assert.match(problemsOf({ auth: minimal.auth }).join('\n'), /^upstream:/m);
  });

  test('HS* algorithms need an explicit shared secret, and none is never an option', () => {
    assert.match(problemsOf({ ...minimal, auth: { ...minimal.auth, algorithms: ['HS256'] } }).join(), /auth\.algorithms: HS256/);
    assert.match(problemsOf({ ...minimal, auth: { ...minimal.auth, algorithms: ['none'] } }).join(), /auth\.algorithms/);
    const ok = validateConfig({ ...minimal, auth: { ...minimal.auth, algorithms: ['HS256'], sharedSecret: { env: 'S' } } });
    assert.deepEqual(ok.auth.algorithms, ['HS256']);
  });

  test('a config without any way to verify tokens is refused', () => {
    assert.match(problemsOf({ ...minimal, auth: { issuer: 'i', audience: 'a' } }).join(), /jwksUrl, publicKeyFiles or sharedSecret/);
  });

  test('secrets are references to files or variables, never literal values', () => {
    const problems = problemsOf({ ...minimal, upstream: { ...minimal.upstream, auth: { type: 'basic', username: 'u', password: 'hunter2' } } });
    assert.match(problems.join(), /upstream\.auth\.password/);
    assert.ok(!problems.join().includes('hunter2'), 'the value is not echoed');
    assert.equal(readSecret({ env: 'PACS_PW' }, { PACS_PW: 's3cret' }), 's3cret');
    assert.throws(() => readSecret({ env: 'MISSING' }, {}), /MISSING is not set/);
  });

  test('environment variables override keys, matched case-insensitively, with YAML types', () => {
    const raw = applyEnvOverrides(structuredClone(minimal) as Record<string, unknown>, {
      DEID_GATEWAY__UPSTREAM__URL: 'http://pacs:8042/dicom-web',
      DEID_GATEWAY__UPSTREAM__FORWARDCALLERTOKEN: 'true',
      DEID_GATEWAY__SERVER__PORT: '9090',
      OTHER: 'ignored',
    });
    const config = validateConfig(raw);
    assert.equal(config.upstream.url, 'http://pacs:8042/dicom-web');
    assert.equal(config.upstream.forwardCallerToken, true);
    assert.equal(config.server.port, 9090);
  });

  test('the shipped config/gateway.yaml is valid', () => {
    const config = loadConfig(join(import.meta.dirname, '../../../config/gateway.yaml'), {});
    assert.equal(config.server.basePath, '/dicom-web');
  });

  test('an unreadable or malformed file is a ConfigError naming the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'deid-config-'));
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'server: [unclosed');
    assert.throws(() => loadConfig(bad, {}), (e: unknown) => e instanceof ConfigError && /not valid YAML/.test(e.message));
    assert.throws(() => loadConfig(join(dir, 'absent.yaml'), {}), /cannot read/);
  });
});

// `dimse.forward.destination`'s secrets, resolved in the config's one pass (config/resolve.ts) like the
// upstream's: read from a file or the environment, every problem reported at once by its key.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError } from '../../../src/config/errors.ts';
import { validateConfig } from '../../../src/config/load.ts';
import { resolveConfig } from '../../../src/config/resolve.ts';

const work = mkdtempSync(path.join(tmpdir(), 'deid-destination-secrets-'));
after(() => rmSync(work, { recursive: true, force: true }));
const deidSecret = path.join(work, 'deid.secret');
writeFileSync(deidSecret, 'a-destination-test-secret-0123456789');

function config(auth: object) {
  return validateConfig({
    upstream: { url: 'http://127.0.0.1:8042/dicom-web' },
    auth: { issuer: 'https://idp.test', audience: 'deid-gateway', sharedSecret: { env: 'HS' }, algorithms: ['HS256'] },
    dataDir: path.join(work, 'data'),
    deid: { secret: { file: deidSecret } },
    dimse: { enabled: true, callers: [{ aeTitle: 'MODALITY', hosts: ['127.0.0.1'] }], forward: { destination: { url: 'https://platform.test/dicom-web', auth } } },
  });
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

const ENV = { HS: 'a-shared-secret-of-enough-length-0123456789' };

describe('dimse.forward.destination secrets', () => {
  test('a bearer token and an OAuth 2.0 client secret are read, from a file or the environment, and kept apart from the upstream credentials', () => {
    const tokenFile = path.join(work, 'token');
    writeFileSync(tokenFile, 'eyJ.abc-def_ghi\n');
    const bearer = resolveConfig(config({ type: 'bearer', token: { file: tokenFile } }), ENV);
    assert.equal(bearer.secrets.destinationAuthorization, 'Bearer eyJ.abc-def_ghi');
    assert.equal(bearer.secrets.destinationClientSecret, undefined);
    assert.equal(bearer.secrets.upstreamAuthorization, undefined);
    const oauth2 = resolveConfig(config({ type: 'oauth2', tokenUrl: 'https://idp.test/token', clientId: 'gw', clientSecret: { env: 'CLIENT_SECRET' }, audience: 'https://platform.test' }), { ...ENV, CLIENT_SECRET: 'a secret:+%' });
    assert.equal(oauth2.secrets.destinationClientSecret, 'a secret:+%');
    assert.equal(oauth2.secrets.destinationAuthorization, undefined);
    const none = resolveConfig(config({ type: 'none' }), ENV);
    assert.equal(none.secrets.destinationAuthorization, undefined);
  });

  test('a missing or empty secret file, an unset variable, and values that cannot be sent are each a problem named by its key', () => {
    const empty = path.join(work, 'empty');
    writeFileSync(empty, '\n');
    const badToken = path.join(work, 'bad-token');
    writeFileSync(badToken, 'has spaces in it');
    assert.deepEqual(problemsOf(() => resolveConfig(config({ type: 'bearer', token: { file: path.join(work, 'absent') } }), ENV)), [
      `dimse.forward.destination.auth.token: cannot read file ${path.join(work, 'absent')} (ENOENT)`,
    ]);
    assert.deepEqual(problemsOf(() => resolveConfig(config({ type: 'bearer', token: { file: empty } }), ENV)), [`dimse.forward.destination.auth.token: file ${empty} is empty`]);
    assert.deepEqual(problemsOf(() => resolveConfig(config({ type: 'bearer', token: { file: badToken } }), ENV)), [
      'dimse.forward.destination.auth.token: not a bearer token (RFC 6750 2.1 b64token characters)',
    ]);
    assert.deepEqual(problemsOf(() => resolveConfig(config({ type: 'oauth2', tokenUrl: 'https://idp.test/token', clientId: 'gw', clientSecret: { env: 'UNSET' } }), ENV)), [
      'dimse.forward.destination.auth.clientSecret: environment variable UNSET is not set',
    ]);
    assert.deepEqual(problemsOf(() => resolveConfig(config({ type: 'oauth2', tokenUrl: 'https://idp.test/token', clientId: 'gw\u00e9', clientSecret: { env: 'S' } }), { ...ENV, S: 'caf\u00e9' })), [
      'dimse.forward.destination.auth.clientId: printable ASCII only (RFC 6749 A.1 VSCHAR)',
      'dimse.forward.destination.auth.clientSecret: printable ASCII only (RFC 6749 A.2 VSCHAR)',
    ]);
  });
});

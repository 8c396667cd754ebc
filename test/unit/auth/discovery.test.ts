import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { createDiscoveredKeys, discoveryUrl } from '../../../src/auth/discovery.ts';
import { IssuerUnavailableError, TokenInvalidError } from '../../../src/auth/errors.ts';
import { createTokenVerifier } from '../../../src/auth/token.ts';
import { validateConfig } from '../../../src/config/load.ts';
import { ConfigError } from '../../../src/config/errors.ts';
import { usesDiscovery } from '../../../src/config/schema.ts';

// OpenID Connect Discovery 1.0 against a loopback provider whose answers each test sets; the clock is the test's.

const REALM = '/realms/imaging';

describe('OpenID Connect discovery', () => {
  const requests: string[] = [];
  /** What the provider answers: the document (or a status) and the JWKS. */
  let answer: { status: number; document?: unknown } = { status: 200 };
  let jwks: { keys: JWK[] } = { keys: [] };
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    if (req.url === `${REALM}/.well-known/openid-configuration`) {
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(answer.document === undefined ? '{}' : JSON.stringify(answer.document));
      return;
    }
    if (req.url === `${REALM}/certs`) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(jwks));
      return;
    }
    res.writeHead(404).end();
  });
  let issuer = '';
  let key: { privateKey: CryptoKey; jwk: JWK };
  let clock = 1_000_000;
  const now = () => clock;

  before(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}${REALM}`;
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    key = { privateKey, jwk: { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' } };
    jwks = { keys: [key.jwk] };
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const document = (overrides: Record<string, unknown> = {}) => ({ issuer, jwks_uri: `${issuer}/certs`, ...overrides });
  const token = (iss = issuer) => new SignJWT({ sub: 'a' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(iss).setAudience('gw').setExpirationTime('5m').sign(key.privateKey);
  const verifierWith = (discovered: ReturnType<typeof createDiscoveredKeys>) =>
    createTokenVerifier({ issuer, audience: 'gw', algorithms: ['ES256'], clockToleranceSec: 5, maxTokenBytes: 16_384, discovered: discovered.getKey });
  const discover = (overrides: Partial<Parameters<typeof createDiscoveredKeys>[0]> = {}) =>
    createDiscoveredKeys({ issuer, cacheMaxAgeMs: 60_000, cooldownMs: 5_000, now, ...overrides });
  const documentReads = () => requests.filter((r) => r.endsWith('/openid-configuration')).length;

  test('the well-known path is appended after the issuer\'s path, without its terminating slash (§4.1)', () => {
    assert.equal(discoveryUrl('https://idp.example.org'), 'https://idp.example.org/.well-known/openid-configuration');
    assert.equal(discoveryUrl('https://idp.example.org/'), 'https://idp.example.org/.well-known/openid-configuration');
    assert.equal(discoveryUrl('https://idp.example.org/realms/x/'), 'https://idp.example.org/realms/x/.well-known/openid-configuration');
    assert.equal(discoveryUrl('https://login.microsoftonline.com/tid/v2.0'), 'https://login.microsoftonline.com/tid/v2.0/.well-known/openid-configuration');
  });

  test('tokens verify with the JWKS the document names, and the document is read once while fresh', async () => {
    answer = { status: 200, document: document() };
    requests.length = 0;
    const outcomes: unknown[] = [];
    const discovered = discover({ observe: (o) => outcomes.push(o.ok ? o.jwksUri : o.error.code) });
    const verify = verifierWith(discovered);
    assert.equal((await verify(`Bearer ${await token()}`)).sub, 'a');
    assert.equal((await verify(`Bearer ${await token()}`)).sub, 'a');
    assert.deepEqual(requests, [`${REALM}/.well-known/openid-configuration`, `${REALM}/certs`]);
    assert.deepEqual(outcomes, [`${issuer}/certs`]);
    await assert.rejects(verify(`Bearer ${await token('https://other.example.org')}`), (e: unknown) => e instanceof TokenInvalidError && e.reason === 'claim iss failed');
  });

  test('a document naming another issuer, none, or a jwks_uri that is not https is refused as unavailable (§4.3)', async () => {
    const refusals: Array<[string, Record<string, unknown>]> = [
      ['a trailing slash', { issuer: `${issuer}/` }],
      ['another issuer', { issuer: 'https://attacker.example.org' }],
      ['no issuer', { issuer: undefined }],
      ['no jwks_uri', { jwks_uri: undefined }],
      ['an http jwks_uri off loopback', { jwks_uri: 'http://idp.example.org/certs' }],
      ['a file jwks_uri', { jwks_uri: 'file:///etc/passwd' }],
    ];
    for (const [label, overrides] of refusals) {
      answer = { status: 200, document: document(overrides) };
      const discovered = discover();
      await assert.rejects(verifierWith(discovered)(`Bearer ${await token()}`), (e: unknown) => e instanceof IssuerUnavailableError && e.code === 'AUTH_ISSUER_UNAVAILABLE', label);
    }
    answer = { status: 200, document: ['not', 'an', 'object'] };
    await assert.rejects(discover().load(), IssuerUnavailableError);
    // allowHttp: an explicit choice for a provider inside the cluster.
    answer = { status: 200, document: document({ jwks_uri: 'http://idp.example.org/certs' }) };
    await discover({ allowHttp: true }).load();
  });

  test('a provider that does not answer is refused at once until the cooldown has passed, then read again', async () => {
    answer = { status: 503 };
    requests.length = 0;
    const discovered = discover({ cooldownMs: 5_000 });
    const verify = verifierWith(discovered);
    const jwt = await token();
    await assert.rejects(verify(`Bearer ${jwt}`), (e: unknown) => e instanceof IssuerUnavailableError && e.retryAfterSec === 5);
    answer = { status: 200, document: document() };
    clock += 2_000;
    await assert.rejects(verify(`Bearer ${jwt}`), (e: unknown) => e instanceof IssuerUnavailableError && e.retryAfterSec === 3, 'still cooling down');
    assert.equal(documentReads(), 1, 'the provider is not asked again during the cooldown');
    clock += 3_000;
    assert.equal((await verify(`Bearer ${jwt}`)).sub, 'a');
    assert.equal(documentReads(), 2);
  });

  test('an unreachable provider is refused as unavailable, not as a bad token', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const gone = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise<void>((r) => closed.close(() => r()));
    const discovered = createDiscoveredKeys({ issuer: gone, cacheMaxAgeMs: 60_000, cooldownMs: 0, now });
    await assert.rejects(discovered.load(), (e: unknown) => e instanceof IssuerUnavailableError && e.reason === 'discovery');
  });

  test('the document is read again once cacheMaxAge old, and a stale one the provider no longer serves is not used', async () => {
    answer = { status: 200, document: document() };
    requests.length = 0;
    const discovered = discover({ cacheMaxAgeMs: 10_000, cooldownMs: 1_000 });
    const verify = verifierWith(discovered);
    const jwt = await token();
    await verify(`Bearer ${jwt}`);
    clock += 9_000;
    await verify(`Bearer ${jwt}`);
    assert.equal(documentReads(), 1);
    clock += 1_000;
    await verify(`Bearer ${jwt}`);
    assert.equal(documentReads(), 2, 'read again at cacheMaxAge');
    assert.equal(requests.filter((r) => r.endsWith('/certs')).length, 1, 'the same jwks_uri keeps its cached key set');
    clock += 10_000;
    answer = { status: 500 };
    await assert.rejects(verify(`Bearer ${jwt}`), IssuerUnavailableError, 'fail closed: the stale document is not used');
  });

  test('the config turns discovery on by default only without other keys, and wants one https issuer', () => {
    const base = { upstream: { url: 'http://127.0.0.1:8042/dicom-web' } };
    const problems = (auth: Record<string, unknown>) => {
      try {
        validateConfig({ ...base, auth: { audience: 'gw', ...auth } });
        return [];
      } catch (error) {
        assert.ok(error instanceof ConfigError);
        return error.problems;
      }
    };
    const auth = (given: Record<string, unknown>) => validateConfig({ ...base, auth: { audience: 'gw', ...given } }).auth;
    assert.equal(usesDiscovery(auth({ issuer: 'https://idp.example.org/realms/x' })), true);
    assert.equal(usesDiscovery(auth({ issuer: 'https://idp.example.org/realms/x', jwksUrl: 'https://idp.example.org/certs' })), false);
    assert.equal(usesDiscovery(auth({ issuer: 'not-a-url', publicKeyFiles: ['k.pem'] })), false);
    assert.equal(usesDiscovery(auth({ issuer: 'https://idp.example.org', publicKeyFiles: ['k.pem'], discovery: true })), true);
    assert.equal(usesDiscovery(auth({ issuer: 'http://127.0.0.1:8080/realms/x' })), true, 'http on loopback');
    assert.match(problems({ issuer: 'http://idp.example.org/realms/x' }).join(), /^auth\.issuer: .*https/);
    assert.equal(usesDiscovery(auth({ issuer: 'http://idp.example.org/realms/x', allowHttp: true })), true, 'or with allowHttp');
    assert.match(problems({ issuer: ['https://a.example.org', 'https://b.example.org'] }).join(), /^auth\.issuer: /);
    assert.match(problems({ issuer: 'https://idp.example.org?x=1' }).join(), /^auth\.issuer: /);
    assert.match(problems({ issuer: 'https://idp', discovery: true, jwksUrl: 'https://idp/certs' }).join(), /^auth\.discovery: .*not both/);
    assert.match(problems({ issuer: 'https://idp', discovery: false }).join(), /configure jwksUrl, publicKeyFiles or sharedSecret/);
    assert.match(problems({ issuer: 'i', jwksUrl: 'http://idp.example.org/certs' }).join(), /^auth\.jwksUrl: not https/);
    assert.deepEqual(problems({ issuer: 'i', jwksUrl: 'http://localhost:8080/certs' }), []);
  });
});

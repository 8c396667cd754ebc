import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { IssuerUnavailableError, TokenInvalidError, TokenMissingError } from '../../../src/auth/errors.ts';
import { createTokenVerifier } from '../../../src/auth/token.ts';
import { loadPublicKeyFile } from '../../../src/config/public-key-file.ts';
import { makeKeys } from '../../helpers/gateway.ts';

const common = { issuer: 'https://idp', audience: 'gw', clockToleranceSec: 5, maxTokenBytes: 16_384 };

async function keyPair(kid: string) {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256' } as JWK };
}
const sign = (key: CryptoKey, kid: string, claims: Record<string, unknown> = {}) =>
  new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid })
    .setIssuer('https://idp')
    .setAudience('gw')
    .setExpirationTime('5m')
    .sign(key);

describe('token verification', () => {
  let jwks: { keys: JWK[] } = { keys: [] };
  let fetches = 0;
  const server = createServer((_req, res) => {
    fetches++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(jwks));
  });
  let jwksUrl = '';
  before(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/certs`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  test('a JWKS URL is cached, refetched on an unknown kid, and follows key rotation', async () => {
    const first = await keyPair('k1');
    jwks = { keys: [first.jwk] };
    const verify = createTokenVerifier({ ...common, algorithms: ['ES256'], jwksUrl, jwksCooldownMs: 0 });
    assert.equal((await verify(`Bearer ${await sign(first.privateKey, 'k1', { sub: 'a' })}`)).sub, 'a');
    assert.equal((await verify(`Bearer ${await sign(first.privateKey, 'k1', { sub: 'b' })}`)).sub, 'b');
    assert.equal(fetches, 1, 'the key set is cached');

    const second = await keyPair('k2');
    jwks = { keys: [second.jwk] }; // the IdP rotates
    assert.equal((await verify(`Bearer ${await sign(second.privateKey, 'k2', { sub: 'c' })}`)).sub, 'c');
    assert.equal(fetches, 2, 'an unknown kid refetches');

    const stranger = await keyPair('k9');
    await assert.rejects(verify(`Bearer ${await sign(stranger.privateKey, 'k9')}`), TokenInvalidError);
  });

  test('local PEM and JWK files verify; a private key file only lends its public part', async () => {
    const keys = await makeKeys();
    const [jwk] = loadPublicKeyFile(keys.publicKeyFile);
    assert.equal(jwk?.kty, 'RSA');
    assert.equal(jwk?.d, undefined);
    const verify = createTokenVerifier({ ...common, algorithms: ['RS256'], publicKeys: [jwk as JWK] });
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'RS256' })
      .setIssuer('https://idp')
      .setAudience('gw')
      .setExpirationTime('5m')
      .sign(keys.privateKey);
    assert.ok(await verify(`Bearer ${token}`));
  });

  test('missing, oversized and non-bearer credentials fail without echoing the token', async () => {
    const verify = createTokenVerifier({ ...common, algorithms: ['ES256'], publicKeys: [] });
    await assert.rejects(verify(undefined), TokenMissingError);
    const secretish = `Bearer aaaa.${'b'.repeat(20_000)}.cccc`;
    await assert.rejects(verify(secretish), (e: unknown) => e instanceof TokenInvalidError && !e.message.includes('bbbb'));
    await assert.rejects(verify('Token abc'), TokenInvalidError);
  });

  test('HS256 is accepted only when allowed and a shared secret is configured', async () => {
    const secret = 'a-shared-secret-of-enough-length-0123456789';
    const hs = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('https://idp')
      .setAudience('gw')
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(secret));
    const withSecret = createTokenVerifier({ ...common, algorithms: ['HS256'], sharedSecret: secret });
    assert.ok(await withSecret(`Bearer ${hs}`));
    const asymmetricOnly = createTokenVerifier({ ...common, algorithms: ['ES256'], sharedSecret: secret });
    await assert.rejects(asymmetricOnly(`Bearer ${hs}`), /algorithm not allowed/);
  });

  test('authorizedParties: the token\'s azp, else its client_id, must be listed; absent, any client is taken', async () => {
    const key = await keyPair('k1');
    const verify = createTokenVerifier({ ...common, algorithms: ['ES256'], publicKeys: [key.jwk], authorizedParties: ['ohif', 'research-app'] });
    assert.ok(await verify(`Bearer ${await sign(key.privateKey, 'k1', { azp: 'ohif' })}`));
    assert.ok(await verify(`Bearer ${await sign(key.privateKey, 'k1', { client_id: 'research-app' })}`));
    for (const claims of [{ azp: 'other' }, { client_id: 'other' }, {}, { azp: ['ohif'] }, { azp: 'other', client_id: 'ohif' }]) {
      await assert.rejects(verify(`Bearer ${await sign(key.privateKey, 'k1', claims)}`), (e: unknown) => e instanceof TokenInvalidError && e.reason === 'claim azp failed', JSON.stringify(claims));
    }
    const anyClient = createTokenVerifier({ ...common, algorithms: ['ES256'], publicKeys: [key.jwk] });
    assert.ok(await anyClient(`Bearer ${await sign(key.privateKey, 'k1', { azp: 'other' })}`));
  });

  test('a JWKS URL that does not answer is IssuerUnavailableError (503), a key it does not list a bad token (401)', async () => {
    const key = await keyPair('k1');
    jwks = { keys: [key.jwk] };
    const verify = createTokenVerifier({ ...common, algorithms: ['ES256'], jwksUrl: 'http://127.0.0.1:1/certs', jwksCooldownMs: 0 });
    await assert.rejects(verify(`Bearer ${await sign(key.privateKey, 'k1')}`), (e: unknown) => e instanceof IssuerUnavailableError && e.reason === 'jwks');
    const stranger = await keyPair('k9');
    const served = createTokenVerifier({ ...common, algorithms: ['ES256'], jwksUrl, jwksCooldownMs: 0 });
    await assert.rejects(served(`Bearer ${await sign(stranger.privateKey, 'k9')}`), (e: unknown) => e instanceof TokenInvalidError && e.reason === 'unknown key');
  });
});

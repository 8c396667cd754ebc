import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SignJWT, generateKeyPair } from 'jose';
import { createInternalIssuer, withInternalTokens } from '../../../src/auth/internal-token.ts';
import { TokenInvalidError } from '../../../src/auth/errors.ts';

describe('the DIMSE research face’s own tokens', () => {
  test('a minted token verifies as its subject and project; one signed elsewhere with the same issuer does not', async () => {
    const internal = await createInternalIssuer();
    const token = await internal.mint('dimse:RESEARCH_WS', 'alpha');
    const payload = await internal.verify(token);
    assert.equal(payload.sub, 'dimse:RESEARCH_WS');
    assert.equal(payload['project'], 'alpha');
    assert.equal(payload.iss, internal.issuer);
    const { privateKey } = await generateKeyPair('ES256');
    const forged = await new SignJWT({ project: 'alpha' }).setProtectedHeader({ alg: 'ES256' }).setIssuer(internal.issuer).setAudience(internal.issuer).setSubject('x').setExpirationTime('1m').sign(privateKey);
    await assert.rejects(internal.verify(forged), TokenInvalidError);
    // Another process's issuer is another random URN: its tokens are not this one's.
    const other = await createInternalIssuer();
    assert.notEqual(other.issuer, internal.issuer);
    await assert.rejects(internal.verify(await other.mint('dimse:X', 'alpha')), TokenInvalidError);
  });

  test('only a token naming the internal issuer goes to the internal key; every other goes to the IdP verifier', async () => {
    const internal = await createInternalIssuer();
    const seen: (string | undefined)[] = [];
    const verify = withInternalTokens(async (authorization) => {
      seen.push(authorization);
      throw new TokenInvalidError('idp');
    }, internal);
    const token = await internal.mint('dimse:RESEARCH_WS', 'alpha');
    assert.equal((await verify(`Bearer ${token}`)).sub, 'dimse:RESEARCH_WS');
    assert.deepEqual(seen, []);
    await assert.rejects(verify('Bearer a.b.c'), /idp|Token/);
    await assert.rejects(verify(undefined));
    assert.equal(seen.length, 2);
  });
});

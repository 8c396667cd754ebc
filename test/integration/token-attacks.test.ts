import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { AUDIENCE, ISSUER, startTestGateway, TEST_PROJECT, type TestGateway } from '../helpers/gateway.ts';
import { assertHealthy as healthz, closeServer } from '../helpers/http.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';

// The same attacks as auth-matrix.test.ts, here against keys fetched from a JWKS URL (the IdP's set,
// cached and refetched by jose), plus what only a JWKS has: unknown `kid`, rotation, `jku`/`jwk` headers.
// RFC 8725 (JWT BCP) 2.1, 3.1: the algorithm is pinned; 3.10: keys come from configuration, never the token.

const COOLDOWN_MS = 800;
const CACHE_MAX_AGE_MS = 2_500;
const b64url = (s: string) => Buffer.from(s).toString('base64url');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
  pem: string;
}

async function signingKey(kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }, pem: await exportSPKI(publicKey) };
}

function sign(key: SigningKey, claims: JWTPayload = {}, header: Record<string, unknown> = {}, now = Math.floor(Date.now() / 1000)): Promise<string> {
  return new SignJWT({ sub: 'attacker', roles: ['clinician'], project: TEST_PROJECT, ...claims })
    .setProtectedHeader({ alg: 'RS256', kid: key.kid, ...header })
    .setIssuer(typeof claims.iss === 'string' ? claims.iss : ISSUER)
    .setAudience((claims.aud as string | undefined) ?? AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(typeof claims.exp === 'number' ? claims.exp : now + 600)
    .sign(key.privateKey);
}

/** Signs a hand-made header and payload with RS256 (for headers jose will not produce). */
async function signRaw(key: SigningKey, header: object, payload: object): Promise<string> {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const signature = await crypto.subtle.sign('RSASSA-PKCS1-v1_5', key.privateKey, new TextEncoder().encode(input));
  return `${input}.${Buffer.from(signature).toString('base64url')}`;
}

/** A loopback JWKS endpoint whose key set the test rotates; it counts fetches. */
async function jwksServer() {
  const state = { keys: [] as JWK[], fetches: 0 };
  const server = createServer((_req, res) => {
    state.fetches++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { state, server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/certs` };
}

describe('token attacks against a JWKS-configured gateway', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;
  let idp: Awaited<ReturnType<typeof jwksServer>>;
  let attackerJwks: Awaited<ReturnType<typeof jwksServer>>;
  let k1: SigningKey;
  let stranger: SigningKey;
  /** The key the IdP currently signs with (the rotation test moves it to k2). */
  let active: SigningKey;

  before(async () => {
    [k1, stranger] = await Promise.all([signingKey('k1'), signingKey('k1')]); // the stranger reuses the kid
    idp = await jwksServer();
    idp.state.keys = [k1.publicJwk];
    active = k1;
    attackerJwks = await jwksServer();
    attackerJwks.state.keys = [stranger.publicJwk];
    ({ orthanc } = await startTestOrthanc({ loadSamples: false }));
    gateway = await startTestGateway(orthanc.dicomWebUrl, {
      auth: { jwksUrl: idp.url, publicKeyFiles: [], jwksCooldownMs: COOLDOWN_MS, jwksCacheMaxAgeMs: CACHE_MAX_AGE_MS },
    });
  });
  after(async () => {
    await gateway?.close();
    await orthanc?.stop();
    if (idp) await closeServer(idp.server);
    if (attackerJwks) await closeServer(attackerJwks.server);
  });

  /** GET /studies with the token; checks nothing of it comes back or reaches the log. */
  async function call(token: string, label: string, path = '/studies'): Promise<{ status: number; code?: string; requestId: string | null }> {
    const res = await fetch(gateway.base + path, { headers: { authorization: `Bearer ${token}` } });
    const body = await res.text();
    const echoed = [body, res.headers.get('www-authenticate') ?? '', gateway.logs()].join('\n');
    const signature = token.split('.')[2] ?? '';
    assert.ok(!echoed.includes(token), `${label}: the token is echoed or logged`);
    if (signature.length >= 16) assert.ok(!echoed.includes(signature), `${label}: the signature is echoed or logged`);
    const payload = token.split('.')[1] ?? '';
    if (payload.length >= 16) assert.ok(!echoed.includes(payload), `${label}: the payload is echoed or logged`);
    let code: string | undefined;
    try {
      code = (JSON.parse(body) as { error?: { code?: string } }).error?.code;
    } catch {
      code = undefined;
    }
    return { status: res.status, code, requestId: res.headers.get('x-request-id') };
  }

  /** The role the gateway resolved for a request, from its own request log line. */
  function roleLogged(requestId: string | null): unknown {
    for (const line of gateway.logs().split('\n')) {
      if (!line.includes(`"requestId":"${requestId}"`) || !line.includes('"msg":"request"')) continue;
      return (JSON.parse(line) as { role?: unknown }).role;
    }
    return 'no log line';
  }

  const assertHealthy = () => healthz(gateway.url);

  test('forged, expired, premature and misaddressed tokens get 401 and nothing of them is echoed or logged', async () => {
    const now = Math.floor(Date.now() / 1000);
    const hsHeader = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: 'k1' }));
    const hsPayload = b64url(JSON.stringify({ roles: ['clinician'], iss: ISSUER, aud: AUDIENCE, exp: now + 300 }));
    const hmac = (key: string) => createHmac('sha256', key).update(`${hsHeader}.${hsPayload}`).digest('base64url');
    const genuine = await sign(k1);
    const [h, p, s] = genuine.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
    const attacks: [string, string][] = [
      ['alg none', new UnsecuredJWT({ roles: ['clinician'] }).setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime('5m').encode()],
      ['alg none with a signature kept', `${b64url(JSON.stringify({ alg: 'none', kid: 'k1' }))}.${p}.${s}`],
      ['HS256 keyed with the RSA public key (PEM)', `${hsHeader}.${hsPayload}.${hmac(k1.pem)}`],
      ['HS256 keyed with the JWKS modulus', `${hsHeader}.${hsPayload}.${hmac(String(k1.publicJwk.n))}`],
      ['expired an hour ago', await sign(k1, { exp: now - 3600 }, {}, now - 7200)],
      ['nbf an hour ahead', await new SignJWT({ roles: ['clinician'] }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setIssuer(ISSUER).setAudience(AUDIENCE).setNotBefore(now + 3600).setExpirationTime(now + 7200).sign(k1.privateKey)],
      ['wrong iss', await sign(k1, { iss: 'https://evil.example/realm' })],
      ['wrong aud', await sign(k1, { aud: 'another-service' })],
      ['payload tampered (role added)', `${h}.${b64url(JSON.stringify({ ...claims, roles: ['clinician', 'steward'] }))}.${s}`],
      ['signed by a stranger reusing kid k1', await sign(stranger)],
      ['jku pointing at the attacker’s JWKS', await sign(stranger, {}, { jku: attackerJwks.url, kid: 'k1' })],
      ['the attacker’s key embedded as jwk', await sign(stranger, {}, { jwk: stranger.publicJwk })],
      ['x5u pointing at the attacker', await sign(stranger, {}, { x5u: attackerJwks.url })],
      ['kid as a path', await sign(stranger, {}, { kid: '../../../../dev/null' })],
      ['a crit header the gateway does not understand (RFC 7515 4.1.11)', await signRaw(k1, { alg: 'RS256', kid: 'k1', crit: ['exp-x'], 'exp-x': 1 }, { ...claims, sub: 'crit' })],
    ];
    for (const [label, token] of attacks) {
      const r = await call(token, label);
      assert.equal(r.status, 401, label);
      assert.equal(r.code, 'AUTH_TOKEN_INVALID', label);
    }
    assert.equal(attackerJwks.state.fetches, 0, 'a key location named by the token is never fetched (RFC 8725 3.10)');
    // Control: the genuine token, same key set, is accepted.
    assert.equal((await call(genuine, 'genuine')).status, 200);
    await assertHealthy();
  });

  test('an unknown kid refetches the key set once, then 401; a second one inside the cooldown fetches nothing', async () => {
    const ghost = await signingKey('ghost');
    await sleep(COOLDOWN_MS + 100);
    const before = idp.state.fetches;
    const first = await call(await sign(ghost), 'unknown kid');
    assert.equal(first.status, 401);
    assert.equal(idp.state.fetches, before + 1, 'exactly one refetch for an unknown kid');
    const second = await call(await sign(ghost, { sub: 'again' }), 'unknown kid again');
    assert.equal(second.status, 401);
    assert.equal(idp.state.fetches, before + 1, 'no refetch storm: the cooldown holds');
    await assertHealthy();
  });

  test('JWKS rotation mid-run: the new key works once published, the old key fails once removed', async () => {
    const k2 = await signingKey('k2');
    const old = await sign(k1, { sub: 'old' });
    assert.equal((await call(old, 'k1 before rotation')).status, 200);
    // 1. The IdP publishes k2 beside k1 and starts signing with it.
    idp.state.keys = [k1.publicJwk, k2.publicJwk];
    await sleep(COOLDOWN_MS + 100);
    const fresh = await sign(k2, { sub: 'new' });
    assert.equal((await call(fresh, 'k2 after rotation')).status, 200, 'the new kid triggers a refetch and verifies');
    assert.equal((await call(old, 'k1 during overlap')).status, 200, 'both keys verify during the overlap');
    // 2. The IdP withdraws k1. The gateway trusts its cached set for jwksCacheMaxAgeMs, then refetches.
    idp.state.keys = [k2.publicJwk];
    active = k2;
    await sleep(CACHE_MAX_AGE_MS + 200);
    const refused = await call(old, 'k1 after removal');
    assert.equal(refused.status, 401, 'a token signed with a withdrawn key fails');
    assert.equal((await call(fresh, 'k2 after removal')).status, 200);
    await assertHealthy();
  });

  test('role claims: a string is a space-separated list, several roles give the most restrictive, anything else is 403', async () => {
    // resolveRole (src/auth/role.ts): an array of strings or a space-separated string (OAuth `scope`
    // style); rolePrecedence researcher > uploader > steward > clinician picks the most restrictive.
    // A token that verifies but carries no usable role is authenticated, so 403, not 401 (RFC 6750 3.1).
    const cases: [string, unknown, number, string | undefined][] = [
      ['a string', 'clinician', 200, 'clinician'],
      ['a space-separated string', 'clinician researcher', 200, 'researcher'],
      ['an array with clinician and researcher', ['clinician', 'researcher'], 200, 'researcher'],
      ['an array with clinician and uploader', ['clinician', 'uploader'], 403, 'uploader'],
      ['an array with clinician and steward', ['clinician', 'steward'], 403, 'steward'],
      ['objects mixed into the array are ignored', [{ role: 'clinician' }, 'researcher'], 200, 'researcher'],
      ['an object', { clinician: true }, 403, undefined],
      ['a nested object', { roles: ['clinician'] }, 403, undefined],
      ['a nested array', [['clinician']], 403, undefined],
      ['a number', 1, 403, undefined],
      ['null', null, 403, undefined],
      ['an empty string', '', 403, undefined],
      ['a differently cased role', 'Clinician', 403, undefined],
      ['a prototype key', '__proto__ constructor toString', 403, undefined],
      ['a tab-separated string (not a list)', 'clinician\tresearcher', 403, undefined],
    ];
    for (const [label, roles, status, role] of cases) {
      const r = await call(await sign(active, { roles } as JWTPayload), label);
      assert.equal(r.status, status, label);
      if (role === undefined) assert.equal(r.code, 'AUTH_NO_ROLE', label);
      else {
        if (status === 403) assert.equal(r.code, 'AUTH_ROLE_FORBIDDEN', label);
        assert.equal(roleLogged(r.requestId), role, `${label}: resolved role`);
      }
    }
    await assertHealthy();
  });

  test('a 1 MB token is refused at the header limit (431), one over auth.maxTokenBytes with 401, neither logged', async () => {
    const huge = await sign(active, { pad: 'x'.repeat(1_000_000) });
    const res = await fetch(`${gateway.base}/studies`, { headers: { authorization: `Bearer ${huge}` } }).catch((e: unknown) => e);
    if (res instanceof Response) {
      assert.equal(res.status, 431);
      await res.arrayBuffer();
    } else assert.fail(`the 1 MB token got no answer: ${String(res)}`);
    const signature = huge.split('.')[2] as string;
    assert.ok(!gateway.logs().includes(signature), 'the 1 MB token is not logged');
    assert.ok(gateway.logs().includes('"code":"HPE_HEADER_OVERFLOW"'), 'the refusal is logged by its parser code');
    // Under Node's 16 KiB header limit but over the configured token limit: refused before any parsing.
    const small = await startTestGateway(orthanc.dicomWebUrl, {
      auth: { jwksUrl: idp.url, publicKeyFiles: [], maxTokenBytes: 2_048 },
    });
    try {
      const big = await sign(active, { pad: 'y'.repeat(6_000) });
      const r = await fetch(`${small.base}/studies`, { headers: { authorization: `Bearer ${big}` } });
      assert.equal(r.status, 401);
      const body = await r.text();
      assert.match(body, /too large/);
      assert.ok(!body.includes(big.split('.')[2] as string) && !small.logs().includes(big.split('.')[2] as string));
    } finally {
      await small.close();
    }
    await assertHealthy();
  });
});

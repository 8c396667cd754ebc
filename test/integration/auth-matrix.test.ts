import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { SignJWT, UnsecuredJWT } from 'jose';
import { AUDIENCE, ISSUER, signToken, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';

const b64url = (s: string | Buffer) => Buffer.from(s).toString('base64url');

describe('tokens and the route matrix', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;

  before(async () => {
    ({ orthanc } = await startTestOrthanc({ loadSamples: false }));
    gateway = await startTestGateway(orthanc.dicomWebUrl);
  });
  after(async () => {
    await gateway?.close();
    await orthanc?.stop();
  });

  const get = (path: string, authorization?: string) =>
    fetch(gateway.base + path, { headers: authorization ? { authorization } : {} });

  async function expect401(authorization: string | undefined, label: string): Promise<void> {
    const res = await get('/studies', authorization);
    assert.equal(res.status, 401, label);
    const challenge = res.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /^Bearer realm="deid-gateway"/, label);
    const body = await res.text();
    const token = authorization?.replace(/^Bearer /, '');
    if (token && token.length > 8) {
      assert.ok(!body.includes(token) && !challenge.includes(token), `${label}: the token is echoed`);
      assert.ok(!gateway.logs().includes(token), `${label}: the token is logged`);
    }
  }

  test('a request without a token gets 401 with a Bearer challenge', async () => {
    await expect401(undefined, 'no token');
  });

  test('garbage, wrong issuer, wrong audience, expired and future tokens get 401', async () => {
    const k = gateway.keys;
    await expect401('Bearer not.a.jwt', 'garbage');
    await expect401('Basic dXNlcjpwYXNz', 'basic credentials');
    await expect401(`Bearer ${await signToken(k, { roles: ['clinician'] }, { issuer: 'https://evil' })}`, 'wrong iss');
    await expect401(`Bearer ${await signToken(k, { roles: ['clinician'] }, { audience: 'other' })}`, 'wrong aud');
    const now = Math.floor(Date.now() / 1000);
    await expect401(`Bearer ${await signToken(k, { roles: ['clinician'] }, { expiresIn: now - 3600 })}`, 'expired');
    const future = await new SignJWT({ roles: ['clinician'] })
      .setProtectedHeader({ alg: 'RS256' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setNotBefore(now + 3600)
      .setExpirationTime(now + 7200)
      .sign(k.privateKey);
    await expect401(`Bearer ${future}`, 'nbf in the future');
    const noIssuer = await new SignJWT({ roles: ['clinician'] })
      .setProtectedHeader({ alg: 'RS256' })
      .setAudience(AUDIENCE)
      .setExpirationTime('5m')
      .sign(k.privateKey);
    await expect401(`Bearer ${noIssuer}`, 'no iss');
  });

  test('alg none and an HS256 token signed with the RSA public key get 401', async () => {
    const none = new UnsecuredJWT({ roles: ['clinician'] })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime('5m')
      .encode();
    await expect401(`Bearer ${none}`, 'alg none');
    const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
    const payload = b64url(
      JSON.stringify({ roles: ['clinician'], iss: ISSUER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 300 }),
    );
    const signature = createHmac('sha256', gateway.keys.publicPem).update(`${header}.${payload}`).digest('base64url');
    await expect401(`Bearer ${header}.${payload}.${signature}`, 'HS256 with the public key');
  });

  test('a token signed by another key or tampered with gets 401, and a huge one is refused', async () => {
    const token = await gateway.token('clinician');
    const [h, p, s] = token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
    const forged = b64url(JSON.stringify({ ...claims, roles: ['clinician', 'x'] }));
    await expect401(`Bearer ${h}.${forged}.${s}`, 'tampered payload');
    const huge = await gateway.token('clinician', { pad: 'x'.repeat(1_000_000) });
    const res = await get('/studies', `Bearer ${huge}`);
    assert.equal(res.status, 431, "a 1 MB token overflows the header limit");
    await res.arrayBuffer();
  });

  test('a valid token with no known role gets 403; a role claim that is not a list of strings gives no role', async () => {
    for (const claims of [{ roles: ['nurse'] }, { roles: 'nurse' }, { roles: { clinician: true } }, { other: ['clinician'] }]) {
      const token = await signToken(gateway.keys, claims);
      const res = await get('/studies', `Bearer ${token}`);
      assert.equal(res.status, 403, JSON.stringify(claims));
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'AUTH_NO_ROLE');
    }
  });

  test('each role on each route class gets what the matrix says', async () => {
    const matrix: Record<string, Record<string, number>> = {
      clinician: { search: 200, retrieve: 404, store: 400 },
      researcher: { search: 200, retrieve: 404, store: 403 },
      uploader: { search: 403, retrieve: 403, store: 400 }, // allowed; the empty body has no parts
    };
    for (const [role, expected] of Object.entries(matrix)) {
      const authorization = `Bearer ${await gateway.token(role)}`;
      const search = await get('/studies', authorization);
      const retrieve = await get('/studies/1.2.3/metadata', authorization);
      const store = await fetch(`${gateway.base}/studies`, {
        method: 'POST',
        headers: { authorization, 'content-type': 'multipart/related; type="application/dicom"; boundary=x' },
        body: '--x--\r\n',
      });
      const got = { search: search.status, retrieve: retrieve.status, store: store.status };
      await Promise.all([search, retrieve, store].map((r) => r.arrayBuffer()));
      // Clinician statuses are Orthanc's own (empty store: 200 search, 404 unknown study, 400 empty STOW).
      assert.equal(got.search, expected['search'], `${role} search`);
      assert.equal(got.retrieve, expected['retrieve'], `${role} retrieve`);
      if (role === 'clinician') assert.ok(got.store >= 200 && got.store !== 401 && got.store !== 403, `${role} store`);
      else assert.equal(got.store, expected['store'], `${role} store`);
    }
  });

  test('without a deid section restricted roles are refused, with a reason and no data', async () => {
    const gw = await startTestGateway(orthanc.dicomWebUrl, { deid: null });
    try {
      const res = await fetch(`${gw.base}/studies?PatientName=*`, { headers: { authorization: `Bearer ${await gw.token('researcher')}` } });
      assert.equal(res.status, 501);
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'DEID_UNAVAILABLE');
      assert.ok(!JSON.stringify(body).includes('0010'), 'no DICOM attributes in the refusal');
    } finally {
      await gw.close();
    }
  });

  test('a token with several roles gets the most restrictive one', async () => {
    const token = await gateway.token(['clinician', 'uploader']);
    const res = await get('/studies', `Bearer ${token}`);
    assert.equal(res.status, 403, 'treated as uploader');
    await res.arrayBuffer();
  });

  test('the role claim path is configurable, e.g. Keycloak realm_access.roles with a role map', async () => {
    const gw = await startTestGateway(orthanc.dicomWebUrl, {
      auth: { roleClaim: 'realm_access.roles', roleMap: { 'imaging-doctor': 'clinician' } },
    });
    try {
      const ok = await signToken(gw.keys, { realm_access: { roles: ['offline_access', 'imaging-doctor'] } });
      const res = await fetch(`${gw.base}/studies`, { headers: { authorization: `Bearer ${ok}` } });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      const flat = await signToken(gw.keys, { roles: ['clinician'] });
      const refused = await fetch(`${gw.base}/studies`, { headers: { authorization: `Bearer ${flat}` } });
      assert.equal(refused.status, 403);
      await refused.arrayBuffer();
    } finally {
      await gw.close();
    }
  });
});

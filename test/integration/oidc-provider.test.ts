// Tokens from a real OpenID Connect provider (oidc-provider on loopback, test/helpers/oidc-idp.ts): the
// gateway is configured with the issuer alone and finds the provider's keys by OpenID Connect Discovery.
// Research apps present client-credentials tokens, people authorization-code tokens (PKCE S256); their
// claims come in Keycloak's shapes (realm_access.roles, resource_access.<client>.roles, groups) and Entra
// ID's (roles), and each shape reaches its gateway role through a real request to a real Orthanc: a
// clinician sees the original names, a researcher the project's pseudonyms. The provider rotates its
// signing key mid-run; a second provider's tokens, tokens for another audience and tokens of a client the
// gateway does not authorize are refused; a provider that is not there at start makes requests 503 until
// it answers.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { freePort } from '../../src/demo/orthanc-process.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { assertHealthy } from '../helpers/http.ts';
import { startOidcIdp, type OidcIdp } from '../helpers/oidc-idp.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';

/** The gateway's audience: the resource indicator (RFC 8707) the provider makes tokens' `aud` from. */
const RESOURCE = 'https://gateway.test/dicom-web';
const OTHER_API = 'https://billing.test/api';
const COOLDOWN_MS = 300;
const CACHE_MAX_AGE_MS = 3_000;
/** A page of the study list: enough to tell the views apart, small enough to stay quick. */
const QUERY = 'includefield=00100010&limit=12';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Keycloak: realm roles, the gateway client's roles, groups with full path, and `azp` (the requesting client). */
const keycloak = (client: string, realmRole: string, clientRole: string, groups: string[]) => ({
  azp: client,
  realm_access: { roles: [realmRole, 'offline_access', 'uma_authorization'] },
  resource_access: { 'deid-gateway': { roles: [clientRole] }, account: { roles: ['manage-account', 'view-profile'] } },
  groups,
});

const APPS = {
  'research-app': keycloak('research-app', 'imaging-researcher', 'researcher', ['/projects/all', '/staff']),
  'stranger-app': keycloak('stranger-app', 'imaging-clinician', 'clinician', ['/staff']),
  // Entra ID: app roles in `roles`, here a role per project beside the gateway role.
  'entra-research-app': { roles: ['Imaging.Researcher', 'Project.all'] },
};
const ACCOUNTS = {
  'dr-keycloak': keycloak('viewer', 'imaging-clinician', 'clinician', ['/staff']),
  'dr-entra': { roles: ['Imaging.Clinician'] },
  'researcher-entra': { roles: ['Imaging.Researcher', 'Project.all'] },
};

/** The auth block of a gateway that knows only the issuer: discovery finds the keys. */
const byIssuer = (issuer: string, shape: Record<string, unknown>) => ({
  auth: { issuer, audience: RESOURCE, publicKeyFiles: [], jwksCooldownMs: COOLDOWN_MS, jwksCacheMaxAgeMs: CACHE_MAX_AGE_MS, ...shape },
});
const KEYCLOAK_REALM = {
  roleClaim: 'realm_access.roles',
  roleMap: { 'imaging-clinician': 'clinician', 'imaging-researcher': 'researcher' },
  projectClaim: 'groups',
  projectPrefix: '/projects/',
  authorizedParties: ['research-app', 'viewer'],
};
const KEYCLOAK_CLIENT = { roleClaim: 'resource_access.deid-gateway.roles', projectClaim: 'groups', projectPrefix: '/projects/' };
const ENTRA = {
  roleClaim: 'roles',
  roleMap: { 'Imaging.Clinician': 'clinician', 'Imaging.Researcher': 'researcher' },
  projectClaim: 'roles',
  projectPrefix: 'Project.',
};

describe('tokens from a real OpenID Connect provider, keys found by discovery', () => {
  let orthanc: OrthancProcess;
  let idp: OidcIdp;
  let other: OidcIdp;
  let late: OidcIdp | undefined;
  const gateways: Record<'realm' | 'client' | 'entra' | 'late', TestGateway | undefined> = { realm: undefined, client: undefined, entra: undefined, late: undefined };
  let latePort: number;
  /** The Patient Names Orthanc itself answers, for QUERY and for every study. */
  let pacsPage: string[];
  let pacsNames: Set<string>;

  before(async () => {
    ({ orthanc } = await startTestOrthanc({ loadSamples: true }));
    [idp, other] = await Promise.all([
      startOidcIdp({ resource: RESOURCE, otherResources: [OTHER_API], apps: APPS, accounts: ACCOUNTS }),
      startOidcIdp({ resource: RESOURCE, apps: APPS, accounts: ACCOUNTS }),
    ]);
    pacsPage = await patientNames(`${orthanc.dicomWebUrl}/studies?${QUERY}`);
    pacsNames = new Set((await patientNames(`${orthanc.dicomWebUrl}/studies?includefield=00100010`)).filter(Boolean));
    assert.ok(pacsNames.size >= 10);
    latePort = await freePort();
    [gateways.realm, gateways.client, gateways.entra, gateways.late] = await Promise.all([
      startTestGateway(orthanc.dicomWebUrl, byIssuer(idp.issuer, KEYCLOAK_REALM)),
      startTestGateway(orthanc.dicomWebUrl, byIssuer(idp.issuer, KEYCLOAK_CLIENT)),
      startTestGateway(orthanc.dicomWebUrl, byIssuer(idp.issuer, ENTRA)),
      // Its provider is not there yet: the gateway starts all the same.
      startTestGateway(orthanc.dicomWebUrl, byIssuer(`http://127.0.0.1:${latePort}`, KEYCLOAK_REALM)),
    ]);
  });
  after(async () => {
    for (const gateway of Object.values(gateways)) await gateway?.close();
    await Promise.all([idp?.close(), other?.close(), late?.close()]);
    await orthanc?.stop();
  });

  const gateway = (name: keyof typeof gateways) => gateways[name] as TestGateway;

  /** GET /studies through the gateway: the status, the error code, and the Patient Names of the answer. */
  async function studies(name: keyof typeof gateways, token: string): Promise<{ status: number; code?: string; names: string[]; headers: Headers }> {
    const res = await fetch(`${gateway(name).base}/studies?${QUERY}`, { headers: { authorization: `Bearer ${token}`, accept: 'application/dicom+json' } });
    const body = (await res.json()) as unknown;
    if (!res.ok) return { status: res.status, code: (body as { error?: { code?: string } }).error?.code, names: [], headers: res.headers };
    return { status: res.status, names: namesOf(body), headers: res.headers };
  }

  /** The clinician's page is the PACS's, name for name. */
  /** The status of the cheapest request that still reaches Orthanc: one study. */
  async function quick(name: keyof typeof gateways, token: string): Promise<number> {
    const res = await fetch(`${gateway(name).base}/studies?limit=1`, { headers: { authorization: `Bearer ${token}`, accept: 'application/dicom+json' } });
    await res.arrayBuffer();
    return res.status;
  }

  function assertOriginal(view: Awaited<ReturnType<typeof studies>>, label: string): void {
    assert.equal(view.status, 200, `${label}: ${view.code}`);
    assert.deepEqual(view.names, pacsPage, label);
  }
  function assertPseudonymous(view: Awaited<ReturnType<typeof studies>>, label: string): void {
    assert.equal(view.status, 200, `${label}: ${view.code}`);
    // A sample without a Patient Name has none in the researcher's view either.
    const named = view.names.filter(Boolean);
    assert.ok(named.length >= 8, `${label}: ${named.length} named studies`);
    assert.ok(named.every((n) => /^ANON\^[A-Z2-7]{8,}$/.test(n) && !pacsNames.has(n)), `${label}: ${view.names.join()}`);
  }

  test("the gateway reads the issuer's discovery document once and verifies a research app's client-credentials token (Keycloak realm roles, groups)", async () => {
    const token = await idp.clientCredentials('research-app');
    const claims = decodeJwt(token);
    assert.equal(decodeProtectedHeader(token).typ, 'at+jwt', 'an RFC 9068 JWT access token');
    assert.equal(claims.aud, RESOURCE);
    assert.equal(claims['client_id'], 'research-app');
    assertPseudonymous(await studies('realm', token), 'realm_access.roles imaging-researcher, group /projects/all');
    assertPseudonymous(await studies('realm', token), 'again');
    // Three gateways over one issuer: each read the document once, and the JWKS it names once.
    assert.equal(idp.requests('/.well-known/openid-configuration'), 3);
    assert.equal(idp.requests('/jwks'), 1, 'only this gateway has verified a token yet');
    assert.match(gateway('realm').logs(), new RegExp(`"jwksUri":"${idp.issuer}/jwks".*OpenID Connect discovery`));
  });

  test('a person signs in with the authorization code and PKCE, and each claim shape maps to its gateway role through a real request', async () => {
    const keycloakPerson = await idp.signIn('dr-keycloak');
    assert.equal(decodeJwt(keycloakPerson.accessToken)['client_id'], 'viewer');
    assert.equal(decodeJwt(keycloakPerson.accessToken).aud, RESOURCE);
    // Keycloak realm roles and client roles of the same person: clinician on both gateways.
    assertOriginal(await studies('realm', keycloakPerson.accessToken), 'realm_access.roles imaging-clinician');
    assertOriginal(await studies('client', keycloakPerson.accessToken), 'resource_access.deid-gateway.roles clinician');
    // The research app's client role: researcher in the project its group names.
    const app = await idp.clientCredentials('research-app');
    assertPseudonymous(await studies('client', app), 'resource_access.deid-gateway.roles researcher');
    // Entra ID app roles.
    assertOriginal(await studies('entra', (await idp.signIn('dr-entra')).accessToken), 'roles Imaging.Clinician');
    assertPseudonymous(await studies('entra', (await idp.signIn('researcher-entra')).accessToken), 'roles Imaging.Researcher, Project.all (a person)');
    assertPseudonymous(await studies('entra', await idp.clientCredentials('entra-research-app')), 'roles Imaging.Researcher, Project.all (an app)');
    // A shape the gateway is not configured for carries no role it knows: 403, nothing shown.
    assert.deepEqual(await studies('entra', keycloakPerson.accessToken).then((v) => [v.status, v.code]), [403, 'AUTH_NO_ROLE']);
    assert.deepEqual(await studies('client', (await idp.signIn('dr-entra')).accessToken).then((v) => [v.status, v.code]), [403, 'AUTH_NO_ROLE']);
    // An ID token is for the client, not for the gateway: its audience is the client id.
    assert.deepEqual(await studies('realm', keycloakPerson.idToken).then((v) => [v.status, v.code]), [401, 'AUTH_TOKEN_INVALID']);
  });

  test('aud and azp: a token for another API, and one of a client the gateway does not authorize, are refused', async () => {
    const forBilling = await idp.clientCredentials('research-app', OTHER_API);
    assert.equal(decodeJwt(forBilling).aud, OTHER_API);
    const billing = await fetch(`${gateway('realm').base}/studies`, { headers: { authorization: `Bearer ${forBilling}` } });
    assert.equal(billing.status, 401);
    assert.match(billing.headers.get('www-authenticate') ?? '', /claim aud failed/);
    await billing.arrayBuffer();
    // stranger-app holds the clinician role and the audience, but auth.authorizedParties lists only research-app and viewer.
    const stranger = await idp.clientCredentials('stranger-app');
    const refused = await fetch(`${gateway('realm').base}/studies`, { headers: { authorization: `Bearer ${stranger}` } });
    assert.equal(refused.status, 401);
    assert.match(refused.headers.get('www-authenticate') ?? '', /claim azp failed/);
    await refused.arrayBuffer();
    // The gateway without authorizedParties takes any client of the issuer whose token carries the audience.
    assertOriginal(await studies('client', stranger), 'no authorizedParties');
  });

  test("a second provider's token with the same claims and audience is refused, and that provider is never asked for keys", async () => {
    const foreign = await other.clientCredentials('research-app');
    assert.deepEqual(decodeJwt(foreign).aud, RESOURCE);
    for (const name of ['realm', 'client'] as const) {
      const view = await studies(name, foreign);
      assert.deepEqual([view.status, view.code], [401, 'AUTH_TOKEN_INVALID'], name);
    }
    const person = await other.signIn('dr-keycloak');
    assert.deepEqual(await studies('realm', person.accessToken).then((v) => [v.status, v.code]), [401, 'AUTH_TOKEN_INVALID']);
    assert.equal(other.requests('/.well-known/openid-configuration') + other.requests('/jwks'), 0, 'keys come from the configured issuer only (RFC 8725 3.10)');
  });

  test('key rotation at the provider: a new key verifies after a refetch on its kid, the old one until the JWKS drops it', async () => {
    const before = await idp.clientCredentials('research-app');
    assertPseudonymous(await studies('realm', before), 'signed with the first key');
    await idp.rotate();
    const after = await idp.clientCredentials('research-app');
    assert.notEqual(decodeProtectedHeader(after).kid, decodeProtectedHeader(before).kid);
    await sleep(COOLDOWN_MS + 50);
    const reads = idp.requests('/jwks');
    assert.equal(await quick('realm', after), 200, 'signed with the new key');
    assert.equal(idp.requests('/jwks'), reads + 1, 'its unknown kid refetched the JWKS once');
    // The provider withdraws the old key: the gateway trusts its cached set until it is CACHE_MAX_AGE_MS old.
    await idp.retireOldKeys();
    assert.equal(await quick('realm', before), 200, 'the cached set still holds the old key');
    assert.equal(idp.requests('/jwks'), reads + 1);
    await sleep(CACHE_MAX_AGE_MS + 100);
    assert.deepEqual(await studies('realm', before).then((v) => [v.status, v.code]), [401, 'AUTH_TOKEN_INVALID']);
    assertPseudonymous(await studies('realm', after), 'the new key verifies');
    assertPseudonymous(await studies('realm', await idp.clientCredentials('research-app')), 'a token issued after the rotation');
  });

  test('a provider that is not there at start: the gateway runs, refuses tokens with 503 until it answers, then serves', async () => {
    await assertHealthy(gateway('late').url);
    const token = await idp.clientCredentials('research-app');
    const refused = await studies('late', token);
    assert.deepEqual([refused.status, refused.code], [503, 'AUTH_ISSUER_UNAVAILABLE']);
    assert.match(refused.headers.get('retry-after') ?? '', /^\d+$/);
    assert.match(gateway('late').logs(), /"code":"AUTH_ISSUER_UNAVAILABLE".*OpenID Connect discovery failed/);
    late = await startOidcIdp({ resource: RESOURCE, apps: APPS, accounts: ACCOUNTS, port: latePort });
    await sleep(COOLDOWN_MS + 50);
    const lateToken = await late.clientCredentials('research-app');
    assertPseudonymous(await studies('late', lateToken), 'once the provider answers');
    assert.equal(late.requests('/.well-known/openid-configuration'), 1);
    // Tokens of the first provider are another issuer's here.
    assert.deepEqual(await studies('late', token).then((v) => [v.status, v.code]), [401, 'AUTH_TOKEN_INVALID']);
  });
});

function namesOf(body: unknown): string[] {
  return (body as Array<Record<string, { Value?: Array<{ Alphabetic?: string }> }>>).map((d) => d['00100010']?.Value?.[0]?.Alphabetic ?? '');
}

async function patientNames(url: string): Promise<string[]> {
  const res = await fetch(url, { headers: { accept: 'application/dicom+json' } });
  assert.equal(res.status, 200);
  return namesOf(await res.json());
}

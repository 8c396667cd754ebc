// The DIMSE operator routes (src/http/dimse-status.ts) and the caller marking of http/auth.ts: who may
// read the queue and the quarantine, who may send a quarantined study again, and what the audit record
// of a retry names. A real express app on loopback; the IdP's verifier is scripted.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import type { JWTPayload } from 'jose';
import { createInternalIssuer } from '../../../src/auth/internal-token.ts';
import { TokenInvalidError, TokenMissingError } from '../../../src/auth/errors.ts';
import type { RoleOptions } from '../../../src/auth/role.ts';
import type { TokenVerifier } from '../../../src/auth/token.ts';
import { authenticate } from '../../../src/http/auth.ts';
import { dimseQuarantineRoutes, dimseStatusRoute, type DimseOperator, type DimseOperatorAccess } from '../../../src/http/dimse-status.ts';
import { errorHandler } from '../../../src/http/error-mapping.ts';
import { createLogger } from '../../../src/http/logging.ts';
import { requestContext, requestState } from '../../../src/http/request-context.ts';

const ROLES: RoleOptions = {
  roleClaim: 'roles',
  roleMap: { steward: 'steward', researcher: 'researcher' },
  rolePrecedence: ['researcher', 'uploader', 'steward', 'clinician'],
  projectClaim: 'projects',
  projectPrefix: '',
};
/** The IdP's tokens, by the text of their bearer: a steward, a researcher, and an IdP user whose `sub` looks like a DIMSE caller's. */
const IDP: Record<string, JWTPayload> = {
  'steward-jwt': { sub: 'alice', roles: ['steward'] },
  'researcher-jwt': { sub: 'bob', roles: ['researcher'], projects: ['alpha'] },
  'dimse-lookalike-jwt': { sub: 'dimse:RESEARCH_WS', roles: ['steward'] },
};
const verify: TokenVerifier = async (authorization) => {
  if (authorization === undefined) throw new TokenMissingError();
  const payload = IDP[authorization.replace(/^Bearer /, '')];
  if (!payload) throw new TokenInvalidError('not one of the test tokens');
  return payload;
};
const METRICS_TOKEN = 'operator-token-0123456789abcdef';
const QUARANTINE_ID = `20260304T050607089Z-${'a'.repeat(24)}`;

interface Running {
  readonly url: string;
  readonly retries: DimseOperator[];
  close(): Promise<void>;
}

async function start(access: Omit<DimseOperatorAccess, 'steward'>): Promise<Running> {
  const retries: DimseOperator[] = [];
  const logger = createLogger('silent');
  const app = express();
  app.use(requestContext(logger));
  app.get('/dimse/status', dimseStatusRoute(() => ({ queued: 0 }), { ...access, steward: { verify, roles: ROLES } }));
  app.use(
    dimseQuarantineRoutes(
      {
        list: async () => [{ id: QUARANTINE_ID }],
        retry: async (id, operator) => {
          retries.push(operator);
          return { id, instances: 3 };
        },
      },
      { ...access, steward: { verify, roles: ROLES } },
    ),
  );
  app.use(errorHandler(logger));
  const server: Server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    retries,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const codeOf = async (res: Response): Promise<string> => `${res.status} ${res.ok ? '' : ((await res.json()) as { error: { code: string } }).error.code}`.trim();

describe('the DIMSE operator routes: who may call them', () => {
  let open: Running;
  let behindProxy: Running;
  let withToken: Running;
  before(async () => {
    open = await start({ token: undefined, trustedProxy: () => false });
    // A proxy on the same host, listed in server.trustedProxies: every request it relays is loopback.
    behindProxy = await start({ token: undefined, trustedProxy: (a) => a === '127.0.0.1' || a === '::ffff:127.0.0.1' });
    withToken = await start({ token: METRICS_TOKEN, trustedProxy: () => false });
  });
  after(async () => {
    await open?.close();
    await behindProxy?.close();
    await withToken?.close();
  });

  test('without a metrics token, the GET routes answer a loopback peer, but never a request with a proxy\'s headers or from a trusted proxy', async () => {
    for (const path of ['/dimse/status', '/dimse/quarantine']) {
      assert.equal(await codeOf(await fetch(`${open.url}${path}`)), '200', path);
      const proxied: Record<string, string>[] = [{ 'x-forwarded-for': '203.0.113.9' }, { forwarded: 'for=203.0.113.9' }, { 'x-forwarded-proto': 'https' }, { 'x-real-ip': '203.0.113.9' }, { via: '1.1 proxy' }];
      for (const header of proxied) {
        assert.equal(await codeOf(await fetch(`${open.url}${path}`, { headers: header })), '403 AUTH_LOOPBACK_ONLY', `${path} ${JSON.stringify(header)}`);
      }
      assert.equal(await codeOf(await fetch(`${behindProxy.url}${path}`)), '403 AUTH_LOOPBACK_ONLY', `${path} from a trusted proxy`);
    }
    // A steward's JWT lists the quarantine from anywhere (it is not the loopback fallback); not the status.
    assert.equal(await codeOf(await fetch(`${behindProxy.url}/dimse/quarantine`, { headers: { authorization: 'Bearer steward-jwt', 'x-forwarded-for': '203.0.113.9' } })), '200');
    assert.equal(await codeOf(await fetch(`${behindProxy.url}/dimse/status`, { headers: { authorization: 'Bearer steward-jwt' } })), '403 AUTH_LOOPBACK_ONLY');
  });

  test('the retry never takes the loopback fallback: a steward\'s JWT (its subject on the record), else 401; another role 403', async () => {
    const retry = (server: Running, headers: Record<string, string> = {}) => fetch(`${server.url}/dimse/quarantine/${QUARANTINE_ID}/retry`, { method: 'POST', headers });
    assert.equal(await codeOf(await retry(open)), '401 AUTH_TOKEN_MISSING', 'a bare loopback peer');
    assert.equal(await codeOf(await retry(open, { authorization: 'Bearer nonsense' })), '401 AUTH_TOKEN_INVALID');
    assert.equal(await codeOf(await retry(open, { authorization: 'Bearer researcher-jwt' })), '403 AUTH_ROLE_FORBIDDEN');
    assert.deepEqual(open.retries, []);
    const res = await retry(behindProxy, { authorization: 'Bearer steward-jwt' });
    assert.equal(res.status, 202);
    assert.deepEqual(await res.json(), { id: QUARANTINE_ID, instances: 3, status: 'queued' });
    assert.equal(behindProxy.retries.length, 1);
    const [operator] = behindProxy.retries;
    assert.deepEqual({ userId: operator?.userId, roleId: operator?.roleId }, { userId: 'alice', roleId: 'steward' });
    assert.match(operator?.requestId ?? '', /^[0-9a-f-]{36}$/, 'the request id the log line carries');
  });

  test('with a metrics token: it or a steward\'s JWT; the record says which', async () => {
    const retry = (headers: Record<string, string> = {}) => fetch(`${withToken.url}/dimse/quarantine/${QUARANTINE_ID}/retry`, { method: 'POST', headers });
    assert.equal(await codeOf(await retry()), '401 AUTH_TOKEN_MISSING');
    assert.equal(await codeOf(await retry({ authorization: 'Bearer wrong' })), '401 AUTH_TOKEN_INVALID');
    assert.equal((await retry({ authorization: `Bearer ${METRICS_TOKEN}` })).status, 202);
    assert.equal((await retry({ authorization: 'Bearer steward-jwt' })).status, 202);
    assert.deepEqual(
      withToken.retries.map((o) => [o.userId, o.roleId]),
      [
        ['metrics.auth bearer token', 'operator'],
        ['alice', 'steward'],
      ],
    );
    assert.equal(await codeOf(await fetch(`${withToken.url}/dimse/status`)), '401 AUTH_TOKEN_MISSING');
    assert.equal(await codeOf(await fetch(`${withToken.url}/dimse/status`, { headers: { authorization: `Bearer ${METRICS_TOKEN}`, 'x-forwarded-for': '203.0.113.9' } })), '200');
  });

  test('an IdP token whose subject is a DIMSE caller\'s (dimse:…) is refused, so such a userId on the trail is always the research face', async () => {
    const res = await fetch(`${open.url}/dimse/quarantine/${QUARANTINE_ID}/retry`, { method: 'POST', headers: { authorization: 'Bearer dimse-lookalike-jwt' } });
    assert.equal(await codeOf(res), '401 AUTH_TOKEN_INVALID');
    assert.deepEqual(open.retries, []);
  });
});

describe('authenticate: the research face\'s own tokens are marked internal', () => {
  test('a minted token is a researcher in its one project, internal; an IdP token is not internal, and one with a dimse: subject is refused', async () => {
    const internal = await createInternalIssuer();
    const run = async (authorization: string) => {
      const res = {} as never;
      let failed: unknown;
      await authenticate(verify, ROLES, internal)({ headers: { authorization } } as never, res, (e?: unknown) => (failed = e));
      return failed ?? requestState(res).caller;
    };
    assert.deepEqual(await run(`Bearer ${await internal.mint('dimse:RESEARCH_WS', 'alpha')}`), { role: 'researcher', subject: 'dimse:RESEARCH_WS', projects: ['alpha'], internal: true });
    assert.deepEqual(await run('Bearer researcher-jwt'), { role: 'researcher', subject: 'bob', projects: ['alpha'], internal: false });
    const refused = await run('Bearer dimse-lookalike-jwt');
    assert.ok(refused instanceof TokenInvalidError);
  });
});

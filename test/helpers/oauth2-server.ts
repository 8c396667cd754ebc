// A real OAuth 2.0 authorization server on loopback for the DIMSE destination tests: oidc-provider 9 with
// the client credentials grant (RFC 6749 4.4) and resource indicators (RFC 8707), issuing JWT access
// tokens (RFC 9068) signed with a key of its own, published at its JWKS URL. A gateway that trusts that
// URL (`auth.jwksUrl`) verifies these tokens as it verifies any IdP's. It counts token requests and
// remembers the tokens it issued, so tests can check the caching and that no token reached a log.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import { Provider } from 'oidc-provider';

export interface OAuth2Server {
  /** The issuer (`iss` of its tokens): its base URL. */
  readonly issuer: string;
  readonly tokenUrl: string;
  readonly jwksUrl: string;
  /** The client the gateway authenticates as (client_secret_basic). */
  readonly clientId: string;
  readonly clientSecret: string;
  /** Token requests answered so far, successful or not. */
  tokenRequests(): number;
  /** Every access token issued so far. */
  issued(): readonly string[];
  /** A token for `clientId` (the gateway's client, or one of `otherClients`), asked for as any client would (RFC 6749 4.4). */
  tokenFor(clientId: string): Promise<string>;
  close(): Promise<void>;
}

export async function startOAuth2Server(options: {
  /** The RFC 8707 resource indicator the tokens are for; also their `aud`. */
  resource: string;
  /** Claims the gateway's client's tokens carry (the platform's role claim). */
  claims: Record<string, unknown>;
  /** Other clients (id → their tokens' claims), each with the secret `secret-of-<id>`. */
  otherClients?: Record<string, Record<string, unknown>>;
  /** Access token lifetime (seconds). */
  ttlSeconds?: number;
}): Promise<OAuth2Server> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: 'test-oauth2' };
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clientId = 'deid-gateway-dimse';
  // VSCHAR with the characters RFC 6749 2.3.1's form-encoding exists for (space, ':', '+', '%', '/').
  const clientSecret = 'client secret:+%/0123456789abcdef';
  const ttl = options.ttlSeconds ?? 300;
  const claims = new Map<string, Record<string, unknown>>([[clientId, options.claims], ...Object.entries(options.otherClients ?? {})]);
  const secretOf = (id: string) => (id === clientId ? clientSecret : `secret-of-${id}`);
  const provider = new Provider(issuer, {
    clients: [...claims.keys()].map((id) => ({
      client_id: id,
      client_secret: secretOf(id),
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    jwks: { keys: [jwk] },
    ttl: { ClientCredentials: ttl },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => options.resource,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, resource: string): { scope: string; audience: string; accessTokenTTL: number; accessTokenFormat: 'jwt'; jwt: { sign: { alg: string } } } => {
          if (resource !== options.resource) throw new Error('unknown resource');
          return { scope: 'dicomweb', audience: resource, accessTokenTTL: ttl, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
        },
      },
    },
    extraTokenClaims: (_ctx, token) => claims.get(String((token as { clientId?: unknown }).clientId)),
  });
  let requests = 0;
  const issued: string[] = [];
  provider.use(async (ctx, next) => {
    if (ctx.path === '/token') requests++;
    await next();
    const token = ctx.path === '/token' && ctx.status === 200 ? (ctx.body as { access_token?: unknown } | undefined)?.access_token : undefined;
    if (typeof token === 'string') issued.push(token);
  });
  server.on('request', provider.callback());
  return {
    issuer,
    tokenUrl: `${issuer}/token`,
    jwksUrl: `${issuer}/jwks`,
    clientId,
    clientSecret,
    tokenRequests: () => requests,
    issued: () => issued,
    async tokenFor(id) {
      const form = (v: string) => new URLSearchParams({ v }).toString().slice(2);
      const res = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`${form(id)}:${form(secretOf(id))}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', resource: options.resource }),
      });
      const body = (await res.json()) as { access_token?: string };
      if (!res.ok || typeof body.access_token !== 'string') throw new Error(`no token for ${id}: ${res.status}`);
      return body.access_token;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

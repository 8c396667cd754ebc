// A real OpenID Connect provider on loopback for the gateway's sign-in tests: oidc-provider 9 (its
// discovery document, JWKS, authorization and token endpoints), issuing RFC 9068 JWT access tokens for
// one resource (RFC 8707 resource indicators: the gateway's audience). Two kinds of caller:
// - research apps, confidential clients using the client credentials grant (RFC 6749 4.4);
// - people, signing in through a public client (OHIF) with the authorization code and PKCE S256
//   (RFC 7636), the provider's development login and consent pages driven with plain fetch.
// The claims a token carries are the test's (Keycloak's or Entra ID's shapes), per app or per login.
// The signing key can be rotated mid-run: a new key signs and joins the JWKS, then the old one leaves it.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { Provider } from 'oidc-provider';

export interface OidcIdp {
  /** The issuer identifier (`iss`), its base URL: discovery is at `<issuer>/.well-known/openid-configuration`. */
  readonly issuer: string;
  /** A research app's access token (client credentials), for `resource` unless another is named. */
  clientCredentials(clientId: string, resource?: string): Promise<string>;
  /** A person's access token: authorization code with PKCE through `login`'s sign-in and consent. */
  signIn(login: string, options?: { resource?: string }): Promise<{ accessToken: string; idToken: string }>;
  /** A new signing key signs from now on and joins the JWKS; the ones before stay published. */
  rotate(): Promise<void>;
  /** Only the current signing key stays in the JWKS. */
  retireOldKeys(): Promise<void>;
  /** Requests the provider answered, by path (`/.well-known/openid-configuration`, `/jwks`, …). */
  requests(path: string): number;
  close(): Promise<void>;
}

export interface OidcIdpOptions {
  /** The resource indicator (RFC 8707) tokens are for: the gateway's audience. */
  resource: string;
  /** Other resources the provider also serves (tokens for another API). */
  otherResources?: string[];
  /** Research apps: client id → its tokens' claims. Each authenticates with `secret-of-<id>`. */
  apps?: Record<string, Record<string, unknown>>;
  /** People: login → their tokens' claims. Any password is accepted (development interactions). */
  accounts?: Record<string, Record<string, unknown>>;
  /** The public client people sign in with, and where it may be sent back to. */
  publicClient?: { clientId: string; redirectUris: string[] };
  /** Listen on this port (a test that starts the gateway first); default: any free one. */
  port?: number;
  ttlSeconds?: number;
}

const REDIRECT_FOR_FETCH = 'https://app.test/callback';

interface SigningKey {
  kid: string;
  jwk: JWK;
}

async function signingKey(n: number): Promise<SigningKey> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = `key-${n}-${randomBytes(4).toString('hex')}`;
  return { kid, jwk: { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' } };
}

export async function startOidcIdp(options: OidcIdpOptions): Promise<OidcIdp> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const ttl = options.ttlSeconds ?? 600;
  const apps = options.apps ?? {};
  const accounts = options.accounts ?? {};
  const resources = new Set([options.resource, ...(options.otherResources ?? [])]);
  const publicClient = options.publicClient ?? { clientId: 'viewer', redirectUris: [] };
  const counts = new Map<string, number>();
  let keys: SigningKey[] = [await signingKey(1)];
  const cookieKeys = [randomBytes(16).toString('hex')];

  // The provider is built again when its keys change (its keystore is fixed at construction); grants and
  // sessions live in oidc-provider's in-memory adapter, shared by the instances, and cookies keep their keys.
  const build = (): Provider => {
    const active = keys.at(-1) as SigningKey;
    const provider = new Provider(issuer, {
      clients: [
        ...Object.keys(apps).map((id) => ({
          client_id: id,
          client_secret: `secret-of-${id}`,
          grant_types: ['client_credentials'],
          redirect_uris: [],
          response_types: [],
          token_endpoint_auth_method: 'client_secret_basic',
        })),
        {
          client_id: publicClient.clientId,
          token_endpoint_auth_method: 'none',
          grant_types: ['authorization_code'],
          response_types: ['code'],
          redirect_uris: [...publicClient.redirectUris, REDIRECT_FOR_FETCH],
        },
      ],
      // The active key first: it signs ID tokens too.
      jwks: { keys: [active.jwk, ...keys.slice(0, -1).map((k) => k.jwk)] },
      cookies: { keys: cookieKeys },
      ttl: { ClientCredentials: ttl, AccessToken: ttl, IdToken: ttl, AuthorizationCode: 60, Interaction: 300, Session: 3600, Grant: 3600 },
      pkce: { required: () => true },
      features: {
        devInteractions: { enabled: true },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => options.resource,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx: unknown, resource: string) => {
            if (!resources.has(resource)) throw new Error('unknown resource');
            return { scope: 'dicomweb', audience: resource, accessTokenTTL: ttl, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256', kid: active.kid } } };
          },
        },
      },
      extraTokenClaims: (_ctx, token) => {
        const { accountId, clientId } = token as { accountId?: string; clientId?: string };
        return accountId ? accounts[accountId] : apps[String(clientId)];
      },
    });
    provider.use(async (ctx, next) => {
      counts.set(ctx.path, (counts.get(ctx.path) ?? 0) + 1);
      await next();
    });
    return provider;
  };
  let handler: (req: IncomingMessage, res: ServerResponse) => void = build().callback();
  server.on('request', (req, res) => handler(req, res));

  const form = (v: string) => new URLSearchParams({ v }).toString().slice(2);
  return {
    issuer,
    requests: (path) => counts.get(path) ?? 0,
    async clientCredentials(clientId, resource = options.resource) {
      const res = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${form(clientId)}:${form(`secret-of-${clientId}`)}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope: 'dicomweb' }),
      });
      const body = (await res.json()) as { access_token?: string };
      if (!res.ok || typeof body.access_token !== 'string') throw new Error(`no token for ${clientId}: ${res.status} ${JSON.stringify(body)}`);
      return body.access_token;
    },
    async signIn(login, { resource = options.resource } = {}) {
      const jar = new Map<string, string>();
      const send = async (url: string, init: RequestInit = {}): Promise<Response> => {
        const res = await fetch(url, {
          ...init,
          redirect: 'manual',
          headers: { ...(init.headers as Record<string, string>), cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') },
        });
        for (const line of res.headers.getSetCookie()) {
          const [pair] = line.split(';');
          const eq = (pair ?? '').indexOf('=');
          if (eq > 0) jar.set((pair as string).slice(0, eq), (pair as string).slice(eq + 1));
        }
        return res;
      };
      const follow = async (res: Response): Promise<URL> => {
        await res.arrayBuffer();
        const location = res.headers.get('location');
        if (!location || res.status < 300 || res.status > 399) throw new Error(`expected a redirect, got ${res.status}`);
        return new URL(location, issuer);
      };
      // RFC 7636 4.1, 4.2: a fresh verifier, its S256 challenge.
      const verifier = randomBytes(32).toString('base64url');
      const challenge = createHash('sha256').update(verifier).digest('base64url');
      const state = randomBytes(16).toString('base64url');
      const authorize = new URL(`${issuer}/auth`);
      authorize.search = new URLSearchParams({
        client_id: publicClient.clientId,
        response_type: 'code',
        redirect_uri: REDIRECT_FOR_FETCH,
        scope: 'openid dicomweb',
        resource,
        state,
        nonce: randomBytes(16).toString('base64url'),
        code_challenge: challenge,
        code_challenge_method: 'S256',
      }).toString();
      // Authorization request → login page → authorization resumes → consent page → resumes → the client's redirect.
      let next = await follow(await send(authorize.href));
      for (const prompt of ['login', 'consent']) {
        if (!next.pathname.startsWith('/interaction/')) throw new Error(`expected the ${prompt} page, was sent to ${next.pathname}`);
        await (await send(next.href)).arrayBuffer();
        const body = new URLSearchParams(prompt === 'login' ? { prompt, login, password: 'any' } : { prompt });
        next = await follow(await send(next.href, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body }));
        next = await follow(await send(next.href));
        if (next.href.startsWith(REDIRECT_FOR_FETCH)) break;
      }
      if (!next.href.startsWith(REDIRECT_FOR_FETCH) || next.searchParams.get('state') !== state) throw new Error(`not sent back to the client: ${next.href}`);
      const code = next.searchParams.get('code');
      if (!code) throw new Error(`no code: ${next.searchParams.get('error')} ${next.searchParams.get('error_description')}`);
      const res = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_FOR_FETCH, client_id: publicClient.clientId, code_verifier: verifier }),
      });
      const tokens = (await res.json()) as { access_token?: string; id_token?: string };
      if (!res.ok || typeof tokens.access_token !== 'string' || typeof tokens.id_token !== 'string') throw new Error(`no token for ${login}: ${res.status} ${JSON.stringify(tokens)}`);
      return { accessToken: tokens.access_token, idToken: tokens.id_token };
    },
    async rotate() {
      keys = [...keys, await signingKey(keys.length + 1)];
      handler = build().callback();
    },
    async retireOldKeys() {
      keys = keys.slice(-1);
      handler = build().callback();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

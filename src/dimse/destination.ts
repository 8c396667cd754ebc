// The forwarding destination (config `dimse.forward.destination`): a DICOMweb platform apart from the
// upstream PACS, which de-identified DIMSE studies reach by STOW-RS with credentials of their own. The
// client is the PACS client (dicomweb/upstream.ts) with its `send` wrapped: each request carries the
// destination's own `Authorization` (a static bearer token, or an OAuth 2.0 client-credentials token),
// never another's. A DIMSE caller has no token, and the upstream's credentials never go there.
//
// OAuth 2.0 client credentials (RFC 6749 4.4): the client authenticates to the token endpoint with HTTP
// Basic (RFC 6749 2.3.1, the method every server must support: id and secret each form-urlencoded, then
// base64), never in the form body. The token is kept until shortly before `expires_in` runs out, fetched
// once for all requests waiting on it, and dropped when the destination answers 401 to it (the forwarder
// then sends that instance once more, with a new one). The secret and the tokens are never logged; the
// token endpoint's answer is read for its RFC 6749 5.2 error code only.
import { Readable } from 'node:stream';
import { createUpstream, type Upstream, type UpstreamRequest } from '../dicomweb/upstream.ts';
import { DestinationAuthError, OAUTH_ERRORS, type OAuthErrorCode } from './errors.ts';
import type { DimseLog } from './forwarder.ts';

/** `dimse.forward.destination`, as the schema has it. */
export interface DestinationConfig {
  readonly url: string;
  readonly auth:
    | { readonly type: 'none' }
    | { readonly type: 'bearer' }
    | { readonly type: 'oauth2'; readonly tokenUrl: string; readonly clientId: string; readonly scope?: string; readonly audience?: string };
}

/** The destination's secrets, resolved at start (config/resolve.ts). */
export interface DestinationSecrets {
  readonly destinationAuthorization: string | undefined;
  readonly destinationClientSecret: string | undefined;
}

export interface DestinationTimeouts {
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
}

/** What the metrics see of the token endpoint: each fetch by outcome. */
export type TokenObserver = (outcome: 'obtained' | 'refused' | 'unavailable') => void;

/** Where a request's `Authorization` comes from. */
export interface Authorizer {
  /** The value for the next request (undefined: none). Throws DestinationAuthError when there is no token to be had. */
  authorization(): Promise<string | undefined>;
  /** The destination answered 401 to `value`: a token that can be renewed is dropped; true if the next request gets a new one. */
  rejected(value: string): boolean;
  close(): Promise<void>;
}

export interface Destination {
  /** The STOW-RS client, with the destination's own credentials on every request. */
  readonly upstream: Upstream;
  /** A 401 may pass with a new token (OAuth 2.0): the forwarder sends the instance once more at once. */
  readonly renewsAuthorization: boolean;
}

/** The longest token endpoint answer read (RFC 6749 5.1: a small JSON object). */
const TOKEN_ANSWER_MAX_BYTES = 64 * 1024;
/** The longest access token kept (the gateway's own `auth.maxTokenBytes` default). */
const ACCESS_TOKEN_MAX_BYTES = 16 * 1024;
/** RFC 6750 2.1 b64token: the only access token that can be sent as `Authorization: Bearer`. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
/** Without `expires_in` (RFC 6749 5.1 only recommends it), a token is used this long, then renewed. */
const DEFAULT_LIFETIME_S = 60;
/** A token is renewed this long before it expires, or at half its lifetime when that is shorter. */
const RENEW_MARGIN_S = 30;

export function createDestination(
  config: DestinationConfig,
  secrets: DestinationSecrets,
  options: DestinationTimeouts & { readonly log: DimseLog; readonly now?: () => number; readonly observe?: TokenObserver },
): Destination {
  const authorizer = authorizerFor(config, secrets, options);
  const inner = createUpstream({ url: config.url, ...timeoutsOf(options) });
  return {
    renewsAuthorization: config.auth.type === 'oauth2',
    upstream: {
      async send(req: UpstreamRequest) {
        let authorization: string | undefined;
        try {
          authorization = await authorizer.authorization();
        } catch (error) {
          req.body?.destroy(); // never sent: nothing of it was read
          throw error;
        }
        // Only the destination's own credentials: whatever the request carried is dropped.
        const headers = Object.fromEntries(Object.entries(req.headers).filter(([name]) => name.toLowerCase() !== 'authorization'));
        if (authorization !== undefined) headers['authorization'] = authorization;
        const res = await inner.send({ ...req, headers });
        if (res.statusCode === 401 && authorization !== undefined) authorizer.rejected(authorization);
        return res;
      },
      async close() {
        await inner.close();
        await authorizer.close();
      },
    },
  };
}

function timeoutsOf(t: DestinationTimeouts): DestinationTimeouts {
  return { connectTimeoutMs: t.connectTimeoutMs, headersTimeoutMs: t.headersTimeoutMs, bodyTimeoutMs: t.bodyTimeoutMs };
}

/** Fails closed: a destination that names credentials without their resolved secret is not built. */
function authorizerFor(
  config: DestinationConfig,
  secrets: DestinationSecrets,
  options: DestinationTimeouts & { readonly log: DimseLog; readonly now?: () => number; readonly observe?: TokenObserver },
): Authorizer {
  switch (config.auth.type) {
    case 'none':
      return staticAuthorizer(undefined);
    case 'bearer':
      if (secrets.destinationAuthorization === undefined) throw new Error('dimse.forward.destination.auth.token was not resolved');
      return staticAuthorizer(secrets.destinationAuthorization);
    case 'oauth2':
      if (secrets.destinationClientSecret === undefined) throw new Error('dimse.forward.destination.auth.clientSecret was not resolved');
      return clientCredentials({ ...config.auth, clientSecret: secrets.destinationClientSecret, ...options });
  }
}

function staticAuthorizer(value: string | undefined): Authorizer {
  return { authorization: async () => value, rejected: () => false, close: async () => undefined };
}

/** application/x-www-form-urlencoded (RFC 6749 Appendix B), as 2.3.1 asks of the Basic credentials. */
function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}

/** RFC 8707 2: a resource indicator is an absolute URI without a fragment. */
function isResourceIndicator(value: string): boolean {
  try {
    const url = new URL(value);
    return url.hash === '' && !value.includes('#');
  } catch {
    return false;
  }
}

interface Token {
  readonly authorization: string;
  /** When it is renewed (ms since the epoch). */
  readonly renewAt: number;
}

/**
 * RFC 6749 4.4 client credentials, one token cached for every request: fetched on first use, renewed
 * `RENEW_MARGIN_S` before `expires_in` runs out (or half-way, for a short one), and dropped when the
 * destination answers 401 to it. Concurrent callers wait on the one fetch under way.
 */
export function clientCredentials(options: {
  readonly tokenUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly scope?: string;
  readonly audience?: string;
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly log: DimseLog;
  /** The clock, in ms (tests pass their own). */
  readonly now?: () => number;
  readonly observe?: TokenObserver;
}): Authorizer {
  const now = options.now ?? Date.now;
  // The token endpoint through the same HTTP client as the destination itself (dicomweb/upstream.ts).
  const endpoint = new URL(options.tokenUrl);
  const client = createUpstream({ url: endpoint.origin, connectTimeoutMs: options.connectTimeoutMs, headersTimeoutMs: options.headersTimeoutMs, bodyTimeoutMs: options.bodyTimeoutMs });
  // RFC 6749 2.3.1 (client_secret_basic): each part form-urlencoded, then "id:secret" in base64 (RFC 7617).
  const basic = `Basic ${Buffer.from(`${formEncode(options.clientId)}:${formEncode(options.clientSecret)}`).toString('base64')}`;
  const form = new URLSearchParams({ grant_type: 'client_credentials' });
  if (options.scope !== undefined) form.set('scope', options.scope); // RFC 6749 3.3
  if (options.audience !== undefined) {
    // The audience the token is for: RFC 8707 `resource` when it is a URI, and the `audience` parameter
    // servers without resource indicators read (Auth0, Okta); a server ignores what it does not know.
    form.set('audience', options.audience);
    if (isResourceIndicator(options.audience)) form.set('resource', options.audience);
  }
  const body = form.toString();
  let token: Token | undefined;
  let fetching: Promise<Token> | undefined;

  const refused = (status: number, oauthError: OAuthErrorCode | undefined): DestinationAuthError => {
    options.observe?.('refused');
    return new DestinationAuthError('DIMSE_DESTINATION_TOKEN_REFUSED', `the destination's token endpoint refused the client credentials (HTTP ${status}${oauthError ? `, ${oauthError}` : ''})`, {
      status,
      ...(oauthError ? { oauthError } : {}),
    });
  };
  const unavailable = (detail: { status?: number; network?: string }): DestinationAuthError => {
    options.observe?.('unavailable');
    return new DestinationAuthError('DIMSE_DESTINATION_TOKEN_UNAVAILABLE', "the destination's token endpoint gave no token", detail);
  };

  /** RFC 6749 4.4.2 to 4.4.3: one token request, its answer checked before anything of it is kept. */
  async function fetchToken(): Promise<Token> {
    const asked = now();
    let statusCode: number;
    let text: string;
    try {
      const res = await client.send({
        method: 'POST',
        pathAndQuery: `${endpoint.pathname}${endpoint.search}`,
        headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', 'content-length': String(Buffer.byteLength(body)) },
        body: Readable.from([Buffer.from(body)]),
      });
      statusCode = res.statusCode;
      text = await readCapped(res.body, TOKEN_ANSWER_MAX_BYTES);
    } catch (error) {
      throw unavailable({ network: networkCode(error) });
    }
    if (statusCode !== 200) {
      // RFC 6749 5.2: 400 (or 401 for a client that failed to authenticate) with an error code.
      if (statusCode === 400 || statusCode === 401) throw refused(statusCode, oauthErrorOf(text));
      throw unavailable({ status: statusCode });
    }
    const answer = parseJson(text);
    const accessToken = answer?.['access_token'];
    const tokenType = answer?.['token_type'];
    // RFC 6749 5.1 / RFC 6750: a bearer token, usable as a header value; anything else is not used.
    if (typeof accessToken !== 'string' || accessToken.length > ACCESS_TOKEN_MAX_BYTES || !B64TOKEN.test(accessToken) || typeof tokenType !== 'string' || tokenType.toLowerCase() !== 'bearer') {
      throw unavailable({ status: statusCode, network: 'MALFORMED_TOKEN_ANSWER' });
    }
    const expiresIn = lifetimeOf(answer?.['expires_in']);
    const keep = Math.max(expiresIn / 2, expiresIn - RENEW_MARGIN_S);
    options.observe?.('obtained');
    options.log.info({ expiresIn, renewIn: Math.round(keep) }, 'DIMSE destination token obtained');
    // Counted from when it was asked for: a slow answer shortens the token's life, never lengthens it.
    return { authorization: `Bearer ${accessToken}`, renewAt: asked + keep * 1000 };
  }

  return {
    async authorization() {
      if (token !== undefined && now() < token.renewAt) return token.authorization;
      fetching ??= fetchToken().finally(() => {
        fetching = undefined;
      });
      try {
        token = await fetching;
      } catch (error) {
        const detail = error instanceof DestinationAuthError ? error.detail : {};
        options.log.warn({ err: (error as { code?: unknown }).code, ...detail }, 'DIMSE destination token not obtained');
        throw error;
      }
      return token.authorization;
    },
    rejected(value) {
      if (token?.authorization === value) token = undefined;
      return true;
    },
    close: () => client.close(),
  };
}

/** `expires_in` in seconds (RFC 6749 5.1; some servers send it as a string); absent or nonsense: the default. */
function lifetimeOf(value: unknown): number {
  const seconds = typeof value === 'number' ? value : typeof value === 'string' && /^\d{1,9}$/.test(value) ? Number(value) : Number.NaN;
  return Number.isFinite(seconds) && seconds > 0 ? seconds : DEFAULT_LIFETIME_S;
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The RFC 6749 5.2 `error` of a refusal, if it is one of the registered codes; its description is never kept. */
function oauthErrorOf(text: string): OAuthErrorCode | undefined {
  const error = parseJson(text)?.['error'];
  return (OAUTH_ERRORS as readonly unknown[]).includes(error) ? (error as OAuthErrorCode) : undefined;
}

/** A network failure's code for the log (ECONNREFUSED, UPSTREAM_TIMEOUT, …): the innermost one, never a message. */
function networkCode(error: unknown): string {
  let found = 'NETWORK_ERROR';
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z0-9_]{1,48}$/.test(code)) found = code;
  }
  return found;
}

/** Reads a small body as text, up to `max` bytes; a longer one is cut (and so is not valid JSON). */
async function readCapped(body: AsyncIterable<Uint8Array> & { destroy?: () => void }, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > max) {
      body.destroy?.();
      break;
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString('utf8');
}

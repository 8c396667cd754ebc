// OpenID Connect Discovery 1.0: the provider publishes its configuration at
// `<issuer>/.well-known/openid-configuration`; its `jwks_uri` names the key set tokens are checked with.
// This is how Keycloak, Entra ID, Okta, Auth0 and Google are configured: the issuer alone.
import { createRemoteJWKSet, errors as joseErrors, type JWTVerifyGetKey } from 'jose';
import { secureTransport } from '../config/schema.ts';
import { IssuerUnavailableError } from './errors.ts';

/** OpenID Connect Discovery 1.0 §4: the well-known path, appended to the issuer. */
export const DISCOVERY_PATH = '/.well-known/openid-configuration';

/** A provider's configuration is a few kilobytes (Keycloak's about 7); more is refused, never buffered. */
const MAX_DOCUMENT_BYTES = 64 * 1024;

export interface DiscoveryOptions {
  /** `auth.issuer`: the provider's issuer identifier, which the document must repeat exactly. */
  issuer: string;
  /** The document is read again once it is this old, as the JWKS is (`auth.jwksCacheMaxAgeMs`). */
  cacheMaxAgeMs: number;
  /**
   * `auth.jwksCooldownMs`: an unknown `kid` refetches the JWKS at most this often; and after a failed read
   * of the document, requests are refused at once and the provider is asked again only after this long.
   */
  cooldownMs: number;
  /** Each request to the provider (document or JWKS) gives up after this long. */
  timeoutMs?: number;
  /** `auth.allowHttp`: http to a host that is not loopback is accepted for `jwks_uri`. */
  allowHttp?: boolean;
  /** The clock (tests pass their own). */
  now?: () => number;
  /** Each read of the document, once: what it named, or why it failed (for the log; no request waits on it). */
  observe?: (outcome: { ok: true; jwksUri: string } | { ok: false; error: IssuerUnavailableError }) => void;
}

export interface DiscoveredKeys {
  /** For jose's `jwtVerify`: the JWKS the provider's configuration names, read (again) when due. */
  readonly getKey: JWTVerifyGetKey;
  /** Reads the document unless a fresh one is held (at start: the log says at once whether the provider answers). */
  load(): Promise<void>;
}

/** OpenID Connect Discovery 1.0 §4.1: the issuer without a terminating `/`, then the well-known path (after any path). */
export function discoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/$/, '')}${DISCOVERY_PATH}`;
}

/**
 * The JWKS of the provider `issuer`, found through its discovery document. The document is cached for
 * `cacheMaxAgeMs`; a failed read is remembered for `cooldownMs`, during which every token is refused with
 * IssuerUnavailableError (503) without asking the provider again. Fail closed: nothing is verified with a
 * key set whose document did not name this issuer exactly, or with a stale document the provider no
 * longer serves.
 */
export function createDiscoveredKeys(options: DiscoveryOptions): DiscoveredKeys {
  const now = options.now ?? Date.now;
  const timeoutMs = options.timeoutMs ?? 5_000;
  const retryAfterSec = Math.max(1, Math.ceil(options.cooldownMs / 1000));
  let held: { jwksUri: string; keySet: JWTVerifyGetKey; readAt: number } | undefined;
  let failed: { at: number; error: IssuerUnavailableError } | undefined;
  let reading: Promise<JWTVerifyGetKey> | undefined;

  const read = async (): Promise<JWTVerifyGetKey> => {
    try {
      const jwksUri = await readJwksUri(options.issuer, timeoutMs, options.allowHttp === true);
      // The same jwks_uri keeps its key set (and jose's cache of it); a new one starts afresh.
      const keySet =
        held?.jwksUri === jwksUri
          ? held.keySet
          : availableOrRefused(
              createRemoteJWKSet(new URL(jwksUri), { cooldownDuration: options.cooldownMs, cacheMaxAge: options.cacheMaxAgeMs, timeoutDuration: timeoutMs }),
              retryAfterSec,
            );
      held = { jwksUri, keySet, readAt: now() };
      failed = undefined;
      options.observe?.({ ok: true, jwksUri });
      return keySet;
    } catch (cause) {
      const error = cause instanceof IssuerUnavailableError ? cause : new IssuerUnavailableError('discovery', retryAfterSec, { cause });
      // A stale document is not used: the provider must answer for it again (as jose does with a stale JWKS).
      held = undefined;
      failed = { at: now(), error };
      options.observe?.({ ok: false, error });
      throw error;
    }
  };

  const current = (): Promise<JWTVerifyGetKey> => {
    if (held && now() - held.readAt < options.cacheMaxAgeMs) return Promise.resolve(held.keySet);
    if (reading) return reading;
    if (failed && now() - failed.at < options.cooldownMs) {
      const left = Math.max(1, Math.ceil((options.cooldownMs - (now() - failed.at)) / 1000));
      return Promise.reject(new IssuerUnavailableError(failed.error.reason, left, { cause: failed.error.cause }));
    }
    reading = read().finally(() => {
      reading = undefined;
    });
    return reading;
  };

  return {
    getKey: async (header, token) => (await current())(header, token),
    async load() {
      await current();
    },
  };
}

/**
 * Wraps a remote JWKS so that the provider not answering (timeout, network, a status other than 200, not
 * a key set) is IssuerUnavailableError (503), told apart from a token whose key is not in the set (401).
 */
export function availableOrRefused(keySet: JWTVerifyGetKey, retryAfterSec: number): JWTVerifyGetKey {
  return async (header, token) => {
    try {
      return await keySet(header, token);
    } catch (error) {
      const unavailable =
        error instanceof joseErrors.JWKSTimeout ||
        error instanceof joseErrors.JWKSInvalid ||
        // jose's own "Expected 200 OK" / "Failed to parse" are the generic JOSEError; fetch's are not JOSE errors.
        (error instanceof joseErrors.JOSEError && error.code === 'ERR_JOSE_GENERIC') ||
        !(error instanceof joseErrors.JOSEError);
      if (unavailable) throw new IssuerUnavailableError('jwks', retryAfterSec, { cause: error });
      throw error;
    }
  };
}

/**
 * OpenID Connect Discovery 1.0 §4: GET the document, then (§4.3) its `issuer` must be the configured issuer
 * exactly, and its `jwks_uri` (§3, REQUIRED) an absolute https URL (http only to a loopback host, or with
 * `auth.allowHttp`). No redirect is followed: the document lives where the issuer says.
 */
async function readJwksUri(issuer: string, timeoutMs: number, allowHttp: boolean): Promise<string> {
  // 1. §4.1: GET <issuer>/.well-known/openid-configuration; §4.2: a 200 with a JSON object.
  const res = await fetch(discoveryUrl(issuer), {
    headers: { accept: 'application/json' },
    redirect: 'error',
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new Error(`the discovery document answered ${res.status}`);
  }
  const document = JSON.parse(await cappedText(res, MAX_DOCUMENT_BYTES)) as unknown;
  if (typeof document !== 'object' || document === null || Array.isArray(document)) throw new Error('the discovery document is not a JSON object');
  const { issuer: named, jwks_uri: jwksUri } = document as Record<string, unknown>;
  // 2. §4.3: the issuer it names is exactly the one asked about, else the document is not used.
  if (named !== issuer) throw new Error('the discovery document names another issuer (OpenID Connect Discovery 1.0 §4.3)');
  // 3. §3: jwks_uri, REQUIRED; the keys come over https as the document did.
  if (typeof jwksUri !== 'string' || !URL.canParse(jwksUri)) throw new Error('the discovery document has no jwks_uri');
  const url = new URL(jwksUri);
  if (!secureTransport(url, allowHttp) || url.username || url.password || url.hash) throw new Error('the jwks_uri is not an https URL');
  return url.href;
}

async function cappedText(res: Response, cap: number): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body ?? []) {
    size += chunk.byteLength;
    // Leaving the loop by a throw cancels the body.
    if (size > cap) throw new Error(`the discovery document is larger than ${cap} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors as joseErrors,
  jwtVerify,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { availableOrRefused } from './discovery.ts';
import { AuthError, IssuerUnavailableError, TokenInvalidError, TokenMissingError } from './errors.ts';

export interface TokenVerifierOptions {
  issuer: string | string[];
  audience: string | string[];
  algorithms: string[];
  clockToleranceSec: number;
  maxTokenBytes: number;
  jwksUrl?: string;
  /** The JWKS found through OpenID Connect Discovery (auth/discovery.ts), instead of a jwksUrl. */
  discovered?: JWTVerifyGetKey;
  /** `auth.authorizedParties`: the token's `azp`, else its `client_id`, must be one of these. */
  authorizedParties?: readonly string[];
  /** Local public keys as JWKs (key files are read and converted by `config/public-key-file.ts`). */
  publicKeys?: JWK[];
  /** Shared secret for HS* (only honoured for HS* algorithms in the allow-list). */
  sharedSecret?: string;
  /** After a JWKS fetch, an unknown `kid` refetches only once this has passed (jose's cooldown). */
  jwksCooldownMs?: number;
  /** How long a fetched JWKS is trusted: a key the IdP removed still verifies until then. */
  jwksCacheMaxAgeMs?: number;
}

export type TokenVerifier = (authorization: string | undefined) => Promise<JWTPayload>;

const BEARER = /^Bearer ([A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]*)$/;

/**
 * Verifies a bearer token with jose. The algorithm allow-list is enforced before any key is chosen,
 * so `alg: none` and an HS256 token "signed" with an RSA public key fail on the header alone.
 */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const asymmetric = options.algorithms.filter((a) => !a.startsWith('HS'));
  const symmetric = options.sharedSecret ? options.algorithms.filter((a) => a.startsWith('HS')) : [];
  const keySets: JWTVerifyGetKey[] = [];
  if (options.jwksUrl) {
    // jose caches the set and refetches on an unknown `kid` (after the cooldown).
    // The IdP not answering is 503 (IssuerUnavailableError), a key it does not list is 401.
    keySets.push(
      availableOrRefused(
        createRemoteJWKSet(new URL(options.jwksUrl), {
          cooldownDuration: options.jwksCooldownMs ?? 30_000,
          cacheMaxAge: options.jwksCacheMaxAgeMs ?? 10 * 60_000,
        }),
        1,
      ),
    );
  }
  if (options.discovered) keySets.push(options.discovered);
  if (options.publicKeys && options.publicKeys.length > 0) keySets.push(createLocalJWKSet({ keys: options.publicKeys }));
  const secret = options.sharedSecret ? new TextEncoder().encode(options.sharedSecret) : undefined;

  const common = {
    issuer: options.issuer,
    audience: options.audience,
    clockTolerance: options.clockToleranceSec,
    requiredClaims: ['iss', 'aud', 'exp'],
  };

  return async (authorization) => {
    if (!authorization) throw new TokenMissingError();
    if (authorization.length > options.maxTokenBytes) throw new TokenInvalidError('too large');
    const match = BEARER.exec(authorization);
    if (!match) throw new TokenInvalidError('not a bearer JWT');
    const token = match[1] as string;
    const alg = headerAlgorithm(token);
    if (!alg || !options.algorithms.includes(alg)) throw new TokenInvalidError('algorithm not allowed');

    try {
      if (alg.startsWith('HS')) {
        if (!secret || !symmetric.includes(alg)) throw new TokenInvalidError('algorithm not allowed');
        return (await jwtVerify(token, secret, { ...common, algorithms: symmetric })).payload;
      }
      let lastError: unknown = new TokenInvalidError('no verification key configured');
      // A provider that does not answer lets the local keys still try; if none verifies, it is the answer (503).
      let unavailable: IssuerUnavailableError | undefined;
      for (const keySet of keySets) {
        try {
          return authorizedParty((await jwtVerify(token, keySet, { ...common, algorithms: asymmetric })).payload, options.authorizedParties);
        } catch (error) {
          if (error instanceof IssuerUnavailableError) {
            unavailable = error;
            continue;
          }
          lastError = error;
          if (!(error instanceof joseErrors.JWKSNoMatchingKey)) break;
        }
      }
      throw unavailable && (lastError instanceof joseErrors.JWKSNoMatchingKey || lastError instanceof TokenInvalidError) ? unavailable : lastError;
    } catch (error) {
      if (error instanceof AuthError) throw error;
      throw new TokenInvalidError(reasonOf(error), { cause: error });
    }
  };
}

/**
 * OpenID Connect Core 1.0 §2 `azp` (the client the token was issued to: Keycloak, Entra ID v2), else RFC 9068
 * §2.2 `client_id`: one of `parties`, when the config names any.
 */
function authorizedParty(payload: JWTPayload, parties: readonly string[] | undefined): JWTPayload {
  if (!parties) return payload;
  const party = payload['azp'] ?? payload['client_id'];
  if (typeof party !== 'string' || !parties.includes(party)) throw new TokenInvalidError('claim azp failed');
  return payload;
}

function headerAlgorithm(token: string): string | undefined {
  try {
    const header = JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString('utf8')) as unknown;
    const alg = (header as { alg?: unknown } | null)?.alg;
    return typeof alg === 'string' ? alg : undefined;
  } catch {
    return undefined;
  }
}

/** A short, stable reason for logs and the `WWW-Authenticate` description; never the token. */
function reasonOf(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `claim ${error.claim} failed`;
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'unknown key';
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'bad signature';
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  if (error instanceof joseErrors.JWKSTimeout || error instanceof joseErrors.JOSEError) {
    return error.code.replace(/^ERR_/, '').toLowerCase();
  }
  return 'malformed';
}

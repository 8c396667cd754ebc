/** Token and role failures. Messages never echo the token or its claims' values. */
export type AuthErrorCode =
  | 'AUTH_TOKEN_MISSING'
  | 'AUTH_TOKEN_INVALID'
  | 'AUTH_NO_ROLE'
  | 'AUTH_ROLE_FORBIDDEN'
  | 'AUTH_LOOPBACK_ONLY'
  | 'AUTH_ISSUER_UNAVAILABLE';

export class AuthError extends Error {
  override name = 'AuthError';
  constructor(
    readonly code: AuthErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
/** No usable credentials: 401. */
export class TokenMissingError extends AuthError {
  override name = 'TokenMissingError';
  constructor() {
    super('AUTH_TOKEN_MISSING', 'a bearer token is required');
  }
}
/** The token failed verification (signature, algorithm, claims, size): 401. */
export class TokenInvalidError extends AuthError {
  override name = 'TokenInvalidError';
  constructor(
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super('AUTH_TOKEN_INVALID', `the token is invalid (${reason})`, options);
  }
}
/**
 * The keys to check a token with cannot be had just now: the provider's OpenID Connect configuration or
 * its JWKS does not answer, or answers with something unusable (another issuer, a non-https `jwks_uri`,
 * not JSON). Nothing is verified, so nothing is served: 503, with the seconds until the gateway asks the
 * provider again. The reason names the step (`discovery`, `jwks`), never a URL's answer.
 */
export class IssuerUnavailableError extends AuthError {
  override name = 'IssuerUnavailableError';
  constructor(
    readonly reason: string,
    readonly retryAfterSec: number,
    options?: { cause?: unknown },
  ) {
    super('AUTH_ISSUER_UNAVAILABLE', `the token issuer's keys are unavailable (${reason}); try again later`, options);
  }
}
/** A valid token that maps to no gateway role: 403. */
export class NoRoleError extends AuthError {
  override name = 'NoRoleError';
  constructor() {
    super('AUTH_NO_ROLE', 'the token carries no role this gateway knows');
  }
}
/** A role that may not use this route: 403. */
export class RoleForbiddenError extends AuthError {
  override name = 'RoleForbiddenError';
  constructor(
    readonly role: string,
    readonly routeClass: string,
  ) {
    super('AUTH_ROLE_FORBIDDEN', `role ${role} may not use ${routeClass}`);
  }
}
/** An endpoint without credentials of its own (metrics with no token) asked from off the machine: 403. */
export class LoopbackOnlyError extends AuthError {
  override name = 'LoopbackOnlyError';
  constructor(what: string) {
    super('AUTH_LOOPBACK_ONLY', `${what} without a token is served to loopback callers only`);
  }
}

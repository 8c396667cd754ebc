/** Re-identification and audit-trail failures; `http/error-mapping.ts` turns them into statuses. */
export type AuditRequestCode = 'REID_BAD_REQUEST' | 'REID_TOO_MANY' | 'AUDIT_BAD_QUERY';
export type RateLimitedCode = 'REID_RATE_LIMITED' | 'QIDO_RATE_LIMITED';
export type AuditErrorCode = AuditRequestCode | RateLimitedCode | 'REID_UNKNOWN_PSEUDONYM' | 'REID_NO_SUBJECT';

class AuditError extends Error {
  override name = 'AuditError';
  constructor(
    readonly code: AuditErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
/** A malformed re-identification request or audit query: 400. */
export class AuditRequestError extends AuditError {
  override name = 'AuditRequestError';
  constructor(code: AuditRequestCode, message: string) {
    super(code, message);
  }
}
/** A pseudonym the gateway never issued: 404. */
export class PseudonymUnknownError extends AuditError {
  override name = 'PseudonymUnknownError';
  constructor(readonly kind: string) {
    super('REID_UNKNOWN_PSEUDONYM', `no ${kind} was issued under this pseudonym`);
  }
}
/** The caller's token bucket is empty: 429 with Retry-After. */
export class RateLimitedError extends AuditError {
  override name = 'RateLimitedError';
  constructor(
    readonly retryAfterSeconds: number,
    code: RateLimitedCode = 'REID_RATE_LIMITED',
    message = 're-identification rate limit reached; retry later',
  ) {
    super(code, message);
  }
}
/** A researcher's QIDO-RS requests past the per-subject rate (`qido.rateLimit`): 429 with Retry-After. */
export class QueryRateLimitedError extends RateLimitedError {
  override name = 'QueryRateLimitedError';
  constructor(retryAfterSeconds: number) {
    super(retryAfterSeconds, 'QIDO_RATE_LIMITED', 'query rate limit reached; retry later');
  }
}
/** A token without `sub`: a re-identification nobody can be held to account for is refused (403). */
export class NoSubjectError extends AuditError {
  override name = 'NoSubjectError';
  constructor() {
    super('REID_NO_SUBJECT', 're-identification needs a token that names its subject (sub)');
  }
}

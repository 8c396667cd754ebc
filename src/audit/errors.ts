/** Re-identification and audit-trail failures; `http/error-mapping.ts` turns them into statuses. */
export class AuditError extends Error {
  override name = 'AuditError';
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
/** A malformed re-identification request or audit query: 400. */
export class AuditRequestError extends AuditError {
  override name = 'AuditRequestError';
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
  constructor(readonly retryAfterSeconds: number) {
    super('REID_RATE_LIMITED', 're-identification rate limit reached; retry later');
  }
}
/** A token without `sub`: a re-identification nobody can be held to account for is refused (403). */
export class NoSubjectError extends AuditError {
  override name = 'NoSubjectError';
  constructor() {
    super('REID_NO_SUBJECT', 're-identification needs a token that names its subject (sub)');
  }
}

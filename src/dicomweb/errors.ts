/** DICOMweb-side failures; `http/error-mapping.ts` is the only place that turns them into statuses. */
export class DicomwebError extends Error {
  override name = 'DicomwebError';
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
/** The PACS could not be reached (connection refused, reset, DNS): 502. */
export class UpstreamUnreachableError extends DicomwebError {
  override name = 'UpstreamUnreachableError';
  constructor(options?: { cause?: unknown }) {
    super('UPSTREAM_UNREACHABLE', 'the PACS behind the gateway could not be reached', options);
  }
}
/** The PACS did not answer in time: 504. */
export class UpstreamTimeoutError extends DicomwebError {
  override name = 'UpstreamTimeoutError';
  constructor(options?: { cause?: unknown }) {
    super('UPSTREAM_TIMEOUT', 'the PACS behind the gateway did not answer in time', options);
  }
}
/** A request path or parameter that is not a valid DICOMweb resource: 400. */
export class BadRequestError extends DicomwebError {
  override name = 'BadRequestError';
  constructor(code: string, message: string) {
    super(code, message);
  }
}
/** A de-identified view this build cannot serve yet: refused, never served raw (501). */
export class DeidentificationUnavailableError extends DicomwebError {
  override name = 'DeidentificationUnavailableError';
  constructor(readonly transaction: string) {
    super('DEID_UNAVAILABLE', `${transaction} is not yet available de-identified; nothing was sent`);
  }
}

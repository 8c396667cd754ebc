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
/** A UID (or other pseudonym) the gateway never issued, or an original presented by a restricted role: 404. */
export class UnknownResourceError extends DicomwebError {
  override name = 'UnknownResourceError';
  constructor(what: string) {
    super('DICOMWEB_UNKNOWN_RESOURCE', `no such ${what}`);
  }
}
/** A resource this role may not have, e.g. rendered pixels for a researcher when config says no: 403. */
export class ResourceRefusedError extends DicomwebError {
  override name = 'ResourceRefusedError';
  constructor(code: string, message: string) {
    super(code, message);
  }
}
/** The PACS sent a body the gateway cannot de-identify; nothing raw is passed on: 502. */
export class UpstreamUnusableError extends DicomwebError {
  override name = 'UpstreamUnusableError';
  constructor(reason: string, options?: { cause?: unknown }) {
    super('UPSTREAM_UNUSABLE', `the PACS sent a response the gateway cannot de-identify (${reason})`, options);
  }
}
/** An upstream error status relayed to a restricted role without its body (which may hold data). */
export class UpstreamStatusError extends DicomwebError {
  override name = 'UpstreamStatusError';
  constructor(readonly status: number) {
    super('UPSTREAM_STATUS', `the PACS answered ${status}`);
  }
}

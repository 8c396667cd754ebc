import type { NextFunction, Request, Response } from 'express';
import { AuthError, IssuerUnavailableError, LoopbackOnlyError, NoRoleError, RoleForbiddenError } from '../auth/errors.ts';
import { DeidError, PixelWithheldError } from '../deid/errors.ts';
import { DicomError } from '../dicom/errors.ts';
import {
  BadRequestError,
  ClientGoneError,
  DeidentificationUnavailableError,
  DicomwebError,
  InstanceWithheldError,
  NoFramesError,
  NotAcceptableError,
  OcrBusyError,
  ResourceRefusedError,
  StowPartError,
  StowRequestError,
  UnknownResourceError,
  UpstreamJsonError,
  UpstreamStatusError,
  UpstreamStoreFailedError,
  UpstreamTimeoutError,
  UpstreamUnreachableError,
  UpstreamUnusableError,
} from '../dicomweb/errors.ts';
import { FailureReason } from '../dicomweb/stow.ts';
import { QuarantineError } from '../dimse/errors.ts';
import { StoreError } from '../store/errors.ts';
import {
  PatientPseudonymUnknownError,
  ProjectDefinitionError,
  ProjectError,
  ProjectExistsError,
  ProjectNotFoundError,
  ProjectRequestError,
  ProjectUnusableError,
} from '../projects/errors.ts';
import { AuditRequestError, NoSubjectError, PseudonymUnknownError, RateLimitedError } from '../audit/errors.ts';
import { HttpRequestError, type ErrorCode } from './errors.ts';
import type { Logger } from './logging.ts';
import { requestState } from './request-context.ts';

export interface MappedError {
  status: number;
  code: ErrorCode;
  message: string;
  headers?: Record<string, string>;
}

/** The only place where an error becomes an HTTP status. Clients get a generic reason and a code. */
export function mapError(error: unknown): MappedError {
  if (error instanceof NoRoleError || error instanceof RoleForbiddenError || error instanceof LoopbackOnlyError) {
    return { status: 403, code: error.code, message: error.message };
  }
  // The provider's keys cannot be had (OpenID Connect discovery, JWKS): nothing was verified; retry later.
  if (error instanceof IssuerUnavailableError) return { status: 503, code: error.code, message: error.message, headers: { 'retry-after': String(error.retryAfterSec) } };
  if (error instanceof AuthError) {
    // RFC 6750 3: the challenge names the error class, never the token.
    const description = error.message.replace(/"/g, "'");
    const challenge =
      error.code === 'AUTH_TOKEN_MISSING'
        ? 'Bearer realm="deid-gateway"'
        : `Bearer realm="deid-gateway", error="invalid_token", error_description="${description}"`;
    return { status: 401, code: error.code, message: error.message, headers: { 'www-authenticate': challenge } };
  }
  // A bad definition or steward request is the steward's request (400); a project or patient pseudonym
  // the steward names that is not there, 404; a name taken, a conflict (409). Every other project
  // error is a caller without the project it needs (403), the unknown project included: a researcher's
  // token names it, so saying it is not there tells nothing the token's issuer did not.
  if (error instanceof ProjectDefinitionError || error instanceof ProjectRequestError) return { status: 400, code: error.code, message: error.message };
  if (error instanceof ProjectNotFoundError || error instanceof PatientPseudonymUnknownError) return { status: 404, code: error.code, message: error.message };
  if (error instanceof ProjectExistsError) return { status: 409, code: error.code, message: error.message };
  if (error instanceof ProjectUnusableError) return { status: 503, code: error.code, message: error.message };
  if (error instanceof ProjectError) return { status: 403, code: error.code, message: error.message };
  // Nobody is left to read an answer; 499 (as nginx logs it) is never sent, only logged.
  if (error instanceof ClientGoneError) return { status: 499, code: error.code, message: error.message };
  // An operator's retry of a quarantined DIMSE study: no such folder, or not possible now (the reason in the code).
  if (error instanceof QuarantineError) return { status: error.code === 'DIMSE_QUARANTINE_NOT_FOUND' ? 404 : 409, code: error.code, message: error.message };
  if (error instanceof AuditRequestError || error instanceof HttpRequestError) return { status: 400, code: error.code, message: error.message };
  if (error instanceof NoSubjectError) return { status: 403, code: error.code, message: error.message };
  if (error instanceof PseudonymUnknownError) return { status: 404, code: error.code, message: error.message };
  if (error instanceof RateLimitedError) {
    // RFC 6585 4: 429 with Retry-After (RFC 9110 10.2.3).
    return { status: 429, code: error.code, message: error.message, headers: { 'retry-after': String(error.retryAfterSeconds) } };
  }
  if (error instanceof UpstreamUnreachableError) return { status: 502, code: error.code, message: error.message };
  if (error instanceof UpstreamTimeoutError) return { status: 504, code: error.code, message: error.message };
  if (error instanceof BadRequestError) return { status: 400, code: error.code, message: error.message };
  if (error instanceof DeidentificationUnavailableError) return { status: 501, code: error.code, message: error.message };
  if (error instanceof StowRequestError) {
    // PS3.18 10.5.3 Table 10.5.3-1: 415 for a media type the origin server does not take; 413 (RFC 9110 15.5.14) over a limit.
    return { status: error.code === 'STOW_UNSUPPORTED_MEDIA_TYPE' ? 415 : 413, code: error.code, message: error.message };
  }
  if (error instanceof UnknownResourceError || error instanceof NoFramesError || error instanceof InstanceWithheldError) return { status: 404, code: error.code, message: error.message };
  if (error instanceof NotAcceptableError) return { status: 406, code: error.code, message: error.message };
  if (error instanceof ResourceRefusedError) return { status: 403, code: error.code, message: error.message };
  // RFC 9110 15.6.3: the PACS sent a body the gateway cannot read (bad multipart, bad DICOM JSON): 502.
  if (error instanceof UpstreamUnusableError || error instanceof UpstreamJsonError) {
    return { status: 502, code: error.code, message: error.message };
  }
  if (error instanceof UpstreamStatusError) {
    // RFC 9110 15.6.3: a PACS that failed (500, 501, …) is a bad gateway answer, not the gateway's own 500;
    // 4xx, 503 (retry later) and 504 keep their meaning for the caller.
    const kept = (error.status >= 400 && error.status < 500) || error.status === 503 || error.status === 504;
    const status = kept ? error.status : 502;
    return { status, code: error.code, message: error.message };
  }
  if (error instanceof StoreError) {
    return { status: 503, code: error.code, message: 'the pseudonym store is unavailable; nothing was shown' };
  }
  if (error instanceof DicomwebError) return { status: 500, code: error.code, message: error.message };
  const multerCode = (error as { name?: unknown; code?: unknown } | null)?.name === 'MulterError' ? String((error as { code: unknown }).code) : undefined;
  if (multerCode === 'LIMIT_FILE_SIZE') return { status: 413, code: 'UPLOAD_TOO_LARGE', message: 'a file exceeds the configured limit' };
  if (multerCode) return { status: 400, code: 'UPLOAD_BAD_FORM', message: `the upload form is malformed (${multerCode})` };
  const status = (error as { status?: unknown; type?: unknown } | null)?.status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    // body-parser / express client errors (e.g. a malformed URL).
    return { status, code: 'HTTP_BAD_REQUEST', message: 'the request could not be understood' };
  }
  return { status: 500, code: 'INTERNAL', message: 'internal error; see the gateway log for the request id' };
}

/**
 * Out of resources, by the code of the error or of one of its causes: disk full or over quota, a file
 * over a size limit, no memory, no file descriptors (errno); SQLite's FULL and NOMEM; PostgreSQL's class
 * 53 Insufficient Resources (disk full, out of memory, too many connections).
 */
const OUT_OF_RESOURCES = new Set(['ENOSPC', 'EDQUOT', 'EFBIG', 'ENOMEM', 'EMFILE', 'ENFILE', 'SQLITE_FULL', 'SQLITE_NOMEM', '53100', '53200', '53300']);

/**
 * The Failure Reason of a STOW part that was not stored, from its error's class (PS3.18 I.2.2, "the
 * single most appropriate code"):
 * 1. the gateway's own refusals: not application/dicom 0x0122, no SOP identifiers 0xA900, another
 *    study 0xC409;
 * 2. the PACS refused it: the reason it gave, else 0x0110 for a 5xx answer and 0xC000 for any other;
 * 3. the gateway ran out of resources (`OUT_OF_RESOURCES` anywhere in the cause chain, or OCR's detector
 *    full or out of time): 0xA700;
 * 4. the data cannot be read or de-identified (a DicomError or DeidError in the chain): 0xC000;
 * 5. anything else, the pseudonym store or a disk error among them: 0x0110 Processing failure, since
 *    the part may well be fine and the failure is the gateway's.
 */
export function stowFailureReason(error: unknown): number {
  if (error instanceof StowPartError) {
    if (error.code === 'STOW_PART_NOT_DICOM') return FailureReason.sopClassNotSupported;
    if (error.code === 'STOW_PART_NO_IDENTIFIERS') return FailureReason.dataSetDoesNotMatchSopClass;
    return FailureReason.studyInstanceUidMismatch;
  }
  if (error instanceof PixelWithheldError) return FailureReason.notAuthorized; // issue 16: the pixel policy withholds it (PS3.7 C 0x0124)
  if (error instanceof OcrBusyError) return FailureReason.outOfResources; // issue 18: OCR full or out of time, to be sent again
  if (error instanceof UpstreamStoreFailedError) {
    return error.reason ?? (error.status >= 500 ? FailureReason.processingFailure : FailureReason.cannotUnderstand);
  }
  let understood = true;
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && OUT_OF_RESOURCES.has(code)) return FailureReason.outOfResources;
    if (e instanceof DicomError || e instanceof DeidError) understood = false;
  }
  return understood ? FailureReason.processingFailure : FailureReason.cannotUnderstand;
}

/**
 * Express error handler: logs with the request id, answers once, and aborts a response already under way.
 * `observe` (metrics) sees every error here, the one path all of them take, before or after the first byte.
 */
export function errorHandler(logger: Logger, observe?: (error: unknown, mapped: MappedError, aborted: boolean) => void) {
  return (error: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const mapped = mapError(error);
    observe?.(error, mapped, res.headersSent);
    const log = requestState(res).log ?? logger;
    if (error instanceof ClientGoneError) {
      // Not a failure of the PACS or of the gateway: nobody to answer, so only the socket is released.
      log.info({ code: mapped.code, headersSent: res.headersSent }, 'the caller went away');
      res.destroy();
      return;
    }
    const cause = error instanceof Error ? error.cause : undefined;
    // Express's own client errors quote the request (`Failed to decode param '<path segment>'`): name only.
    const message = error instanceof Error && mapped.code !== 'HTTP_BAD_REQUEST' ? error.message : undefined;
    const entry = {
      code: mapped.code,
      status: mapped.status,
      err: error instanceof Error ? { name: error.name, code: (error as { code?: unknown }).code, message } : undefined,
      cause: cause instanceof Error ? { name: cause.name, code: (cause as { code?: unknown }).code } : undefined,
    };
    if (mapped.status >= 500) log.error(entry, 'request failed');
    else log.info(entry, 'request refused');
    if (res.headersSent) {
      // PS3.18 has no way to signal an error mid-body: abort, so the body never looks complete.
      res.destroy();
      return;
    }
    res.status(mapped.status);
    for (const [name, value] of Object.entries(mapped.headers ?? {})) res.setHeader(name, value);
    // RFC 9112 9.6: refused before its body was read (e.g. a STOW declaring 10 GiB), the connection
    // closes after the answer; kept alive, Node would read and discard the whole body first.
    if (!req.complete) res.setHeader('connection', 'close');
    res.json({ error: { code: mapped.code, message: mapped.message }, requestId: requestState(res).requestId });
  };
}

import type { NextFunction, Request, Response } from 'express';
import { AuthError, LoopbackOnlyError, NoRoleError, RoleForbiddenError } from '../auth/errors.ts';
import {
  BadRequestError,
  DeidentificationUnavailableError,
  DicomwebError,
  ResourceRefusedError,
  UnknownResourceError,
  UpstreamStatusError,
  UpstreamTimeoutError,
  UpstreamUnreachableError,
  UpstreamUnusableError,
} from '../dicomweb/errors.ts';
import { StoreError } from '../store/errors.ts';
import { AuditRequestError, NoSubjectError, PseudonymUnknownError, RateLimitedError } from '../audit/errors.ts';
import { StowRequestError } from '../dicomweb/stow.ts';
import { UpstreamJsonError } from '../dicomweb/json-array-stream.ts';
import type { Logger } from './logging.ts';

export interface MappedError {
  status: number;
  code: string;
  message: string;
  headers?: Record<string, string>;
}

/** The only place where an error becomes an HTTP status. Clients get a generic reason and a code. */
export function mapError(error: unknown): MappedError {
  if (error instanceof NoRoleError || error instanceof RoleForbiddenError || error instanceof LoopbackOnlyError) {
    return { status: 403, code: error.code, message: error.message };
  }
  if (error instanceof AuthError) {
    // RFC 6750 3: the challenge names the error class, never the token.
    const description = error.message.replace(/"/g, "'");
    const challenge =
      error.code === 'AUTH_TOKEN_MISSING'
        ? 'Bearer realm="deid-gateway"'
        : `Bearer realm="deid-gateway", error="invalid_token", error_description="${description}"`;
    return { status: 401, code: error.code, message: error.message, headers: { 'www-authenticate': challenge } };
  }
  if (error instanceof AuditRequestError) return { status: 400, code: error.code, message: error.message };
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
  if (error instanceof StowRequestError) return { status: error.status, code: error.code, message: error.message };
  if (error instanceof UnknownResourceError) return { status: 404, code: error.code, message: error.message };
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
 * Express error handler: logs with the request id, answers once, and aborts a response already under way.
 * `observe` (metrics) sees every error here, the one path all of them take, before or after the first byte.
 */
export function errorHandler(logger: Logger, observe?: (error: unknown, mapped: MappedError, aborted: boolean) => void) {
  return (error: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const mapped = mapError(error);
    observe?.(error, mapped, res.headersSent);
    const log = (res.locals['log'] as Logger | undefined) ?? logger;
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
    res.json({ error: { code: mapped.code, message: mapped.message }, requestId: res.locals['requestId'] });
  };
}

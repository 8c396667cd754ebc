// Failures of the HTTP adapter itself (a malformed upload form, a bad /conformance query), and the union of
// every code a caller can receive. Each code is declared in its folder's errors.ts; `error-mapping.ts`
// is the only place that turns an error into a status.
import type { AuditErrorCode } from '../audit/errors.ts';
import type { AuthErrorCode } from '../auth/errors.ts';
import type { DicomwebErrorCode } from '../dicomweb/errors.ts';
import type { QuarantineCode } from '../dimse/errors.ts';
import type { StoreErrorCode } from '../store/errors.ts';
import type { ProjectErrorCode } from '../projects/errors.ts';

/** A request to an HTTP-only route (not DICOMweb) that cannot be understood: 400. */
export type HttpRequestCode = 'UPLOAD_BAD_FORM' | 'UPLOAD_BAD_REDACTIONS' | 'UPLOAD_PREVIEW_NO_FILE' | 'UPLOAD_PREVIEW_UNREADABLE' | 'CONFORMANCE_BAD_ROLE' | 'CONFORMANCE_BAD_FORMAT';

/** What `error-mapping.ts` answers for an error that carries none of our codes (multer, express, a bug). */
type HttpFallbackCode = 'UPLOAD_TOO_LARGE' | 'UPLOAD_BAD_FORM' | 'HTTP_BAD_REQUEST' | 'INTERNAL';

/** Every code an error answer can carry. */
export type ErrorCode = AuthErrorCode | AuditErrorCode | DicomwebErrorCode | StoreErrorCode | ProjectErrorCode | QuarantineCode | HttpRequestCode | HttpFallbackCode;

export class HttpRequestError extends Error {
  override name = 'HttpRequestError';
  constructor(
    readonly code: HttpRequestCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

// DICOMweb-side failures. Every code is declared here, in the union its class accepts, never made up where
// it is thrown; `http/error-mapping.ts` is the only place that turns these into an HTTP status or a STOW
// Failure Reason. Messages name codes and tags, never values (STYLE habit 4).
import type { PixelWithheldError } from '../deid/errors.ts';

/** The PACS behind the gateway failed, or sent what the gateway cannot de-identify. */
type UpstreamErrorCode =
  | 'UPSTREAM_UNREACHABLE'
  | 'UPSTREAM_TIMEOUT'
  | 'UPSTREAM_UNUSABLE'
  | 'UPSTREAM_BAD_JSON'
  | 'UPSTREAM_STATUS'
  | 'UPSTREAM_STORE_FAILED';

/** A request the gateway will not pass on as it is (400). */
export type BadRequestCode =
  | 'DICOMWEB_BAD_PATH'
  | 'DICOMWEB_BAD_PARAMETER'
  | 'HTTP_BAD_HOST'
  | 'HTTP_BAD_ACCEPT'
  | 'WADO_BAD_PARAMETER'
  | 'QIDO_BAD_KEY'
  | 'QIDO_BAD_VALUE'
  | 'QIDO_BAD_PARAMETER'
  | 'QIDO_DUPLICATE_KEY'
  | 'QIDO_QUERY_TOO_LONG'
  | 'QIDO_VALUE_TOO_LONG'
  | 'STOW_NO_BOUNDARY'
  | 'STOW_BOUNDARY_TOO_LONG'
  | 'STOW_BAD_MULTIPART'
  | 'STOW_NO_PARTS';

/** A resource this role may not have (403). */
export type ResourceRefusedCode =
  | 'DEID_ANNOTATION_REFUSED'
  | 'DEID_RENDERED_DISABLED'
  | 'DEID_RENDERED_REDACTED'
  /** Study or series rendered under a pixel policy: refused whatever is in scope, so the answer reveals nothing of it. */
  | 'DEID_RENDERED_UNAVAILABLE'
  | 'DEID_BULKDATA_REDACTED';

/** A STOW body refused before it is read: its media type (415) or its size (413). */
export type StowRequestCode = 'STOW_UNSUPPORTED_MEDIA_TYPE' | 'STOW_TOO_LARGE';

/** One STOW part refused while the others go on (PS3.18 Annex I: a Failed SOP Sequence item). */
export type StowPartCode = 'STOW_PART_NOT_DICOM' | 'STOW_PART_NO_IDENTIFIERS' | 'STOW_PART_STUDY_MISMATCH';

export type DicomwebErrorCode =
  | UpstreamErrorCode
  | BadRequestCode
  | ResourceRefusedCode
  | StowRequestCode
  | StowPartCode
  | 'DEID_UNAVAILABLE'
  | 'DICOMWEB_UNKNOWN_RESOURCE'
  | 'DICOMWEB_NO_FRAMES'
  | 'DICOMWEB_INSTANCE_WITHHELD'
  | 'DICOMWEB_NOT_ACCEPTABLE'
  | 'DICOMWEB_TEXT_REGIONS_UNAVAILABLE'
  | 'DICOMWEB_OCR_BUSY'
  | 'CLIENT_GONE';

export class DicomwebError extends Error {
  override name = 'DicomwebError';
  constructor(
    readonly code: DicomwebErrorCode,
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
  constructor(code: BadRequestCode, message: string) {
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
/** Frames asked of an instance that has no Pixel Data (SR, PDF, RTSTRUCT, PR …): 404 (PS3.18 10.4.1.1.4). */
export class NoFramesError extends DicomwebError {
  override name = 'NoFramesError';
  constructor() {
    super('DICOMWEB_NO_FRAMES', 'the instance has no frames');
  }
}
/**
 * An instance the project's pixel policy withholds (issue 16, deid/pixel-policy.ts), asked for by itself
 * (instance, metadata, frames, bulkdata, rendered): 404 with a code of its own. `reason` (risky,
 * filtered, unredactable) is for the log and the metrics; the caller is told only that it is withheld.
 */
export class InstanceWithheldError extends DicomwebError {
  override name = 'InstanceWithheldError';
  constructor(
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super('DICOMWEB_INSTANCE_WITHHELD', 'the instance is withheld by the pixel policy', options);
  }
}
/**
 * OCR could not give an instance's text regions (issue 18, text-regions.ts): the instance stays withheld,
 * so this is only ever the cause of an InstanceWithheldError. `reason` is a stable code for the log and the
 * metric: a TextDetectionError code (TEXT_DETECTION_TIMEOUT …), a PixelError code (PIXEL_UNSUPPORTED …),
 * OCR_FRAMES_UNAVAILABLE (the PACS did not give the sampled frames), OCR_NO_DETECTOR, OCR_TOO_MANY_REGIONS.
 */
export class TextRegionsUnavailableError extends DicomwebError {
  override name = 'TextRegionsUnavailableError';
  constructor(
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super('DICOMWEB_TEXT_REGIONS_UNAVAILABLE', `text regions unavailable: ${reason}`, options);
  }
}
/**
 * OCR could not read an upload now because its detector was full or out of time (issue 18): the part is not
 * refused as withheld (final: STOW Failure Reason 0x0124, C-STORE 0124) but for lack of resources (0xA700,
 * PS3.18 I.2.2 and PS3.4 B.2.3), which tells the sender to try again later. `withheld` (also its cause): the
 * withhold it stands for, naming the OCR failure.
 */
export class OcrBusyError extends DicomwebError {
  override name = 'OcrBusyError';
  constructor(readonly withheld: PixelWithheldError) {
    super('DICOMWEB_OCR_BUSY', 'OCR could not read the instance now: its detector is full or out of time', { cause: withheld });
  }
}
/** No representation in a media type the caller's Accept allows: 406 (RFC 9110 15.5.7, PS3.18 8.7.7). */
export class NotAcceptableError extends DicomwebError {
  override name = 'NotAcceptableError';
  constructor(offered: string) {
    super('DICOMWEB_NOT_ACCEPTABLE', `the Accept header allows none of the media types this resource has (${offered})`);
  }
}
/** A resource this role may not have, e.g. rendered pixels for a researcher when config says no: 403. */
export class ResourceRefusedError extends DicomwebError {
  override name = 'ResourceRefusedError';
  constructor(code: ResourceRefusedCode, message: string) {
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
/** An upstream DICOM JSON body that is not a JSON array of objects, or an item over the cap: 502. */
export class UpstreamJsonError extends DicomwebError {
  override name = 'UpstreamJsonError';
  constructor(reason: string) {
    super('UPSTREAM_BAD_JSON', `the PACS sent DICOM JSON the gateway cannot read (${reason})`);
  }
}
/** An upstream error status relayed to a restricted role without its body (which may hold data). */
export class UpstreamStatusError extends DicomwebError {
  override name = 'UpstreamStatusError';
  constructor(readonly status: number) {
    super('UPSTREAM_STATUS', `the PACS answered ${status}`);
  }
}
/**
 * The caller went away before its response was complete (the socket closed, or the request was aborted).
 * Nobody is left to answer: not a PACS failure and not a de-identification failure; logged at info.
 */
export class ClientGoneError extends DicomwebError {
  override name = 'ClientGoneError';
  constructor(options?: { cause?: unknown }) {
    super('CLIENT_GONE', 'the caller went away', options);
  }
}
/** A STOW body refused before it is read: a media type other than multipart/related of application/dicom, or over a size limit. */
export class StowRequestError extends DicomwebError {
  override name = 'StowRequestError';
  constructor(code: StowRequestCode, message: string) {
    super(code, message);
  }
}
/** One STOW part the gateway refuses on its own (not DICOM, no identifiers, another study); nothing of it is sent upstream. */
export class StowPartError extends DicomwebError {
  override name = 'StowPartError';
  constructor(code: StowPartCode, message: string) {
    super(code, message);
  }
}
/**
 * The PACS did not store one de-identified part. `reason` is the Failure Reason (0008,1197) the PACS gave
 * in its own Store Instances Response, if any.
 */
export class UpstreamStoreFailedError extends DicomwebError {
  override name = 'UpstreamStoreFailedError';
  constructor(
    readonly status: number,
    readonly reason: number | undefined,
  ) {
    super('UPSTREAM_STORE_FAILED', `the PACS did not store the instance (HTTP ${status})`);
  }
}

import { formatTag } from './tag.ts';

// Messages name tags and codes, never values (STYLE habit 4). Callers branch on `code`.

export type DicomErrorCode =
  | 'DICOM_TRUNCATED'
  | 'DICOM_INVALID_LENGTH'
  | 'DICOM_INVALID_VR'
  | 'DICOM_INVALID_SEQUENCE'
  | 'DICOM_UNTERMINATED_SEQUENCE'
  | 'DICOM_HEADER_TOO_LARGE'
  | 'DICOM_NOT_DICOM'
  | 'DICOM_DEPTH_EXCEEDED'
  | 'DICOM_UNSUPPORTED_TRANSFER_SYNTAX'
  | 'DICOM_UNSUPPORTED_CHARSET'
  | 'DICOM_INVALID_VALUE';

export interface DicomErrorOptions {
  tag?: number;
  cause?: unknown;
}

export class DicomError extends Error {
  readonly code: DicomErrorCode;
  readonly tag: number | undefined;

  constructor(code: DicomErrorCode, message: string, options: DicomErrorOptions = {}) {
    const where = options.tag === undefined ? '' : ` at ${formatTag(options.tag)}`;
    super(`${message}${where} [${code}]`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DicomError';
    this.code = code;
    this.tag = options.tag;
  }
}

export class DicomTruncatedError extends DicomError {
  constructor(message = 'input ended inside a data element or sequence', options?: DicomErrorOptions) {
    super('DICOM_TRUNCATED', message, options);
    this.name = 'DicomTruncatedError';
  }
}

export class DicomInvalidLengthError extends DicomError {
  constructor(message = 'invalid value length', options?: DicomErrorOptions) {
    super('DICOM_INVALID_LENGTH', message, options);
    this.name = 'DicomInvalidLengthError';
  }
}

export class DicomInvalidVrError extends DicomError {
  constructor(message = 'invalid value representation', options?: DicomErrorOptions) {
    super('DICOM_INVALID_VR', message, options);
    this.name = 'DicomInvalidVrError';
  }
}

export class DicomInvalidSequenceError extends DicomError {
  constructor(message = 'invalid sequence or item encoding', options?: DicomErrorOptions) {
    super('DICOM_INVALID_SEQUENCE', message, options);
    this.name = 'DicomInvalidSequenceError';
  }
}

export class DicomUnterminatedSequenceError extends DicomError {
  constructor(message = 'input ended inside a sequence or item', options?: DicomErrorOptions) {
    super('DICOM_UNTERMINATED_SEQUENCE', message, options);
    this.name = 'DicomUnterminatedSequenceError';
  }
}

export class DicomHeaderTooLargeError extends DicomError {
  constructor(message = 'header exceeds the configured byte cap', options?: DicomErrorOptions) {
    super('DICOM_HEADER_TOO_LARGE', message, options);
    this.name = 'DicomHeaderTooLargeError';
  }
}

export class DicomNotDicomError extends DicomError {
  constructor(message = 'input is not a recognisable DICOM stream', options?: DicomErrorOptions) {
    super('DICOM_NOT_DICOM', message, options);
    this.name = 'DicomNotDicomError';
  }
}

export class DicomDepthExceededError extends DicomError {
  constructor(message = 'sequence nesting exceeds the configured depth', options?: DicomErrorOptions) {
    super('DICOM_DEPTH_EXCEEDED', message, options);
    this.name = 'DicomDepthExceededError';
  }
}

export class DicomUnsupportedTransferSyntaxError extends DicomError {
  constructor(message = 'unsupported transfer syntax', options?: DicomErrorOptions) {
    super('DICOM_UNSUPPORTED_TRANSFER_SYNTAX', message, options);
    this.name = 'DicomUnsupportedTransferSyntaxError';
  }
}

export class DicomUnsupportedCharsetError extends DicomError {
  constructor(message = 'unsupported Specific Character Set', options?: DicomErrorOptions) {
    super('DICOM_UNSUPPORTED_CHARSET', message, options);
    this.name = 'DicomUnsupportedCharsetError';
  }
}

export class DicomInvalidValueError extends DicomError {
  constructor(message = 'value cannot be encoded for its VR', options?: DicomErrorOptions) {
    super('DICOM_INVALID_VALUE', message, options);
    this.name = 'DicomInvalidValueError';
  }
}

// RFC 2046 5.1 / PS3.18 8.7.1 multipart/related framing failures (dicom/multipart.ts).
export type MultipartErrorCode =
  | 'MULTIPART_NO_BOUNDARY'
  | 'MULTIPART_BOUNDARY_TOO_LONG'
  | 'MULTIPART_NO_DELIMITER'
  | 'MULTIPART_BAD_DELIMITER'
  | 'MULTIPART_TRUNCATED'
  | 'MULTIPART_TOO_MANY_PARTS'
  | 'MULTIPART_HEADER_TOO_LARGE'
  | 'MULTIPART_BAD_HEADER'
  | 'MULTIPART_PART_TOO_LARGE'
  | 'MULTIPART_PART_UNREAD';

/** A multipart body that cannot be split safely. Callers branch on `code`. */
export class MultipartError extends Error {
  readonly code: MultipartErrorCode;
  constructor(code: MultipartErrorCode, message: string) {
    super(`${message} [${code}]`);
    this.name = 'MultipartError';
    this.code = code;
  }
}

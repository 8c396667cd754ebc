// Errors of pixel/ (decode, blank, split frames). Callers branch on `code`, never on the message;
// messages name tags, transfer syntaxes and codes, never pixel values or patient data (STYLE habit 4).

export type PixelErrorCode = 'PIXEL_UNSUPPORTED' | 'PIXEL_DECODE_FAILED' | 'PIXEL_FRAME_TOO_LARGE' | 'PIXEL_INVALID_GEOMETRY' | 'PIXEL_MALFORMED';

export class PixelError extends Error {
  readonly code: PixelErrorCode;
  constructor(code: PixelErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PixelError';
    this.code = code;
  }
}

/** A layout or transfer syntax the gateway cannot blank (video, YBR_PARTIAL_*, native YBR_FULL_422 …). */
export class PixelUnsupportedError extends PixelError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PIXEL_UNSUPPORTED', message, options);
    this.name = 'PixelUnsupportedError';
  }
}

/** A frame the codec could not decode, or decoded to the wrong size: never passed through (fail closed). */
export class PixelDecodeError extends PixelError {
  readonly frame: number | undefined;
  constructor(message: string, frame?: number, options?: { cause?: unknown }) {
    super('PIXEL_DECODE_FAILED', message, options);
    this.name = 'PixelDecodeError';
    this.frame = frame;
  }
}

/** A frame (encoded or decoded) larger than the byte cap: one frame is buffered at a time, and no more. */
export class PixelFrameTooLargeError extends PixelError {
  readonly limit: number;
  constructor(limit: number) {
    super('PIXEL_FRAME_TOO_LARGE', `pixel frame exceeds the ${limit}-byte cap`);
    this.name = 'PixelFrameTooLargeError';
    this.limit = limit;
  }
}

/** Image Pixel attributes missing, out of range or inconsistent with the Pixel Data length. */
export class PixelGeometryError extends PixelError {
  constructor(message: string) {
    super('PIXEL_INVALID_GEOMETRY', message);
    this.name = 'PixelGeometryError';
  }
}

/** Encapsulated Pixel Data whose items, offset table or frame count do not add up (PS3.5 A.4). */
export class PixelMalformedError extends PixelError {
  constructor(message: string) {
    super('PIXEL_MALFORMED', message);
    this.name = 'PixelMalformedError';
  }
}

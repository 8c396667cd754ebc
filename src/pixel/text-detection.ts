// Text regions found on frames by OCR (issue 18): the contract between the detector (pixel/, compute
// in worker threads, no policy) and those who decide what to do with its regions (deid/ decides,
// dicomweb/ and the CLI carry it out). A detector reports regions only, never the words it read: the
// words stay in the worker, and nothing of them is logged, stored or returned.

/** One frame as 8-bit luminance, row-major: `width × height` bytes, 0 black, 255 white. */
export interface GrayFrame {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/** A region of text, margin included, clipped to the frame: columns x..x+width-1, rows y..y+height-1. */
export interface TextRegion {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

export interface TextDetectorOptions {
  /** Worker threads in the pool (each holds one OCR engine): the most frames read at once. */
  readonly workers: number;
  /** The longest one frame may take, queueing included; past it the detection fails (TEXT_DETECTION_TIMEOUT). */
  readonly timeoutMs: number;
  /** Pixels added on every side of each region found (before clipping to the frame). */
  readonly marginPx: number;
  /** Frames waiting for a worker beyond which a new one is refused at once (TEXT_DETECTION_BUSY). */
  readonly maxQueue: number;
  /** A worker's text-region model idle this long is stopped, to give its memory back (default 60 s). */
  readonly modelIdleMs?: number;
}

export interface TextDetector {
  /**
   * The regions of `frame` holding any alphanumeric text. Rejects with a TextDetectionError when the frame
   * cannot be read in time, the pool is full, the engine fails, or `signal` aborts: a caller that cannot
   * get regions must withhold the instance (fail closed), never pass it on.
   */
  detect(frame: GrayFrame, options?: { readonly signal?: AbortSignal }): Promise<TextRegion[]>;
  /** Stops the workers; pending detections reject. */
  close(): Promise<void>;
}

export type TextDetectionErrorCode = 'TEXT_DETECTION_TIMEOUT' | 'TEXT_DETECTION_BUSY' | 'TEXT_DETECTION_FAILED' | 'TEXT_DETECTION_ABORTED';

/** Messages name the code and sizes only, never anything read from the frame. */
export class TextDetectionError extends Error {
  override name = 'TextDetectionError';
  constructor(
    readonly code: TextDetectionErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

// OCR-assisted redaction on the write side (issue 18): a STOW part (POST /studies, the /upload page, the
// DICOM listener's forwarding) whose pixel verdict under the uploader profile is a withhold OCR may replace
// (deid/pixel-policy.ts `ocrMayRedact`: risky, no rule, a blankable layout, `pixels.ocr: true`) is
// redacted where OCR finds text instead of being refused. Retrieval asks the PACS for the sampled frames
// (text-regions.ts); an upload has no PACS copy yet, so its own bytes are read:
//
//   1. While the rewriter reads the part's header, the chunks it pulls are kept (a header's worth, capped).
//      Once the verdict is known and OCR may not replace it, they are dropped and the part streams on as
//      before: no copy, no wait. Otherwise the rewriter refuses it (PixelWithheldError) before writing
//      anything of it, and stow.ts continues here.
//   2. The original part (the kept chunks, then the rest of the body) is spooled to a temporary file in the
//      STOW temporary directory (0600, a name the start-up sweep removes; stow.ts deletes it in `finally`).
//   3. The spool's frames are read as a stream: the first and every Nth, at most M (text-regions.ts
//      `sampledFrames`, the top-level `ocr` block's sampleEvery / maxSampledFrames), each decoded
//      (pixel/codecs.ts), made 8-bit luminance (pixel/gray-frame.ts) and read by the shared bounded detector
//      (pixel/text-detector.ts, with the request's abort signal) before the next is read: one frame is held.
//   4. The regions are unioned (text-regions.ts `unionRegions`) and the verdict becomes
//      `withTextRegions(verdict, regions)`; stow.ts rewrites the spool with it, as a rule-redacted instance.
// Anything that fails (a frame that cannot be decoded, a frame missing) refuses the part as withheld, naming
// the failure's code (fail closed: never stored unredacted); a busy pool or a timeout refuses it for lack of
// resources, to be sent again (`ocrFailed`). Only rectangles leave the detector: no recognised text is
// logged, stored or returned.
import { createReadStream, createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PixelWithheldError } from '../deid/errors.ts';
import { OCR_RULE, ocrMayRedact, withTextRegions, type AttributeReader, type PixelVerdict, type Rectangle } from '../deid/pixel-policy.ts';
import type { Part10Policy } from '../deid/rewrite-part10.ts';
import { findElement } from '../dicom/dataset.ts';
import { Part10Reader, type Part10Header } from '../dicom/part10-reader.ts';
import { transferSyntax, type TransferSyntax } from '../dicom/transfer-syntax.ts';
import { requireCodec } from '../pixel/codecs.ts';
import { FrameSplitter } from '../pixel/encapsulated.ts';
import { PixelError, PixelFrameTooLargeError, PixelUnsupportedError } from '../pixel/errors.ts';
import { DEFAULT_MAX_FRAME_BYTES, PIXEL_TAG, frameBits, frameByteLength, frameGeometry, type FrameGeometry } from '../pixel/geometry.ts';
import { frameLuminance } from '../pixel/gray-frame.ts';
import { TextDetectionError, type TextDetector, type TextRegion } from '../pixel/text-detection.ts';
import { OcrBusyError, TextRegionsUnavailableError } from './errors.ts';
import { MAX_REGIONS, sampledFrames, unionRegions, type TextRegionObserver, type TextRegionSettings } from './text-regions.ts';

/** What STOW needs to OCR an upload: the shared detector, the sampling settings and the metrics' observer. */
export interface UploadOcr {
  readonly detector: TextDetector;
  readonly settings: Pick<TextRegionSettings, 'sampleEvery' | 'maxSampledFrames'>;
  /** `deid_gateway_ocr_instances_total` and `deid_gateway_ocr_frame_seconds` (http/metrics.ts). */
  readonly observe?: TextRegionObserver;
}

/** A rewriter policy that gives a pixel verdict (a DeidSession, or one wrapped by `withVerdict`). */
export type VerdictPolicy = Part10Policy & { pixelVerdict(read: AttributeReader): PixelVerdict };

/** `policy` with its pixel verdict passed through `change` (read: the instance's top-level attributes). */
export function withVerdict(policy: VerdictPolicy, change: (verdict: PixelVerdict, read: AttributeReader) => PixelVerdict): VerdictPolicy {
  return {
    beginDataset: (patientId, verdict, sopClass) => policy.beginDataset(patientId, verdict, sopClass),
    decide: (ref, value) => policy.decide(ref, value),
    attributesToAdd: () => policy.attributesToAdd(),
    setIdentities: (source) => policy.setIdentities?.(source),
    pixelVerdict: (read) => change(policy.pixelVerdict(read), read),
  };
}

/** Step 4: the session's verdict with OCR's regions applied (deid/ withTextRegions), before any other join. */
export function withTextRegionsFound(policy: VerdictPolicy, regions: readonly Rectangle[]): VerdictPolicy {
  return withVerdict(policy, (verdict) => withTextRegions(verdict, regions));
}

/** The withhold OCR may replace, with what it was decided from. */
export interface OcrCandidate {
  readonly verdict: Extract<PixelVerdict, { action: 'withhold' }>;
  readonly read: AttributeReader;
  /** The part's chunks the rewriter had read when it decided (undefined: more than the cap, dropped). */
  readonly head: readonly Buffer[] | undefined;
}

/**
 * Step 1. `source`: the part body as the rewriter will pull it; `policy` the rewriter's policy. Returns both
 * wrapped (the source keeps the chunks it passes until the verdict, at most `cap` bytes of them) and, once
 * the rewriter has refused the part, whether the refusal is a withhold OCR may replace.
 */
export function watchForOcr(
  source: AsyncIterator<Uint8Array>,
  policy: VerdictPolicy,
  cap: number,
): { source: AsyncIterable<Uint8Array>; policy: VerdictPolicy; candidate: () => OcrCandidate | undefined } {
  let head: Buffer[] | undefined = [];
  let kept = 0;
  let found: OcrCandidate | undefined;
  const recording: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]: () => ({
      next: async () => {
        const next = await source.next();
        if (!next.done && head !== undefined) {
          kept += next.value.byteLength;
          // Beyond the cap (a header does not get there: the reader refuses it first) nothing is kept.
          if (kept > cap) head = undefined;
          else head.push(Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength));
        }
        return next;
      },
    }),
  };
  const watching = withVerdict(policy, (verdict, read) => {
    if (verdict.action === 'withhold' && ocrMayRedact(verdict)) found = { verdict, read, head };
    head = undefined; // decided: what was kept is dropped, and nothing more is kept
    return verdict;
  });
  return { source: recording, policy: watching, candidate: () => found };
}

/** Step 2: the original part (the chunks read so far, then the rest of `rest`) into `file`, owner-only. */
export async function spoolPart(file: string, head: readonly Buffer[], rest: AsyncIterator<Uint8Array>, signal?: AbortSignal): Promise<void> {
  const all = (async function* () {
    yield* head;
    for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value;
  })();
  await pipeline(Readable.from(all), createWriteStream(file, { flags: 'wx', mode: 0o600 }), signal ? { signal } : {});
}

/**
 * Steps 3 and 4 for one spooled original: its text regions, unioned. `read`: its top-level attributes (as
 * the verdict read them). Rejects with TextRegionsUnavailableError (its `reason` the failure's code).
 */
export async function spooledTextRegions(
  file: string,
  read: AttributeReader,
  ocr: UploadOcr,
  options: { readonly maxHeaderBytes: number; readonly signal?: AbortSignal | undefined },
): Promise<readonly Rectangle[]> {
  const found: TextRegion[][] = [];
  let wanted: number[] = [];
  const source = createReadStream(file);
  try {
    let frames: SampledFrames | undefined;
    for await (const event of new Part10Reader({ maxHeaderBytes: options.maxHeaderBytes }).read(source)) {
      if (event.type === 'header') {
        frames = sampledFramesOf(event.header, read, ocr.settings);
        wanted = frames.wanted;
      } else if (event.type === 'pixel-data-start' && event.pixelData.tag !== PIXEL_TAG.PixelData) break;
      else if (frames && (event.type === 'pixel-data-chunk' || event.type === 'pixel-data-end')) {
        for (const frame of frames.take(event.type === 'pixel-data-chunk' ? event.chunk : undefined)) {
          const started = performance.now();
          found.push(await ocr.detector.detect(await frameLuminance(frame.bytes, frames.syntax, frames.single, frame.index), options.signal ? { signal: options.signal } : {}));
          ocr.observe?.frame?.(performance.now() - started);
        }
        if (found.length === wanted.length) break; // the frames after the last sampled one are not read
      }
    }
  } catch (cause) {
    if (cause instanceof TextDetectionError || cause instanceof PixelError) throw new TextRegionsUnavailableError(cause.code, { cause });
    throw new TextRegionsUnavailableError('OCR_FRAMES_UNAVAILABLE', { cause });
  } finally {
    source.destroy();
  }
  // Every frame sampled must have been read: a frame missing is text perhaps missed.
  if (wanted.length === 0 || found.length !== wanted.length) throw new TextRegionsUnavailableError('OCR_FRAMES_UNAVAILABLE');
  const regions = unionRegions(found);
  if (regions.length > MAX_REGIONS) throw new TextRegionsUnavailableError('OCR_TOO_MANY_REGIONS');
  return Object.freeze(regions);
}

/** OCR failures that say nothing of the instance, only of the detector's load at the time. */
const TRANSIENT_FAILURES: ReadonlySet<string> = new Set(['TEXT_DETECTION_BUSY', 'TEXT_DETECTION_TIMEOUT']);

/**
 * The refusal when OCR could not give the regions: the withhold stands, its detail naming the failure's
 * code. A detector that was only full or out of time refuses it for lack of resources instead (OcrBusyError,
 * 0xA700 / A700), so that the sender tries again; any other failure is final (0x0124).
 */
export function ocrFailed(candidate: OcrCandidate, error: unknown, ocr: UploadOcr | undefined): PixelWithheldError | OcrBusyError {
  const code = error instanceof TextRegionsUnavailableError ? error.reason : 'OCR_FRAMES_UNAVAILABLE';
  ocr?.observe?.outcome?.('withheld', code, 1);
  const withheld = new PixelWithheldError(candidate.verdict.reason, `${candidate.verdict.detail}; OCR failed: ${code}`);
  return TRANSIENT_FAILURES.has(code) ? new OcrBusyError(withheld) : withheld;
}

/** Counts an upload OCR redacted (once it is stored). */
export function ocrRedacted(ocr: UploadOcr | undefined): void {
  ocr?.observe?.outcome?.('redacted', OCR_RULE, 1);
}

/** One frame as stored (native samples, or one encoded frame) and its 0-based index. */
interface StoredFrame {
  readonly index: number;
  readonly bytes: Buffer;
}

/** Step 3's reader of the frames sampled, fed the Pixel Data value chunk by chunk (undefined: its end). */
interface SampledFrames {
  readonly wanted: number[];
  readonly syntax: TransferSyntax;
  readonly single: FrameGeometry;
  take(chunk: Buffer | undefined): StoredFrame[];
}

function sampledFramesOf(header: Part10Header, read: AttributeReader, settings: UploadOcr['settings']): SampledFrames {
  const syntax = transferSyntax(header.transferSyntaxUID);
  const codec = syntax.encapsulated ? requireCodec(syntax.uid) : undefined;
  // Big endian native samples are not where grayFrame reads them (retrieval refuses them likewise).
  if (!syntax.encapsulated && !header.encoding.littleEndian) throw new PixelUnsupportedError('native big endian Pixel Data is not read for OCR');
  const geometry = frameGeometry(read, { allowMissingPlanarConfiguration: codec !== undefined && codec !== 'deflate' });
  const single = { ...geometry, numberOfFrames: 1 };
  // Native 1-bit frames are packed end to end (PS3.5 8.1.1, 8.2): one whose bits are not a whole number of
  // bytes starts mid-byte, and read from a byte boundary it would reach OCR shifted by a few pixels.
  if (codec === undefined && geometry.numberOfFrames > 1 && frameBits(single) % 8 !== 0) {
    throw new PixelUnsupportedError('native 1-bit frames that do not start on a byte boundary are not read for OCR');
  }
  const size = frameByteLength(single);
  if (size > DEFAULT_MAX_FRAME_BYTES) throw new PixelFrameTooLargeError(DEFAULT_MAX_FRAME_BYTES);
  const wanted = sampledFrames(geometry.numberOfFrames, settings.sampleEvery, settings.maxSampledFrames).map((f) => f - 1);
  const sampled = new Set(wanted);
  let index = 0;
  if (codec !== undefined) {
    const eot = findElement(header.dataset, PIXEL_TAG.ExtendedOffsetTable)?.value;
    const splitter = new FrameSplitter(geometry, codec, eot ? { extendedOffsetTable: eot } : {});
    return {
      wanted,
      syntax,
      single,
      take: (chunk) => (chunk ? splitter.push(chunk) : splitter.end()).map((bytes) => ({ index: index++, bytes })).filter((f) => sampled.has(f.index)),
    };
  }
  // Native: frame i is the `size` bytes from i × size; the parts of a sampled one are gathered, the rest skipped.
  let offset = 0;
  let parts: Buffer[] = [];
  return {
    wanted,
    syntax,
    single,
    take(chunk) {
      const out: StoredFrame[] = [];
      for (let at = 0; chunk && at < chunk.length; ) {
        index = Math.floor(offset / size);
        const within = offset - index * size;
        const take = Math.min(chunk.length - at, size - within);
        if (sampled.has(index)) {
          parts.push(chunk.subarray(at, at + take));
          if (within + take === size) {
            out.push({ index, bytes: Buffer.concat(parts) });
            parts = [];
          }
        }
        at += take;
        offset += take;
      }
      return out;
    },
  };
}

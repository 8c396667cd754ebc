// OCR-assisted redaction (issue 18), the I/O side: the text regions of an instance whose pixel verdict is a
// withhold OCR may replace (deid/pixel-policy.ts `withTextRegions` decides; this only finds the regions).
//
//   1. The key: the original Series Instance UID and the layout of its frames (Manufacturer, Manufacturer's
//      Model Name, Rows, Columns, Samples per Pixel, Bits Allocated, Photometric Interpretation): a device
//      writes its overlay at the same place on every instance of one series and layout, so a 300-frame echo
//      and the 40 loops of its series are read once.
//   2. Cached regions for the key are reused (for `cacheTtlSeconds`); a detection under way for the key is
//      waited on (single flight). Failures are not cached: the next request tries again, and a request that
//      waited on one that failed (its caller may have left, taking its PACS requests along) tries once itself.
//   3. Else the sampled frames (the first, and every Nth, widened so that at most `maxSampledFrames` spread
//      over the whole instance) are retrieved from the PACS by WADO-RS RetrieveFrames (PS3.18 10.4.1.1.3),
//      in their stored transfer syntax (8.7.3.5.2 `*`), else decoded by the PACS (8.7.3.3.2) as the frames
//      route does; each is decoded (pixel/codecs.ts), turned into 8-bit luminance (pixel/gray-frame.ts) and
//      read by the shared detector (pixel/, worker threads, bounded): off the event loop, with its timeout.
//   4. The regions of every sampled frame are unioned: each is blanked in every frame.
// Anything that fails (timeout, a full queue, a frame that cannot be decoded, the PACS not giving the
// frames) rejects with TextRegionsUnavailableError: the caller keeps the instance withheld (fail closed).
// Only rectangles leave the detector: no recognised text is logged, stored, cached or returned.
import type { Rectangle } from '../deid/pixel-policy.ts';
import type { AttributeReader } from '../deid/pixel-verdict.ts';
import { boundaryFrom, mediaTypeParameter, readMultipart } from '../dicom/multipart.ts';
import { EXPLICIT_VR_LITTLE_ENDIAN, transferSyntax } from '../dicom/transfer-syntax.ts';
import { PixelError } from '../pixel/errors.ts';
import { DEFAULT_MAX_FRAME_BYTES, frameByteLength, frameGeometry, type FrameGeometry } from '../pixel/geometry.ts';
import { frameLuminance } from '../pixel/gray-frame.ts';
import { TextDetectionError, type TextDetector, type TextRegion } from '../pixel/text-detection.ts';
import { singleFlightCache } from '../store/cached-store.ts';
import { tagForAttributeId } from '../dicom/dictionary.ts';
import { TextRegionsUnavailableError } from './errors.ts';
import type { CensusSend, InstanceUids } from './pixel-census.ts';
import { encodeSegment } from './routes.ts';
import type { UpstreamResponse } from './upstream.ts';

/** Regions kept per key at most: more is not a region list but noise (fail closed). */
export const MAX_REGIONS = 4096;
/** Keys (series × layout) whose regions are kept. */
const MAX_CACHED_KEYS = 10_000;
/** Frames asked each in its stored transfer syntax (PS3.18 8.7.3.5.2 `*`): the frames route's too (wado.ts). */
const FRAMES_AS_STORED = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
/** Frames decoded by the PACS (PS3.18 8.7.3.3.2), when it cannot send them as stored. */
const FRAMES_NATIVE = `multipart/related; type="application/octet-stream"; transfer-syntax=${EXPLICIT_VR_LITTLE_ENDIAN}`;

/**
 * Frames retrieved (PS3.18 10.4.1.1.3) as stored (8.7.3.5.2 `*`), or, from a PACS that cannot cut the stored
 * frames (Orthanc: a fragmented JPEG without offset table; any error but 404), decoded by it (8.7.3.3.2):
 * the answer, and whether it is the decoded one. The frames route (wado.ts) and OCR's sampling share it.
 */
export async function retrieveFrames(ask: (accept: string) => Promise<UpstreamResponse>): Promise<{ res: UpstreamResponse; decoded: boolean }> {
  const stored = await ask(FRAMES_AS_STORED);
  if (stored.statusCode < 400 || stored.statusCode === 404) return { res: stored, decoded: false };
  stored.body.resume();
  return { res: await ask(FRAMES_NATIVE), decoded: true };
}

export interface TextRegionSettings {
  /** Frames read: the first and every Nth. */
  readonly sampleEvery: number;
  /** At most this many frames per instance (the step widened to spread them over the whole instance). */
  readonly maxSampledFrames: number;
  /** How long the regions of a key are reused; 0: never. */
  readonly cacheTtlSeconds: number;
}

/** What the metrics are told; nothing here carries text or an identifier. */
export interface TextRegionObserver {
  /** One frame read by the detector, in milliseconds (queueing included). */
  frame?(ms: number): void;
  /** Regions reused from the cache, or from a detection another request was waiting on. */
  cacheHit?(): void;
  /** Instances OCR-redacted (`reason` ocr), or left withheld because OCR failed (`reason` the failure's code). */
  outcome?(outcome: 'redacted' | 'withheld', reason: string, count: number): void;
}

export interface TextRegionSource {
  /** Told of each instance's outcome by the routes (wado.ts), and of frames and cache hits here. */
  readonly observe: TextRegionObserver;
  /**
   * The text regions of `instance` (original UIDs; `read` its attributes: layout and frame geometry), found
   * by OCR or reused for its series and layout. Rejects with TextRegionsUnavailableError.
   */
  regionsOf(instance: InstanceUids, read: AttributeReader, send: CensusSend): Promise<readonly Rectangle[]>;
}

/** 1-based frame numbers to read: the first and every `every`th, the step widened to keep at most `max`. */
export function sampledFrames(numberOfFrames: number, every: number, max: number): number[] {
  const n = Math.max(1, numberOfFrames);
  const step = Math.max(1, every, Math.ceil(n / Math.max(1, max)));
  const out: number[] = [];
  for (let f = 1; f <= n && out.length < max; f += step) out.push(f);
  return out;
}

/** Regions unioned (duplicates dropped), as the verdict's rectangles. */
export function unionRegions(lists: readonly (readonly TextRegion[])[]): Rectangle[] {
  const seen = new Map<string, Rectangle>();
  for (const list of lists) {
    for (const r of list) {
      if (!(r.width > 0 && r.height > 0)) continue;
      const rect = { x: r.x, y: r.y, width: r.width, height: r.height };
      seen.set(`${rect.x},${rect.y},${rect.width},${rect.height}`, rect);
    }
  }
  return [...seen.values()];
}

const tagOf = (keyword: string): number => tagForAttributeId(keyword) as number;
const LAYOUT_TAGS = ['Manufacturer', 'ManufacturerModelName', 'Rows', 'Columns', 'SamplesPerPixel', 'BitsAllocated', 'PhotometricInterpretation'].map(tagOf);

/** Step 1: the cache key of an instance (original series UID and layout); values are the PACS's, kept in memory only. */
export function layoutKey(series: string, read: AttributeReader): string {
  return [series, ...LAYOUT_TAGS.map((tag) => JSON.stringify(read(tag)?.[0] ?? null))].join('\u0000');
}

export function textRegionSource(detector: TextDetector | undefined, settings: TextRegionSettings, observe: TextRegionObserver = {}): TextRegionSource {
  const cache = singleFlightCache<readonly Rectangle[]>({ ttlSeconds: settings.cacheTtlSeconds, maxKeys: MAX_CACHED_KEYS });
  return {
    observe,
    async regionsOf(instance, read, send) {
      if (detector === undefined) throw new TextRegionsUnavailableError('OCR_NO_DETECTOR');
      const { value, hit } = await cache.get(layoutKey(instance.series, read), () => detect(detector, instance, read, send, settings, observe));
      if (hit) observe.cacheHit?.();
      return value;
    },
  };
}

/** Steps 3 and 4 for one instance. */
async function detect(
  detector: TextDetector,
  instance: InstanceUids,
  read: AttributeReader,
  send: CensusSend,
  settings: TextRegionSettings,
  observe: TextRegionObserver,
): Promise<readonly Rectangle[]> {
  let geometry: FrameGeometry;
  try {
    geometry = frameGeometry(read);
  } catch (cause) {
    throw new TextRegionsUnavailableError(cause instanceof PixelError ? cause.code : 'PIXEL_INVALID_GEOMETRY', { cause });
  }
  const frames = sampledFrames(geometry.numberOfFrames, settings.sampleEvery, settings.maxSampledFrames);
  const path = `/studies/${encodeSegment(instance.study)}/series/${encodeSegment(instance.series)}/instances/${encodeSegment(instance.sop)}/frames/${frames.join(',')}`;
  const ask = (accept: string) => send({ method: 'GET', pathAndQuery: path, headers: { accept } });
  const { res, decoded } = await retrieveFrames(ask);
  const contentType = String(res.headers['content-type'] ?? '');
  if (res.statusCode !== 200 || !/^multipart\/related/i.test(contentType)) {
    res.body.resume();
    throw new TextRegionsUnavailableError('OCR_FRAMES_UNAVAILABLE');
  }
  const single = { ...geometry, numberOfFrames: 1 };
  const cap = Math.min(DEFAULT_MAX_FRAME_BYTES, 2 * frameByteLength(single) + 1024 * 1024);
  const found: TextRegion[][] = [];
  try {
    for await (const part of readMultipart(res.body, boundaryFrom(contentType), { maxPartBytes: cap })) {
      const syntax = mediaTypeParameter(part.headers['content-type'] ?? '', 'transfer-syntax');
      const chunks: Buffer[] = [];
      for await (const chunk of part.body) chunks.push(chunk);
      if (syntax === undefined || syntax === '*' || (decoded && syntax !== EXPLICIT_VR_LITTLE_ENDIAN)) throw new TextRegionsUnavailableError('OCR_FRAMES_UNAVAILABLE');
      const gray = await frameLuminance(Buffer.concat(chunks), transferSyntax(syntax), single);
      const started = performance.now();
      found.push(await detector.detect(gray));
      observe.frame?.(performance.now() - started);
    }
  } catch (cause) {
    if (cause instanceof TextRegionsUnavailableError) throw cause;
    if (cause instanceof TextDetectionError || cause instanceof PixelError) throw new TextRegionsUnavailableError(cause.code, { cause });
    throw new TextRegionsUnavailableError('OCR_FRAMES_UNAVAILABLE', { cause });
  }
  // Every frame asked must have been read: a frame missing is text perhaps missed.
  if (found.length !== frames.length) throw new TextRegionsUnavailableError('OCR_FRAMES_UNAVAILABLE');
  const regions = unionRegions(found);
  if (regions.length > MAX_REGIONS) throw new TextRegionsUnavailableError('OCR_TOO_MANY_REGIONS');
  return Object.freeze(regions);
}

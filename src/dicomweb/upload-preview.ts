// What an upload would store, without storing it (issue 18 part 2, the /upload page's review): the pixel
// policy's verdict under the uploader profile, text regions proposed by OCR on the first frame, and the
// de-identified header as the upload's own rewriter writes it. Nothing is sent upstream and no pseudonym
// is saved; recognised words never leave the detector.
import { characterSetOf, findElement, type DataElement } from '../dicom/dataset.ts';
import { lookup } from '../dicom/dictionary.ts';
import { DicomTruncatedError } from '../dicom/errors.ts';
import { tagToHex } from '../dicom/tag.ts';
import { elementToJsonValue } from '../dicom/json-model.ts';
import { Part10Reader, type Part10Header } from '../dicom/part10-reader.ts';
import { transferSyntax } from '../dicom/transfer-syntax.ts';
import { createSession } from '../deid/deidentify.ts';
import { PixelWithheldError } from '../deid/errors.ts';
import { ocrMayRedact, type AttributeReader, type PixelVerdict, type Rectangle } from '../deid/pixel-policy.ts';
import { rewritePart10, type Part10Policy } from '../deid/rewrite-part10.ts';
import { requireCodec } from '../pixel/codecs.ts';
import { FrameSplitter } from '../pixel/encapsulated.ts';
import { PixelError } from '../pixel/errors.ts';
import { DEFAULT_MAX_FRAME_BYTES, PIXEL_TAG, frameByteLength, frameGeometry, type FrameGeometry } from '../pixel/geometry.ts';
import { frameLuminance } from '../pixel/gray-frame.ts';
import type { TextDetector, TextRegion } from '../pixel/text-detection.ts';
import type { StowView } from './stow.ts';
import { withTextRegionsFound } from './upload-ocr.ts';

export interface UploadPreview {
  /** The redaction rules that matched (their rectangles are blanked whatever the person draws). */
  readonly rules: readonly { readonly name: string; readonly rectangles: readonly Rectangle[] }[];
  /** Set when the pixel policy withholds the instance: the upload would refuse it. */
  readonly withheld?: { readonly reason: string; readonly detail: string };
  /**
   * Set when the pixel policy would withhold the instance but OCR redacts it instead (the uploader profile's
   * `pixels.ocr`, stow.ts / upload-ocr.ts): the upload blanks what OCR finds on its sampled frames, and is
   * refused if OCR fails. `reason`/`detail`: the withhold OCR replaces.
   */
  readonly ocrRedacts?: { readonly reason: string; readonly detail: string };
  /** Text regions OCR found on the first frame, or why there are none to propose. */
  readonly ocr: { readonly regions: readonly TextRegion[] } | { readonly unavailable: string };
  /** The top-level attributes the de-identified instance would carry (Pixel Data excepted). */
  readonly header: readonly { readonly keyword: string; readonly value: string }[];
}

export interface PreviewOptions {
  readonly textDetector?: TextDetector | undefined;
  readonly signal?: AbortSignal;
}

/** What is read of the upload: its header and first frame, the rest drained unread. */
interface Prefix {
  readonly chunks: Buffer[];
  readonly header: Part10Header;
  readonly read: AttributeReader;
  /** The first frame as stored (native bytes, or one encoded frame), when it could be found. */
  readonly frame?: Buffer;
}

function readerOf(header: Part10Header): AttributeReader {
  const charset = characterSetOf(header.dataset, []);
  const le = header.encoding.littleEndian;
  return (tag) => {
    const el = findElement(header.dataset, tag);
    return el && !el.items && el.vr !== 'SQ' ? elementToJsonValue(el, charset, le).Value : undefined;
  };
}

/**
 * 1. Reads the upload up to the end of its first frame, keeping those bytes (bounded: maxHeaderBytes and
 *    one frame under DEFAULT_MAX_FRAME_BYTES), then drains the rest without keeping it.
 */
async function readPrefix(body: AsyncIterable<Uint8Array>, maxHeaderBytes: number): Promise<Prefix> {
  const chunks: Buffer[] = [];
  const source = body[Symbol.asyncIterator]();
  const recording: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]: () => ({
      next: async () => {
        const next = await source.next();
        if (!next.done) chunks.push(Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength));
        return next;
      },
    }),
  };
  let header: Part10Header | undefined;
  let read: AttributeReader = () => undefined;
  let frame: Buffer | undefined;
  let geometry: FrameGeometry | undefined;
  let splitter: FrameSplitter | undefined;
  const native: Buffer[] = [];
  let nativeLength = 0;
  try {
    for await (const event of new Part10Reader({ maxHeaderBytes }).read(recording)) {
      if (event.type === 'header') {
        header = event.header;
        read = readerOf(header);
      } else if (event.type === 'pixel-data-start' && header) {
        try {
          const ts = transferSyntax(header.transferSyntaxUID);
          geometry = frameGeometry(read, { allowMissingPlanarConfiguration: ts.encapsulated });
          if (frameByteLength(geometry) > DEFAULT_MAX_FRAME_BYTES || geometry.bitsAllocated === 1) break;
          if (ts.encapsulated) splitter = new FrameSplitter(geometry, requireCodec(ts.uid));
        } catch (error) {
          if (error instanceof PixelError) break; // no frame to show or read: the verdict and header still are
          throw error;
        }
      } else if (event.type === 'pixel-data-chunk' && geometry) {
        if (splitter) {
          frame = splitter.push(event.chunk)[0];
        } else {
          native.push(event.chunk);
          nativeLength += event.chunk.length;
          const size = frameByteLength({ ...geometry, numberOfFrames: 1 });
          if (nativeLength >= size) frame = Buffer.concat(native).subarray(0, size);
        }
        if (frame) break;
      } else if (event.type === 'pixel-data-end' && splitter && !frame) {
        frame = splitter.end()[0];
        break;
      } else if (event.type === 'pixel-data-end') break;
    }
  } catch (error) {
    if (!(error instanceof PixelError) || !header) throw error;
  }
  // The rest is read and dropped: the request's body must be consumed for the answer to be sent.
  for (let next = await source.next(); !next.done; next = await source.next());
  if (!header) throw new DicomTruncatedError('the upload ended before its header');
  return { chunks, header, read, ...(frame ? { frame } : {}) };
}

/** An element's value as the page shows it: text as is, binary by its size, a sequence by its items. */
function shown(el: DataElement, header: Part10Header, charset: ReturnType<typeof characterSetOf>): string {
  if (el.items) return `(sequence of ${el.items.length} item${el.items.length === 1 ? '' : 's'})`;
  if (el.fragments || ['OB', 'OW', 'OD', 'OF', 'OL', 'OV', 'UN'].includes(el.vr)) return `(binary, ${el.value?.length ?? 0} bytes)`;
  const values = elementToJsonValue(el, charset, header.encoding.littleEndian).Value ?? [];
  return values
    .map((v) => (v !== null && typeof v === 'object' && 'Alphabetic' in v ? String((v as { Alphabetic?: unknown }).Alphabetic ?? '') : String(v ?? '')))
    .join('\\');
}

/** 3. The de-identified header: the upload's own rewriter on the kept bytes, its output read back until its header. */
async function deidentifiedHeader(view: StowView, prefix: Prefix, policy: Part10Policy): Promise<UploadPreview['header']> {
  const { output } = rewritePart10(prefix.chunks, policy, { maxHeaderBytes: view.maxHeaderBytes });
  const reader = new Part10Reader({ maxHeaderBytes: view.maxHeaderBytes });
  for await (const event of reader.read(output)) {
    if (event.type !== 'header') continue;
    const charset = characterSetOf(event.header.dataset, []);
    return event.header.dataset
      .filter((el) => el.tag !== PIXEL_TAG.PixelData)
      .map((el) => ({ keyword: lookup(el.tag)?.keyword ?? tagToHex(el.tag), value: shown(el, event.header, charset) }));
  }
  return [];
}

/** 4. OCR on the first frame: decoded (codecs.ts), made luminance (gray-frame.ts), read by the detector. */
async function textRegions(prefix: Prefix, options: PreviewOptions): Promise<UploadPreview['ocr']> {
  if (!options.textDetector) return { unavailable: 'no text detector is configured' };
  if (!prefix.frame) return { unavailable: 'the first frame could not be read' };
  try {
    const ts = transferSyntax(prefix.header.transferSyntaxUID);
    const geometry = frameGeometry(prefix.read, { allowMissingPlanarConfiguration: ts.encapsulated });
    const one = { ...geometry, numberOfFrames: 1 };
    const gray = await frameLuminance(prefix.frame, ts, one);
    const regions = await options.textDetector.detect(gray, options.signal ? { signal: options.signal } : {});
    return { regions: regions.map(({ x, y, width, height }) => ({ x, y, width, height })) };
  } catch (error) {
    // A code only: the error's message names no value, but the code is all the page needs.
    const code = (error as { code?: unknown }).code;
    return { unavailable: `text detection failed (${typeof code === 'string' ? code : 'error'})` };
  }
}

/**
 * The preview of one upload: 1. its header and first frame are read (the rest drained); 2. the pixel
 * policy's verdict under the uploader profile; 3. the header the upload would store, by the same rewriter
 * and session type, with nothing saved; 4. OCR proposals. Never contacts the PACS or the pseudonym store.
 */
export async function previewUpload(view: StowView, body: AsyncIterable<Uint8Array>, options: PreviewOptions = {}): Promise<UploadPreview> {
  const prefix = await readPrefix(body, view.maxHeaderBytes);
  // A session of its own, never saved: its pseudonyms are those the upload makes (keyed) and go nowhere.
  const session = createSession(view.policy);
  const verdict: PixelVerdict = session.pixelVerdict(prefix.read);
  const rules = verdict.action === 'redact' ? [{ name: verdict.rule, rectangles: verdict.rectangles }] : [];
  const ocr = await textRegions(prefix, options);
  // An upload OCR may redact is stored as OCR-redacted (the header as it will be: Burned In Annotation NO).
  const byOcr = verdict.action === 'withhold' && ocrMayRedact(verdict) && view.ocr !== undefined ? { reason: verdict.reason, detail: verdict.detail } : undefined;
  if (verdict.action === 'withhold' && !byOcr) return { rules, withheld: { reason: verdict.reason, detail: verdict.detail }, ocr, header: [] };
  let header: UploadPreview['header'];
  try {
    header = await deidentifiedHeader(view, prefix, byOcr ? withTextRegionsFound(session, 'regions' in ocr ? ocr.regions : []) : session);
  } catch (error) {
    if (error instanceof PixelWithheldError) return { rules, withheld: { reason: error.reason, detail: error.detail }, ocr, header: [] };
    throw error;
  }
  return { rules, ocr, header, ...(byOcr ? { ocrRedacts: byOcr } : {}) };
}

// PS3.18 10.5 Store (STOW-RS) for the uploader: each part of the multipart/related body is read as a
// stream, de-identified by the streaming rewriter into a temporary file, and only once it is complete
// and de-identified is it sent on to the PACS. Nothing raw ever goes upstream; the temporary file is
// deleted whatever happens. The response is the Store Instances Response Module (PS3.18 Annex I).
// Issue 18: a part the uploader profile withholds but OCR may redact is spooled, OCR'd and rewritten with
// the regions found (upload-ocr.ts); every other part streams through as described.
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, readdir, rm, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { DeidPolicy, DeidSession } from '../deid/deidentify.ts';
import { PixelWithheldError } from '../deid/errors.ts';
import { KEEP, strictestVerdict, type AttributeReader, type PixelVerdict, type Rectangle } from '../deid/pixel-policy.ts';
import { savingSession, type SavingSession } from './deidentified-view.ts';
import { rewritePart10 } from '../deid/rewrite-part10.ts';
import { ocrFailed, ocrRedacted, spooledTextRegions, spoolPart, watchForOcr, withTextRegionsFound, withVerdict, type UploadOcr, type VerdictPolicy } from './upload-ocr.ts';
import { asciiValue } from '../dicom/dataset.ts';
import { lookup } from '../dicom/dictionary.ts';
import { MultipartError } from '../dicom/errors.ts';
import type { JsonDataset, JsonElement, JsonValue } from '../dicom/json-model.ts';
import { Part10Reader } from '../dicom/part10-reader.ts';
import { boundaryFrom, closeDelimiter, MAX_BOUNDARY_LENGTH, mediaTypeParameter, newBoundary, PART_END, partHead, readMultipart } from '../dicom/multipart.ts';
import { tagToHex, type Tag } from '../dicom/tag.ts';
import { TAG } from '../dicom/tags.ts';
import { StoreError } from '../store/errors.ts';
import type { ScopedPseudonyms } from '../store/pseudonym-store.ts';
import { BadRequestError, ClientGoneError, OcrBusyError, StowPartError, StowRequestError, TextRegionsUnavailableError, UpstreamStoreFailedError } from './errors.ts';
import { classify, type Upstream } from './upstream.ts';
import { streamLifetime } from './stream-lifetime.ts';

export interface StowView {
  readonly policy: DeidPolicy;
  readonly store: ScopedPseudonyms;
  readonly upstream: Upstream;
  readonly maxHeaderBytes: number;
  readonly maxPartBytes: number;
  readonly maxBodyBytes: number;
  /** Where each de-identified part waits before it is sent (`<dataDir>/tmp`, made by `prepareTempDir`). */
  readonly tempDir: string;
  /**
   * The Failure Reason (0008,1197) of a part refused by `error`: `stowFailureReason` of
   * `http/error-mapping.ts`, the one place that decides it (passed in: this layer imports nothing above it).
   */
  readonly failureReason: (error: unknown) => number;
  /** Sees the error of each refused part (metrics count the engine's by code; this layer knows no metrics library). */
  readonly observeRefusal?: RefusalObserver;
  /** Told of a part not stored through no fault of its own (0x0110, 0xA700): the operator must see those. */
  readonly log?: StowLog;
  /**
   * Issue 18: the shared OCR detector and its settings. A part whose verdict is a withhold OCR may replace
   * (`pixels.ocr` in the uploader profile) is OCR-redacted (upload-ocr.ts); absent, such a part stays withheld.
   */
  readonly ocr?: UploadOcr;
}

export type RefusalObserver = (error: unknown) => void;

/** The logger methods STOW uses (pino's, structurally; this layer knows no logging library). */
interface StowLog {
  info(entry: object, message: string): void;
  warn(entry: object, message: string): void;
}

const TEMP_FILE = /^deid-stow-[0-9a-f]{24}\.dcm$/;

/**
 * Makes the temporary directory, owner-only (0700), and removes the parts a crashed process left
 * there: de-identified ones, and originals spooled for OCR (upload-ocr.ts), none meant to outlive their request. Run at start, before any STOW, by
 * the one process that owns `dataDir`; other files in the directory are left alone.
 */
export async function prepareTempDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700); // an existing directory keeps its mode through mkdir
  for (const name of await readdir(dir)) {
    if (TEMP_FILE.test(name)) await rm(join(dir, name), { force: true });
  }
}

/**
 * PS3.18 I.2.2 Table I.2-2 Failure Reason (0008,1197) values the gateway gives; 0xC409 (a Study Instance
 * UID that does not match the target, PS3.18 10.5.1) is one of the table's "additional codes". Which
 * error gets which is decided by `http/error-mapping.ts` alone.
 */
export const FailureReason = {
  processingFailure: 0x0110,
  sopClassNotSupported: 0x0122,
  /**
   * Refused: Not authorized (a PS3.7 Annex C general failure status, which PS3.18 I.2.2 admits beside its
   * table): the pixel policy withholds the instance (issue 16: risky without a redaction rule, or a
   * series filter excludes it). The part is fine as DICOM; the gateway may not store it.
   */
  notAuthorized: 0x0124,
  outOfResources: 0xa700,
  dataSetDoesNotMatchSopClass: 0xa900,
  cannotUnderstand: 0xc000,
  studyInstanceUidMismatch: 0xc409,
} as const;

interface StoredRef {
  sopClass: string;
  sopInstance: string;
  study: string;
  series: string;
}
interface FailedRef {
  sopClass?: string;
  sopInstance?: string;
  reason: number;
}

interface StowOutcome {
  stored: StoredRef[];
  failed: FailedRef[];
}

/** One Part 10 file from any source (a multipart part, a browser upload), de-identified and stored. */
export interface PartSource {
  body: AsyncIterable<Uint8Array>;
  contentType?: string;
  /**
   * The text regions OCR found on this part already (the DIMSE listener's intake, dimse/intake.ts): its
   * verdict takes them at once, as a STOW part's takes the regions found on its spool, and OCR is not run again.
   */
  textRegions?: readonly Rectangle[];
}

/** The rule name a manual redaction carries in the verdict (and in `strictestVerdict`'s union). */
export const MANUAL_RULE = 'manual';

/**
 * Rectangles a person drew for this instance (the /upload page, issue 18 part 2), chosen from its
 * top-level header once it is read (its Series Instance UID, its Rows × Columns). Throwing refuses the
 * whole request (the caller's input is wrong), not just this part.
 */
export type ManualRectangles = (read: AttributeReader) => readonly Rectangle[];

/**
 * The session's policy with the manual rectangles joined to its pixel verdict as a `redact` verdict of
 * rule `manual`, by `strictestVerdict`: withhold still wins, a rule's rectangles are unioned with the
 * manual ones, and the instance is then treated exactly as a rule-redacted one (Burned In Annotation NO,
 * Clean Pixel Data in the method codes: the person who drew them vouches for them as a rule's author does).
 */
export function withManualRectangles(session: VerdictPolicy, manual: ManualRectangles, onError: (error: unknown) => void): VerdictPolicy {
  return withVerdict(session, (verdict, read) => {
    let rectangles: readonly Rectangle[];
    try {
      rectangles = manual(read);
    } catch (error) {
      onError(error);
      throw error;
    }
    const extra: PixelVerdict = rectangles.length > 0 ? { action: 'redact', rule: MANUAL_RULE, rectangles } : KEEP;
    return strictestVerdict(verdict, extra);
  });
}

/**
 * De-identifies one part into a temporary file and, if that succeeds and the study matches the target,
 * stores it upstream. Returns the reference for the response; never throws for a bad part. `manual`:
 * rectangles blanked in every frame besides what the pixel policy decides (withManualRectangles); an
 * error it throws is the caller's and is rethrown.
 */
export async function storePart(
  view: StowView,
  saving: SavingSession,
  part: PartSource,
  targetStudy: string | undefined,
  signal?: AbortSignal,
  manual?: ManualRectangles,
): Promise<{ stored?: StoredRef; failed?: FailedRef }> {
  const file = tempFile(view);
  // The original, spooled only when OCR must read its frames (issue 18).
  let spool: string | undefined;
  // The rewriter may stop reading early (a bad file); the rest of the part is then drained here, so
  // the next part can be read. `return()` is not forwarded to the part body for that reason.
  const body = part.body[Symbol.asyncIterator]();
  const guarded: AsyncIterable<Uint8Array> = { [Symbol.asyncIterator]: () => ({ next: () => body.next() }) };
  // What the Failed SOP Sequence item names, once known.
  let named: { sopClass?: string; sopInstance?: string } = {};
  let callersError: unknown;
  const joined = (session: VerdictPolicy): VerdictPolicy => (manual ? withManualRectangles(session, manual, (error) => (callersError = error)) : session);
  const found = part.textRegions;
  const start = found === undefined ? saving.session : withTextRegionsFound(saving.session, found);
  // Issue 18: under `pixels.ocr`, the header's chunks are kept until the verdict says whether OCR is needed.
  const watch = view.ocr && view.policy.pixels.ocr && found === undefined ? watchForOcr(body, joined(start), view.maxHeaderBytes + OCR_HEAD_SLACK) : undefined;
  let byOcr = false;
  try {
    try {
      const { output } = rewritePart10(watch?.source ?? guarded, watch?.policy ?? joined(start), { maxHeaderBytes: view.maxHeaderBytes });
      await pipeline(output, createWriteStream(file, { flags: 'wx', mode: 0o600 }), { signal });
      // Regions given are OCR's, found at intake in this process under this (frozen) policy, which judged the
      // same file OCR-redactable: a part stored with them is OCR-redacted.
      byOcr = found !== undefined;
    } catch (error) {
      const candidate = error instanceof PixelWithheldError && !signal?.aborted ? watch?.candidate() : undefined;
      if (candidate === undefined) throw error;
      // Withheld before anything of it was written: the original is spooled, OCR'd, and rewritten with its regions.
      let regions: Awaited<ReturnType<typeof spooledTextRegions>>;
      if (candidate.head !== undefined) {
        spool = tempFile(view);
        await spoolPart(spool, candidate.head, body, signal); // a disk's failure is the part's own (0x0110, 0xA700)
      }
      try {
        if (spool === undefined || view.ocr === undefined) throw new TextRegionsUnavailableError('OCR_HEADER_TOO_LARGE');
        regions = await spooledTextRegions(spool, candidate.read, view.ocr, { maxHeaderBytes: view.maxHeaderBytes, signal });
      } catch (cause) {
        if (signal?.aborted) throw cause;
        throw ocrFailed(candidate, cause, view.ocr);
      }
      await rm(file, { force: true });
      const { output } = rewritePart10(createReadStream(spool), joined(withTextRegionsFound(saving.session, regions)), { maxHeaderBytes: view.maxHeaderBytes });
      await pipeline(output, createWriteStream(file, { flags: 'wx', mode: 0o600 }), { signal });
      byOcr = true;
    }
    const ids = await identifiersOf(file, view.maxHeaderBytes);
    const original = originalsOf(saving.session, ids);
    if (!ids.sopInstance || !ids.sopClass || !ids.study) {
      named = { sopClass: original.sopClass, sopInstance: original.sopInstance };
      throw new StowPartError('STOW_PART_NO_IDENTIFIERS', 'the instance lacks its SOP Class, SOP Instance or Study Instance UID');
    }
    named = { sopClass: ids.sopClass, sopInstance: ids.sopInstance };
    if (targetStudy !== undefined && targetStudy !== original.study && targetStudy !== ids.study) {
      throw new StowPartError('STOW_PART_STUDY_MISMATCH', 'the instance belongs to another study than the target');
    }
    // Pseudonyms are durable before the PACS or the caller sees them.
    await saving.makeDurable();
    await sendUpstream(view, file, signal);
    if (byOcr) ocrRedacted(view.ocr);
    return { stored: ids };
  } catch (error) {
    if (signal?.aborted) throw new ClientGoneError({ cause: error });
    if (callersError !== undefined && error === callersError) throw error;
    // A network failure fails the whole request (502/504); a store's own, even one caused by a reset
    // connection to its database, is this part's Failure Reason, never "the PACS could not be reached".
    const classified = error instanceof StoreError ? error : classify(error);
    if (classified !== error || error instanceof MultipartError) throw classified;
    // This part is refused (nothing of it was sent upstream, or the PACS did not store it); the rest go on.
    view.observeRefusal?.(error);
    const reason = view.failureReason(error);
    if (error instanceof PixelWithheldError) {
      // A policy outcome, not a fault: the operator sees which criterion or filter held (never a value).
      view.log?.info({ err: codesOf(error), withheld: error.reason, detail: error.detail, reason }, 'a STOW part was withheld by the pixel policy');
    } else if (error instanceof OcrBusyError) {
      // OCR's detector full or out of time (0xA700, to be sent again): the withhold it stood for names the failure.
      view.log?.warn({ err: codesOf(error), detail: error.withheld.detail, reason }, 'a STOW part was not stored: OCR is busy');
    } else if (reason === FailureReason.processingFailure || reason === FailureReason.outOfResources) {
      view.log?.warn({ err: codesOf(error), cause: codesOf((error as { cause?: unknown }).cause), reason }, 'a STOW part was not stored');
    }
    for (let next = await body.next(); !next.done; next = await body.next());
    return { failed: { ...named, reason } };
  } finally {
    for (const name of spool ? [file, spool] : [file]) {
      await rm(name, { force: true }).catch((error: unknown) => {
        // ENOTDIR: the directory is gone, so is the file. Otherwise it stays until the sweep at the next start.
        if ((error as { code?: unknown }).code !== 'ENOTDIR') view.log?.warn({ err: codesOf(error) }, 'a STOW temporary file could not be deleted');
      });
    }
  }
}

/** Bytes kept beyond maxHeaderBytes while the verdict is awaited: the reader's last chunk. */
const OCR_HEAD_SLACK = 1 << 20;

/** A new temporary file's path, matching TEMP_FILE (the start-up sweep). */
function tempFile(view: StowView): string {
  return join(view.tempDir, `deid-stow-${randomBytes(12).toString('hex')}.dcm`);
}

/** An error's name and code for the log: never its message, which may quote a path. */
function codesOf(error: unknown): { name: string; code?: unknown } | undefined {
  return error instanceof Error ? { name: error.name, code: (error as { code?: unknown }).code } : undefined;
}

/** Reads the de-identified file's identifiers (its header only). */
async function identifiersOf(file: string, maxHeaderBytes: number): Promise<StoredRef> {
  const reader = new Part10Reader({ maxHeaderBytes });
  const source = createReadStream(file);
  try {
    for await (const event of reader.read(source)) {
      if (event.type !== 'header') continue;
      const ds = event.header.dataset;
      return {
        sopClass: asciiValue(ds, TAG.SOPClassUID) ?? '',
        sopInstance: asciiValue(ds, TAG.SOPInstanceUID) ?? '',
        study: asciiValue(ds, TAG.StudyInstanceUID) ?? '',
        series: asciiValue(ds, TAG.SeriesInstanceUID) ?? '',
      };
    }
  } finally {
    source.destroy();
  }
  return { sopClass: '', sopInstance: '', study: '', series: '' };
}

function originalsOf(session: DeidSession, ids: StoredRef): { sopClass?: string; sopInstance?: string; study?: string } {
  const byPseudonym = new Map(session.pairs().filter((p) => p.kind === 'uid').map((p) => [p.pseudonym, p.original]));
  return { sopClass: ids.sopClass, sopInstance: byPseudonym.get(ids.sopInstance), study: byPseudonym.get(ids.study) ?? ids.study };
}

/**
 * PS3.18 10.5: one de-identified instance per upstream request, so each part's outcome is its own.
 * Throws `UpstreamStoreFailedError` when the PACS does not store it.
 */
async function sendUpstream(view: StowView, file: string, signal?: AbortSignal): Promise<void> {
  // PS3.18 10.5.1.2 / RFC 2046 5.1.1: one application/dicom part, framed by dicom/multipart.ts.
  const boundary = newBoundary();
  const head = partHead(boundary, { 'Content-Type': 'application/dicom' });
  const tail = Buffer.concat([PART_END, closeDelimiter(boundary)]);
  const size = (await stat(file)).size;
  const body = (async function* () {
    yield head;
    yield* createReadStream(file);
    yield tail;
  })();
  const res = await view.upstream.send({
    method: 'POST',
    pathAndQuery: '/studies',
    headers: {
      'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
      'content-length': String(head.length + size + tail.length),
      accept: 'application/dicom+json',
    },
    body: Readable.from(body),
    signal,
  });
  const text = await readSmall(res.body, 1 << 20);
  if (res.statusCode === 200) return;
  throw new UpstreamStoreFailedError(res.statusCode, upstreamFailureReason(text));
}

/** The Failure Reason (0008,1197) of the first Failed SOP Sequence item of the PACS's PS3.18 Annex I answer, if any. */
function upstreamFailureReason(text: string): number | undefined {
  try {
    const json = JSON.parse(text) as Record<string, { Value?: Record<string, { Value?: unknown[] }>[] }>;
    const reason = json[tagToHex(TAG.FailedSOPSequence)]?.Value?.[0]?.[tagToHex(TAG.FailureReason)]?.Value?.[0];
    return typeof reason === 'number' ? reason : undefined;
  } catch {
    return undefined; // not JSON
  }
}

async function readSmall(body: AsyncIterable<Buffer>, cap: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size <= cap) chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Checks the request's media type and declared size before anything is read (415 / 413). */
function checkStowRequest(req: IncomingMessage, view: StowView): string {
  const contentType = req.headers['content-type'];
  if (!contentType || !/^multipart\/related\s*;/i.test(contentType)) {
    throw new StowRequestError('STOW_UNSUPPORTED_MEDIA_TYPE', 'STOW-RS takes multipart/related; type="application/dicom"');
  }
  const type = mediaTypeParameter(contentType, 'type');
  if (type !== undefined && type.toLowerCase() !== 'application/dicom') {
    throw new StowRequestError('STOW_UNSUPPORTED_MEDIA_TYPE', 'only application/dicom parts are accepted');
  }
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > view.maxBodyBytes) throw new StowRequestError('STOW_TOO_LARGE', `the body exceeds ${view.maxBodyBytes} bytes`);
  try {
    return boundaryFrom(contentType);
  } catch (error) {
    if (error instanceof MultipartError && error.code === 'MULTIPART_BOUNDARY_TOO_LONG') {
      throw new BadRequestError('STOW_BOUNDARY_TOO_LONG', `the multipart boundary is longer than ${MAX_BOUNDARY_LENGTH} characters`);
    }
    throw new BadRequestError('STOW_NO_BOUNDARY', 'the multipart body has no boundary');
  }
}

/** Counts bytes as they pass and fails once the body exceeds the limit. */
async function* capped(source: AsyncIterable<Uint8Array>, max: number): AsyncGenerator<Uint8Array> {
  let size = 0;
  for await (const chunk of source) {
    size += chunk.length;
    if (size > max) throw new StowRequestError('STOW_TOO_LARGE', `the body exceeds ${max} bytes`);
    yield chunk;
  }
}

/** PS3.18 10.5: Store Instances for the uploader. */
export async function storeDeidentified(
  view: StowView,
  req: IncomingMessage,
  res: ServerResponse,
  r: { targetStudy?: string; publicBase: string },
): Promise<void> {
  const boundary = checkStowRequest(req, view);
  const lifetime = streamLifetime(res); // the caller leaving aborts the part in flight and its upstream store
  const saving = savingSession(view);
  const outcome: StowOutcome = { stored: [], failed: [] };
  let parts = 0;
  try {
    for await (const part of readMultipart(capped(req, view.maxBodyBytes), boundary, { maxPartBytes: view.maxPartBytes })) {
      parts++;
      const type = part.headers['content-type'];
      if (type !== undefined && !/^application\/dicom\s*(;|$)/i.test(type)) {
        for await (const _ of part.body) void _; // skip it, but read it: the next part follows
        outcome.failed.push({ reason: view.failureReason(new StowPartError('STOW_PART_NOT_DICOM', 'a part is not application/dicom')) });
        continue;
      }
      const result = await storePart(view, saving, { body: part.body, contentType: type }, r.targetStudy, lifetime.signal);
      if (result.stored) outcome.stored.push(result.stored);
      if (result.failed) outcome.failed.push(result.failed);
    }
  } catch (error) {
    if (lifetime.gone) throw lifetime.failure(error);
    if (error instanceof MultipartError) {
      if (error.code === 'MULTIPART_PART_TOO_LARGE') throw new StowRequestError('STOW_TOO_LARGE', 'a part exceeds the configured limit');
      throw new BadRequestError('STOW_BAD_MULTIPART', `the multipart body is malformed (${error.code})`);
    }
    throw error;
  }
  if (parts === 0) throw new BadRequestError('STOW_NO_PARTS', 'the multipart body has no parts');
  writeStowResponse(req, res, outcome, r.publicBase);
}

/** PS3.18 10.5.3 status (200 all, 202 some, 409 none) with the Annex I module as DICOM JSON or XML. */
function writeStowResponse(req: IncomingMessage, res: ServerResponse, outcome: StowOutcome, publicBase: string): void {
  const status = outcome.failed.length === 0 ? 200 : outcome.stored.length === 0 ? 409 : 202;
  const studies = new Set(outcome.stored.map((s) => s.study));
  const body: JsonDataset = {};
  const put = (ds: JsonDataset, tag: Tag, values: JsonValue[]): void => {
    ds[tagToHex(tag)] = element(tag, values);
  };
  if (studies.size === 1) put(body, TAG.RetrieveURL, [`${publicBase}/studies/${[...studies][0]}`]);
  if (outcome.failed.length > 0) {
    put(
      body,
      TAG.FailedSOPSequence,
      outcome.failed.map((f) => {
        const item: JsonDataset = {};
        if (f.sopClass) put(item, TAG.ReferencedSOPClassUID, [f.sopClass]);
        if (f.sopInstance) put(item, TAG.ReferencedSOPInstanceUID, [f.sopInstance]);
        put(item, TAG.FailureReason, [f.reason]);
        return item;
      }),
    );
  }
  if (outcome.stored.length > 0) {
    put(
      body,
      TAG.ReferencedSOPSequence,
      outcome.stored.map((s) => {
        const item: JsonDataset = {};
        put(item, TAG.ReferencedSOPClassUID, [s.sopClass]);
        put(item, TAG.ReferencedSOPInstanceUID, [s.sopInstance]);
        put(item, TAG.RetrieveURL, [`${publicBase}/studies/${s.study}/series/${s.series}/instances/${s.sopInstance}`]);
        return item;
      }),
    );
  }
  res.statusCode = status;
  const accept = String(req.headers.accept ?? '');
  if (/application\/dicom\+xml/i.test(accept) && !/application\/dicom\+json/i.test(accept)) {
    res.setHeader('content-type', 'application/dicom+xml');
    res.end(toNativeDicomModel(body));
    return;
  }
  res.setHeader('content-type', 'application/dicom+json');
  res.end(JSON.stringify(body));
}

/** One DICOM JSON element (PS3.18 F.2.2), its VR from the PS3.6 dictionary. */
function element(tag: Tag, values: JsonValue[]): JsonElement {
  return { vr: lookup(tag)?.vrs[0] ?? 'UN', Value: values };
}

const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** PS3.19 A.1 Native DICOM Model, enough for the Store Instances Response Module; keywords from the PS3.6 dictionary. */
function toNativeDicomModel(dataset: JsonDataset): string {
  const attrs = (ds: JsonDataset): string =>
    Object.entries(ds)
      .map(([hex, el]) => {
        const keyword = lookup(parseInt(hex, 16) >>> 0)?.keyword ?? '';
        const open = `<DicomAttribute tag="${hex}" vr="${el.vr}" keyword="${keyword}">`;
        const values = (el.Value ?? [])
          .map((v, i) =>
            el.vr === 'SQ'
              ? `<Item number="${i + 1}">${attrs(v as JsonDataset)}</Item>`
              : `<Value number="${i + 1}">${xml(String(v))}</Value>`,
          )
          .join('');
        return `${open}${values}</DicomAttribute>`;
      })
      .join('');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM">${attrs(dataset)}</NativeDicomModel>\n`;
}

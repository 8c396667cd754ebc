// PS3.18 10.5 Store (STOW-RS) for the uploader: each part of the multipart/related body is read as a
// stream, de-identified by the streaming rewriter into a temporary file, and only once it is complete
// and de-identified is it sent on to the PACS. Nothing raw ever goes upstream; the temporary file is
// deleted whatever happens. The response is the Store Instances Response Module (PS3.18 Annex I).
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, readdir, rm, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { DeidPolicy, DeidSession } from '../deid/deidentify.ts';
import { savingSession, type SavingSession } from './deidentified-view.ts';
import { rewritePart10 } from '../deid/rewrite-part10.ts';
import { asciiValue } from '../dicom/dataset.ts';
import { Part10Reader } from '../dicom/part10-reader.ts';
import { boundaryFrom, mediaTypeParameter, MultipartError, readMultipart } from '../dicom/multipart.ts';
import type { PseudonymStore } from '../store/pseudonym-store.ts';
import { BadRequestError, DicomwebError } from './errors.ts';
import { classify, type Upstream } from './upstream.ts';

export interface StowView {
  readonly policy: DeidPolicy;
  readonly store: PseudonymStore;
  readonly upstream: Upstream;
  readonly maxHeaderBytes: number;
  readonly maxPartBytes: number;
  readonly maxBodyBytes: number;
  /** Where each de-identified part waits before it is sent (`<dataDir>/tmp`, made by `prepareTempDir`). */
  readonly tempDir: string;
  /** Sees each part the engine refused (metrics count them by the error's code; this layer knows no metrics library). */
  readonly observeRefusal?: RefusalObserver;
}

export type RefusalObserver = (error: unknown) => void;

const TEMP_FILE = /^deid-stow-[0-9a-f]{24}\.dcm$/;

/**
 * Makes the temporary directory, owner-only (0700), and removes the parts a crashed process left
 * there: de-identified, but never meant to outlive their request. Run at start, before any STOW, by
 * the one process that owns `dataDir`; other files in the directory are left alone.
 */
export async function prepareTempDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700); // an existing directory keeps its mode through mkdir
  for (const name of await readdir(dir)) {
    if (TEMP_FILE.test(name)) await rm(join(dir, name), { force: true });
  }
}

/** PS3.18 Table I.2-2 Failure Reasons, and 0xC409 for a Study Instance UID that does not match the target. */
export const FailureReason = {
  processingFailure: 0x0110,
  sopClassNotSupported: 0x0122,
  outOfResources: 0xa700,
  dataSetDoesNotMatchSopClass: 0xa900,
  cannotUnderstand: 0xc000,
  studyInstanceUidMismatch: 0xc409,
} as const;

/** A body the gateway will not read: wrong media type (415) or over a configured limit (413). */
export class StowRequestError extends DicomwebError {
  override name = 'StowRequestError';
  constructor(
    code: 'STOW_UNSUPPORTED_MEDIA_TYPE' | 'STOW_TOO_LARGE',
    message: string,
    readonly status: 413 | 415,
  ) {
    super(code, message);
  }
}

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

export interface StowOutcome {
  stored: StoredRef[];
  failed: FailedRef[];
}

/** One Part 10 file from any source (a multipart part, a browser upload), de-identified and stored. */
export interface PartSource {
  body: AsyncIterable<Uint8Array>;
  contentType?: string;
}

const SOP_CLASS = 0x00080016;
const SOP_INSTANCE = 0x00080018;
const STUDY = 0x0020000d;
const SERIES = 0x0020000e;

/**
 * De-identifies one part into a temporary file and, if that succeeds and the study matches the target,
 * stores it upstream. Returns the reference for the response; never throws for a bad part.
 */
export async function storePart(
  view: StowView,
  saving: SavingSession,
  part: PartSource,
  targetStudy: string | undefined,
  signal?: AbortSignal,
): Promise<{ stored?: StoredRef; failed?: FailedRef }> {
  const file = join(view.tempDir, `deid-stow-${randomBytes(12).toString('hex')}.dcm`);
  // The rewriter may stop reading early (a bad file); the rest of the part is then drained here, so
  // the next part can be read. `return()` is not forwarded to the part body for that reason.
  const body = part.body[Symbol.asyncIterator]();
  const guarded: AsyncIterable<Uint8Array> = { [Symbol.asyncIterator]: () => ({ next: () => body.next() }) };
  try {
    const { output } = rewritePart10(guarded, saving.session, { maxHeaderBytes: view.maxHeaderBytes });
    await pipeline(output, createWriteStream(file, { flags: 'wx', mode: 0o600 }), { signal });
    const ids = await identifiersOf(file, view.maxHeaderBytes);
    const original = originalsOf(saving.session, ids);
    if (!ids.sopInstance || !ids.sopClass || !ids.study) {
      return { failed: { ...original, reason: FailureReason.dataSetDoesNotMatchSopClass } };
    }
    if (targetStudy !== undefined && targetStudy !== original.study && targetStudy !== ids.study) {
      return { failed: { sopClass: ids.sopClass, sopInstance: ids.sopInstance, reason: FailureReason.studyInstanceUidMismatch } };
    }
    // Pseudonyms are durable before the PACS or the caller sees them.
    await saving.makeDurable();
    const reason = await sendUpstream(view, file, signal);
    if (reason !== undefined) return { failed: { sopClass: ids.sopClass, sopInstance: ids.sopInstance, reason } };
    return { stored: ids };
  } catch (error) {
    const classified = classify(error);
    if (signal?.aborted || classified !== error || error instanceof MultipartError) throw classified;
    // The part could not be de-identified (DicomError / DeidError): refused, nothing sent upstream.
    view.observeRefusal?.(error);
    for (let next = await body.next(); !next.done; next = await body.next());
    return { failed: { reason: FailureReason.cannotUnderstand } };
  } finally {
    await rm(file, { force: true });
  }
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
        sopClass: asciiValue(ds, SOP_CLASS) ?? '',
        sopInstance: asciiValue(ds, SOP_INSTANCE) ?? '',
        study: asciiValue(ds, STUDY) ?? '',
        series: asciiValue(ds, SERIES) ?? '',
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

/** PS3.18 10.5: one de-identified instance per upstream request, so each part's outcome is its own. */
async function sendUpstream(view: StowView, file: string, signal?: AbortSignal): Promise<number | undefined> {
  const boundary = `deid-${randomBytes(16).toString('hex')}`;
  const head = Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
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
  if (res.statusCode === 200) return undefined;
  try {
    const json = JSON.parse(text) as Record<string, { Value?: Record<string, { Value?: number[] }>[] }>;
    const reason = json['00081198']?.Value?.[0]?.['00081197']?.Value?.[0];
    if (typeof reason === 'number') return reason;
  } catch {
    // not JSON: fall through
  }
  return res.statusCode >= 500 ? FailureReason.processingFailure : FailureReason.cannotUnderstand;
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
export function checkStowRequest(req: IncomingMessage, view: StowView): string {
  const contentType = req.headers['content-type'];
  if (!contentType || !/^multipart\/related\s*;/i.test(contentType)) {
    throw new StowRequestError('STOW_UNSUPPORTED_MEDIA_TYPE', 'STOW-RS takes multipart/related; type="application/dicom"', 415);
  }
  const type = mediaTypeParameter(contentType, 'type');
  if (type !== undefined && type.toLowerCase() !== 'application/dicom') {
    throw new StowRequestError('STOW_UNSUPPORTED_MEDIA_TYPE', 'only application/dicom parts are accepted', 415);
  }
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > view.maxBodyBytes) throw new StowRequestError('STOW_TOO_LARGE', `the body exceeds ${view.maxBodyBytes} bytes`, 413);
  try {
    return boundaryFrom(contentType);
  } catch {
    throw new BadRequestError('STOW_NO_BOUNDARY', 'the multipart body has no boundary');
  }
}

/** Counts bytes as they pass and fails once the body exceeds the limit. */
async function* capped(source: AsyncIterable<Uint8Array>, max: number): AsyncGenerator<Uint8Array> {
  let size = 0;
  for await (const chunk of source) {
    size += chunk.length;
    if (size > max) throw new StowRequestError('STOW_TOO_LARGE', `the body exceeds ${max} bytes`, 413);
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
  const abort = new AbortController();
  req.once('aborted', () => abort.abort());
  res.once('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  const saving = savingSession(view);
  const outcome: StowOutcome = { stored: [], failed: [] };
  let parts = 0;
  try {
    for await (const part of readMultipart(capped(req, view.maxBodyBytes), boundary, { maxPartBytes: view.maxPartBytes })) {
      parts++;
      const type = part.headers['content-type'];
      if (type !== undefined && !/^application\/dicom\s*(;|$)/i.test(type)) {
        for await (const _ of part.body) void _; // skip it, but read it: the next part follows
        outcome.failed.push({ reason: FailureReason.sopClassNotSupported });
        continue;
      }
      const result = await storePart(view, saving, { body: part.body, contentType: type }, r.targetStudy, abort.signal);
      if (result.stored) outcome.stored.push(result.stored);
      if (result.failed) outcome.failed.push(result.failed);
    }
  } catch (error) {
    if (error instanceof MultipartError) {
      if (error.code === 'MULTIPART_PART_TOO_LARGE') throw new StowRequestError('STOW_TOO_LARGE', 'a part exceeds the configured limit', 413);
      throw new BadRequestError('STOW_BAD_MULTIPART', `the multipart body is malformed (${error.code})`);
    }
    throw error;
  }
  if (parts === 0) throw new BadRequestError('STOW_NO_PARTS', 'the multipart body has no parts');
  writeStowResponse(req, res, outcome, r.publicBase);
}

/** PS3.18 10.5.3 status (200 all, 202 some, 409 none) with the Annex I module as DICOM JSON or XML. */
export function writeStowResponse(req: IncomingMessage, res: ServerResponse, outcome: StowOutcome, publicBase: string): void {
  const status = outcome.failed.length === 0 ? 200 : outcome.stored.length === 0 ? 409 : 202;
  const studies = new Set(outcome.stored.map((s) => s.study));
  const body: Record<string, { vr: string; Value?: unknown[] }> = {};
  if (studies.size === 1) body['00081190'] = { vr: 'UR', Value: [`${publicBase}/studies/${[...studies][0]}`] };
  if (outcome.failed.length > 0) {
    body['00081198'] = {
      vr: 'SQ',
      Value: outcome.failed.map((f) => ({
        ...(f.sopClass ? { '00081150': { vr: 'UI', Value: [f.sopClass] } } : {}),
        ...(f.sopInstance ? { '00081155': { vr: 'UI', Value: [f.sopInstance] } } : {}),
        '00081197': { vr: 'US', Value: [f.reason] },
      })),
    };
  }
  if (outcome.stored.length > 0) {
    body['00081199'] = {
      vr: 'SQ',
      Value: outcome.stored.map((s) => ({
        '00081150': { vr: 'UI', Value: [s.sopClass] },
        '00081155': { vr: 'UI', Value: [s.sopInstance] },
        '00081190': { vr: 'UR', Value: [`${publicBase}/studies/${s.study}/series/${s.series}/instances/${s.sopInstance}`] },
      })),
    };
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

const KEYWORDS: Record<string, string> = {
  '00081190': 'RetrieveURL',
  '00081198': 'FailedSOPSequence',
  '00081199': 'ReferencedSOPSequence',
  '00081150': 'ReferencedSOPClassUID',
  '00081155': 'ReferencedSOPInstanceUID',
  '00081197': 'FailureReason',
};
const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** PS3.19 Native DICOM Model, enough for the Store Instances Response Module. */
function toNativeDicomModel(dataset: Record<string, { vr: string; Value?: unknown[] }>): string {
  const attrs = (ds: Record<string, { vr: string; Value?: unknown[] }>): string =>
    Object.entries(ds)
      .map(([tag, el]) => {
        const open = `<DicomAttribute tag="${tag}" vr="${el.vr}" keyword="${KEYWORDS[tag] ?? ''}">`;
        const values = (el.Value ?? [])
          .map((v, i) =>
            el.vr === 'SQ'
              ? `<Item number="${i + 1}">${attrs(v as Record<string, { vr: string; Value?: unknown[] }>)}</Item>`
              : `<Value number="${i + 1}">${xml(String(v))}</Value>`,
          )
          .join('');
        return `${open}${values}</DicomAttribute>`;
      })
      .join('');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM">${attrs(dataset)}</NativeDicomModel>\n`;
}


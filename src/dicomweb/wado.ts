// PS3.18 10.4 Retrieve (WADO-RS) for a restricted role: every byte the caller gets has passed through
// deid/. Instances go through the streaming Part 10 rewriter part by part; metadata through the DICOM
// JSON de-identifier; frames and Pixel Data bulkdata pass untouched once the instance is in scope.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { deidentifyJson, type DicomJsonDataset } from '../deid/deidentify.ts';
import { rewritePart10 } from '../deid/rewrite-part10.ts';
import { boundaryFrom, closeDelimiter, newBoundary, PART_END, partHead, readMultipart } from '../dicom/multipart.ts';
import { parseTag } from '../dicom/tag.ts';
import {
  originalPath,
  refuseUpstreamError,
  savingSession,
  uidPath,
  unusable,
  type DeidentifiedView,
  type ResourcePath,
} from './deidentified-view.ts';
import { ResourceRefusedError, UnknownResourceError, UpstreamUnusableError } from './errors.ts';
import type { UpstreamResponse } from './upstream.ts';
import { jsonArrayItems } from './json-array-stream.ts';
import { writeChunk } from './response-writer.ts';

const PIXEL_DATA_TAGS = new Set([0x7fe00010, 0x7fe00008, 0x7fe00009]);

export interface RetrieveRequest {
  /** Pseudonymous identifiers from the path. */
  path: ResourcePath;
  /** Below the instance: '' | '/metadata' | '/frames/1,2' | '/bulk/…' | '/rendered' | '/thumbnail'. */
  resource: string;
  /** Raw query string including '?', or ''. */
  query: string;
  /** The caller's public DICOMweb base, for URLs the gateway issues. */
  publicBase: string;
}

function abortOnClose(res: ServerResponse): AbortSignal {
  const abort = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  return abort.signal;
}

async function fetchUpstream(view: DeidentifiedView, req: IncomingMessage, res: ServerResponse, pathAndQuery: string, accept?: string) {
  const upstreamRes = await view.upstream.send({
    method: 'GET',
    pathAndQuery,
    headers: { accept: accept ?? req.headers.accept ?? '*/*' },
    signal: abortOnClose(res),
  });
  if (upstreamRes.statusCode >= 300) refuseUpstreamError(upstreamRes);
  return upstreamRes;
}

/** `…/metadata` at study, series or instance level (PS3.18 10.4.1.1.2), de-identified per dataset. */
export async function retrieveMetadata(view: DeidentifiedView, req: IncomingMessage, res: ServerResponse, r: RetrieveRequest) {
  const original = await originalPath(view, r.path);
  const upstreamRes = await fetchUpstream(view, req, res, `${uidPath(original)}/metadata`, 'application/dicom+json');
  const { session, flush, makeDurable } = savingSession(view);
  let first = true;
  try {
    for await (const item of jsonArrayItems(upstreamRes.body, view.maxJsonDatasetBytes)) {
      const deidentified = deidentifyJson(session, item as DicomJsonDataset, {
        bulkDataURI: (uri, ref) => (ref.path.length === 0 ? bulkUriFor(uri, r.publicBase) : undefined),
      });
      fixBulkDataUris(deidentified, r.publicBase);
      await flush(); // PS3.15 pseudonyms are saved before the caller can see them
      if (first) {
        res.statusCode = 200;
        res.setHeader('content-type', 'application/dicom+json');
      }
      await writeChunk(res, Buffer.from(`${first ? '[' : ','}${JSON.stringify(deidentified)}`));
      first = false;
    }
    await makeDurable();
  } catch (error) {
    throw unusable(error);
  }
  if (first) {
    res.statusCode = 200;
    res.setHeader('content-type', 'application/dicom+json');
    res.end('[]');
    return;
  }
  res.end(']');
}

/** The placeholder set by `bulkUriFor`; the UIDs are filled in once the dataset is de-identified. */
const BULK_PLACEHOLDER = '\u0000deid-bulk\u0000';

function bulkUriFor(uri: string, _publicBase: string): string | undefined {
  // Orthanc: …/instances/{uid}/bulk/{tag path}; keep only the tag path, never the original UIDs.
  const match = /\/instances\/[0-9.]+\/(bulk|bulkdata)\/([0-9A-Fa-f/.]+)$/.exec(uri);
  if (!match) return undefined;
  return `${BULK_PLACEHOLDER}/${match[1]}/${match[2]}`;
}

function fixBulkDataUris(dataset: DicomJsonDataset, publicBase: string): void {
  const study = dataset['0020000D']?.Value?.[0];
  const series = dataset['0020000E']?.Value?.[0];
  const instance = dataset['00080018']?.Value?.[0];
  for (const element of Object.values(dataset)) {
    if (element.BulkDataURI?.startsWith(BULK_PLACEHOLDER)) {
      if (typeof study !== 'string' || typeof series !== 'string' || typeof instance !== 'string') {
        delete element.BulkDataURI;
        continue;
      }
      element.BulkDataURI = `${publicBase}/studies/${study}/series/${series}/instances/${instance}${element.BulkDataURI.slice(BULK_PLACEHOLDER.length)}`;
    }
  }
}

/**
 * Study, series or instance retrieval (PS3.18 10.4.1.1.1): the upstream multipart/related body is read
 * part by part; each Part 10 part is rewritten as it streams, in the transfer syntax the caller's
 * Accept negotiated, and framed anew (the upstream part headers, which name original UIDs, are dropped).
 */
export async function retrieveInstances(view: DeidentifiedView, req: IncomingMessage, res: ServerResponse, r: RetrieveRequest) {
  const original = await originalPath(view, r.path);
  const upstreamRes = await fetchUpstream(view, req, res, `${uidPath(original)}${r.query}`);
  const contentType = multipartTypeOf(upstreamRes);
  const boundary = newBoundary();
  const { session, flush, makeDurable } = savingSession(view);
  let started = false;
  try {
    for await (const part of readMultipart(upstreamRes.body, boundaryFrom(contentType))) {
      const partType = part.headers['content-type'] ?? 'application/dicom';
      if (!/^application\/dicom(\s*;|$)/i.test(partType)) throw new UpstreamUnusableError('a part is not application/dicom');
      const { output } = rewritePart10(part.body, session, { maxHeaderBytes: view.maxHeaderBytes });
      let head = true;
      for await (const chunk of output) {
        await flush();
        if (!started) {
          res.statusCode = 200;
          res.setHeader('content-type', withBoundary(contentType, boundary));
          started = true;
        }
        if (head) {
          await writeChunk(res, partHead(boundary, { 'Content-Type': partType }));
          head = false;
        }
        await writeChunk(res, chunk);
      }
      await writeChunk(res, PART_END);
    }
    await makeDurable();
  } catch (error) {
    throw unusable(error);
  }
  if (!started) {
    res.statusCode = 200;
    res.setHeader('content-type', withBoundary(contentType, boundary));
  }
  res.end(closeDelimiter(boundary));
}

/**
 * Frames (PS3.18 10.4.1.1.4) and Pixel Data bulkdata pass through untouched once the instance is known
 * to be in scope; the multipart framing is rebuilt so no upstream part header reaches the caller.
 * Bulkdata of any other attribute: 404 (the profile removes or rewrites such values).
 */
export async function retrievePixels(view: DeidentifiedView, req: IncomingMessage, res: ServerResponse, r: RetrieveRequest) {
  if (r.resource.startsWith('/bulk')) {
    const tags = r.resource.split('/').slice(2);
    const tag = tags.length === 1 ? parseTag(tags[0] as string) : undefined;
    if (tag === undefined || !PIXEL_DATA_TAGS.has(tag)) throw new UnknownResourceError('bulkdata');
  }
  const original = await originalPath(view, r.path);
  const upstreamRes = await fetchUpstream(view, req, res, `${uidPath(original)}${r.resource}${r.query}`);
  const contentType = multipartTypeOf(upstreamRes);
  const boundary = newBoundary();
  let started = false;
  try {
    for await (const part of readMultipart(upstreamRes.body, boundaryFrom(contentType))) {
      const partType = part.headers['content-type'] ?? 'application/octet-stream';
      if (!started) {
        res.statusCode = 200;
        res.setHeader('content-type', withBoundary(contentType, boundary));
        started = true;
      }
      await writeChunk(res, partHead(boundary, { 'Content-Type': partType }));
      for await (const chunk of part.body) await writeChunk(res, chunk);
      await writeChunk(res, PART_END);
    }
  } catch (error) {
    throw unusable(error);
  }
  if (!started) throw new UpstreamUnusableError('no parts');
  res.end(closeDelimiter(boundary));
}

/** `/rendered` and `/thumbnail`: server-rendered pixels, relayed only when config allows it. */
export async function retrieveRendered(view: DeidentifiedView, req: IncomingMessage, res: ServerResponse, r: RetrieveRequest) {
  if (!view.allowRendered) {
    throw new ResourceRefusedError('DEID_RENDERED_DISABLED', 'rendered images are not offered to this role');
  }
  const original = await originalPath(view, r.path);
  const upstreamRes = await fetchUpstream(view, req, res, `${uidPath(original)}${r.resource}${r.query}`);
  const contentType = String(upstreamRes.headers['content-type'] ?? '');
  if (!/^image\/(jpeg|png|gif)|^video\//i.test(contentType)) {
    upstreamRes.body.resume();
    throw new UpstreamUnusableError('rendered content is not an image');
  }
  res.statusCode = 200;
  res.setHeader('content-type', contentType);
  try {
    for await (const chunk of upstreamRes.body) await writeChunk(res, chunk as Buffer);
  } catch (error) {
    throw unusable(error);
  }
  res.end();
}

/** The upstream media type (type=, transfer-syntax= kept) with the boundary of the body we write. */
function withBoundary(contentType: string, boundary: string): string {
  return contentType.replace(/boundary=("[^"]*"|[^;]*)/i, `boundary=${boundary}`);
}

/** The upstream body's multipart/related media type; anything else is refused unread. */
function multipartTypeOf(upstreamRes: UpstreamResponse): string {
  const contentType = String(upstreamRes.headers['content-type'] ?? '');
  if (/^multipart\/related/i.test(contentType)) return contentType;
  upstreamRes.body.resume();
  throw new UpstreamUnusableError('not multipart/related');
}

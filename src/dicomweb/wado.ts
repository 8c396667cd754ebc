// PS3.18 10.4 Retrieve (WADO-RS) for a restricted role: every byte the caller gets has passed through
// deid/. Instances go through the streaming Part 10 rewriter part by part; metadata through the DICOM
// JSON de-identifier; frames, and the bulkdata of attributes the profile keeps unchanged, pass untouched
// once the instance is in scope. Each answer is in a media type the caller's Accept allows, or 406.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createSession, deidentifyJson, type DeidPolicy, type DicomJsonDataset, type ElementRef } from '../deid/deidentify.ts';
import { rewritePart10 } from '../deid/rewrite-part10.ts';
import { lookup } from '../dicom/dictionary.ts';
import { boundaryFrom, closeDelimiter, newBoundary, PART_END, partHead, readMultipart } from '../dicom/multipart.ts';
import { parseTag, tagToHex } from '../dicom/tag.ts';
import { TAG } from '../dicom/tags.ts';
import { acceptFor, acceptHeader, accepts, acceptsPart, OFFERED, type MediaRange } from './content-negotiation.ts';
import {
  originalPath,
  requireStudy,
  refuseUpstreamError,
  savingSession,
  uidPath,
  unusable,
  type DeidentifiedView,
  type ResourcePath,
} from './deidentified-view.ts';
import {
  BadRequestError,
  NoFramesError,
  NotAcceptableError,
  ResourceRefusedError,
  UnknownResourceError,
  UpstreamUnusableError,
} from './errors.ts';
import type { UpstreamResponse } from './upstream.ts';
import { jsonArrayItems } from './json-array-stream.ts';
import { endBody, writeChunk } from './response-writer.ts';
import { withStreamLifetime, type StreamLifetime } from './stream-lifetime.ts';

/** The attributes frames are cut from (PS3.3 C.7.6.3, PS3.18 10.4.1.1.4). */
const PIXEL_DATA_TAGS = [TAG.PixelData, TAG.FloatPixelData, TAG.DoubleFloatPixelData] as const;
/** PS3.18 8.7.3.3-8.7.3.5: the media types of frames and bulkdata (uncompressed, image, video). */
const PIXEL_MEDIA_TYPE = /^(application\/octet-stream|image\/[a-z0-9.+-]+|video\/[a-z0-9.+-]+)\s*(;|$)/i;

/** The PACS answered in a media type the caller did not accept: 406, its body unread (RFC 9110 15.5.7). */
function requireAccepted(ranges: MediaRange[] | undefined, upstreamRes: UpstreamResponse, mediaType: string): void {
  if (accepts(ranges, mediaType)) return;
  upstreamRes.body.resume();
  throw new NotAcceptableError(mediaType.replace(/;\s*boundary=("[^"]*"|[^;]*)/i, ''));
}

export interface RetrieveRequest {
  /** Pseudonymous identifiers from the path. */
  path: ResourcePath;
  /**
   * Below the deepest UID, rebuilt from validated path parameters (routes.ts `fillPath`): '' |
   * '/metadata' | '/frames/1,2' | '/bulk/7FE00010' | '/rendered' | '/thumbnail' | …
   */
  resource: string;
  /** The bulkdata tag path (RetrieveBulkdata only), as validated segments. */
  bulk?: readonly string[];
  /** Allow-listed query parameters, re-encoded (`retrieveQuery`), with '?', or ''. */
  query: string;
  /** The caller's public DICOMweb base, for URLs the gateway issues. */
  publicBase: string;
}

/** PS3.18 8.3.5.1 rendered-resource parameters a restricted role may pass, each with its grammar. */
const RENDERED_PARAMETERS: Readonly<Record<string, RegExp>> = {
  quality: /^(100|[1-9][0-9]?)$/,
  viewport: /^[0-9]{1,5}(,-?[0-9]{1,5}){1,5}$/,
  window: /^-?[0-9]{1,7}(\.[0-9]{1,6})?,[0-9]{1,7}(\.[0-9]{1,6})?(,(linear|linear-exact|sigmoid))?$/i,
};

/**
 * The query a restricted role's retrieval sends upstream: only allow-listed keys with validated values,
 * re-encoded; anything else is refused, never forwarded. PS3.18 8.3.5.1.1 `annotation` asks the PACS
 * to burn patient or technique text into the pixels: refused for a restricted role.
 */
export function retrieveQuery(rendered: boolean, rawQuery: string): string {
  if (rawQuery === '') return '';
  const out = new URLSearchParams();
  for (const [key, value] of new URLSearchParams(rawQuery)) {
    if (key === 'annotation' && rendered) throw new ResourceRefusedError('DEID_ANNOTATION_REFUSED', 'rendered annotations are not offered to this role');
    const grammar = rendered ? RENDERED_PARAMETERS[key] : undefined;
    if (grammar === undefined) throw new BadRequestError('WADO_BAD_PARAMETER', 'a query parameter this resource does not take');
    if (out.has(key) || !grammar.test(value)) throw new BadRequestError('WADO_BAD_PARAMETER', `the ${key} parameter is not valid`);
    out.set(key, value);
  }
  const text = out.toString();
  return text ? `?${text}` : '';
}

async function fetchUpstream(view: DeidentifiedView, req: IncomingMessage, lifetime: StreamLifetime, pathAndQuery: string, accept?: string) {
  const upstreamRes = await lifetime.send(view.upstream, {
    method: 'GET',
    pathAndQuery,
    headers: { accept: accept ?? acceptHeader(req.headers.accept) },
  });
  if (upstreamRes.statusCode >= 300) refuseUpstreamError(upstreamRes);
  return upstreamRes;
}

/** `…/metadata` at study, series or instance level (PS3.18 10.4.1.1.2), de-identified per dataset. */
export function retrieveMetadata(view: DeidentifiedView, req: IncomingMessage, res: ServerResponse, r: RetrieveRequest): Promise<void> {
  return withStreamLifetime(res, (lifetime) => metadata(view, req, res, r, lifetime));
}

async function metadata(view: DeidentifiedView, req: IncomingMessage, res: ServerResponse, r: RetrieveRequest, lifetime: StreamLifetime) {
  const { chosen: mediaType } = acceptFor(req, OFFERED.json);
  const original = await originalPath(view, r.path);
  const upstreamRes = await fetchUpstream(view, req, lifetime, `${uidPath(original)}/metadata`, 'application/dicom+json');
  const { session, flush, makeDurable } = savingSession(view);
  let first = true;
  try {
    for await (const item of jsonArrayItems(upstreamRes.body, view.maxJsonDatasetBytes)) {
      requireStudy(original, (item as DicomJsonDataset)[tagToHex(TAG.StudyInstanceUID)]?.Value?.[0]);
      view.membership.learn(item as DicomJsonDataset); // frames and bulkdata of it need not be located again
      const deidentified = deidentifyJson(session, item as DicomJsonDataset, {
        bulkDataURI: (uri, ref) => bulkUriFor(uri, ref, view.policy),
      });
      fixBulkDataUris(deidentified, r.publicBase);
      await flush(); // PS3.15 pseudonyms are saved before the caller can see them
      if (first) {
        res.statusCode = 200;
        res.setHeader('content-type', mediaType);
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
    res.setHeader('content-type', mediaType);
    endBody(res, '[]');
    return;
  }
  endBody(res, ']');
}

/**
 * Whether the profile keeps the bulk value at `tags` unchanged: the tag of each enclosing sequence
 * (outermost first) and the value's own tag last. Every sequence level must be one the profile recurses
 * into and the value one it keeps, under every VR PS3.6 allows it, since the value is not read here
 * (PS3.15 E.1.1: the actions apply inside sequence items too). It is the same `decide` the metadata
 * and Part 10 paths use. The metadata advertises a BulkDataURI only when this holds, and
 * RetrieveBulkdata serves only then: every URI the researcher is given resolves, and nothing the profile
 * removes, empties or replaces is advertised or served. Private attributes never hold (their creator is
 * not known at retrieval), nor do attributes outside the dictionary.
 */
export function bulkKept(policy: DeidPolicy, tags: readonly number[]): boolean {
  if (tags.length === 0) return false;
  const session = createSession(policy);
  session.beginDataset(undefined);
  return tags.every((tag, level) => {
    const leaf = level === tags.length - 1;
    const vrs = lookup(tag)?.vrs ?? [];
    if (vrs.length === 0 || (!leaf && !vrs.includes('SQ'))) return false;
    const path = tags.slice(0, level);
    return (leaf ? vrs : ['SQ']).every((vr) => session.decide({ tag, vr, path }, undefined).op === (leaf ? 'keep' : 'recurse'));
  });
}

/**
 * A RetrieveBulkdata path (`{tag}` or `{sequence tag}/{item}/…/{tag}`, as Orthanc writes nested ones)
 * as its tags, or undefined when it is not one.
 */
export function bulkTagPath(segments: readonly string[]): number[] | undefined {
  if (segments.length % 2 === 0) return undefined;
  const tags: number[] = [];
  for (const [i, segment] of segments.entries()) {
    if (i % 2 === 1) {
      if (!/^[0-9]{1,6}$/.test(segment)) return undefined;
      continue;
    }
    const tag = /^[0-9A-Fa-f]{8}$/.test(segment) ? parseTag(segment) : undefined;
    if (tag === undefined) return undefined;
    tags.push(tag);
  }
  return tags;
}

/**
 * A bulk tag path in one spelling (upper-case tags, item numbers without leading zeros), so that the
 * path a BulkDataURI advertises and the path a request names compare equal.
 */
function canonicalBulkPath(segments: readonly string[], tags: readonly number[]): string {
  return segments.map((s, i) => (i % 2 === 0 ? tagToHex(tags[i / 2] as number) : String(Number(s)))).join('/');
}

/** The placeholder set by `bulkUriFor`; the UIDs are filled in once the dataset is de-identified. */
const BULK_PLACEHOLDER = '\u0000deid-bulk\u0000';

/**
 * The gateway's BulkDataURI (PS3.18 F.2.6) for one the PACS gave, or undefined to leave the element
 * out. Orthanc writes …/instances/{uid}/bulk/{tag path}: only the tag path is kept (never the original
 * UIDs), and only when it names this very element and `bulkKept` holds for it.
 */
function bulkUriFor(uri: string, ref: ElementRef, policy: DeidPolicy): string | undefined {
  const match = /\/instances\/[^/]+\/(bulk|bulkdata)\/([0-9A-Za-z/]+)$/.exec(uri);
  const segments = match?.[2]?.split('/');
  const tags = segments && bulkTagPath(segments);
  const own = [...ref.path, ref.tag];
  if (!match || !segments || !tags || tags.length !== own.length || tags.some((tag, i) => tag !== own[i])) return undefined;
  if (!bulkKept(policy, tags)) return undefined;
  return `${BULK_PLACEHOLDER}/${match[1]}/${canonicalBulkPath(segments, tags)}`;
}

/** Fills the de-identified UIDs of the dataset into its BulkDataURIs, at every depth. */
function fixBulkDataUris(dataset: DicomJsonDataset, publicBase: string): void {
  const study = dataset[tagToHex(TAG.StudyInstanceUID)]?.Value?.[0];
  const series = dataset[tagToHex(TAG.SeriesInstanceUID)]?.Value?.[0];
  const instance = dataset[tagToHex(TAG.SOPInstanceUID)]?.Value?.[0];
  const base =
    typeof study === 'string' && typeof series === 'string' && typeof instance === 'string'
      ? `${publicBase}/studies/${study}/series/${series}/instances/${instance}`
      : undefined;
  const visit = (ds: DicomJsonDataset) => {
    for (const [key, element] of Object.entries(ds)) {
      if (element.BulkDataURI?.startsWith(BULK_PLACEHOLDER)) {
        // Without the instance's UIDs the URI cannot be made: the element is left out, not shown empty.
        if (base === undefined) delete ds[key];
        else element.BulkDataURI = `${base}${element.BulkDataURI.slice(BULK_PLACEHOLDER.length)}`;
      }
      if (element.vr === 'SQ') for (const item of element.Value ?? []) visit(item as DicomJsonDataset);
    }
  };
  visit(dataset);
}

/**
 * Study, series or instance retrieval (PS3.18 10.4.1.1.1): the upstream multipart/related body is read
 * part by part; each Part 10 part is rewritten as it streams, in the transfer syntax the caller's
 * Accept negotiated, and framed anew (the upstream part headers, which name original UIDs, are dropped).
 */
export function retrieveInstances(view: DeidentifiedView, req: IncomingMessage, res: ServerResponse, r: RetrieveRequest): Promise<void> {
  return withStreamLifetime(res, (lifetime) => instances(view, req, res, r, lifetime));
}

async function instances(view: DeidentifiedView, req: IncomingMessage, res: ServerResponse, r: RetrieveRequest, lifetime: StreamLifetime) {
  const { ranges } = acceptFor(req, OFFERED.instances);
  const original = await originalPath(view, r.path);
  const upstreamRes = await fetchUpstream(view, req, lifetime, `${uidPath(original)}${r.query}`);
  const contentType = multipartTypeOf(upstreamRes);
  requireAccepted(ranges, upstreamRes, contentType);
  const boundary = newBoundary();
  const { session, flush, makeDurable } = savingSession(view);
  let started = false;
  try {
    for await (const part of readMultipart(upstreamRes.body, boundaryFrom(contentType))) {
      const partType = part.headers['content-type'] ?? 'application/dicom';
      if (!/^application\/dicom(\s*;|$)/i.test(partType)) throw new UpstreamUnusableError('a part is not application/dicom');
      if (!acceptsPart(ranges, partType)) throw new NotAcceptableError(partType);
      const { output } = rewritePart10(part.body, session, {
        maxHeaderBytes: view.maxHeaderBytes,
        admitStudy: (uid) => requireStudy(original, uid),
      });
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
  endBody(res, closeDelimiter(boundary));
}

/**
 * Frames (PS3.18 10.4.1.1.4) and bulkdata (10.4.1.1.5) pass through untouched once the instance is known
 * to be in scope and the profile keeps the value unchanged (`bulkKept`; frames: the Pixel Data); the
 * multipart framing is rebuilt so no upstream part header reaches the caller. Bulkdata of anything the
 * profile removes, empties or replaces: 404. Frames of an instance without Pixel Data: 404
 * DICOMWEB_NO_FRAMES.
 */
export function retrievePixels(view: DeidentifiedView, req: IncomingMessage, res: ServerResponse, r: RetrieveRequest): Promise<void> {
  return withStreamLifetime(res, (lifetime) => pixels(view, req, res, r, lifetime));
}

async function pixels(view: DeidentifiedView, req: IncomingMessage, res: ServerResponse, r: RetrieveRequest, lifetime: StreamLifetime) {
  const { ranges } = acceptFor(req, OFFERED.pixels);
  const tags = r.bulk === undefined ? undefined : bulkTagPath(r.bulk);
  if (r.bulk !== undefined) {
    if (tags === undefined || !bulkKept(view.policy, tags)) throw new UnknownResourceError('bulkdata');
  } else if (!PIXEL_DATA_TAGS.every((tag) => bulkKept(view.policy, [tag]))) {
    throw new NoFramesError(); // the profile removes or replaces Pixel Data: the researcher's instance has none
  }
  const original = await originalPath(view, r.path);
  // Bulkdata other than Pixel Data is served only where the instance's own de-identified metadata
  // advertises it: the element's real VR and value decide there (a misencoded or over-long value is
  // removed or refused), not the dictionary's VR alone.
  if (r.bulk !== undefined && tags !== undefined && !isPixelData(tags)) {
    if (!(await advertisesBulk(view, lifetime, original, canonicalBulkPath(r.bulk, tags)))) throw new UnknownResourceError('bulkdata');
  }
  const upstreamRes = await lifetime.send(view.upstream, {
    method: 'GET',
    pathAndQuery: `${uidPath(original)}${r.resource}${r.query}`,
    headers: { accept: acceptHeader(req.headers.accept) },
  });
  if (upstreamRes.statusCode >= 300) {
    // Orthanc answers 500 for the frames of an SR, a PDF, an RTSTRUCT or a PR. That is not trusted as
    // such: the instance's own metadata says whether it has Pixel Data; if it has, the status stands.
    if (r.bulk === undefined && upstreamRes.statusCode >= 400 && (await hasNoPixelData(view, lifetime, original))) {
      upstreamRes.body.resume();
      throw new NoFramesError();
    }
    refuseUpstreamError(upstreamRes);
  }
  const contentType = multipartTypeOf(upstreamRes);
  requireAccepted(ranges, upstreamRes, contentType);
  const boundary = newBoundary();
  let started = false;
  try {
    for await (const part of readMultipart(upstreamRes.body, boundaryFrom(contentType))) {
      const partType = part.headers['content-type'] ?? 'application/octet-stream';
      // PS3.18 8.7.3: frames and bulkdata are octet streams or pixel media types. A part of any other
      // type (a whole `application/dicom` instance, DICOM JSON) would pass untouched: refused.
      if (!PIXEL_MEDIA_TYPE.test(partType)) throw new UpstreamUnusableError('a frame or bulkdata part is not pixel data');
      // Each part's own type too: a part in a media type the caller did not accept is never sent.
      if (!acceptsPart(ranges, partType)) throw new NotAcceptableError(partType);
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
  endBody(res, closeDelimiter(boundary));
}

/** A bulkdata path naming top-level Pixel Data (or its float forms), which frames pass untouched too. */
function isPixelData(tags: readonly number[]): boolean {
  return tags.length === 1 && (PIXEL_DATA_TAGS as readonly number[]).includes(tags[0] as number);
}

/**
 * Whether the instance's metadata, de-identified exactly as `/metadata` serves it, holds a BulkDataURI
 * for this tag path (`canonicalBulkPath`). Anything unreadable counts as no.
 */
async function advertisesBulk(view: DeidentifiedView, lifetime: StreamLifetime, original: ResourcePath, wanted: string): Promise<boolean> {
  const items = await instanceMetadata(view, lifetime, original);
  if (items === undefined) return false;
  const advertised = new Set<string>();
  try {
    for await (const item of items) {
      const session = createSession(view.policy); // never saved: nothing of it is shown
      const deidentified = deidentifyJson(session, item as DicomJsonDataset, { bulkDataURI: (uri, ref) => bulkUriFor(uri, ref, view.policy) });
      collectBulkPaths(deidentified, advertised);
    }
  } catch {
    return false;
  }
  return advertised.has(wanted);
}

/** The tag paths (`TAG/item/TAG…`) of the placeholder BulkDataURIs in a de-identified dataset. */
function collectBulkPaths(dataset: DicomJsonDataset, out: Set<string>): void {
  for (const element of Object.values(dataset)) {
    const uri = element.BulkDataURI;
    if (uri?.startsWith(BULK_PLACEHOLDER)) out.add(uri.slice(BULK_PLACEHOLDER.length).replace(/^\/(bulk|bulkdata)\//, ''));
    if (element.vr === 'SQ') for (const item of element.Value ?? []) collectBulkPaths(item as DicomJsonDataset, out);
  }
}

/**
 * Whether the PACS's metadata of the instance shows neither a Pixel Data attribute nor Rows (PS3.3
 * C.7.6.3): then it is no image and has no frames. Rows counts too because a PACS may leave out a Pixel
 * Data it could not parse (Orthanc does, for a Pixel Data encoded as UN) and still serve its frames.
 * False when the metadata cannot be had or read. Nothing of it reaches the caller.
 */
async function hasNoPixelData(view: DeidentifiedView, lifetime: StreamLifetime, original: ResourcePath): Promise<boolean> {
  const items = await instanceMetadata(view, lifetime, original);
  if (items === undefined) return false;
  try {
    for await (const item of items) {
      const dataset = item as DicomJsonDataset;
      return ![...PIXEL_DATA_TAGS, TAG.Rows].some((tag) => tagToHex(tag) in dataset);
    }
  } catch {
    return false; // unreadable: the PACS's own status stands
  }
  return false;
}

/**
 * The PACS's own metadata of an instance, for a decision the gateway takes on it: its items, read lazily
 * under the per-dataset cap, or undefined (the body drained) when the PACS does not answer 200.
 */
async function instanceMetadata(view: DeidentifiedView, lifetime: StreamLifetime, original: ResourcePath): Promise<AsyncIterable<Record<string, unknown>> | undefined> {
  const meta = await lifetime.send(view.upstream, {
    method: 'GET',
    pathAndQuery: `${uidPath(original)}/metadata`,
    headers: { accept: 'application/dicom+json' },
  });
  if (meta.statusCode !== 200) {
    meta.body.resume();
    return undefined;
  }
  return jsonArrayItems(meta.body, view.maxJsonDatasetBytes);
}

/** `/rendered` and `/thumbnail`: server-rendered pixels, relayed only when config allows it. */
export function retrieveRendered(view: DeidentifiedView, req: IncomingMessage, res: ServerResponse, r: RetrieveRequest): Promise<void> {
  return withStreamLifetime(res, (lifetime) => rendered(view, req, res, r, lifetime));
}

async function rendered(view: DeidentifiedView, req: IncomingMessage, res: ServerResponse, r: RetrieveRequest, lifetime: StreamLifetime) {
  if (!view.allowRendered) {
    throw new ResourceRefusedError('DEID_RENDERED_DISABLED', 'rendered images are not offered to this role');
  }
  const { ranges } = acceptFor(req, OFFERED.rendered);
  const original = await originalPath(view, r.path);
  const upstreamRes = await fetchUpstream(view, req, lifetime, `${uidPath(original)}${r.resource}${r.query}`);
  const contentType = String(upstreamRes.headers['content-type'] ?? '');
  if (!/^image\/(jpeg|png|gif)|^video\//i.test(contentType)) {
    upstreamRes.body.resume();
    throw new UpstreamUnusableError('rendered content is not an image');
  }
  requireAccepted(ranges, upstreamRes, contentType); // PS3.18 8.7.4: rendered media types
  res.statusCode = 200;
  res.setHeader('content-type', contentType);
  try {
    for await (const chunk of upstreamRes.body) await writeChunk(res, chunk as Buffer);
  } catch (error) {
    throw unusable(error);
  }
  endBody(res);
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

// PS3.18 10.4 Retrieve (WADO-RS) for a restricted role: every byte the caller gets has passed through
// deid/. Instances go through the streaming Part 10 rewriter part by part; metadata through the DICOM
// JSON de-identifier; frames, and the bulkdata of attributes the profile keeps unchanged, pass untouched
// once the instance is in scope. Each answer is in a media type the caller's Accept allows, or 406.
//
// Pixel safety (issue 16), under an active pixel policy (deid/pixel-policy.ts), the same on every route:
//   - keep: as above, Pixel Data byte-identical;
//   - withhold: absent from study and series retrieval and metadata; asked for by itself (instance,
//     metadata, frames, bulkdata, rendered) 404 DICOMWEB_INSTANCE_WITHHELD, decided from the census
//     (pixel-census.ts) before the PACS is asked for it, the rewriter's own check the second line;
//   - the verdict is the strictest of every view of the instance: its census entry (an instance no census
//     lists is withheld), its own metadata before its pixels are relayed by itself (a PACS may leave
//     attributes out of a search answer), and its file's header as the rewriter reads it;
//   - study and series rendered: refused (403) whatever is in scope, so the answer reveals nothing;
//   - redact: the rewriter blanks the rule's rectangles as the instance streams; metadata is de-identified
//     with the verdict (Burned In Annotation NO, Photometric Interpretation as decoded); each frame goes
//     through pixel/ and leaves native (or as pixel/ re-encodes it); Pixel Data bulkdata and rendered
//     images are refused (403), since the PACS would give the unredacted pixels.
//
// OCR-assisted redaction (issue 18), under `pixels.ocr: true`: an instance whose verdict is a withhold OCR may
// replace (`ocr` true: risky, no rule, a blankable layout) has its text regions found (text-regions.ts: per
// series and layout, cached, single flight) before anything of it is sent, and its verdict becomes a
// redaction of those regions (deid/ withTextRegions), carried out as a rule's is, on every route above.
// If the regions cannot be had, it stays withheld. Rendered images and the Pixel Data bulkdata of such an
// instance are refused (403) without OCR being run: the PACS would give the unredacted pixels.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createSession, deidentifyJson, type DeidPolicy, type DeidSession, type DicomJsonDataset, type ElementRef } from '../deid/deidentify.ts';
import { rewritePart10, type Part10Policy } from '../deid/rewrite-part10.ts';
import { PixelWithheldError } from '../deid/errors.ts';
import { OCR_RULE, ocrMayRedact, strictestVerdict, withTextRegions, type AttributeReader, type PixelVerdict, type Rectangle } from '../deid/pixel-policy.ts';
import { redactFrame } from '../pixel/frame-redaction.ts';
import { PixelError } from '../pixel/errors.ts';
import { DEFAULT_MAX_FRAME_BYTES, frameByteLength, frameGeometry, type FrameGeometry } from '../pixel/geometry.ts';
import { EXPLICIT_VR_LITTLE_ENDIAN } from '../dicom/transfer-syntax.ts';
import { lookup } from '../dicom/dictionary.ts';
import { boundaryFrom, closeDelimiter, mediaTypeParameter, newBoundary, PART_END, partHead, readMultipart } from '../dicom/multipart.ts';
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
  InstanceWithheldError,
  NoFramesError,
  NotAcceptableError,
  ResourceRefusedError,
  TextRegionsUnavailableError,
  UnknownResourceError,
  UpstreamUnusableError,
} from './errors.ts';
import { layoutKey, retrieveFrames } from './text-regions.ts';
import type { UpstreamResponse } from './upstream.ts';
import { jsonArrayItems } from './json-array-stream.ts';
import { endBody, writeChunk } from './response-writer.ts';
import { withStreamLifetime, type StreamLifetime } from './stream-lifetime.ts';
import { jsonReader, studyPixels, type PixelSummary, type StudyPixels } from './pixel-census.ts';

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
  const pixelPolicy = view.policy.pixels;
  // An instance asked by itself is checked against the census first, so the PACS is not asked for it.
  // Each dataset's verdict is the strictest of its own attributes and its study's census: what QIDO
  // hides is hidden here too, and an instance no census lists is withheld.
  let census: StudyPixels | undefined;
  let regions: TextRegionsByInstance = new Map();
  if (pixelPolicy.active) {
    if (original.instance !== undefined) {
      const { verdict } = await instancePixels(view, lifetime, original, { ownMetadata: false, ocr: false });
      if (!ocrMayRedact(verdict)) refuseWithheld(view, verdict);
    }
    census = await studyCensus(view, lifetime, original);
    // Issue 18: OCR's regions for the instances in scope it may redact (found once per series and layout).
    if (pixelPolicy.ocr) regions = await scopeTextRegions(view, lifetime, original, census);
  }
  const upstreamRes = await fetchUpstream(view, req, lifetime, `${uidPath(original)}/metadata`, 'application/dicom+json');
  const { session, flush, makeDurable } = savingSession(view);
  let first = true;
  try {
    for await (const item of jsonArrayItems(upstreamRes.body, view.maxJsonDatasetBytes)) {
      requireStudy(original, (item as DicomJsonDataset)[tagToHex(TAG.StudyInstanceUID)]?.Value?.[0]);
      view.membership.learn(item as DicomJsonDataset); // frames and bulkdata of it need not be located again
      // The verdict from the dataset itself (every attribute the policy reads is in it): omitted when withheld.
      const found = regionsOfDataset(regions, item as DicomJsonDataset);
      const verdict =
        census &&
        strictestVerdict(
          withRegions(pixelPolicy.verdict(jsonReader(item as DicomJsonDataset)), found),
          withRegions(censusVerdictOf(census, item as DicomJsonDataset), found),
        );
      if (verdict?.action === 'withhold') {
        refuseWithheld(view, verdict, original.instance === undefined);
        continue;
      }
      if (verdict?.action === 'redact') view.observePixels?.('redacted', 'rule', 1);
      const redacted = verdict?.action === 'redact';
      const deidentified = deidentifyJson(session, item as DicomJsonDataset, {
        // A redacted instance's Pixel Data is served by its frames only: no BulkDataURI for it (every one given resolves).
        bulkDataURI: (uri, ref) => (redacted && isPixelData([...ref.path, ref.tag]) ? undefined : bulkUriFor(uri, ref, view.policy)),
        ...(verdict !== undefined ? { pixelVerdict: verdict } : {}),
        wholeInstance: true, // one instance's whole header: its text is cleaned of its identities (Clean options)
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
  // Pixel safety: an instance asked by itself and withheld is refused before the PACS is asked (census,
  // then its own metadata). Each file the rewriter reads is judged by the strictest of its own header and
  // what was decided before it (boundPolicy): withheld in QIDO, withheld here.
  const pixelPolicy = view.policy.pixels;
  let known: KnownVerdicts | undefined;
  let regions: TextRegionsByInstance = new Map();
  if (pixelPolicy.active) {
    let mayRedact: boolean;
    if (original.instance !== undefined) {
      const { verdict, regions: found } = await instancePixels(view, lifetime, original, { ownMetadata: true });
      refuseWithheld(view, verdict);
      mayRedact = verdict.action === 'redact';
      if (found !== undefined) regions = new Map([[`${original.series}/${original.instance}`, found]]);
      known = (series, sop) => (series === original.series && sop === original.instance ? verdict : undefined);
    } else {
      const census = await studyCensus(view, lifetime, original);
      const summary = original.series === undefined ? census.study : census.seriesSummary(original.series);
      mayRedact = (summary?.redacted ?? 0) + (summary?.ocrEligible ?? 0) > 0;
      // Issue 18: OCR's regions for the instances in scope it may redact, before anything is sent.
      if (pixelPolicy.ocr) regions = await scopeTextRegions(view, lifetime, original, census);
      known = (series, sop) => withRegions(census.verdictOf(series, sop), regions.get(`${series}/${sop}`));
    }
    // A redacted encapsulated instance is written native (Explicit VR Little Endian): a caller who accepts
    // no native syntax gets 406 before any byte.
    if (mayRedact && !NATIVE_SYNTAXES.some((ts) => acceptsPart(ranges, `application/dicom; transfer-syntax=${ts}`))) {
      throw new NotAcceptableError(`application/dicom; transfer-syntax=${EXPLICIT_VR_LITTLE_ENDIAN}`);
    }
  }
  const upstreamRes = await fetchUpstream(view, req, lifetime, `${uidPath(original)}${r.query}`);
  const contentType = multipartTypeOf(upstreamRes);
  requireAccepted(ranges, upstreamRes, contentType);
  const boundary = newBoundary();
  const { session, flush, makeDurable } = savingSession(view);
  // Under a pixel policy the parts name the transfer syntax each was written in, which a redaction can
  // change: the response's own type names none (PS3.18 8.7.3.5.2), but for one instance, its part's.
  const responseType = (written: string | undefined) =>
    known === undefined ? withBoundary(contentType, boundary) : `multipart/related; type="application/dicom"${written ? `; transfer-syntax=${written}` : ''}; boundary=${boundary}`;
  let redactions = 0;
  let ocrRedactions = 0;
  let started = false;
  try {
    for await (const part of readMultipart(upstreamRes.body, boundaryFrom(contentType))) {
      const partType = part.headers['content-type'] ?? 'application/dicom';
      if (!/^application\/dicom(\s*;|$)/i.test(partType)) throw new UpstreamUnusableError('a part is not application/dicom');
      if (!acceptsPart(ranges, partType)) throw new NotAcceptableError(partType);
      const body = drainable(part.body);
      const mark = session.pairCount;
      const policy = known === undefined ? undefined : boundPolicy(session, known, regions);
      const { output } = rewritePart10(body.source, policy ?? session, {
        maxHeaderBytes: view.maxHeaderBytes,
        admitStudy: (uid) => requireStudy(original, uid),
      });
      let head = true;
      try {
        for await (const chunk of output) {
          await flush();
          if (head) {
            // The first chunk is the File Meta the rewriter wrote (part10-writer.ts): its Transfer Syntax
            // UID is what this part is in. Each part's own type is checked against the caller's Accept.
            const written = policy === undefined ? undefined : writtenTransferSyntax(chunk);
            const label = written === undefined ? partType : `application/dicom; transfer-syntax=${written}`;
            if (!acceptsPart(ranges, label)) throw new NotAcceptableError(label);
            if (!started) {
              res.statusCode = 200;
              res.setHeader('content-type', responseType(original.instance !== undefined ? written : undefined));
              started = true;
            }
            await writeChunk(res, partHead(boundary, { 'Content-Type': label }));
            head = false;
          }
          await writeChunk(res, chunk);
        }
      } catch (error) {
        // The rewriter withholds an instance before any byte of it (the second line behind the census):
        // that part is skipped, its pseudonyms forgotten, the rest of it read and dropped.
        const withheld = pixelWithheld(error);
        if (withheld === undefined || !head) throw error;
        session.discardPairsSince(mark);
        view.observePixels?.('withheld', withheld.detail === UNLISTED.detail ? 'unlisted' : withheld.reason, 1);
        if (original.instance !== undefined) throw new InstanceWithheldError(withheld.reason, { cause: error });
        await body.drain();
        continue;
      }
      if (policy?.verdict?.action === 'redact') {
        if (byOcr(policy.verdict)) ocrRedactions++;
        else redactions++;
      }
      await writeChunk(res, PART_END);
    }
    await makeDurable();
    if (redactions > 0) view.observePixels?.('redacted', 'rule', redactions);
    if (ocrRedactions > 0) {
      view.observePixels?.('redacted', OCR_RULE, ocrRedactions);
      view.textRegions?.observe.outcome?.('redacted', OCR_RULE, ocrRedactions);
    }
  } catch (error) {
    throw unusable(error);
  }
  if (!started) {
    res.statusCode = 200;
    res.setHeader('content-type', responseType(undefined));
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
  const pixelPolicy = view.policy.pixels;
  if (pixelPolicy.active) {
    // The Pixel Data bulkdata of an instance OCR may redact is refused as a redacted one's is, without OCR.
    const pixelBulk = tags !== undefined && isPixelData(tags);
    const { verdict, read } = await instancePixels(view, lifetime, original, { ownMetadata: true, ocr: !pixelBulk });
    if (pixelBulk && ocrMayRedact(verdict)) throw new ResourceRefusedError('DEID_BULKDATA_REDACTED', 'the Pixel Data of a redacted instance is served as frames only');
    refuseWithheld(view, verdict);
    if (verdict.action === 'redact') {
      if (r.bulk === undefined) return redactedFrames(view, req, res, r, lifetime, original, verdict, read);
      // The PACS's Pixel Data is the unredacted one (the metadata advertises no BulkDataURI for it).
      if (tags !== undefined && isPixelData(tags)) throw new ResourceRefusedError('DEID_BULKDATA_REDACTED', 'the Pixel Data of a redacted instance is served as frames only');
    }
  }
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
  // The PACS renders from the stored pixels: never relayed for an instance redacted or withheld.
  if (view.policy.pixels.active) {
    if (original.instance !== undefined) {
      // An instance OCR may redact: refused as a redacted one is, without OCR (the PACS renders the stored pixels).
      const { verdict } = await instancePixels(view, lifetime, original, { ownMetadata: true, ocr: false });
      if (ocrMayRedact(verdict)) throw new ResourceRefusedError('DEID_RENDERED_REDACTED', 'rendered images of a redacted instance are not offered');
      refuseWithheld(view, verdict);
      if (verdict.action === 'redact') throw new ResourceRefusedError('DEID_RENDERED_REDACTED', 'rendered images of a redacted instance are not offered');
    } else {
      // A study or series: refused whatever it holds, so the answer says nothing of what QIDO hides.
      // Only one the researcher cannot see at all is unknown, as everywhere.
      const scope = await scopePixels(view, lifetime, original);
      if (scope === undefined || scope.shown === 0) throw new UnknownResourceError(original.series === undefined ? 'study' : 'series');
      throw new ResourceRefusedError('DEID_RENDERED_UNAVAILABLE', 'rendered images of a study or series are not offered under a pixel policy');
    }
  }
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

// --- pixel safety (issue 16) --------------------------------------------------------------------

/**
 * The verdict of the one instance a path names, from its study's census (pixel-census.ts); a cached
 * census that does not list it is read again once. Not listed at all: the PACS does not have it there (404).
 * `ownMetadata` (the routes that relay its pixels): unless the census withholds it, the instance's own
 * metadata is read too (a PACS may leave Burned In Annotation … out of a search answer even when asked),
 * the verdict is the strictest of both, and `read` (the frame geometry) is the metadata's.
 */
async function instancePixels(
  view: DeidentifiedView,
  lifetime: StreamLifetime,
  original: ResourcePath,
  { ownMetadata, ocr = true }: { ownMetadata: boolean; ocr?: boolean },
): Promise<{ verdict: PixelVerdict; read: AttributeReader; regions?: readonly Rectangle[] }> {
  const policy = view.policy.pixels;
  const { study, series, instance } = original;
  if (study === undefined || series === undefined || instance === undefined) throw new UnknownResourceError('instance');
  const send = (request: Parameters<StreamLifetime['send']>[1]) => lifetime.send(view.upstream, request);
  for (const fresh of [false, true]) {
    const instances = await view.census.instancesOf(study, policy.attributeTags, send, { fresh });
    const found = instances.find((i) => i.series === series && i.sop === instance);
    if (!found) continue;
    const listed = policy.verdict(found.read);
    const views = [listed];
    let read = found.read;
    // A withhold OCR may replace is checked against the instance's own metadata too (it may be stricter).
    if (ownMetadata && (listed.action !== 'withhold' || ocrMayRedact(listed))) {
      read = await view.census.instanceAttributes({ study, series, sop: instance }, policy.attributeTags, send);
      views.push(policy.verdict(read));
    }
    const verdict = views.reduce(strictestVerdict);
    // Issue 18: the regions are applied to each view before they are combined (a rule's and OCR's unioned).
    if (!ocr || !ocrMayRedact(verdict)) return { verdict, read };
    const regions = await textRegionsOf(view, lifetime, { study, series, sop: instance }, read);
    if (regions === undefined) return { verdict, read };
    return { verdict: views.map((v) => withTextRegions(v, regions)).reduce(strictestVerdict), read, regions };
  }
  throw new UnknownResourceError('instance');
}

/** OCR's regions by `series/sop` (original UIDs), for the instances that have them. */
type TextRegionsByInstance = ReadonlyMap<string, readonly Rectangle[]>;

/** A verdict with OCR's regions applied (deid/ withTextRegions), when there are regions. */
function withRegions<V extends PixelVerdict | undefined>(verdict: V, regions: readonly Rectangle[] | undefined): V {
  return (verdict === undefined || regions === undefined ? verdict : withTextRegions(verdict, regions)) as V;
}

function regionsOfDataset(regions: TextRegionsByInstance, dataset: DicomJsonDataset): readonly Rectangle[] | undefined {
  const series = dataset[tagToHex(TAG.SeriesInstanceUID)]?.Value?.[0];
  const sop = dataset[tagToHex(TAG.SOPInstanceUID)]?.Value?.[0];
  return typeof series === 'string' && typeof sop === 'string' ? regions.get(`${series}/${sop}`) : undefined;
}

/** Whether a redaction's rectangles are (or include) OCR's. */
function byOcr(verdict: PixelVerdict): boolean {
  return verdict.action === 'redact' && verdict.rule.split(' + ').includes(OCR_RULE);
}

/**
 * Issue 18: OCR's regions of one instance (original UIDs; `read` its layout and geometry), or undefined when
 * they cannot be had (no detector, a timeout, a full queue, frames the PACS does not give or that cannot be
 * decoded): the instance then stays withheld (fail closed), and the failure is counted by its code.
 */
async function textRegionsOf(
  view: DeidentifiedView,
  lifetime: StreamLifetime,
  uids: { study: string; series: string; sop: string },
  read: AttributeReader,
): Promise<readonly Rectangle[] | undefined> {
  try {
    if (view.textRegions === undefined) throw new TextRegionsUnavailableError('OCR_NO_DETECTOR');
    return await view.textRegions.regionsOf(uids, read, (request) => lifetime.send(view.upstream, request));
  } catch (error) {
    const reason = error instanceof TextRegionsUnavailableError ? error.reason : 'OCR_FRAMES_UNAVAILABLE';
    view.textRegions?.observe.outcome?.('withheld', reason, 1);
    return undefined;
  }
}

/**
 * OCR's regions for every instance in scope (the path's study, series or instance) whose census verdict is
 * a withhold OCR may replace, one after the other; a layout whose detection failed is not tried again for
 * this request. An instance without regions is absent: it stays withheld.
 */
async function scopeTextRegions(view: DeidentifiedView, lifetime: StreamLifetime, original: ResourcePath, census: StudyPixels): Promise<TextRegionsByInstance> {
  const out = new Map<string, readonly Rectangle[]>();
  const study = original.study;
  if (study === undefined) return out;
  const failed = new Set<string>();
  for (const candidate of census.ocrCandidates(original.series)) {
    if (original.instance !== undefined && candidate.sop !== original.instance) continue;
    const key = layoutKey(candidate.series, candidate.read);
    if (failed.has(key)) {
      view.textRegions?.observe.outcome?.('withheld', 'OCR_LAYOUT_FAILED', 1);
      continue;
    }
    const regions = await textRegionsOf(view, lifetime, { study, series: candidate.series, sop: candidate.sop }, candidate.read);
    if (regions === undefined) failed.add(key);
    else out.set(`${candidate.series}/${candidate.sop}`, regions);
  }
  return out;
}

/** The census of the study a path names, under the view's pixel policy. */
async function studyCensus(view: DeidentifiedView, lifetime: StreamLifetime, original: ResourcePath): Promise<StudyPixels> {
  if (original.study === undefined) throw new UnknownResourceError('study');
  const policy = view.policy.pixels;
  const instances = await view.census.instancesOf(original.study, policy.attributeTags, (request) => lifetime.send(view.upstream, request));
  return studyPixels(policy, instances);
}

/** What a study or series path leaves, from its census; undefined: a series the census does not list. */
async function scopePixels(view: DeidentifiedView, lifetime: StreamLifetime, original: ResourcePath): Promise<PixelSummary | undefined> {
  const pixels = await studyCensus(view, lifetime, original);
  return original.series === undefined ? pixels.study : pixels.seriesSummary(original.series);
}

/** An instance no census lists (stored since, or placed elsewhere than its file says): withheld, fail closed. */
const UNLISTED: Extract<PixelVerdict, { action: 'withhold' }> = Object.freeze({ action: 'withhold', reason: 'unredactable', detail: 'unlisted' });

/** The census verdict of a dataset, by its own Series and SOP Instance UIDs; UNLISTED when it has none. */
function censusVerdictOf(census: StudyPixels, dataset: DicomJsonDataset): PixelVerdict {
  const series = dataset[tagToHex(TAG.SeriesInstanceUID)]?.Value?.[0];
  const sop = dataset[tagToHex(TAG.SOPInstanceUID)]?.Value?.[0];
  return (typeof series === 'string' && typeof sop === 'string' ? census.verdictOf(series, sop) : undefined) ?? UNLISTED;
}

/** The verdicts decided before a file is read (census; metadata), by original Series and SOP Instance UID. */
type KnownVerdicts = (series: string, sop: string) => PixelVerdict | undefined;

/**
 * The session the rewriter is given under a pixel policy: each file's verdict is the strictest of its own
 * header's (the session's pixelVerdict) and the one decided before, looked up by the file's own UIDs; a
 * file the lookup does not know is withheld (UNLISTED). `verdict`: the last one given (this part's).
 */
function boundPolicy(session: DeidSession, known: KnownVerdicts, regions: TextRegionsByInstance): Part10Policy & { readonly verdict: PixelVerdict | undefined } {
  let last: PixelVerdict | undefined;
  const text = (read: AttributeReader, tag: number) => {
    const v = read(tag)?.[0];
    return typeof v === 'string' ? v.trim() : undefined;
  };
  return {
    get verdict() {
      return last;
    },
    pixelVerdict(read) {
      const series = text(read, TAG.SeriesInstanceUID);
      const sop = text(read, TAG.SOPInstanceUID);
      const before = (series !== undefined && sop !== undefined ? known(series, sop) : undefined) ?? UNLISTED;
      // Issue 18: OCR's regions found for this instance apply to its own header's verdict too.
      const found = series !== undefined && sop !== undefined ? regions.get(`${series}/${sop}`) : undefined;
      last = strictestVerdict(withRegions(session.pixelVerdict(read), found), before);
      return last;
    },
    beginDataset: (originalPatientId, verdict, sopClassUid) => session.beginDataset(originalPatientId, verdict, sopClassUid),
    decide: (ref, value) => session.decide(ref, value),
    attributesToAdd: () => session.attributesToAdd(),
    setIdentities: (source) => session.setIdentities(source),
  };
}

/** Transfer syntaxes whose Pixel Data is native (PS3.5 A.1-A.3): a redaction leaves an instance in one. */
const NATIVE_SYNTAXES = ['1.2.840.10008.1.2', EXPLICIT_VR_LITTLE_ENDIAN, '1.2.840.10008.1.2.1.99', '1.2.840.10008.1.2.2'] as const;

/**
 * The Transfer Syntax UID (0002,0010) of the File Meta the rewriter wrote: `meta` is its first chunk,
 * preamble, "DICM" and the whole group 0002 in Explicit VR Little Endian (part10-writer.ts encodeFileMeta).
 * Anything else is refused.
 */
export function writtenTransferSyntax(meta: Buffer): string {
  if (meta.length < 132 || meta.toString('latin1', 128, 132) !== 'DICM') throw new UpstreamUnusableError('rewritten File Meta unreadable');
  for (let at = 132; at + 8 <= meta.length; ) {
    const group = meta.readUInt16LE(at);
    const element = meta.readUInt16LE(at + 2);
    if (group !== 0x0002) break;
    const vr = meta.toString('latin1', at + 4, at + 6);
    const long = ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN', 'UC', 'UR', 'OD', 'OL', 'OV', 'SV', 'UV'].includes(vr);
    if (long && at + 12 > meta.length) break;
    const length = long ? meta.readUInt32LE(at + 8) : meta.readUInt16LE(at + 6);
    const start = at + (long ? 12 : 8);
    if (start + length > meta.length) break;
    if (element === 0x0010) {
      const uid = meta.toString('latin1', start, start + length).replace(/[\0 ]+$/, '');
      if (/^[0-9]+(\.[0-9]+)*$/.test(uid)) return uid;
      break;
    }
    at = start + length;
  }
  throw new UpstreamUnusableError('rewritten File Meta names no transfer syntax');
}

/**
 * A withheld verdict refuses the instance (404 DICOMWEB_INSTANCE_WITHHELD), counted; `quiet`: only
 * counted (a dataset left out of a study or series answer).
 */
function refuseWithheld(view: DeidentifiedView, verdict: PixelVerdict, quiet = false): void {
  if (verdict.action !== 'withhold') return;
  view.observePixels?.('withheld', verdict.reason, 1);
  if (!quiet) throw new InstanceWithheldError(verdict.reason);
}

/** The rewriter's PixelWithheldError, itself or as a cause (at most a few levels down). */
function pixelWithheld(error: unknown): PixelWithheldError | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof PixelWithheldError) return e;
  }
  return undefined;
}

/**
 * A part body handed to a consumer that may stop reading it early (the rewriter, when it withholds the
 * instance): its stopping does not end the body, so `drain` can read the rest and the next part follow.
 */
function drainable(body: AsyncIterable<Buffer>): { source: AsyncIterable<Buffer>; drain(): Promise<void> } {
  const iterator = body[Symbol.asyncIterator]();
  return {
    source: {
      [Symbol.asyncIterator]: () => ({
        next: () => iterator.next(),
        return: async () => ({ done: true, value: undefined }),
      }),
    },
    async drain() {
      for (;;) if ((await iterator.next()).done) return;
    },
  };
}

/** What a redacted frame answer is (its parts name their own transfer syntax). */
const REDACTED_FRAMES_TYPE = 'multipart/related; type="application/octet-stream"';

/**
 * Frames of a redacted instance (PS3.18 10.4.1.1.4): each asked in its stored transfer syntax, blanked by
 * pixel/ inside the rule's rectangles, and sent as `application/octet-stream` in the transfer syntax
 * pixel/ gives back (native Explicit VR Little Endian for a decoded frame). A caller whose Accept allows
 * no such part (only a compressed syntax) gets 406 before any byte.
 */
async function redactedFrames(
  view: DeidentifiedView,
  req: IncomingMessage,
  res: ServerResponse,
  r: RetrieveRequest,
  lifetime: StreamLifetime,
  original: ResourcePath,
  verdict: Extract<PixelVerdict, { action: 'redact' }>,
  read: AttributeReader,
): Promise<void> {
  const { ranges } = acceptFor(req, OFFERED.pixels);
  if (!accepts(ranges, REDACTED_FRAMES_TYPE)) throw new NotAcceptableError(REDACTED_FRAMES_TYPE);
  let geometry: FrameGeometry;
  try {
    geometry = frameGeometry(read);
  } catch (cause) {
    // No frame layout to blank by: fail closed, as the rewriter does (unredactable).
    view.observePixels?.('withheld', 'unredactable', 1);
    throw new InstanceWithheldError('unredactable', { cause });
  }
  const ask = (accept: string) => lifetime.send(view.upstream, { method: 'GET', pathAndQuery: `${uidPath(original)}${r.resource}`, headers: { accept } });
  // Decoded by the PACS when it cannot cut the stored frames: native frames are blanked the same way, if
  // they are what the header says (below).
  const { res: upstreamRes, decoded } = await retrieveFrames(ask);
  if (upstreamRes.statusCode >= 300) refuseUpstreamError(upstreamRes);
  const contentType = multipartTypeOf(upstreamRes);
  // A frame as stored is at most its decoded size and a codec's overhead; anything larger is refused.
  const cap = Math.min(DEFAULT_MAX_FRAME_BYTES, 2 * frameByteLength(geometry) + 1024 * 1024);
  const boundary = newBoundary();
  let started = false;
  try {
    for await (const part of readMultipart(upstreamRes.body, boundaryFrom(contentType), { maxPartBytes: cap })) {
      const partType = part.headers['content-type'] ?? 'application/octet-stream';
      if (!PIXEL_MEDIA_TYPE.test(partType)) throw new UpstreamUnusableError('a frame part is not pixel data');
      // Asked as stored (`*`), a part names its transfer syntax; none named is refused, never guessed
      // (PS3.18 8.7.3.5.2). Decoded by the PACS: only Explicit VR Little Endian, exactly one frame of the
      // metadata's geometry, is taken (its planar layout and photometric are the header's only then).
      const syntax = mediaTypeParameter(partType, 'transfer-syntax');
      if (syntax === undefined || syntax === '*') throw new UpstreamUnusableError('a frame part names no transfer syntax');
      if (decoded && syntax !== EXPLICIT_VR_LITTLE_ENDIAN) throw new UpstreamUnusableError('a decoded frame part not in Explicit VR Little Endian');
      const chunks: Buffer[] = [];
      for await (const chunk of part.body) chunks.push(chunk);
      if (decoded && chunks.reduce((n, c) => n + c.length, 0) !== frameByteLength(geometry)) {
        throw new UpstreamUnusableError('a decoded frame part is not one frame long');
      }
      let redacted: Awaited<ReturnType<typeof redactFrame>>;
      try {
        redacted = await redactFrame(Buffer.concat(chunks), syntax, geometry, verdict.rectangles);
      } catch (cause) {
        // A frame that cannot be decoded and blanked withholds the instance (fail closed), if nothing was sent yet.
        if (started || !(cause instanceof PixelError)) throw cause;
        view.observePixels?.('withheld', 'unredactable', 1);
        throw new InstanceWithheldError('unredactable', { cause });
      }
      const outType = `application/octet-stream; transfer-syntax=${redacted.transferSyntaxUid}`;
      if (!acceptsPart(ranges, outType)) throw new NotAcceptableError(outType);
      if (!started) {
        res.statusCode = 200;
        res.setHeader('content-type', `${REDACTED_FRAMES_TYPE}; boundary=${boundary}`);
        started = true;
      }
      await writeChunk(res, partHead(boundary, { 'Content-Type': outType }));
      await writeChunk(res, Buffer.from(redacted.bytes.buffer, redacted.bytes.byteOffset, redacted.bytes.byteLength));
      await writeChunk(res, PART_END);
    }
  } catch (error) {
    throw unusable(error);
  }
  if (!started) throw new UpstreamUnusableError('no parts');
  view.observePixels?.('redacted', byOcr(verdict) ? OCR_RULE : 'rule', 1);
  if (byOcr(verdict)) view.textRegions?.observe.outcome?.('redacted', OCR_RULE, 1);
  endBody(res, closeDelimiter(boundary));
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

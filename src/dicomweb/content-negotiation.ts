// Proactive content negotiation for the de-identified view (RFC 9110 12.5.1 Accept; PS3.18 8.7 as it
// applies the header to DICOM media types): the gateway answers 200 only in a media type the caller's
// Accept allows, and 406 otherwise. The matching is pure (text in, decisions out); `acceptFor` reads
// the request's header and refuses.
import type { IncomingMessage } from 'node:http';
import { BadRequestError, NotAcceptableError } from './errors.ts';

/** A media type or range: lower-cased `type/subtype`, the DICOM parameters that identify it, and a weight. */
export interface MediaRange {
  readonly type: string;
  readonly subtype: string;
  /** multipart/related only: the media type of its parts (PS3.18 8.7.3.6, the `type` parameter), lower-cased, without parameters. */
  readonly partType?: string;
  /** PS3.18 8.7.3.5.2: a Transfer Syntax UID or `*`; outside or (as Orthanc writes it) inside the `type` parameter. */
  readonly transferSyntax?: string;
  /** RFC 9110 12.4.2 qvalue; 1 for a response's own media type. */
  readonly q: number;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Splits on `sep` outside quoted strings (RFC 9110 5.6.4). */
function splitOutsideQuotes(text: string, sep: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quoted && c === '\\') {
      current += c + (text[i + 1] ?? '');
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === sep && !quoted) {
      out.push(current);
      current = '';
      continue;
    }
    current += c;
  }
  out.push(current);
  return out;
}

function unquote(value: string): string {
  const v = value.trim();
  return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1).replace(/\\(.)/g, '$1') : v;
}

/**
 * One media type or range (`type/subtype *( OWS ";" OWS parameter )`, RFC 9110 8.3.1, 12.5.1), or
 * undefined when it is not one. Parameters other than `type`, `transfer-syntax` and `q` do not identify
 * a DICOM representation and are ignored (PS3.18 8.7.7: unsupported parameters are ignored).
 */
export function parseMediaRange(text: string): MediaRange | undefined {
  const [head = '', ...params] = splitOutsideQuotes(text, ';');
  const [type = '', subtype = '', extra] = head.trim().toLowerCase().split('/');
  if (extra !== undefined || !TOKEN.test(type) || !TOKEN.test(subtype) || (type === '*' && subtype !== '*')) return undefined;
  let partType: string | undefined;
  let transferSyntax: string | undefined;
  let q = 1;
  for (const param of params) {
    const at = param.indexOf('=');
    if (at < 0) continue;
    const name = param.slice(0, at).trim().toLowerCase();
    const value = unquote(param.slice(at + 1));
    if (name === 'q') {
      // RFC 9110 12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ); a malformed one is ignored.
      if (/^(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$/.test(value)) q = Number(value);
      break; // RFC 9110 12.5.1: "q" separates the media type parameters from any accept extension
    }
    if (name === 'type') {
      // The `type` value may carry the part's own parameters (Orthanc: type="image/jpeg; transfer-syntax=…").
      const inner = parseMediaRange(value);
      if (inner) {
        partType = `${inner.type}/${inner.subtype}`;
        transferSyntax ??= inner.transferSyntax;
      }
    } else if (name === 'transfer-syntax') {
      transferSyntax = value;
    }
  }
  return { type, subtype, ...(partType ? { partType } : {}), ...(transferSyntax ? { transferSyntax } : {}), q };
}

/**
 * The media ranges of an Accept header field value; undefined when there is no header, which
 * (RFC 9110 12.5.1) "implies that the user agent will accept any media type". PS3.18 8.7.7 would have
 * an origin server answer 406 there; the gateway follows HTTP, so a client that sends no Accept keeps
 * working. Elements that are not media ranges are ignored (PS3.18 8.7.7).
 */
export function parseAccept(header: string | undefined): MediaRange[] | undefined {
  if (header === undefined) return undefined;
  return splitOutsideQuotes(header, ',')
    .map((element) => parseMediaRange(element))
    .filter((range): range is MediaRange => range !== undefined);
}

/** Image and video media types of frames and bulkdata (PS3.18 Table 8.7.3-3, 8.7.3-4), and octet streams. */
function isPixelType(mediaType: string | undefined): boolean {
  return mediaType !== undefined && (mediaType === 'application/octet-stream' || /^(image|video)\//.test(mediaType));
}

function typeMatches(range: string, actual: string): boolean {
  const [rt, rs] = range.split('/');
  const [at, as] = actual.split('/');
  return (rt === '*' || rt === at) && (rs === '*' || rs === as);
}

/** How specifically `range` matches `candidate` (higher is more specific), or -1 when it does not. */
function specificity(range: MediaRange, candidate: MediaRange): number {
  if (!typeMatches(`${range.type}/${range.subtype}`, `${candidate.type}/${candidate.subtype}`)) return -1;
  let score = range.type === '*' ? 0 : range.subtype === '*' ? 1 : 2;
  const anyTransferSyntax = range.transferSyntax === '*';
  if (range.partType !== undefined) {
    if (candidate.partType === undefined) return -1;
    // PS3.18 8.7.3.5.2: `transfer-syntax=*` lets the origin server answer "without needing to transcode";
    // frames and bulkdata in a compressed Transfer Syntax are labelled by their own image or video type
    // (Table 8.7.3-4), so for pixel parts any such type is within the range.
    const viaWildcard = anyTransferSyntax && isPixelType(range.partType) && isPixelType(candidate.partType);
    if (!typeMatches(range.partType, candidate.partType) && !viaWildcard) return -1;
    score += 1;
  }
  // A Transfer Syntax the answer does not declare is not judged here: the PACS selected it from the
  // Accept the gateway forwarded (PS3.18 8.7.8.2), and the gateway does not claim one either.
  if (range.transferSyntax !== undefined && !anyTransferSyntax && candidate.transferSyntax !== undefined && candidate.transferSyntax !== '*') {
    if (candidate.transferSyntax !== range.transferSyntax) return -1;
    score += 1;
  }
  return score;
}

/**
 * RFC 9110 12.5.1: the quality the caller gives `candidate`, from the most specific range that matches
 * it (0 when none does: not acceptable). A candidate without a `transferSyntax`, or with `*` ("not
 * known yet": the PACS chooses it), matches any range's.
 */
function qualityOf(accept: readonly MediaRange[] | undefined, candidate: MediaRange): number {
  if (accept === undefined) return 1;
  let best = -1;
  let q = 0;
  for (const range of accept) {
    const s = specificity(range, candidate);
    if (s > best || (s === best && range.q > q)) {
      best = s;
      q = range.q;
    }
  }
  return best < 0 ? 0 : q;
}

/** Whether the caller accepts `mediaType` (a Content-Type value), RFC 9110 12.5.1. */
export function accepts(accept: readonly MediaRange[] | undefined, mediaType: string): boolean {
  const candidate = parseMediaRange(mediaType);
  return candidate !== undefined && qualityOf(accept, { ...candidate, q: 1 }) > 0;
}

/**
 * Whether the caller accepts a part of type `partContentType` inside multipart/related (PS3.18 8.7.3.6:
 * each part has its own Content-Type, possibly its own Transfer Syntax).
 */
export function acceptsPart(accept: readonly MediaRange[] | undefined, partContentType: string): boolean {
  const part = parseMediaRange(partContentType);
  if (part === undefined) return false;
  const candidate: MediaRange = {
    type: 'multipart',
    subtype: 'related',
    partType: `${part.type}/${part.subtype}`,
    ...(part.transferSyntax ? { transferSyntax: part.transferSyntax } : {}),
    q: 1,
  };
  return qualityOf(accept, candidate) > 0;
}

/**
 * The offer the caller prefers (highest quality above 0; the earlier offer on a tie), or undefined
 * when it accepts none of them: the answer is then 406 (RFC 9110 15.5.7).
 */
export function negotiate(accept: readonly MediaRange[] | undefined, offers: readonly string[]): string | undefined {
  let chosen: string | undefined;
  let best = 0;
  for (const offer of offers) {
    const candidate = parseMediaRange(offer);
    if (candidate === undefined) continue;
    const q = qualityOf(accept, { ...candidate, q: 1 });
    if (q > best) {
      best = q;
      chosen = offer;
    }
  }
  return chosen;
}

/**
 * What each researcher resource can be answered in (PS3.18 8.7.3, Tables 8.7.3-2 to 8.7.3-5, 8.7.4),
 * preferred first. Search and metadata are DICOM JSON only: the PS3.19 XML model is not offered, so
 * `multipart/related; type="application/dicom+xml"` alone is 406. A `transfer-syntax=*` here means
 * "whichever the PACS selects": the answer is checked again once it is known.
 */
export const OFFERED = Object.freeze({
  json: ['application/dicom+json', 'application/json'],
  instances: ['multipart/related; type="application/dicom"; transfer-syntax=*'],
  pixels: [
    'application/octet-stream',
    'image/jpeg',
    'image/jls',
    'image/jp2',
    'image/jpx',
    'image/jphc',
    'image/dicom-rle',
    'video/mpeg',
    'video/mp4',
    'video/h265',
  ].map((type) => `multipart/related; type="${type}"; transfer-syntax=*`),
  rendered: ['image/jpeg', 'image/png', 'image/gif', 'image/jp2', 'video/mpeg', 'video/mp4', 'video/h265'],
});

/** An Accept header as forwarded upstream: printable ASCII of bounded length (RFC 9110 12.5.1). */
export function acceptHeader(value: string | undefined): string {
  if (value === undefined) return '*/*';
  if (value.length > 1_024 || !/^[\x20-\x7e]*$/.test(value)) throw new BadRequestError('HTTP_BAD_ACCEPT', 'the Accept header is malformed');
  return value;
}

/**
 * The caller's Accept and the offer it prefers; 406 (before the store or the PACS is asked anything)
 * when it allows none of `offers`.
 */
export function acceptFor(req: IncomingMessage, offers: readonly string[]): { ranges: MediaRange[] | undefined; chosen: string } {
  const ranges = parseAccept(req.headers.accept === undefined ? undefined : acceptHeader(req.headers.accept));
  const chosen = negotiate(ranges, offers);
  if (chosen === undefined) throw new NotAcceptableError(offers.join(', '));
  return { ranges, chosen };
}

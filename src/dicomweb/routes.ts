import type { RouteClass, Treatment } from '../auth/role.ts';
import { isUid } from '../dicom/uid.ts';

/** A DICOMweb resource the gateway serves (PS3.18 Table 10.4-1, 10.5-1, 10.6-1, 10.7-1). */
export interface DicomwebRoute {
  readonly method: 'GET' | 'POST';
  /** Express 5 path relative to the base path. */
  readonly path: string;
  readonly routeClass: RouteClass;
  /** The PS3.18 transaction name. */
  readonly transaction: string;
  /** What the resource is, for the de-identified view. */
  readonly resource: 'search' | 'instances' | 'metadata' | 'pixels' | 'rendered' | 'store';
  /** QIDO level (search) or the level the path names. */
  readonly level: 'study' | 'series' | 'instance';
}

const STUDY = '/studies/:study';
const SERIES = `${STUDY}/series/:series`;
const INSTANCE = `${SERIES}/instances/:instance`;

const search = (path: string, transaction: string, level: DicomwebRoute['level']): DicomwebRoute => ({
  method: 'GET',
  path,
  routeClass: 'search',
  transaction,
  resource: 'search',
  level,
});
const retrieve = (
  path: string,
  transaction: string,
  resource: DicomwebRoute['resource'],
  level: DicomwebRoute['level'],
): DicomwebRoute => ({ method: 'GET', path, routeClass: 'retrieve', transaction, resource, level });

export const ROUTES: readonly DicomwebRoute[] = [
  // PS3.18 10.6 Search (QIDO-RS)
  search('/studies', 'SearchForStudies', 'study'),
  search('/series', 'SearchForSeries', 'series'),
  search('/instances', 'SearchForInstances', 'instance'),
  search(`${STUDY}/series`, 'SearchForSeries', 'series'),
  search(`${STUDY}/instances`, 'SearchForInstances', 'instance'),
  search(`${SERIES}/instances`, 'SearchForInstances', 'instance'),
  // PS3.18 10.4 Retrieve (WADO-RS): instances, metadata, rendered, thumbnail, frames, bulkdata
  ...[STUDY, SERIES, INSTANCE].flatMap((base) => {
    const level = base === STUDY ? 'study' : base === SERIES ? 'series' : 'instance';
    const name = level === 'study' ? 'Study' : level === 'series' ? 'Series' : 'Instance';
    return [
      retrieve(base, `Retrieve${name}`, 'instances', level),
      retrieve(`${base}/metadata`, `Retrieve${name}Metadata`, 'metadata', level),
      retrieve(`${base}/rendered`, `Retrieve${name}Rendered`, 'rendered', level),
      retrieve(`${base}/thumbnail`, `Retrieve${name}Thumbnail`, 'rendered', level),
    ];
  }),
  retrieve(`${INSTANCE}/frames/:frames`, 'RetrieveFrames', 'pixels', 'instance'),
  retrieve(`${INSTANCE}/frames/:frames/rendered`, 'RetrieveRenderedFrames', 'rendered', 'instance'),
  retrieve(`${INSTANCE}/frames/:frames/thumbnail`, 'RetrieveFramesThumbnail', 'rendered', 'instance'),
  retrieve(`${INSTANCE}/bulk/*bulk`, 'RetrieveBulkdata', 'pixels', 'instance'),
  retrieve(`${INSTANCE}/bulkdata/*bulk`, 'RetrieveBulkdata', 'pixels', 'instance'),
  // PS3.18 10.5 Store (STOW-RS)
  { method: 'POST', path: '/studies', routeClass: 'store', transaction: 'StoreInstances', resource: 'store', level: 'study' },
  { method: 'POST', path: STUDY, routeClass: 'store', transaction: 'StoreInstances', resource: 'store', level: 'study' },
];

/** PS3.18 8.3.5.1: a comma-separated list of 1-based frame numbers. */
const FRAMES = /^[1-9][0-9]{0,8}(,[1-9][0-9]{0,8})*$/;
/** RFC 3986 2.3 unreserved characters: a segment of them means the same encoded or not, anywhere in a path. */
const UNRESERVED = /^[A-Za-z0-9._~-]+$/;
/** The longest study/series/instance identifier relayed to the PACS for the clinician (a UID has 64). */
export const PACS_ID_MAX_LENGTH = 128;

/**
 * Why a raw request path cannot be decoded exactly once into the segments it seems to have, or
 * undefined. RFC 3986 2.1, 2.4: percent-encoding must be well formed, and an encoded `/`, `.`, `%` or
 * `\\` (which would change the segments, their meaning, or be decoded a second time downstream) and
 * encoded control characters are refused. Encoded unreserved characters (`%31`) decode to themselves
 * (RFC 3986 6.2.2.2) and are accepted: the upstream path is rebuilt from the decoded values anyway.
 */
export function rawPathProblem(rawPath: string): string | undefined {
  if (/[\\\u0000-\u001f\u007f]/.test(rawPath)) return 'a raw control character or backslash';
  for (const match of rawPath.matchAll(/%([0-9A-Fa-f]{2})?/g)) {
    if (match[1] === undefined) return 'malformed percent-encoding';
    const byte = Number.parseInt(match[1], 16);
    if (byte === 0x2f || byte === 0x2e || byte === 0x25 || byte === 0x5c || byte < 0x20 || byte === 0x7f) {
      return 'an encoded reserved character';
    }
  }
  return undefined;
}

/** Path parameters, each decoded once (by the router) and valid. */
export interface PathParams {
  readonly study?: string;
  readonly series?: string;
  readonly instance?: string;
  readonly frames?: string;
  readonly bulk?: readonly string[];
}

/** The route's parameters once `invalidParam` has passed them. */
export function pathParams(params: Readonly<Record<string, unknown>>): PathParams {
  const text = (name: string) => (typeof params[name] === 'string' ? (params[name] as string) : undefined);
  const bulk = params['bulk'];
  return {
    study: text('study'),
    series: text('series'),
    instance: text('instance'),
    frames: text('frames'),
    bulk: bulk === undefined ? undefined : (Array.isArray(bulk) ? bulk : [bulk]).map(String),
  };
}

const UID_PARAMS = new Set([':study', ':series', ':instance']);

/**
 * RFC 3986 3.3: a segment keeps its pchars (unreserved, sub-delims, `:` and `@`; so a PS3.18 8.3.5.1
 * frame list keeps its `,`), and every other character, `%` included, is percent-encoded once.
 */
export function encodeSegment(value: string): string {
  return value.replace(/[^A-Za-z0-9._~!$&'()*+,;=:@-]/gu, (c) => encodeURIComponent(c));
}

/**
 * The route's path template filled with validated parameters, each segment percent-encoded once: the
 * only way a PACS path is made from a caller's request (never by slicing or forwarding the caller's
 * URL). `below`: only the part under the deepest UID (`/metadata`, `/frames/1,2`, `/bulk/7FE00010`, '').
 * `uids` replaces the study/series/instance values (the researcher's originals).
 */
export function fillPath(route: Pick<DicomwebRoute, 'path'>, params: PathParams, options: { below?: boolean; uids?: PathParams } = {}): string {
  const template = route.path.split('/').slice(1);
  let from = 0;
  if (options.below) {
    template.forEach((segment, i) => {
      if (UID_PARAMS.has(segment)) from = i + 1;
    });
  }
  const values = { ...params, ...options.uids };
  return template
    .slice(from)
    .map((segment) => {
      if (segment === '*bulk') return (values.bulk ?? []).map(encodeSegment).join('/');
      if (!segment.startsWith(':')) return segment;
      const value = values[segment.slice(1) as keyof PathParams];
      if (typeof value !== 'string') throw new RangeError(`route parameter ${segment} has no value`);
      return encodeSegment(value);
    })
    .map((segment) => `/${segment}`)
    .join('');
}

/**
 * Whether a study/series/instance path value may be used, by how the caller is served: the one place
 * where that grammar depends on the role.
 * - `deidentified` (researcher): a PS3.5 9.1 UID, because every UID the view shows is a `2.25.…`
 *   pseudonym the gateway issued; anything else can name nothing.
 * - `original` (clinician): the pass-through is no stricter than the PACS. Orthanc lists instances under
 *   identifiers that are not UIDs (a sample whose "UIDs" are SHA-256 hex), and answers for them, so the
 *   value is checked for safety only: 1–128 RFC 3986 unreserved characters, never a dot segment
 *   (RFC 3986 3.3, 5.2.4), so it stays one segment once rebuilt by `fillPath`.
 */
export function isPathIdentifier(value: string, treatment: Exclude<Treatment, 'forbidden'>): boolean {
  if (treatment === 'deidentified') return isUid(value);
  return value.length <= PACS_ID_MAX_LENGTH && UNRESERVED.test(value) && value !== '.' && value !== '..';
}

/**
 * Returns the name of the first path parameter that is not valid for the caller's treatment, or
 * undefined. Frame lists and bulkdata paths have one grammar for every role.
 */
export function invalidParam(params: Readonly<Record<string, unknown>>, treatment: Exclude<Treatment, 'forbidden'>): string | undefined {
  for (const name of ['study', 'series', 'instance'] as const) {
    const value = params[name];
    if (value !== undefined && (typeof value !== 'string' || !isPathIdentifier(value, treatment))) return name;
  }
  const frames = params['frames'];
  if (frames !== undefined && (typeof frames !== 'string' || !FRAMES.test(frames))) return 'frames';
  const bulk = params['bulk'];
  if (bulk !== undefined) {
    const segments = Array.isArray(bulk) ? bulk : [bulk];
    if (segments.some((s) => typeof s !== 'string' || !/^[A-Za-z0-9._-]+$/.test(s) || s === '..' || s === '.')) {
      return 'bulk';
    }
  }
  return undefined;
}

import type { RouteClass } from '../auth/role.ts';

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

/** PS3.5 9.1: UID components are digits separated by dots, at most 64 characters. */
const UID = /^[0-9]+(\.[0-9]+)*$/;
/** PS3.18 8.3.5.1: a comma-separated list of 1-based frame numbers. */
const FRAMES = /^[1-9][0-9]{0,8}(,[1-9][0-9]{0,8})*$/;

/** Returns the name of the first path parameter that is not valid, or undefined. */
export function invalidParam(params: Readonly<Record<string, unknown>>): string | undefined {
  for (const name of ['study', 'series', 'instance'] as const) {
    const value = params[name];
    if (value !== undefined && (typeof value !== 'string' || value.length > 64 || !UID.test(value))) return name;
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

import type { RouteClass } from '../auth/role.ts';

/** A DICOMweb resource the gateway serves (PS3.18 Table 10.4-1, 10.5-1, 10.6-1, 10.7-1). */
export interface DicomwebRoute {
  readonly method: 'GET' | 'POST';
  /** Express 5 path relative to the base path. */
  readonly path: string;
  readonly routeClass: RouteClass;
  /** The PS3.18 transaction name. */
  readonly transaction: string;
}

const STUDY = '/studies/:study';
const SERIES = `${STUDY}/series/:series`;
const INSTANCE = `${SERIES}/instances/:instance`;

const search = (path: string, transaction: string): DicomwebRoute => ({
  method: 'GET',
  path,
  routeClass: 'search',
  transaction,
});
const retrieve = (path: string, transaction: string): DicomwebRoute => ({
  method: 'GET',
  path,
  routeClass: 'retrieve',
  transaction,
});

export const ROUTES: readonly DicomwebRoute[] = [
  // PS3.18 10.6 Search (QIDO-RS)
  search('/studies', 'SearchForStudies'),
  search('/series', 'SearchForSeries'),
  search('/instances', 'SearchForInstances'),
  search(`${STUDY}/series`, 'SearchForSeries'),
  search(`${STUDY}/instances`, 'SearchForInstances'),
  search(`${SERIES}/instances`, 'SearchForInstances'),
  // PS3.18 10.4 Retrieve (WADO-RS): instances, metadata, rendered, thumbnail, frames, bulkdata
  ...[STUDY, SERIES, INSTANCE].flatMap((base) => {
    const level = base === STUDY ? 'Study' : base === SERIES ? 'Series' : 'Instance';
    return [
      retrieve(base, `Retrieve${level}`),
      retrieve(`${base}/metadata`, `Retrieve${level}Metadata`),
      retrieve(`${base}/rendered`, `Retrieve${level}Rendered`),
      retrieve(`${base}/thumbnail`, `Retrieve${level}Thumbnail`),
    ];
  }),
  retrieve(`${INSTANCE}/frames/:frames`, 'RetrieveFrames'),
  retrieve(`${INSTANCE}/frames/:frames/rendered`, 'RetrieveRenderedFrames'),
  retrieve(`${INSTANCE}/frames/:frames/thumbnail`, 'RetrieveFramesThumbnail'),
  retrieve(`${INSTANCE}/bulk/*bulk`, 'RetrieveBulkdata'),
  retrieve(`${INSTANCE}/bulkdata/*bulk`, 'RetrieveBulkdata'),
  // PS3.18 10.5 Store (STOW-RS)
  { method: 'POST', path: '/studies', routeClass: 'store', transaction: 'StoreInstances' },
  { method: 'POST', path: STUDY, routeClass: 'store', transaction: 'StoreInstances' },
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

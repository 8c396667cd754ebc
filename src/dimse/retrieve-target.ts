// What a C-GET or C-MOVE asks for (PS3.4 C.4.2.2, C.4.3.2): the Query/Retrieve Level and the Unique Keys
// of its Identifier, checked (PS3.4 C.2.2.1: a single value for each level above the one retrieved, one
// UID or a list at it), and the de-identified view's QIDO-RS searches that list its instances. The UIDs
// and Patient ID are the caller's pseudonyms: the view maps them back, or finds nothing.
import { isUid } from '../dicom/uid.ts';
import { QUERY_RETRIEVE } from './research-face.ts';

export type RetrieveTarget =
  | { readonly level: 'PATIENT'; readonly patientId: string }
  | { readonly level: 'STUDY'; readonly studies: readonly string[] }
  | { readonly level: 'SERIES'; readonly study: string; readonly series: readonly string[] }
  | { readonly level: 'IMAGE'; readonly study: string; readonly series: string; readonly instances: readonly string[] };

/** A list of UIDs longer than this at one level is refused (A900): a retrieve names what it wants. */
export const MAX_UNIQUE_KEYS = 1_000;
const PATIENT_ROOT = new Set<string>([QUERY_RETRIEVE.patientRootGet, QUERY_RETRIEVE.patientRootMove]);
/** PS3.5 Table 6.2-1: LO, 64 characters; PS3.4 C.2.2.2.1: a single value, no wild card. */
const PATIENT_ID = /^[^*?\\]{1,64}$/;

/** The values of a naturalized (dcmjs) element: a string with `\` separators, or a list; padding trimmed, empties dropped. */
function values(value: unknown): string[] {
  const list = Array.isArray(value) ? value : value === undefined || value === null ? [] : [value];
  return list
    .flatMap((v) => (typeof v === 'string' ? v.split('\\') : typeof v === 'number' ? [String(v)] : []))
    .map((v) => v.replace(/[\0 ]+$/, '').replace(/^ +/, ''))
    .filter((v) => v.length > 0);
}

function uidList(value: unknown): string[] | undefined {
  const uids = [...new Set(values(value))];
  if (uids.length === 0 || uids.length > MAX_UNIQUE_KEYS || !uids.every(isUid)) return undefined;
  return uids;
}

function singleUid(value: unknown): string | undefined {
  const uids = uidList(value);
  return uids?.length === 1 ? uids[0] : undefined;
}

/**
 * The target of a C-GET or C-MOVE Identifier for the Information Model `model` (its SOP Class), or
 * undefined when the Identifier does not match it (A900): no or an unknown Query/Retrieve Level, PATIENT
 * outside the Patient Root model, a missing, malformed or multi-valued key where one value is required.
 * Keys of the levels above (Patient ID under STUDY) are not needed: the UIDs below them are unique.
 */
export function retrieveTarget(model: string, identifier: Readonly<Record<string, unknown>> | undefined): RetrieveTarget | undefined {
  if (!identifier) return undefined;
  const level = values(identifier['QueryRetrieveLevel'])[0];
  switch (level) {
    case 'PATIENT': {
      const ids = values(identifier['PatientID']);
      const patientId = ids[0];
      if (!PATIENT_ROOT.has(model) || ids.length !== 1 || patientId === undefined || !PATIENT_ID.test(patientId)) return undefined;
      return { level, patientId };
    }
    case 'STUDY': {
      const studies = uidList(identifier['StudyInstanceUID']);
      return studies ? { level, studies } : undefined;
    }
    case 'SERIES': {
      const study = singleUid(identifier['StudyInstanceUID']);
      const series = uidList(identifier['SeriesInstanceUID']);
      return study && series ? { level, study, series } : undefined;
    }
    case 'IMAGE': {
      const study = singleUid(identifier['StudyInstanceUID']);
      const series = singleUid(identifier['SeriesInstanceUID']);
      const instances = uidList(identifier['SOPInstanceUID']);
      return study && series && instances ? { level, study, series, instances } : undefined;
    }
    default:
      return undefined;
  }
}

/** QIDO-RS pages (PS3.18 8.3.4.4 limit and offset); the view caps a page at 10,000. */
export const QIDO_PAGE = 500;
/**
 * The view caps a query value at 1,024 characters and 64 alternatives (dicomweb/qido.ts QUERY_LIMITS):
 * SOP Instance UIDs are asked in batches under both.
 */
const UID_BATCH_CHARS = 960;
const UID_BATCH_COUNT = 32;
/** Instance-level searches return SOP Class and Series Instance UID (PS3.18 Table 6.7.1-2a; asked for all the same). */
const INSTANCE_FIELDS = 'includefield=00080016&includefield=0020000E';

/** A QIDO-RS search (without limit and offset) below the view's base. */
export interface Search {
  readonly path: string;
  /** The query string, without `?`, limit and offset. */
  readonly query: string;
  /** The study (and series) its results belong to, from its path. */
  readonly study?: string;
  readonly series?: string;
}

/** The study-level search that lists a patient's studies (PATIENT level), paged by the caller. */
export function patientStudiesSearch(patientId: string): Search {
  return { path: '/studies', query: `PatientID=${encodeURIComponent(patientId)}&includefield=0020000D` };
}

/** The instance-level searches that list the instances of a STUDY, SERIES or IMAGE target (or of one study of a patient). */
export function instanceSearches(target: Exclude<RetrieveTarget, { level: 'PATIENT' }>): Search[] {
  switch (target.level) {
    case 'STUDY':
      return target.studies.map((study) => ({ path: `/studies/${study}/instances`, query: INSTANCE_FIELDS, study }));
    case 'SERIES':
      return target.series.map((series) => ({ path: `/studies/${target.study}/series/${series}/instances`, query: INSTANCE_FIELDS, study: target.study, series }));
    case 'IMAGE': {
      const path = `/studies/${target.study}/series/${target.series}/instances`;
      const searches: Search[] = [];
      let batch: string[] = [];
      const flush = () => {
        // PS3.18 8.3.4.1 / PS3.4 C.2.2.2.2: UID list matching, comma separated.
        if (batch.length > 0) searches.push({ path, query: `SOPInstanceUID=${batch.join(',')}&${INSTANCE_FIELDS}`, study: target.study, series: target.series });
        batch = [];
      };
      for (const uid of target.instances) {
        if (batch.length >= UID_BATCH_COUNT || [...batch, uid].join(',').length > UID_BATCH_CHARS) flush();
        batch.push(uid);
      }
      flush();
      return searches;
    }
  }
}

/** PS3.18 10.4.1.1.1: the view's instance retrieval. */
export function instancePath(ref: { readonly study: string; readonly series: string; readonly sopInstanceUid: string }): string {
  return `/studies/${ref.study}/series/${ref.series}/instances/${ref.sopInstanceUid}`;
}

// The demo's two projects over one Orthanc (issue: projects): `ct-cohort`, defined by a query, and
// `curated`, an explicit list of original studies that shares one study with `ct-cohort` and holds two
// it does not. A researcher of each sees a different set of studies, and the shared one under each
// project's own pseudonyms and date offset.
import { isUid } from '../dicom/uid.ts';
import type { ProjectInput } from '../projects/project.ts';

/** Every CT study: membership by a query the PACS matches (ModalitiesInStudy, PS3.4 C.6.2.1.2). */
export const QUERY_PROJECT = 'ct-cohort';
/** Studies chosen by original StudyInstanceUID. */
export const LIST_PROJECT = 'curated';
const QUERY_MODALITY = 'CT';

/**
 * The studies the list prefers when the shared samples are loaded (../shared/dicom-samples/MANIFEST.md):
 * images OHIF shows, of patients with a Patient ID. Any other sample set gets the first studies in UID order.
 */
const PREFERRED = {
  /** transfer-syntax/CT1_UNC.explicit_little_endian.dcm: a CT of patient 1CT1, who has a second CT study (CT_small). */
  shared: '1.3.6.1.4.1.5962.1.2.1.20040826185059.5457',
  /** transfer-syntax/MR_small*.dcm (MR, patient 4MR1) and JPEG-LL / JPEG2000 / JPGExtended.dcm (NM, patient 8NM1). */
  outside: ['1.3.6.1.4.1.5962.1.2.4.20040826185059.5457', '1.3.6.1.4.1.5962.1.2.8.20040826185059.5457'],
};

/** An original study as the PACS lists it: its UID and ModalitiesInStudy. */
export interface SampleStudy {
  readonly studyUid: string;
  readonly modalities: readonly string[];
}

export interface DemoProjects {
  /** The `projects:` config section the demo bootstraps (projects/bootstrap.ts). */
  readonly definitions: Readonly<Record<string, ProjectInput>>;
  /** The study on the list that the query admits too; undefined when the PACS holds no CT study. */
  readonly shared: string | undefined;
  /** Studies on the list that the query does not admit (at most two). */
  readonly outside: readonly string[];
}

/**
 * The two projects over `studies`: the query project, and a list of one study the query admits plus two
 * it does not (fewer when the PACS has fewer; none without samples: the project starts empty).
 */
export function demoProjects(studies: readonly SampleStudy[]): DemoProjects {
  const usable = studies.filter((s) => isUid(s.studyUid)).sort((a, b) => (a.studyUid < b.studyUid ? -1 : a.studyUid > b.studyUid ? 1 : 0));
  const admitted = usable.filter((s) => s.modalities.includes(QUERY_MODALITY)).map((s) => s.studyUid);
  const others = usable.filter((s) => !s.modalities.includes(QUERY_MODALITY)).map((s) => s.studyUid);
  const shared = admitted.includes(PREFERRED.shared) ? PREFERRED.shared : admitted[0];
  const outside = [...PREFERRED.outside.filter((uid) => others.includes(uid)), ...others.filter((uid) => !PREFERRED.outside.includes(uid))].slice(0, 2);
  return {
    definitions: {
      [QUERY_PROJECT]: {
        description: `Every ${QUERY_MODALITY} study (membership by query: ModalitiesInStudy=${QUERY_MODALITY})`,
        membership: { query: { ModalitiesInStudy: QUERY_MODALITY } },
      },
      [LIST_PROJECT]: {
        description: `Studies chosen by UID: one also in ${QUERY_PROJECT}, others not; keeps patient characteristics (sex, age, size, weight)`,
        // A profile of its own: the project's researchers also see PS3.15 Retain Patient Characteristics.
        profile: { options: ['retainLongitudinalTemporalModifiedDates', 'retainPatientCharacteristics'], overrides: {} },
        membership: { studies: [...(shared ? [shared] : []), ...outside] },
      },
    },
    shared,
    outside,
  };
}

/** ModalitiesInStudy (0008,0061) and StudyInstanceUID (0020,000D) of every study, by QIDO-RS (PS3.18 10.6). */
export async function listStudies(dicomWebUrl: string): Promise<SampleStudy[]> {
  const res = await fetch(`${dicomWebUrl}/studies?includefield=00080061`, { headers: { accept: 'application/dicom+json' } });
  if (res.status === 204) return [];
  if (!res.ok) throw new Error(`listing the studies of the demo's Orthanc: status ${res.status}`);
  const datasets = (await res.json()) as Array<Record<string, { Value?: unknown[] } | undefined>>;
  return datasets.flatMap((d) => {
    const uid = d['0020000D']?.Value?.[0];
    const modalities = (d['00080061']?.Value ?? []).filter((m): m is string => typeof m === 'string');
    return typeof uid === 'string' ? [{ studyUid: uid, modalities }] : [];
  });
}

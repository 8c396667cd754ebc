// The demo's two projects over one Orthanc (issue: projects): `ct-cohort`, defined by a query, and
// `curated`, an explicit list of original studies that shares one study with `ct-cohort` and holds two
// it does not. A researcher of each sees a different set of studies, and the shared one under each
// project's own pseudonyms and date offset.
import { isUid } from '../dicom/uid.ts';
import type { ProjectInput } from '../projects/project.ts';
import type { StoredProfile } from '../store/project-store.ts';

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
  /**
   * private-tags/philips-mr-epi.dcm and siemens-csa-mosaic-mr.dcm (MR, original and primary images, so the
   * pixel policy keeps them: MR_small is DERIVED\\SECONDARY and the NM samples are Secondary Captures,
   * both withheld by default).
   */
  outside: ['1.3.46.670589.11.38317.5.0.8636.2014021409005697000', '1.3.12.2.1107.5.2.32.35131.30000014022817282751500000052'],
  /**
   * multiframe/IM00001.*: the ACUSON echo cine (US), listed too when loaded, so a researcher sees it with
   * its banner blanked by the demo's redaction rule (config/demo-pixels.yaml).
   */
  echo: '1.3.6.1.4.1.25403.166563008443.732.20120418082458.1',
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
  /** Studies on the list that the query does not admit (at most two, and the echo study when loaded). */
  readonly outside: readonly string[];
}

/** The echo study of the samples, listed in the list project when loaded (its banner is redacted). */
export const ECHO_STUDY = PREFERRED.echo;

/**
 * The two projects over `studies`: the query project, and a list of one study the query admits plus two
 * it does not (fewer when the PACS has fewer; none without samples: the project starts empty), and the
 * echo study when the PACS holds it. `pixels`: the list project's own pixel policy (its profile is its
 * own, so it names the demo's redaction rule itself).
 */
export function demoProjects(studies: readonly SampleStudy[], pixels?: StoredProfile['pixels']): DemoProjects {
  const usable = studies.filter((s) => isUid(s.studyUid)).sort((a, b) => (a.studyUid < b.studyUid ? -1 : a.studyUid > b.studyUid ? 1 : 0));
  const admitted = usable.filter((s) => s.modalities.includes(QUERY_MODALITY)).map((s) => s.studyUid);
  const others = usable.filter((s) => !s.modalities.includes(QUERY_MODALITY)).map((s) => s.studyUid);
  const shared = admitted.includes(PREFERRED.shared) ? PREFERRED.shared : admitted[0];
  const outside = [...PREFERRED.outside.filter((uid) => others.includes(uid)), ...others.filter((uid) => !PREFERRED.outside.includes(uid) && uid !== PREFERRED.echo)].slice(0, 2);
  if (others.includes(PREFERRED.echo)) outside.push(PREFERRED.echo);
  return {
    definitions: {
      [QUERY_PROJECT]: {
        description: `Every ${QUERY_MODALITY} study (membership by query: ModalitiesInStudy=${QUERY_MODALITY})`,
        membership: { query: { ModalitiesInStudy: QUERY_MODALITY } },
      },
      [LIST_PROJECT]: {
        description: `Studies chosen by UID: one also in ${QUERY_PROJECT}, others not; keeps patient characteristics (sex, age, size, weight)`,
        // A profile of its own: the project's researchers also see PS3.15 Retain Patient Characteristics.
        profile: { options: ['retainLongitudinalTemporalModifiedDates', 'retainPatientCharacteristics'], overrides: {}, ...(pixels ? { pixels } : {}) },
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

/**
 * Projects in the store: what each project is (its profile and membership rule), its explicit study
 * list, and withdrawals of consent. Plain data here; what it means is decided in src/projects/.
 *
 * Every change (a project created, a study added or removed, a withdrawal) increments one counter,
 * `projectsVersion`, in the same transaction. A gateway reads the counter on every researcher request
 * and keys its caches on it, so a change made through any replica is in force on the next request
 * everywhere, without a message bus.
 */

/** A PS3.15 profile as the config spells it: option column names and per-tag overrides. */
export interface StoredProfile {
  readonly options: readonly string[];
  readonly overrides: Readonly<Record<string, string>>;
  /** The project's pixel policy (config `pixels` shape, deid/pixel-policy.ts); absent: the defaults. */
  readonly pixels?: PixelsConfig;
}

export interface ProjectRecord {
  /** Lower-case letters, digits, `-` and `_` (projects/project.ts PROJECT_NAME): it appears in paths. */
  readonly name: string;
  readonly description: string;
  /** The project's own profile; undefined: the configured researcher profile. */
  readonly profile: StoredProfile | undefined;
  /** Every study of the PACS is a member (an explicit, recorded choice). */
  readonly allStudies: boolean;
  /** Attribute keyword → PS3.4 C.2.2.2 matching value, over study-level attributes the PACS can match. */
  readonly query: Readonly<Record<string, string>> | undefined;
  readonly createdAt: string;
}

export type NewProject = Omit<ProjectRecord, 'createdAt'>;

export interface ProjectStore {
  /** The counter every change increments (read on each researcher request; see above). */
  projectsVersion(): Promise<number>;
  projects(): Promise<readonly ProjectRecord[]>;
  project(name: string): Promise<ProjectRecord | undefined>;
  /**
   * Creates the project with its explicit studies, in one transaction. False when a project of that
   * name exists already (it is left as it is).
   */
  createProject(project: NewProject, studyUids?: readonly string[]): Promise<boolean>;
  /** Adds original StudyInstanceUIDs to the explicit list; resolves to how many were not there yet. */
  addStudies(name: string, studyUids: readonly string[]): Promise<number>;
  /** Resolves to how many were there. */
  removeStudies(name: string, studyUids: readonly string[]): Promise<number>;
  /** The explicit list, in UID order, a page at a time. */
  studies(name: string, page: { limit: number; offset: number }): Promise<readonly string[]>;
  studyCount(name: string): Promise<number>;
  /** Which of `studyUids` are on the explicit list (one indexed query per call). */
  membersAmong(name: string, studyUids: readonly string[]): Promise<ReadonlySet<string>>;
  /**
   * Records that the patient (original PatientID) withdrew consent from `project`, or from every
   * project (`undefined`). Resolves false if already recorded.
   */
  withdraw(project: string | undefined, patientId: string): Promise<boolean>;
  /** The original PatientIDs withdrawn from `project`, including those withdrawn from every project. */
  withdrawnPatients(project: string): Promise<ReadonlySet<string>>;
}import type { PixelsConfig } from '../config/schema.ts';


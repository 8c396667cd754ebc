// A project: a named set of original studies (its membership), the PS3.15 profile its researchers are
// served with, and a pseudonym scope of its own. Pure: the store holds projects (store/project-store.ts),
// dicomweb/project-view.ts enforces them on each request.
import { lookup, tagForAttributeId } from '../dicom/dictionary.ts';
import { matchesKey, matchValues, parseMatchKey, type MatchKey } from '../dicom/matching.ts';
import type { JsonDataset } from '../dicom/json-model.ts';
import { tagToHex } from '../dicom/tag.ts';
import { isUid } from '../dicom/uid.ts';
import type { NewProject, ProjectRecord, StoredProfile } from '../store/project-store.ts';
import { ProjectDefinitionError } from './errors.ts';

/** A project name appears in paths (`/projects/{name}/dicom-web`) and claims: a plain identifier. */
export const PROJECT_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Names a project may not take: the audit trail's `project` for the uploader's scope. */
const RESERVED_NAMES = new Set(['upload']);

/** The pseudonym scope of a project's researcher view; the uploader's is UPLOAD_SCOPE. Never equal. */
export function projectScope(name: string): string {
  return `project:${name}`;
}
export const UPLOAD_SCOPE = 'upload';

/** VRs a membership condition may not use: UIDs belong on the explicit list; the rest cannot be matched. */
const NO_CONDITION_VRS = new Set(['UI', 'SQ', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);

/** One membership condition, validated: the attribute and its PS3.4 C.2.2.2 key. */
export interface Condition {
  readonly keyword: string;
  readonly tag: number;
  /** The tag as PS3.18 8.3.4.1 spells it (8 hex digits), for the upstream query. */
  readonly hex: string;
  /** The value as written, re-sent to the PACS. */
  readonly value: string;
  readonly key: MatchKey;
}

/** The membership query, validated (the keys of a project's `query`), in key order. */
export function conditionsOf(query: Readonly<Record<string, string>> | undefined): readonly Condition[] {
  const issues: string[] = [];
  const out = parseConditions(query ?? {}, issues);
  if (issues.length > 0) throw new ProjectDefinitionError(issues);
  return out;
}

function parseConditions(query: Readonly<Record<string, string>>, issues: string[]): Condition[] {
  const out: Condition[] = [];
  for (const [keyword, value] of Object.entries(query)) {
    const tag = tagForAttributeId(keyword);
    const vr = tag === undefined ? undefined : lookup(tag)?.vrs[0];
    if (tag === undefined || vr === undefined) {
      issues.push(`membership.query.${keyword}: not an attribute keyword`);
      continue;
    }
    if (NO_CONDITION_VRS.has(vr)) {
      issues.push(`membership.query.${keyword}: a ${vr} attribute cannot be a condition (list UIDs under membership.studies)`);
      continue;
    }
    const key = typeof value === 'string' && value !== '' && value.length <= 1024 ? parseMatchKey(vr, value) : undefined;
    if (key === undefined) {
      issues.push(`membership.query.${keyword}: not a valid ${vr} matching value`);
      continue;
    }
    out.push({ keyword, tag, hex: tagToHex(tag), value, key });
  }
  return out.sort((a, b) => a.tag - b.tag);
}

/**
 * A Study Instance UID as a PACS may hold it: a PS3.5 9.1 UID, or what real archives also hold (a
 * leading zero, a trailing letter), as long as it is one plain identifier: RFC 3986 unreserved, never
 * `.` or `..`, and nothing PS3.4 C.2.2.2 would read as a wild card or a list separator. It goes
 * upstream in UID-list queries (`,`-separated) and paths.
 */
export function isStudyUid(uid: string): boolean {
  return isUid(uid) || (/^[0-9A-Za-z._-]{1,64}$/.test(uid) && uid !== '.' && uid !== '..');
}

/** A project definition as the config file or the steward API gives it. */
export interface ProjectInput {
  readonly description?: string;
  readonly profile?: StoredProfile;
  readonly membership?: {
    readonly all?: boolean;
    readonly query?: Readonly<Record<string, string>>;
    readonly studies?: readonly string[];
  };
}

/**
 * Validates a definition: the name, the membership (`all`, or a query, explicit studies, or both; a
 * project that names none has no members, which is allowed: studies are added later), the query's
 * conditions and the study UIDs. The profile is checked by whoever builds its policy (deid/).
 */
export function projectDefinition(name: string, input: ProjectInput): { project: NewProject; studies: readonly string[] } {
  const issues: string[] = [];
  if (!PROJECT_NAME.test(name)) issues.push('name: lower-case letters, digits, "-" and "_", starting with a letter or digit, at most 63');
  else if (RESERVED_NAMES.has(name)) issues.push(`name: "${name}" is reserved (the audit trail names the uploads' scope so)`);
  const membership = input.membership ?? {};
  const all = membership.all === true;
  const query = membership.query && Object.keys(membership.query).length > 0 ? membership.query : undefined;
  if (all && (query || (membership.studies?.length ?? 0) > 0)) issues.push('membership.all: every study is a member; give no query or studies with it');
  if (query) parseConditions(query, issues);
  const studies = membership.studies ?? [];
  studies.forEach((uid, i) => {
    if (typeof uid !== 'string' || !isStudyUid(uid)) issues.push(`membership.studies.${i}: not a UID`);
  });
  if (input.description !== undefined && (typeof input.description !== 'string' || input.description.length > 1024)) {
    issues.push('description: text of at most 1024 characters');
  }
  if (issues.length > 0) throw new ProjectDefinitionError(issues);
  return {
    project: { name, description: input.description ?? '', profile: input.profile, allStudies: all, query },
    studies: [...new Set(studies)],
  };
}

/** What the membership decision needs to know of one original study, read from the PACS. */
export interface StudyFacts {
  readonly studyUid: string;
  /**
   * The original PatientID: withdrawals are by patient. '' when the study has an empty one (Type 2);
   * undefined when the PACS did not say (the attribute missing from its answer).
   */
  readonly patientId: string | undefined;
  /** The study-level dataset as the PACS gave it, with every attribute a condition names. */
  readonly dataset: JsonDataset;
}

/**
 * Is the study a member of the project? (1) the patient has not withdrawn consent (from this project
 * or every project; with any withdrawal, a study whose Patient ID the PACS did not give is out); (2) every study (`allStudies`), or the explicit list has it, or every condition of
 * the query matches its original values (PS3.4 C.2.2.2; a list and a query together: either admits).
 */
export function isMember(
  project: ProjectRecord,
  conditions: readonly Condition[],
  facts: StudyFacts,
  listed: boolean,
  withdrawn: ReadonlySet<string>,
): boolean {
  // Withdrawals are by Patient ID: once anyone has withdrawn, a study whose Patient ID the PACS does not
  // give cannot be shown to be someone else's, so it is out (fail closed). An empty one is no one's.
  if (withdrawn.size > 0 && (facts.patientId === undefined || withdrawn.has(facts.patientId.trim()))) return false;
  if (project.allStudies || listed) return true;
  return conditions.length > 0 && conditions.every((c) => matchesKey(c.key, matchValues(facts.dataset[c.hex])));
}

// What the steward sends about projects (http/projects.ts), parsed and validated. Pure: a definition
// reports every issue at once, each naming its key; no message echoes a value the steward sent (a
// PatientID above all).
import { pixelsSchema } from '../config/schema.ts';
import { DeidPolicyError } from '../deid/errors.ts';
import type { NewProject, StoredProfile } from '../store/project-store.ts';
import { ProjectDefinitionError, ProjectRequestError } from './errors.ts';
import { isStudyUid, PROJECT_NAME, projectDefinition, projectScope, type ProjectInput } from './project.ts';

/** Original StudyInstanceUIDs one request may name: a definition's `membership.studies`, or `add` and `remove` together. */
export const MAX_STUDIES_PER_REQUEST = 1_000;
/** The explicit list is read a page at a time (`?limit`, `?offset`). */
export const STUDY_PAGE_DEFAULT = 100;
export const STUDY_PAGE_MAX = 1_000;
const OFFSET_MAX = 2 ** 31 - 1;
const MAX_CONDITIONS = 32;
const MAX_OPTIONS = 64;
const MAX_OVERRIDES = 1_000;

/**
 * Builds the policy of `profile` in `scope` (config/resolve.ts `scopedPolicy`); throws DeidPolicyError,
 * its issues keyed `profile.…`, for a profile that is not valid.
 */
export type PolicyBuilder = (profile: StoredProfile, scope: string) => unknown;

/** PS3.5 6.2 LO (Patient ID): at most 64 characters, no control characters, no backslash (the value delimiter). */
const LO = /^[^\u0000-\u001f\u007f\\]{1,64}$/;

/** A field name fit to appear in a message; any other is not repeated. */
const nameOf = (key: string): string => (/^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(key) ? key : '(a field)');

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function unknownFields(value: Record<string, unknown>, allowed: readonly string[], prefix: string, issues: string[]): void {
  for (const key of Object.keys(value)) if (!allowed.includes(key)) issues.push(`${prefix}${nameOf(key)}: not a known field`);
}

/**
 * `POST /projects`: `{ name, description?, profile?: { options, overrides }, membership?: { all?, query?, studies? } }`.
 * 1. the shape: every field of the expected type, no unknown field, at most MAX_STUDIES_PER_REQUEST studies;
 * 2. the definition (projects/project.ts `projectDefinition`: name, membership, conditions, UIDs) and the
 *    profile, by building its policy in the project's scope: the issues of both reported together.
 */
export function parseProjectCreation(body: unknown, buildPolicy: PolicyBuilder): { project: NewProject; studies: readonly string[] } {
  if (!isRecord(body)) throw new ProjectDefinitionError(['body: a JSON object { name, description?, profile?, membership? }']);
  const issues: string[] = [];
  unknownFields(body, ['name', 'description', 'profile', 'membership'], '', issues);
  const { name, description, profile, membership } = body;
  if (typeof name !== 'string') issues.push('name: a project name');
  if (description !== undefined && typeof description !== 'string') issues.push('description: text of at most 1024 characters');
  if (membership !== undefined && !isRecord(membership)) issues.push('membership: an object { all?, query?, studies? }');
  if (isRecord(membership)) {
    unknownFields(membership, ['all', 'query', 'studies'], 'membership.', issues);
    if (membership['all'] !== undefined && typeof membership['all'] !== 'boolean') issues.push('membership.all: true or false');
    const query = membership['query'];
    if (query !== undefined && !(isRecord(query) && Object.keys(query).length <= MAX_CONDITIONS)) {
      issues.push(`membership.query: an object of at most ${MAX_CONDITIONS} attribute keywords, each with a matching value`);
    }
    const studies = membership['studies'];
    if (studies !== undefined && !(Array.isArray(studies) && studies.length <= MAX_STUDIES_PER_REQUEST)) {
      issues.push(`membership.studies: a list of at most ${MAX_STUDIES_PER_REQUEST} StudyInstanceUIDs (add more with POST /projects/{project}/studies)`);
    }
  }
  const stored = profile === undefined || profile === null ? undefined : storedProfile(profile, issues);
  if (issues.length > 0) throw new ProjectDefinitionError(issues);

  let definition: { project: NewProject; studies: readonly string[] } | undefined;
  try {
    definition = projectDefinition(name as string, {
      ...(description !== undefined ? { description: description as string } : {}),
      ...(stored ? { profile: stored } : {}),
      ...(membership !== undefined ? { membership: membership as ProjectInput['membership'] } : {}),
    });
  } catch (error) {
    if (!(error instanceof ProjectDefinitionError)) throw error;
    issues.push(...error.issues);
  }
  if (stored) issues.push(...profileIssues(stored, name as string, buildPolicy));
  if (issues.length > 0 || !definition) throw new ProjectDefinitionError(issues);
  return definition;
}

/** The profile's shape (the config's: option names, overrides of tag or keyword → action); its meaning is checked by building it. */
function storedProfile(profile: unknown, issues: string[]): StoredProfile | undefined {
  if (!isRecord(profile)) {
    issues.push('profile: an object { options, overrides }');
    return undefined;
  }
  const before = issues.length;
  unknownFields(profile, ['options', 'overrides', 'pixels'], 'profile.', issues);
  const pixels = profile['pixels'] === undefined ? undefined : storedPixels(profile['pixels'], issues);
  const options = profile['options'] ?? [];
  const overrides = profile['overrides'] ?? {};
  if (!Array.isArray(options) || options.length > MAX_OPTIONS || !options.every((o) => typeof o === 'string')) {
    issues.push('profile.options: a list of PS3.15 option names');
  }
  if (!isRecord(overrides) || Object.keys(overrides).length > MAX_OVERRIDES || !Object.values(overrides).every((v) => typeof v === 'string' && v.length <= 1024)) {
    issues.push(`profile.overrides: an object of at most ${MAX_OVERRIDES} tags or keywords, each with keep | remove | empty | replace:<value> | hash`);
  }
  if (issues.length > before) return undefined;
  return { options: [...new Set(options as string[])], overrides: { ...(overrides as Record<string, string>) }, ...(pixels ? { pixels } : {}) };
}

/**
 * A project's pixel policy as the config writes it (criteria, filters, rules). `ctpScripts` name files on
 * the gateway's disk, which are the operator's to choose: the config may name them, a request may not.
 */
function storedPixels(pixels: unknown, issues: string[]): StoredProfile['pixels'] {
  if (isRecord(pixels) && 'ctpScripts' in pixels) {
    issues.push('profile.pixels.ctpScripts: CTP scripts are named in the config file, not through the API');
    return undefined;
  }
  const parsed = pixelsSchema.safeParse(pixels);
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues) issues.push(`profile.pixels.${issue.path.map(String).map(nameOf).join('.')}: ${issue.message}`);
  return undefined;
}

/** The profile's issues, from building its policy; a policy failure that is not the profile's is no request's fault. */
function profileIssues(profile: StoredProfile, name: string, buildPolicy: PolicyBuilder): string[] {
  // A name that is not valid (reported already) still gets its profile checked, in a scope no project can have.
  const scope = projectScope(PROJECT_NAME.test(name) ? name : '-');
  try {
    buildPolicy(profile, scope);
    return [];
  } catch (error) {
    if (!(error instanceof DeidPolicyError) || !error.issues.every((issue) => issue.startsWith('profile.'))) throw error;
    return [...error.issues];
  }
}

/**
 * `POST /projects/{project}/studies`: `{ add?: [...], remove?: [...] }` of original StudyInstanceUIDs (as a PACS
 * may hold them: projects/project.ts `isStudyUid`, as a definition's), together at most MAX_STUDIES_PER_REQUEST.
 */
export function parseStudyChange(body: unknown): { add: readonly string[]; remove: readonly string[] } {
  const bad = (message: string) => new ProjectRequestError(message);
  if (!isRecord(body)) throw bad('expected { add?: [StudyInstanceUID…], remove?: [StudyInstanceUID…] }');
  const issues: string[] = [];
  unknownFields(body, ['add', 'remove'], '', issues);
  if (issues.length > 0) throw bad(issues.join('; '));
  const list = (key: 'add' | 'remove'): string[] => {
    const value = body[key] ?? [];
    if (!Array.isArray(value)) throw bad(`${key}: a list of StudyInstanceUIDs`);
    value.forEach((uid, i) => {
      if (typeof uid !== 'string' || !isStudyUid(uid)) throw bad(`${key}.${i}: not a StudyInstanceUID`);
    });
    return [...new Set(value as string[])];
  };
  const add = list('add');
  const remove = list('remove');
  if (add.length + remove.length === 0) throw bad('name at least one study to add or remove');
  if (add.length + remove.length > MAX_STUDIES_PER_REQUEST) throw bad(`at most ${MAX_STUDIES_PER_REQUEST} studies per request`);
  const removing = new Set(remove);
  if (add.some((uid) => removing.has(uid))) throw bad('a study is both added and removed');
  return { add, remove };
}

/** Whom a withdrawal of consent names: the original PatientID, or a project's pseudonymous PatientID. */
export type WithdrawalSubject = { readonly patientId: string } | { readonly pseudonym: string; readonly project: string };

/**
 * A withdrawal of consent: `{ patientId }` (the original PatientID, PS3.5 LO; leading and trailing spaces
 * are not significant, PS3.5 6.2) or `{ pseudonym }`, the PatientID the project's researchers see.
 * `project` is the project of the path; without one (`POST /withdrawals`, from every project) a
 * pseudonym needs `project` in the body to say whose it is (pseudonyms are scoped).
 */
export function parseWithdrawal(body: unknown, project: string | undefined): WithdrawalSubject {
  const shape = project === undefined ? '{ patientId } or { project, pseudonym }' : '{ patientId } or { pseudonym }';
  const bad = (message: string) => new ProjectRequestError(message);
  if (!isRecord(body)) throw bad(`expected ${shape}`);
  const allowed = project === undefined ? ['patientId', 'project', 'pseudonym'] : ['patientId', 'pseudonym'];
  const issues: string[] = [];
  unknownFields(body, allowed, '', issues);
  if (issues.length > 0) throw bad(issues.join('; '));
  const { patientId, pseudonym } = body;
  if ((patientId === undefined) === (pseudonym === undefined)) throw bad(`expected ${shape}: exactly one of patientId and pseudonym`);
  if (patientId !== undefined) {
    if (body['project'] !== undefined) throw bad('a PatientID is withdrawn from every project here; withdraw from one at POST /projects/{project}/withdrawals');
    const trimmed = typeof patientId === 'string' ? patientId.trim() : '';
    if (typeof patientId !== 'string' || !LO.test(patientId) || trimmed === '') {
      throw bad('patientId: a PatientID (LO) of 1 to 64 characters, no control characters or backslash');
    }
    return { patientId: trimmed };
  }
  if (typeof pseudonym !== 'string' || !LO.test(pseudonym)) throw bad('pseudonym: a pseudonymous PatientID (LO) of 1 to 64 characters');
  const scope = project ?? body['project'];
  if (typeof scope !== 'string' || !PROJECT_NAME.test(scope)) throw bad('project: the project whose pseudonym it is');
  return { pseudonym, project: scope };
}

/** `?limit` (1–STUDY_PAGE_MAX, default STUDY_PAGE_DEFAULT) and `?offset` of a project's explicit study list. */
export function parseStudyPage(params: URLSearchParams): { limit: number; offset: number } {
  const bad = (message: string) => new ProjectRequestError(message);
  for (const key of params.keys()) if (key !== 'limit' && key !== 'offset') throw bad('only limit and offset may be given');
  const number = (key: string, fallback: number, min: number, max: number): number => {
    const all = params.getAll(key);
    if (all.length === 0) return fallback;
    const n = all.length === 1 && /^\d{1,10}$/.test(all[0] as string) ? Number(all[0]) : Number.NaN;
    if (!(n >= min && n <= max)) throw bad(`${key} must be an integer ${min}–${max}`);
    return n;
  };
  return { limit: number('limit', STUDY_PAGE_DEFAULT, 1, STUDY_PAGE_MAX), offset: number('offset', 0, 0, OFFSET_MAX) };
}

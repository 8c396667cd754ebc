/** Project failures: a definition the gateway refuses, or a caller without the project it needs. */
export type ProjectErrorCode =
  | 'PROJECT_BAD_DEFINITION'
  | 'PROJECT_REQUIRED'
  | 'PROJECT_AMBIGUOUS'
  | 'PROJECT_NOT_GRANTED'
  | 'PROJECT_UNKNOWN'
  | 'PROJECT_EXISTS'
  | 'PROJECT_NOT_FOUND'
  | 'PROJECT_BAD_REQUEST'
  | 'PROJECT_PATIENT_UNKNOWN'
  | 'PROJECT_UNUSABLE';

export class ProjectError extends Error {
  override name = 'ProjectError';
  constructor(
    readonly code: ProjectErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A project definition (config bootstrap or steward API) that is not valid: every issue, each naming its key. */
export class ProjectDefinitionError extends ProjectError {
  override name = 'ProjectDefinitionError';
  constructor(readonly issues: readonly string[]) {
    super('PROJECT_BAD_DEFINITION', `the project definition is not valid: ${issues.join('; ')}`);
  }
}

/** A researcher token that names no project (403): fail closed, a researcher sees nothing outside a project. */
export class ProjectRequiredError extends ProjectError {
  override name = 'ProjectRequiredError';
  constructor() {
    super('PROJECT_REQUIRED', 'the token grants no project; research access is per project');
  }
}

/** A token with several projects on the path without a project (403): it must say which. */
export class ProjectAmbiguousError extends ProjectError {
  override name = 'ProjectAmbiguousError';
  constructor(basePath: string) {
    super('PROJECT_AMBIGUOUS', `the token grants several projects: use /projects/{project}${basePath}`);
  }
}

/** A project in the path that the token does not grant (403). */
export class ProjectNotGrantedError extends ProjectError {
  override name = 'ProjectNotGrantedError';
  constructor() {
    super('PROJECT_NOT_GRANTED', 'the token does not grant this project');
  }
}

/** A project the token grants but the store does not hold (403 for DICOMweb; 404 for the steward). */
export class ProjectUnknownError extends ProjectError {
  override name = 'ProjectUnknownError';
  constructor() {
    super('PROJECT_UNKNOWN', 'no such project');
  }
}

/** A steward creating a project whose name is taken (409). */
export class ProjectExistsError extends ProjectError {
  override name = 'ProjectExistsError';
  constructor() {
    super('PROJECT_EXISTS', 'a project of that name exists');
  }
}

/**
 * The steward names a project the store does not hold (404). Distinct from ProjectUnknownError (403): the
 * steward manages projects, so for them "no such project" is a missing resource, not a missing grant.
 */
export class ProjectNotFoundError extends ProjectError {
  override name = 'ProjectNotFoundError';
  constructor() {
    super('PROJECT_NOT_FOUND', 'no such project');
  }
}

/** A steward request about a project (study list change, withdrawal, page) that is malformed (400). */
export class ProjectRequestError extends ProjectError {
  override name = 'ProjectRequestError';
  constructor(message: string) {
    super('PROJECT_BAD_REQUEST', message);
  }
}

/** A withdrawal by a pseudonymous PatientID the project never issued (404, as re-identification answers). */
export class PatientPseudonymUnknownError extends ProjectError {
  override name = 'PatientPseudonymUnknownError';
  constructor() {
    super('PROJECT_PATIENT_UNKNOWN', 'no PatientID was issued under this pseudonym in the project');
  }
}

/**
 * A project the store holds but the gateway cannot serve (a stored query or profile that no longer
 * builds, e.g. after an upgrade tightened a check): 503, and the caller is told nothing of the definition.
 */
export class ProjectUnusableError extends ProjectError {
  override name = 'ProjectUnusableError';
  constructor(options?: { cause?: unknown }) {
    super('PROJECT_UNUSABLE', 'the project cannot be served; see the gateway log', options);
  }
}

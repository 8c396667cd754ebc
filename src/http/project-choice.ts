// Which project a researcher's request is served in (issue: projects). OHIF takes one DICOMweb base URL
// per data source, so the project is part of the URL: `/projects/{project}/dicom-web/…` serves that
// project (it must be one the token grants); the plain `/dicom-web/…` serves the token's only project,
// and a token with several must name one in the path. A researcher token with none sees nothing.
import type { NextFunction, Request, Response } from 'express';
import { RoleForbiddenError } from '../auth/errors.ts';
import { ProjectAmbiguousError, ProjectNotGrantedError, ProjectRequiredError } from '../projects/errors.ts';
import { PROJECT_NAME } from '../projects/project.ts';
import { callerOf, requestState } from './request-context.ts';

/** The path below which a project's DICOMweb base lies: `/projects/{project}` + `server.basePath`. */
export const PROJECT_PATH = '/projects/:project';

export function chooseProject(basePath: string) {
  return (req: Request, res: Response, next: NextFunction): void => {
    try {
      const caller = callerOf(res);
      const named = typeof req.params['project'] === 'string' ? req.params['project'] : undefined;
      if (caller.role !== 'researcher') {
        // Project paths are the researcher's: every other role's access does not depend on a project.
        if (named !== undefined) throw new RoleForbiddenError(caller.role, 'project paths');
        next();
        return;
      }
      let project: string | undefined;
      if (named !== undefined) {
        if (!PROJECT_NAME.test(named) || !caller.projects.includes(named)) throw new ProjectNotGrantedError();
        project = named;
      } else if (caller.projects.length === 1) project = caller.projects[0];
      else if (caller.projects.length === 0) throw new ProjectRequiredError();
      else throw new ProjectAmbiguousError(basePath);
      requestState(res).project = project;
      next();
    } catch (error) {
      next(error);
    }
  };
}

/** The public DICOMweb base of a project: `…/projects/{project}/dicom-web` for `…/dicom-web`. */
export function projectBaseUrl(url: string, basePath: string, project: string): string {
  const root = url.endsWith(basePath) ? url.slice(0, -basePath.length) : url;
  return `${root}/projects/${project}${basePath}`;
}

import { isDeepStrictEqual } from 'node:util';
import type { GatewayConfig } from '../config/schema.ts';
import type { ProjectStore } from '../store/project-store.ts';
import { projectDefinition } from './project.ts';

/**
 * Creates the config's projects (`projects:`) that the store does not hold yet, with their explicit
 * studies. A project the store already holds is left as it is: after the first start the steward API
 * owns it, and a restart must not undo a removal or a withdrawal. Where the config now says something
 * else (a tightened profile, another query), that is logged: the store's definition stays in force.
 */
export async function bootstrapProjects(
  store: ProjectStore,
  projects: GatewayConfig['projects'],
  log: { info(details: object, message: string): void; warn(details: object, message: string): void },
): Promise<void> {
  for (const [name, input] of Object.entries(projects)) {
    const { project, studies } = projectDefinition(name, input);
    if (await store.createProject(project, studies)) {
      log.info({ project: name, studies: studies.length }, 'project created from the config');
      continue;
    }
    const stored = await store.project(name);
    const differs = ['description', 'profile', 'allStudies', 'query'].filter(
      (key) => !isDeepStrictEqual(stored?.[key as keyof typeof project], project[key as keyof typeof project]),
    );
    if (differs.length > 0) {
      log.warn({ project: name, differs }, "the config defines this project otherwise than the store; the store's definition is in force (change it through the steward API)");
    }
  }
}

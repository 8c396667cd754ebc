import type { GatewayConfig } from '../config/schema.ts';
import type { ProjectStore } from '../store/project-store.ts';
import { projectDefinition } from './project.ts';

/**
 * Creates the config's projects (`projects:`) that the store does not hold yet, with their explicit
 * studies. A project the store already holds is left as it is: after the first start the steward API
 * owns it, and a restart must not undo a removal or a withdrawal.
 */
export async function bootstrapProjects(
  store: ProjectStore,
  projects: GatewayConfig['projects'],
  log: { info(details: object, message: string): void },
): Promise<void> {
  for (const [name, input] of Object.entries(projects)) {
    const { project, studies } = projectDefinition(name, input);
    if (!(await store.createProject(project, studies))) continue;
    log.info({ project: name, studies: studies.length }, 'project created from the config');
  }
}

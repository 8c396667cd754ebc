import type { NewProject, ProjectRecord, StoredProfile } from './project-store.ts';

/** The scope of mappings made before projects existed (see the backends' migrations); no caller reads it. */
export const UNSCOPED = '';

/** A `project` row as both backends return it. */
export interface ProjectRow {
  name: string;
  description: string;
  profile: string | null;
  all_studies: number | boolean;
  query: string | null;
  created_at: string | Date;
}

/** The column values of a new project, in the order name, description, profile, all_studies, query. */
export function projectValues(p: NewProject): [string, string, string | null, number, string | null] {
  return [p.name, p.description, p.profile ? JSON.stringify(p.profile) : null, p.allStudies ? 1 : 0, p.query ? JSON.stringify(p.query) : null];
}

export function projectOfRow(row: ProjectRow): ProjectRecord {
  return Object.freeze({
    name: row.name,
    description: row.description,
    profile: row.profile === null ? undefined : (JSON.parse(row.profile) as StoredProfile),
    allStudies: row.all_studies === true || row.all_studies === 1,
    query: row.query === null ? undefined : (JSON.parse(row.query) as Record<string, string>),
    createdAt: row.created_at instanceof Date ? row.created_at.toISOString() : row.created_at,
  });
}

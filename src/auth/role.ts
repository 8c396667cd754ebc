import type { JWTPayload } from 'jose';
import type { Role } from '../config/schema.ts';
import { PROJECT_NAME } from '../projects/project.ts';
import { NoRoleError, RoleForbiddenError } from './errors.ts';

export interface RoleOptions {
  roleClaim: string;
  roleMap: Readonly<Record<string, Role>>;
  rolePrecedence: readonly Role[];
  /** `auth.projectClaim`: dot path to the claim naming the caller's projects. */
  projectClaim: string;
  /** `auth.projectPrefix`: only values with it name projects, and it is removed. */
  projectPrefix: string;
}

/** The DICOMweb transaction classes the route matrix speaks of (PS3.18 10.4–10.6). */
export type RouteClass = 'search' | 'retrieve' | 'store';

/** How a role is served on a route class: the original, a de-identified view, or not at all. */
export type Treatment = 'original' | 'deidentified' | 'forbidden';

/**
 * The route matrix: clinician everything; researcher reads (de-identified); uploader stores (de-identified);
 * steward no DICOMweb at all (it only maps pseudonyms back and reads the audit trail, see `authorizeStewardship`).
 */
const MATRIX: Readonly<Record<Role, Readonly<Record<RouteClass, Treatment>>>> = {
  clinician: { search: 'original', retrieve: 'original', store: 'original' },
  researcher: { search: 'deidentified', retrieve: 'deidentified', store: 'forbidden' },
  uploader: { search: 'forbidden', retrieve: 'forbidden', store: 'deidentified' },
  steward: { search: 'forbidden', retrieve: 'forbidden', store: 'forbidden' },
};

/** What only the steward may do, outside DICOMweb: map pseudonyms back, read the audit trail, manage projects. */
export type StewardAction = 'reidentify' | 'audit' | 'projects';

/** Reads a dot-path claim; accepts an array of strings or a space-separated string (OAuth `scope`). */
export function claimValues(payload: JWTPayload, path: string): string[] {
  let node: unknown = payload;
  for (const key of path.split('.')) {
    if (typeof node !== 'object' || node === null || Array.isArray(node)) return [];
    node = (node as Record<string, unknown>)[key];
  }
  if (typeof node === 'string') return node.split(' ').filter(Boolean);
  if (Array.isArray(node)) return node.filter((v): v is string => typeof v === 'string');
  return [];
}

/** Maps the token's role claim to one gateway role, the first in precedence order that it carries. */
export function resolveRole(payload: JWTPayload, options: RoleOptions): Role {
  const held = new Set<Role>();
  for (const value of claimValues(payload, options.roleClaim)) {
    const role = Object.hasOwn(options.roleMap, value) ? options.roleMap[value] : undefined;
    if (role) held.add(role);
  }
  const role = options.rolePrecedence.find((r) => held.has(r));
  if (!role) throw new NoRoleError();
  return role;
}

/** The projects the token grants: claim values with the prefix, removed, that are project names; sorted, once each. */
export function resolveProjects(payload: JWTPayload, options: Pick<RoleOptions, 'projectClaim' | 'projectPrefix'>): string[] {
  const names = claimValues(payload, options.projectClaim)
    .filter((v) => v.startsWith(options.projectPrefix))
    .map((v) => v.slice(options.projectPrefix.length))
    .filter((v) => PROJECT_NAME.test(v));
  return [...new Set(names)].sort();
}

export function treatmentFor(role: Role, routeClass: RouteClass): Exclude<Treatment, 'forbidden'> {
  const treatment = MATRIX[role][routeClass];
  if (treatment === 'forbidden') throw new RoleForbiddenError(role, routeClass);
  return treatment;
}

/** Re-identification, the audit trail and projects are the steward's alone; every other role is refused (403). */
export function authorizeStewardship(role: Role, action: StewardAction): void {
  if (role !== 'steward') throw new RoleForbiddenError(role, action);
}

import type { JWTPayload } from 'jose';
import type { Role } from '../config/schema.ts';
import { NoRoleError, RoleForbiddenError } from './errors.ts';

export interface RoleOptions {
  roleClaim: string;
  roleMap: Readonly<Record<string, Role>>;
  rolePrecedence: readonly Role[];
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

/** What only the steward may do, outside DICOMweb: map pseudonyms back, read the audit trail. */
export type StewardAction = 'reidentify' | 'audit';

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

export function treatmentFor(role: Role, routeClass: RouteClass): Exclude<Treatment, 'forbidden'> {
  const treatment = MATRIX[role][routeClass];
  if (treatment === 'forbidden') throw new RoleForbiddenError(role, routeClass);
  return treatment;
}

/** Re-identification and the audit trail are the steward's alone; every other role is refused (403). */
export function authorizeStewardship(role: Role, action: StewardAction): void {
  if (role !== 'steward') throw new RoleForbiddenError(role, action);
}

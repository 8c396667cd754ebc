import { MAPS_BACK } from '../deid/pseudonym.ts';
import { isUid } from '../dicom/uid.ts';
import type { MappingKind, ScopedPseudonyms } from '../store/pseudonym-store.ts';
import { PROJECT_NAME } from '../projects/project.ts';
import { AuditRequestError } from './errors.ts';

/** What a steward may map back: UIDs, and the identity attributes that map back (deid/pseudonym.ts). */
export const REIDENTIFIABLE = ['uid', ...MAPS_BACK.map((a) => a.kind)] as const satisfies readonly MappingKind[];
export type ReidentifiableKind = (typeof REIDENTIFIABLE)[number];

export interface ReidentifyItem {
  readonly kind: ReidentifiableKind;
  readonly pseudonym: string;
}

export interface ReidentifyRequest {
  /** One object asked (answered as one object, 404 if unknown) or a list (answered as a list). */
  readonly single: boolean;
  readonly items: readonly ReidentifyItem[];
  /** Whose pseudonyms: a project's (its name) or the uploads' (`uploads: true`). */
  readonly scope: { readonly project: string } | { readonly uploads: true };
}

/** The DICOM keyword of what a pseudonym stands for, for the audit record's ParticipantObjectIDTypeCode. */
export const KEYWORD_OF = Object.fromEntries([['uid', 'UID'], ...MAPS_BACK.map((a) => [a.kind, a.keyword])]) as Readonly<Record<ReidentifiableKind, string>>;

/** PS3.5 6.2: LO (Patient ID) is at most 64 characters, SH (Accession Number) 16; no control characters. */
const CODE = /^[^\u0000-\u001f\u007f\\]{1,64}$/;

/**
 * `{ project, kind, pseudonym }`, or `{ project, items: [...] }` of `{ kind, pseudonym }`, at most
 * `maxItems`; `uploads: true` instead of `project` for the uploads' scope. Pseudonyms are scoped: the
 * same original has another pseudonym in each project, so the request must say whose it is.
 */
export function parseReidentifyRequest(body: unknown, maxItems: number): ReidentifyRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new AuditRequestError('REID_BAD_REQUEST', 'expected { project, kind, pseudonym } or { project, items: [...] }');
  }
  const { project, uploads } = body as { project?: unknown; uploads?: unknown };
  const byProject = typeof project === 'string' && PROJECT_NAME.test(project);
  if (byProject === (uploads === true) || (project !== undefined && !byProject)) {
    throw new AuditRequestError('REID_BAD_REQUEST', 'name the project ("project") or the uploads ("uploads": true), not both');
  }
  const scope = byProject ? { project: project as string } : { uploads: true as const };
  const single = !('items' in body);
  const list = single ? [body] : (body as { items?: unknown }).items;
  if (!Array.isArray(list) || list.length === 0) {
    throw new AuditRequestError('REID_BAD_REQUEST', 'expected { kind, pseudonym } or a non-empty list of them');
  }
  if (list.length > maxItems) {
    throw new AuditRequestError('REID_TOO_MANY', `at most ${maxItems} pseudonyms per request`);
  }
  const items = list.map((entry, i): ReidentifyItem => {
    const { kind, pseudonym } = (entry ?? {}) as { kind?: unknown; pseudonym?: unknown };
    if (typeof kind !== 'string' || !(REIDENTIFIABLE as readonly string[]).includes(kind)) {
      throw new AuditRequestError('REID_BAD_REQUEST', `item ${i}: kind must be one of ${REIDENTIFIABLE.join(', ')}`);
    }
    const valid =
      typeof pseudonym === 'string' &&
      (kind === 'uid' ? isUid(pseudonym) : CODE.test(pseudonym));
    if (!valid) throw new AuditRequestError('REID_BAD_REQUEST', `item ${i}: pseudonym is not a valid ${kind}`);
    return { kind: kind as ReidentifiableKind, pseudonym: pseudonym as string };
  });
  return { single, items, scope };
}

/** Each item with its original, or undefined where the gateway never issued that pseudonym. */
export async function reidentify(
  store: Pick<ScopedPseudonyms, 'originalOf'>,
  items: readonly ReidentifyItem[],
): Promise<Array<ReidentifyItem & { original: string | undefined }>> {
  const out = [];
  for (const item of items) out.push({ ...item, original: await store.originalOf(item.kind, item.pseudonym) });
  return out;
}

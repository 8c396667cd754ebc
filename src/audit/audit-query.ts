import type { AuditQuery } from '../store/audit-trail.ts';
import { AuditRequestError } from './errors.ts';

export const AUDIT_PAGE_DEFAULT = 100;
export const AUDIT_PAGE_MAX = 1_000;

/** `since` (ISO 8601 date-time, inclusive), `after` (a record id, exclusive), `limit` (1–1000). */
export function parseAuditQuery(params: URLSearchParams): AuditQuery {
  const bad = (message: string) => new AuditRequestError('AUDIT_BAD_QUERY', message);
  for (const name of params.keys()) if (!['since', 'after', 'limit'].includes(name)) throw bad(`unknown parameter ${name}`);
  const sinceText = params.get('since');
  const since = sinceText === null ? undefined : new Date(sinceText);
  if (sinceText !== null && (!/^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(sinceText) || Number.isNaN(since?.getTime()))) {
    throw bad('since must be an ISO 8601 date-time');
  }
  const after = params.get('after') ?? undefined;
  if (after !== undefined && !/^\d{1,18}$/.test(after)) throw bad('after must be a record id');
  const limitText = params.get('limit');
  const limit = limitText === null ? AUDIT_PAGE_DEFAULT : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > AUDIT_PAGE_MAX) throw bad(`limit must be 1–${AUDIT_PAGE_MAX}`);
  return { ...(since ? { since } : {}), ...(after ? { afterId: after } : {}), limit };
}

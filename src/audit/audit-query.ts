import type { AuditQuery, EventOutcomeIndicator } from '../store/audit-trail.ts';
import { AuditRequestError } from './errors.ts';

export const AUDIT_PAGE_DEFAULT = 100;
export const AUDIT_PAGE_MAX = 1_000;

/** The filters `GET /audit` takes, each at most once; the names the steward's page uses. */
export const AUDIT_FILTERS = ['since', 'until', 'after', 'limit', 'order', 'user', 'role', 'event', 'object', 'project', 'outcome'] as const;

const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/;
/** A token `sub`, a pseudonym, an AE title: printable, no control characters. */
const TEXT = /^[^\u0000-\u001f\u007f]{1,256}$/;
const ROLE = /^[a-z][a-z0-9_-]{0,31}$/;
/** A code of PS3.16 CID 400 (`110112`) or of the gateway's local `99DEIDGW` scheme (`REIDENTIFY`). */
const CODE = /^[A-Za-z0-9_.-]{1,64}$/;
const PROJECT = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/**
 * `since` / `until` (ISO 8601 date-times: at or after, before), `after` (a record id, exclusive, in the
 * order asked), `limit` (1–1000), `order` (`asc`, oldest first, the default; `desc`), and the filters:
 * `user` (who: the token's `sub`), `role`, `event` (what: an EventID or EventTypeCode code), `object`
 * (a ParticipantObjectID: the pseudonym or pseudonymous UID an event concerned), `project`, `outcome`
 * (EventOutcomeIndicator 0, 4, 8, 12). Every problem is a 400 naming the parameter, never echoing it.
 */
export function parseAuditQuery(params: URLSearchParams): AuditQuery {
  const bad = (message: string) => new AuditRequestError('AUDIT_BAD_QUERY', message);
  const names = [...params.keys()];
  for (const name of names) if (!(AUDIT_FILTERS as readonly string[]).includes(name)) throw bad('unknown parameter');
  for (const name of AUDIT_FILTERS) if (names.filter((n) => n === name).length > 1) throw bad(`${name} may be given once`);
  const date = (name: 'since' | 'until'): Date | undefined => {
    const text = params.get(name);
    if (text === null) return undefined;
    const when = new Date(text);
    if (!ISO_DATE_TIME.test(text) || Number.isNaN(when.getTime())) throw bad(`${name} must be an ISO 8601 date-time`);
    return when;
  };
  const text = (name: string, pattern: RegExp, what: string): string | undefined => {
    const value = params.get(name);
    if (value === null) return undefined;
    if (!pattern.test(value)) throw bad(`${name} must be ${what}`);
    return value;
  };
  const since = date('since');
  const until = date('until');
  const after = text('after', /^\d{1,18}$/, 'a record id');
  const limitText = params.get('limit');
  const limit = limitText === null ? AUDIT_PAGE_DEFAULT : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > AUDIT_PAGE_MAX) throw bad(`limit must be 1–${AUDIT_PAGE_MAX}`);
  const order = text('order', /^(asc|desc)$/, 'asc or desc');
  const outcomeText = text('outcome', /^(0|4|8|12)$/, '0, 4, 8 or 12');
  const userId = text('user', TEXT, 'a token subject');
  const roleId = text('role', ROLE, 'a role name');
  const eventCode = text('event', CODE, 'an EventID or EventTypeCode code');
  const participantObjectId = text('object', TEXT, 'a ParticipantObjectID');
  const project = text('project', PROJECT, 'a project name');
  return {
    ...(since ? { since } : {}),
    ...(until ? { until } : {}),
    ...(after !== undefined ? { afterId: after } : {}),
    ...(userId !== undefined ? { userId } : {}),
    ...(roleId !== undefined ? { roleId } : {}),
    ...(eventCode !== undefined ? { eventCode } : {}),
    ...(participantObjectId !== undefined ? { participantObjectId } : {}),
    ...(project !== undefined ? { project } : {}),
    ...(outcomeText !== undefined ? { outcome: Number(outcomeText) as EventOutcomeIndicator } : {}),
    ...(order === 'desc' ? { newestFirst: true } : {}),
    limit,
  };
}

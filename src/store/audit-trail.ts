/**
 * The audit trail: who did what to which (pseudonymous) object, when, and how it ended. Append-only:
 * there is no update or delete here, and each backend refuses UPDATE/DELETE on its table with a
 * trigger. Field names follow the audit message of DICOM PS3.15 A.5 (IHE ATNA, RFC 3881).
 */

/** A coded value (PS3.3 Code Sequence Macro): CodeValue, CodingSchemeDesignator, CodeMeaning. */
export interface CodedValue {
  readonly code: string;
  readonly codingScheme: string;
  readonly meaning: string;
}

/** PS3.15 A.5.1 EventActionCode: Create, Read, Update, Delete, Execute. */
export type EventActionCode = 'C' | 'R' | 'U' | 'D' | 'E';

/** PS3.15 A.5.1 EventOutcomeIndicator: 0 success, 4 minor failure, 8 serious failure, 12 major failure. */
export type EventOutcomeIndicator = 0 | 4 | 8 | 12;

/** PS3.4 C.2.2.2 matching: universal (empty), single value, list (a UID list, or values separated by a backslash), wild card, range. */
export type MatchingMode = 'universal' | 'single' | 'list' | 'wildcard' | 'range';

/** Written where the caller sent something that is not a keyword, a tag or a valid control value. */
export const INVALID = '(invalid)';
/** Written for a UID the gateway never issued as a pseudonym (it may be an original: never kept). */
export const NOT_ISSUED = '(not issued)';

/** One matching key of a QIDO-RS request. */
export interface QueryKey {
  /** The attribute's PS3.6 keyword (a tag key normalised, a sequence path dotted), or `(invalid)`. */
  readonly keyword: string;
  readonly mode: MatchingMode;
  /**
   * StudyInstanceUID, SeriesInstanceUID and SOPInstanceUID only: the UIDs asked, each a pseudonym the
   * gateway issued, or `(not issued)` / `(invalid)`. No other value the caller sent is kept.
   */
  readonly values?: readonly string[];
  /** Values past the cap, not listed. */
  readonly valuesOmitted?: number;
}

/**
 * ATNA ParticipantObjectQuery (PS3.15 A.5.3.12 Query), described instead of copied: the keys and how
 * they match, the PS3.18 8.3.4 control parameters, never the values (they may be originals tried as an
 * oracle), but for pseudonymous UIDs.
 */
export interface QueryDescription {
  readonly keys: readonly QueryKey[];
  /** Keys past the cap, not listed. */
  readonly keysOmitted?: number;
  readonly limit?: number | typeof INVALID;
  readonly offset?: number | typeof INVALID;
  readonly fuzzymatching?: boolean | typeof INVALID;
  /** Keywords, `all`, or `(invalid)`. */
  readonly includefield?: readonly string[];
}

export interface AuditEvent {
  /** EventDateTime. */
  readonly eventDateTime: Date;
  /** EventID (PS3.16 CID 400). */
  readonly eventId: CodedValue;
  /** EventTypeCode, where the EventID alone does not say it (re-identification). */
  readonly eventTypeCode?: CodedValue;
  readonly eventActionCode: EventActionCode;
  readonly eventOutcomeIndicator: EventOutcomeIndicator;
  /** ActiveParticipant UserID: the token's `sub`. */
  readonly userId: string;
  /** ActiveParticipant RoleIDCode: the gateway role the token resolved to. */
  readonly roleId: string;
  /** The transaction as a route pattern (`GET /studies/:study/metadata`), never a concrete URL. */
  readonly route: string;
  readonly httpStatus: number;
  /** ParticipantObjectID: a pseudonymous UID or code, never an original. */
  readonly participantObjectId?: string;
  /** What ParticipantObjectID is: a DICOM keyword (`StudyInstanceUID`) or the pseudonym kind. */
  readonly participantObjectIdTypeCode?: string;
  /** The pseudonymous SeriesInstanceUID targeted (ATNA's study participant object has no series of its own). */
  readonly seriesInstanceUid?: string;
  /** ParticipantObjectQuery: what a QIDO-RS request asked (keys and matching modes, never its values). */
  readonly participantObjectQuery?: QueryDescription;
  /** The request id the gateway log carries, to join the two. */
  readonly requestId?: string;
  /**
   * The pseudonym scope the event concerns: the project a researcher was served in or a steward changed
   * or re-identified within (its name), or `upload` for the uploader's scope.
   */
  readonly project?: string;
  /** How many instances the event moved (PS3.15 A.5.3.2 DICOM Instances Transferred: the DIMSE ingress). */
  readonly numberOfInstances?: number;
  /** Instances the pixel policy withheld from the response (issue 16); absent when no pixel policy was in force. */
  readonly instancesWithheld?: number;
  /** Instances the response carried with their pixels redacted by a rule (issue 16). */
  readonly instancesRedacted?: number;
}

export interface AuditRecord extends AuditEvent {
  /** Position in the trail (ascending, assigned by the store). */
  readonly id: string;
}

export interface AuditQuery {
  /** Records whose EventDateTime is at or after this. */
  readonly since?: Date;
  /** Records whose EventDateTime is before this. */
  readonly until?: Date;
  /** Records after this id in the order asked (paging): a larger id oldest first, a smaller one newest first. */
  readonly afterId?: string;
  /** Who: the ActiveParticipant UserID (the token's `sub`), exactly. */
  readonly userId?: string;
  /** Who, by role: RoleIDCode, exactly. */
  readonly roleId?: string;
  /** What: the EventID code (`110112`) or the EventTypeCode code (`REIDENTIFY`). */
  readonly eventCode?: string;
  /** What, by object: ParticipantObjectID (a pseudonym), exactly. */
  readonly participantObjectId?: string;
  readonly project?: string;
  readonly outcome?: EventOutcomeIndicator;
  /** Oldest first (default) or newest first. */
  readonly newestFirst?: boolean;
  readonly limit: number;
}

/**
 * The WHERE and ORDER BY of a trail query, for either SQL backend: `param` binds one value and returns
 * its placeholder (typed where the backend wants it). Coded values are stored as `code^scheme^meaning`,
 * so a code matches the text before the first `^`.
 */
export function auditQuerySql(
  q: AuditQuery,
  param: (value: string | number, type: 'timestamptz' | 'bigint' | 'text' | 'int') => string,
): string {
  const where: string[] = [];
  if (q.since) where.push(`event_date_time >= ${param(q.since.toISOString(), 'timestamptz')}`);
  if (q.until) where.push(`event_date_time < ${param(q.until.toISOString(), 'timestamptz')}`);
  if (q.afterId !== undefined) where.push(`id ${q.newestFirst ? '<' : '>'} ${param(q.afterId, 'bigint')}`);
  if (q.userId !== undefined) where.push(`user_id = ${param(q.userId, 'text')}`);
  if (q.roleId !== undefined) where.push(`role_id = ${param(q.roleId, 'text')}`);
  if (q.participantObjectId !== undefined) where.push(`participant_object_id = ${param(q.participantObjectId, 'text')}`);
  if (q.project !== undefined) where.push(`project = ${param(q.project, 'text')}`);
  if (q.outcome !== undefined) where.push(`event_outcome_indicator = ${param(q.outcome, 'int')}`);
  if (q.eventCode !== undefined) {
    const prefix = `${q.eventCode}^`;
    const code = (column: string) => `substr(${column}, 1, ${param(prefix.length, 'int')}) = ${param(prefix, 'text')}`;
    where.push(`(${code('event_id')} OR ${code('event_type_code')})`);
  }
  return `${where.length > 0 ? `WHERE ${where.join(' AND ')} ` : ''}ORDER BY id ${q.newestFirst ? 'DESC' : 'ASC'} LIMIT ${param(q.limit, 'int')}`;
}

export interface AuditTrail {
  /** Persists one record before it resolves. */
  append(event: AuditEvent): Promise<void>;
  /** Oldest first. */
  list(query: AuditQuery): Promise<AuditRecord[]>;
}

/** The row both SQL backends keep (one column per field; coded values as `code^scheme^meaning`). */
export interface AuditRow {
  id: string | number | bigint;
  event_date_time: string | Date;
  event_id: string;
  event_type_code: string | null;
  event_action_code: string;
  event_outcome_indicator: number;
  user_id: string;
  role_id: string;
  route: string;
  http_status: number;
  participant_object_id: string | null;
  participant_object_id_type_code: string | null;
  request_id: string | null;
  series_instance_uid: string | null;
  /** JSON: text in SQLite, jsonb (parsed by pg) in PostgreSQL. */
  participant_object_query: string | QueryDescription | null;
  project: string | null;
  number_of_instances: number | null;
  instances_withheld: number | null;
  instances_redacted: number | null;
}

/** The columns, in the order `auditValues` gives them. */
export const AUDIT_COLUMNS = [
  'event_date_time',
  'event_id',
  'event_type_code',
  'event_action_code',
  'event_outcome_indicator',
  'user_id',
  'role_id',
  'route',
  'http_status',
  'participant_object_id',
  'participant_object_id_type_code',
  'request_id',
  'series_instance_uid',
  'participant_object_query',
  'project',
  'number_of_instances',
  'instances_withheld',
  'instances_redacted',
] as const;

/**
 * Columns added after the first release, with their SQL type per backend: each store adds the missing
 * ones to an existing table at start (ALTER TABLE … ADD COLUMN), so an older trail keeps its records.
 */
export const AUDIT_ADDED_COLUMNS = [
  { name: 'series_instance_uid', sqlite: 'TEXT', postgres: 'text' },
  { name: 'participant_object_query', sqlite: 'TEXT', postgres: 'jsonb' },
  { name: 'project', sqlite: 'TEXT', postgres: 'text' },
  { name: 'number_of_instances', sqlite: 'INTEGER', postgres: 'integer' },
  { name: 'instances_withheld', sqlite: 'INTEGER', postgres: 'integer' },
  { name: 'instances_redacted', sqlite: 'INTEGER', postgres: 'integer' },
] as const;

const encodeCode = (c: CodedValue): string => [c.code, c.codingScheme, c.meaning].join('^');
const decodeCode = (s: string): CodedValue => {
  const [code = '', codingScheme = '', ...meaning] = s.split('^');
  return { code, codingScheme, meaning: meaning.join('^') };
};

export function auditValues(e: AuditEvent): Array<string | number | null> {
  return [
    e.eventDateTime.toISOString(),
    encodeCode(e.eventId),
    e.eventTypeCode ? encodeCode(e.eventTypeCode) : null,
    e.eventActionCode,
    e.eventOutcomeIndicator,
    e.userId,
    e.roleId,
    e.route,
    e.httpStatus,
    e.participantObjectId ?? null,
    e.participantObjectIdTypeCode ?? null,
    e.requestId ?? null,
    e.seriesInstanceUid ?? null,
    e.participantObjectQuery ? JSON.stringify(e.participantObjectQuery) : null,
    e.project ?? null,
    e.numberOfInstances ?? null,
    e.instancesWithheld ?? null,
    e.instancesRedacted ?? null,
  ];
}

export function auditRecordOf(row: AuditRow): AuditRecord {
  return {
    id: String(row.id),
    eventDateTime: new Date(row.event_date_time),
    eventId: decodeCode(row.event_id),
    ...(row.event_type_code ? { eventTypeCode: decodeCode(row.event_type_code) } : {}),
    eventActionCode: row.event_action_code as EventActionCode,
    eventOutcomeIndicator: Number(row.event_outcome_indicator) as EventOutcomeIndicator,
    userId: row.user_id,
    roleId: row.role_id,
    route: row.route,
    httpStatus: Number(row.http_status),
    ...(row.participant_object_id !== null ? { participantObjectId: row.participant_object_id } : {}),
    ...(row.participant_object_id_type_code !== null ? { participantObjectIdTypeCode: row.participant_object_id_type_code } : {}),
    ...(row.request_id !== null ? { requestId: row.request_id } : {}),
    ...(row.series_instance_uid !== null ? { seriesInstanceUid: row.series_instance_uid } : {}),
    ...(row.participant_object_query !== null
      ? {
          participantObjectQuery:
            typeof row.participant_object_query === 'string' ? (JSON.parse(row.participant_object_query) as QueryDescription) : row.participant_object_query,
        }
      : {}),
    ...(row.project !== null && row.project !== undefined ? { project: row.project } : {}),
    ...(row.number_of_instances !== null && row.number_of_instances !== undefined ? { numberOfInstances: Number(row.number_of_instances) } : {}),
    ...(row.instances_withheld !== null && row.instances_withheld !== undefined ? { instancesWithheld: Number(row.instances_withheld) } : {}),
    ...(row.instances_redacted !== null && row.instances_redacted !== undefined ? { instancesRedacted: Number(row.instances_redacted) } : {}),
  };
}

import { Router, type NextFunction, type Request, type Response } from 'express';
import { authorizeStewardship, type RoleOptions, type StewardAction } from '../auth/role.ts';
import type { TokenVerifier } from '../auth/token.ts';
import { EVENT_ID, eventForTransaction, outcomeOf } from '../audit/atna.ts';
import { parseAuditQuery } from '../audit/audit-query.ts';
import { describeQuery, type IsIssued } from '../audit/query-description.ts';
import type { Role } from '../config/schema.ts';
import { isUid } from '../dicom/uid.ts';
import type { DicomwebRoute } from '../dicomweb/routes.ts';
import { INVALID, NOT_ISSUED, type AuditEvent, type AuditTrail, type EventOutcomeIndicator, type QueryDescription } from '../store/audit-trail.ts';
import { authenticate } from './auth.ts';
import { mapError } from './error-mapping.ts';
import { callerOf, requestState, roleOf, setRoute } from './request-context.ts';
import { rawQueryOf } from './request-target.ts';

/** The roles whose DICOMweb requests are recorded: the restricted ones, and a steward who tries DICOMweb. */
const AUDITED_ROLES: ReadonlySet<Role> = new Set(['researcher', 'uploader', 'steward']);

/** Written as the subject of a token without `sub`. */
export const NO_SUBJECT = '(no sub)';

/** The fields every record of this request shares: who (token `sub`, role), when, the request id. */
export function actorOf(res: Response): Pick<AuditEvent, 'eventDateTime' | 'userId' | 'roleId' | 'requestId' | 'project'> {
  const { role, subject } = callerOf(res);
  const { requestId, project } = requestState(res);
  return { eventDateTime: new Date(), userId: subject ?? NO_SUBJECT, roleId: role, requestId, ...(project !== undefined ? { project } : {}) };
}

function logFailure(res: Response, error: unknown): void {
  requestState(res).log?.error({ code: (error as { code?: unknown }).code }, 'audit record not written');
}

/** What a DICOMweb request targeted, as the trail and the query metric see it: pseudonyms only. */
export interface TransactionTarget {
  /** The pseudonymous StudyInstanceUID targeted (path, or the one StudyInstanceUID asked), or `(not issued)`. */
  readonly study?: string;
  readonly series?: string;
  /** Every issued study a query asked (a UID list names several); `(not issued)` if it asked only others. */
  readonly studies: readonly string[];
  /** A QIDO-RS request's keys and matching modes. */
  readonly query?: QueryDescription;
}

/** Each response's target, resolved at most once. */
const TARGETS = new WeakMap<Response, Promise<TransactionTarget>>();

/**
 * The request's target, resolved once (the trail and the metric share it) after the response: path
 * parameters and QIDO keys, each UID checked against the store. Only a researcher's UIDs are
 * pseudonyms; an uploader's STOW target or a steward's UID may be an original, so none of theirs is
 * kept (ParticipantObjectID: a pseudonym, never an original). Never rejects.
 */
export function transactionTarget(
  route: Pick<DicomwebRoute, 'routeClass'>,
  req: Request,
  res: Response,
  isIssued: IsIssued | undefined,
): Promise<TransactionTarget> {
  const memo = TARGETS.get(res);
  if (memo) return memo;
  const check = roleOf(res) === 'researcher' ? isIssued : undefined;
  const target = resolveTarget(route, req, check).catch((): TransactionTarget => ({ studies: [] }));
  TARGETS.set(res, target);
  return target;
}

async function resolveTarget(route: Pick<DicomwebRoute, 'routeClass'>, req: Request, check: IsIssued | undefined): Promise<TransactionTarget> {
  if (route.routeClass === 'store') return { studies: [] };
  const query = route.routeClass === 'search' ? await describeQuery(rawQueryOf(req), check) : undefined;
  const studies = await targeted('study', 'StudyInstanceUID', req, query, check);
  const series = await targeted('series', 'SeriesInstanceUID', req, query, check);
  return {
    ...(studies.length === 1 ? { study: studies[0] } : {}),
    ...(series.length === 1 ? { series: series[0] } : {}),
    studies,
    ...(query ? { query } : {}),
  };
}

/** The path parameter if there is one, else the issued UIDs of the query key. */
async function targeted(
  param: 'study' | 'series',
  keyword: string,
  req: Request,
  query: QueryDescription | undefined,
  check: IsIssued | undefined,
): Promise<string[]> {
  if (!check) return [];
  const fromPath = (req.params as Record<string, unknown>)[param];
  if (typeof fromPath === 'string') {
    return [isUid(fromPath) && (await check(fromPath)) ? fromPath : NOT_ISSUED];
  }
  const asked = query?.keys.filter((k) => k.keyword === keyword).flatMap((k) => k.values ?? []) ?? [];
  const issued = [...new Set(asked.filter((v) => v !== NOT_ISSUED && v !== INVALID))];
  return issued.length > 0 ? issued : asked.length > 0 ? [NOT_ISSUED] : [];
}

/**
 * The hook on a DICOMweb transaction (and on the upload page, a store by another door): once the
 * response is over, one record (PS3.15 A.5.3: Query, Export or Import) naming the pseudonymous study
 * and series targeted, if any, and for a query what it asked. The outcome is the HTTP one, or worse if
 * the handler set the request state's `auditOutcome` (the upload page answers 200 even when it stored nothing).
 */
export function auditTransaction(
  audit: AuditTrail | undefined,
  route: Pick<DicomwebRoute, 'method' | 'path' | 'routeClass'>,
  req: Request,
  res: Response,
  isIssued?: IsIssued,
): void {
  const role = roleOf(res);
  if (!audit || role === undefined || !AUDITED_ROLES.has(role)) return;
  res.once('close', () => {
    const actor = actorOf(res);
    const eventOutcomeIndicator = Math.max(
      outcomeOf(res.statusCode, res.writableFinished),
      requestState(res).auditOutcome ?? 0,
    ) as EventOutcomeIndicator;
    const { pixels } = requestState(res);
    transactionTarget(route, req, res, isIssued)
      .then((target) =>
        audit.append({
          ...actor,
          ...eventForTransaction(route.routeClass),
          eventOutcomeIndicator,
          route: `${route.method} ${route.path}`,
          httpStatus: res.statusCode,
          ...(target.study !== undefined ? { participantObjectId: target.study, participantObjectIdTypeCode: 'StudyInstanceUID' } : {}),
          ...(target.series !== undefined ? { seriesInstanceUid: target.series } : {}),
          ...(target.query ? { participantObjectQuery: target.query } : {}),
          ...(pixels ? { instancesWithheld: pixels.withheld, instancesRedacted: pixels.redacted } : {}),
        }),
      )
      .catch((error: unknown) => logFailure(res, error));
  });
}

/** Authenticates, then lets only the steward through (403 for every other role). */
export function stewardOnly(verify: TokenVerifier, roles: RoleOptions, action: StewardAction) {
  const authn = authenticate(verify, roles);
  return [
    authn,
    (_req: Request, res: Response, next: NextFunction) => {
      try {
        authorizeStewardship(callerOf(res).role, action);
        next();
      } catch (error) {
        next(error);
      }
    },
  ];
}

/**
 * Records a refused or failed steward-endpoint call (403, 400, 404, 429, 503) that left no record yet,
 * then hands the error on to the one error handler. Unauthenticated calls have no one to name.
 */
export function auditRefusal(audit: AuditTrail, event: Pick<AuditEvent, 'eventId' | 'eventActionCode' | 'route'> & Partial<AuditEvent>) {
  return async (error: unknown, _req: Request, res: Response, next: NextFunction): Promise<void> => {
    const state = requestState(res);
    if (state.caller !== undefined && !state.audited) {
      const status = mapError(error).status;
      await audit
        .append({ ...actorOf(res), eventOutcomeIndicator: outcomeOf(status), httpStatus: status, ...event })
        .catch((e: unknown) => logFailure(res, e));
    }
    next(error);
  };
}

/** `GET /audit?since=…&after=…&limit=…`: the trail, oldest first, for the steward; reading it is itself recorded. */
export function auditRoutes(options: { verify: TokenVerifier; roles: RoleOptions; audit: AuditTrail }): Router {
  const { audit } = options;
  const router = Router();
  // PS3.15 A.5.3.2 Audit Log Used, EventActionCode R.
  const used = { eventId: EVENT_ID.auditLogUsed, eventActionCode: 'R', route: 'GET /audit' } as const;
  router.get('/audit', ...stewardOnly(options.verify, options.roles, 'audit'), async (req: Request, res: Response, next: NextFunction) => {
    setRoute(res, '/audit');
    try {
      const query = parseAuditQuery(new URLSearchParams(rawQueryOf(req)));
      const events = await audit.list(query);
      await audit.append({ ...actorOf(res), ...used, eventOutcomeIndicator: 0, httpStatus: 200 });
      requestState(res).audited = true;
      res.setHeader('cache-control', 'no-store');
      res.json({ events, ...(events.length === query.limit ? { next: events.at(-1)?.id } : {}) });
    } catch (error) {
      next(error);
    }
  });
  router.use('/audit', auditRefusal(audit, used));
  return router;
}

import { Router, type NextFunction, type Request, type Response } from 'express';
import { authorizeStewardship, type RoleOptions, type StewardAction } from '../auth/role.ts';
import type { TokenVerifier } from '../auth/token.ts';
import { EVENT_ID, eventForTransaction, outcomeOf } from '../audit/atna.ts';
import { parseAuditQuery } from '../audit/audit-query.ts';
import type { Role } from '../config/schema.ts';
import { invalidParam, type DicomwebRoute } from '../dicomweb/routes.ts';
import type { AuditEvent, AuditTrail, EventOutcomeIndicator } from '../store/audit-trail.ts';
import { authenticate } from './auth.ts';
import { mapError } from './error-mapping.ts';
import type { Logger } from './logging.ts';

/** The roles whose DICOMweb requests are recorded: the restricted ones, and a steward who tries DICOMweb. */
const AUDITED_ROLES: ReadonlySet<Role> = new Set(['researcher', 'uploader', 'steward']);

/** The fields every record of this request shares: who (token `sub`, role), when, the request id. */
export function actorOf(res: Response): Pick<AuditEvent, 'eventDateTime' | 'userId' | 'roleId' | 'requestId'> {
  return {
    eventDateTime: new Date(),
    userId: (res.locals['subject'] as string | undefined) ?? '(no sub)',
    roleId: res.locals['role'] as Role,
    requestId: res.locals['requestId'] as string | undefined,
  };
}

function logFailure(res: Response, error: unknown): void {
  (res.locals['log'] as Logger | undefined)?.error({ code: (error as { code?: unknown }).code }, 'audit record not written');
}

/**
 * The hook on a DICOMweb transaction (and on the upload page, a store by another door): once the
 * response is over, one record (PS3.15 A.5.3: Query, Export or Import) naming the pseudonymous study
 * the path targets, if any. The outcome is the HTTP one, or worse if the handler set
 * `res.locals.auditOutcome` (the upload page answers 200 even when it stored nothing).
 */
export function auditTransaction(
  audit: AuditTrail | undefined,
  route: Pick<DicomwebRoute, 'method' | 'path' | 'routeClass'>,
  req: Request,
  res: Response,
): void {
  if (!audit || !AUDITED_ROLES.has(res.locals['role'] as Role)) return;
  const study = (req.params as Record<string, unknown>)['study'];
  // A researcher's path holds pseudonyms; an uploader's STOW target may be the original study UID, which
  // the trail must not hold (ParticipantObjectID: a pseudonym, never an original).
  const known = res.locals['role'] === 'researcher' && typeof study === 'string' && invalidParam({ study }) === undefined;
  res.once('close', () => {
    audit
      .append({
        ...actorOf(res),
        ...eventForTransaction(route.routeClass),
        eventOutcomeIndicator: Math.max(
          outcomeOf(res.statusCode, res.writableFinished),
          (res.locals['auditOutcome'] as EventOutcomeIndicator | undefined) ?? 0,
        ) as EventOutcomeIndicator,
        route: `${route.method} ${route.path}`,
        httpStatus: res.statusCode,
        ...(known ? { participantObjectId: study, participantObjectIdTypeCode: 'StudyInstanceUID' } : {}),
      })
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
        authorizeStewardship(res.locals['role'] as Role, action);
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
    if (res.locals['role'] !== undefined && !res.locals['audited']) {
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
    res.locals['route'] = '/audit';
    try {
      const queryAt = req.originalUrl.indexOf('?');
      const query = parseAuditQuery(new URLSearchParams(queryAt >= 0 ? req.originalUrl.slice(queryAt + 1) : ''));
      const events = await audit.list(query);
      await audit.append({ ...actorOf(res), ...used, eventOutcomeIndicator: 0, httpStatus: 200 });
      res.locals['audited'] = true;
      res.setHeader('cache-control', 'no-store');
      res.json({ events, ...(events.length === query.limit ? { next: events.at(-1)?.id } : {}) });
    } catch (error) {
      next(error);
    }
  });
  router.use('/audit', auditRefusal(audit, used));
  return router;
}

import express, { Router, type NextFunction, type Request, type Response } from 'express';
import type { RoleOptions } from '../auth/role.ts';
import type { TokenVerifier } from '../auth/token.ts';
import { EVENT_ID, REIDENTIFICATION } from '../audit/atna.ts';
import { NoSubjectError, PseudonymUnknownError, RateLimitedError } from '../audit/errors.ts';
import { KEYWORD_OF, parseReidentifyRequest, reidentify } from '../audit/reidentify.ts';
import type { RateLimiter } from './token-bucket.ts';
import type { AuditTrail } from '../store/audit-trail.ts';
import { scopedPseudonyms, type PseudonymStore } from '../store/pseudonym-store.ts';
import { projectScope, UPLOAD_SCOPE } from '../projects/project.ts';
import { actorOf, auditRefusal, stewardOnly } from './audit.ts';
import { callerOf, requestState, setRoute } from './request-context.ts';

export interface ReidentifyOptions {
  verify: TokenVerifier;
  roles: RoleOptions;
  store: PseudonymStore;
  audit: AuditTrail;
  limiter: RateLimiter;
  /** The most pseudonyms one request may carry (the bucket's burst). */
  maxItems: number;
}

/**
 * `POST /reidentify` (steward only): `{ kind, pseudonym }` → `{ kind, pseudonym, original }` (404 if the
 * gateway never issued it), or `{ items: [...] }` → `{ results: [...] }` with `original: null` for unknown
 * ones. Each pseudonym costs one token of the caller's bucket (429 + Retry-After when empty) and leaves
 * one audit record, written before the answer: a re-identification that cannot be recorded is not made.
 */
export function reidentifyRoutes(options: ReidentifyOptions): Router {
  const { audit } = options;
  const router = Router();
  // PS3.15 A.5.3.9 Patient Record, EventActionCode R, with the local Re-identification event type.
  const event = { eventId: EVENT_ID.patientRecord, eventTypeCode: REIDENTIFICATION, eventActionCode: 'R', route: 'POST /reidentify' } as const;
  router.post(
    '/reidentify',
    ...stewardOnly(options.verify, options.roles, 'reidentify'),
    express.json({ limit: '64kb' }),
    async (req: Request, res: Response, next: NextFunction) => {
      setRoute(res, '/reidentify');
      try {
        const { subject } = callerOf(res);
        if (!subject) throw new NoSubjectError();
        const request = parseReidentifyRequest(req.body, options.maxItems);
        const taken = options.limiter.take(subject, request.items.length);
        if (!taken.ok) throw new RateLimitedError(taken.retryAfterSeconds);
        const scope = 'project' in request.scope ? projectScope(request.scope.project) : UPLOAD_SCOPE;
        const results = await reidentify(scopedPseudonyms(options.store, scope), request.items);
        const project = 'project' in request.scope ? request.scope.project : UPLOAD_SCOPE;
        const status = request.single && results[0]?.original === undefined ? 404 : 200;
        const actor = actorOf(res);
        for (const r of results) {
          await audit.append({
            ...actor,
            ...event,
            eventOutcomeIndicator: r.original === undefined ? 4 : 0,
            httpStatus: status,
            participantObjectId: r.pseudonym,
            participantObjectIdTypeCode: KEYWORD_OF[r.kind],
            project,
          });
        }
        // The trail lives in the store's database: one flush makes these records durable (power loss
        // included) before any original is disclosed.
        await options.store.sync();
        requestState(res).audited = true;
        if (status === 404) throw new PseudonymUnknownError(request.items[0]?.kind ?? 'value');
        res.setHeader('cache-control', 'no-store');
        if (request.single) {
          res.json(results[0]);
          return;
        }
        res.json({ results: results.map((r) => ({ kind: r.kind, pseudonym: r.pseudonym, original: r.original ?? null })) });
      } catch (error) {
        next(error);
      }
    },
  );
  router.use('/reidentify', auditRefusal(audit, event));
  return router;
}

// What a steward sees of DICOMweb use, wired in front of every transaction handler: the audit record
// (with the pseudonymous study and series targeted, and what a query asked), the count of researcher
// queries per token subject and study, and the optional per-subject QIDO-RS rate limit. A query oracle
// (the same study asked again and again with different conditions) shows up in all three.
import type { RequestHandler } from 'express';
import { QueryRateLimitedError } from '../audit/errors.ts';
import type { IsIssued } from '../audit/query-description.ts';
import type { RateLimiter } from './token-bucket.ts';
import type { DicomwebRoute } from '../dicomweb/routes.ts';
import type { AuditTrail } from '../store/audit-trail.ts';
import type { PseudonymStore } from '../store/pseudonym-store.ts';
import { projectScope } from '../projects/project.ts';
import { auditTransaction, NO_SUBJECT, transactionTarget } from './audit.ts';
import type { GatewayMetrics } from './metrics.ts';
import { requestState, setRoute } from './request-context.ts';

export interface OversightOptions {
  audit?: AuditTrail;
  /** The pseudonym store: a UID is written to the trail or a label only if the caller's project was issued it. */
  store?: Pick<PseudonymStore, 'originalOf'>;
  /** Researcher QIDO-RS requests per token subject (config `qido.rateLimit`); absent: no limit. */
  queryLimiter?: RateLimiter;
  metrics?: GatewayMetrics;
}

export function transactionOversight(route: DicomwebRoute, options: OversightOptions): RequestHandler {
  const { store, metrics, queryLimiter } = options;
  return (req, res, next) => {
    setRoute(res, route.path);
    // Issued in the researcher's project's scope; a store that cannot answer confirms nothing (the UID is then not written).
    const project = requestState(res).project;
    const isIssued: IsIssued | undefined =
      store && project !== undefined
        ? (uid) => store.originalOf(projectScope(project), 'uid', uid).then((original) => original !== undefined, () => false)
        : undefined;
    auditTransaction(options.audit, route, req, res, isIssued);
    const caller = requestState(res).caller;
    if (route.routeClass !== 'search' || caller?.role !== 'researcher') {
      next();
      return;
    }
    const subject = caller.subject ?? NO_SUBJECT;
    if (metrics) {
      res.once('close', () => {
        void transactionTarget(route, req, res, isIssued).then((target) => metrics.observeQuery(subject, target.studies));
      });
    }
    // In process, so per replica, like the re-identification limit. Refused requests are still
    // recorded (the hook above) and counted.
    const taken = queryLimiter?.take(subject, 1);
    if (taken && !taken.ok) {
      metrics?.observeQueryRateLimited(subject);
      next(new QueryRateLimitedError(taken.retryAfterSeconds));
      return;
    }
    next();
  };
}

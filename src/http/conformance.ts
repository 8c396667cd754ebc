import type { NextFunction, Request, Response } from 'express';
import { conformanceStatement, statementMarkdown, type ConformanceStatement } from '../deid/conformance.ts';
import type { DeidPolicy } from '../deid/deidentify.ts';
import { DeidentificationUnavailableError } from '../dicomweb/errors.ts';
import { HttpRequestError } from './errors.ts';
import { setRoute } from './request-context.ts';
import { rawQueryOf } from './request-target.ts';

export interface ConformanceSources {
  researcher?: { policy: DeidPolicy; allowRendered: boolean };
  uploader?: { policy: DeidPolicy };
}

/**
 * `GET /conformance?role=researcher|uploader&format=json|markdown`: the PS3.15 E.3.10 statement of
 * what the gateway does to each attribute for that role. Public, like /openapi.json: it describes
 * the configured policy (no patient data, no pseudonym, nothing keyed by the secret), and the people
 * who need it (data-protection officers, ethics boards, the researchers themselves) often hold no token.
 */
export function conformanceRoute(sources: ConformanceSources) {
  // Built once: the policy is frozen at start.
  const cache = new Map<string, ConformanceStatement>();
  const statementFor = (role: 'researcher' | 'uploader'): ConformanceStatement => {
    let statement = cache.get(role);
    if (statement === undefined) {
      const source = sources[role];
      if (source === undefined) throw new DeidentificationUnavailableError(`the ${role} conformance statement`);
      statement = conformanceStatement(source.policy, { role, ...(role === 'researcher' ? { renderedOffered: sources.researcher?.allowRendered } : {}) });
      cache.set(role, statement);
    }
    return statement;
  };
  return (req: Request, res: Response, next: NextFunction): void => {
    setRoute(res, '/conformance');
    try {
      const query = new URLSearchParams(rawQueryOf(req));
      const role = query.get('role') ?? 'researcher';
      const format = query.get('format') ?? 'json';
      if (role !== 'researcher' && role !== 'uploader') throw new HttpRequestError('CONFORMANCE_BAD_ROLE', 'role must be researcher or uploader');
      if (format !== 'json' && format !== 'markdown') throw new HttpRequestError('CONFORMANCE_BAD_FORMAT', 'format must be json or markdown');
      const statement = statementFor(role);
      if (format === 'markdown') res.type('text/markdown; charset=utf-8').send(statementMarkdown(statement));
      else res.json(statement);
    } catch (error) {
      next(error);
    }
  };
}

import type { NextFunction, Request, Response } from 'express';
import { resolveProjects, resolveRole, type RoleOptions } from '../auth/role.ts';
import { INTERNAL_PROJECT_CLAIM, withInternalTokens, type InternalTokens } from '../auth/internal-token.ts';
import { TokenInvalidError } from '../auth/errors.ts';
import type { TokenVerifier } from '../auth/token.ts';
import { requestState } from './request-context.ts';

/**
 * The subjects of the tokens minted for the DIMSE research face (`dimse:<calling AE>`). An IdP's token
 * with such a `sub` is refused, so a `userId` of this form in the audit trail is always a DIMSE caller.
 */
export const INTERNAL_SUBJECT_PREFIX = 'dimse:';

/**
 * Verifies the bearer token and records the caller (gateway role, token `sub`) in the request state.
 * `internal`: tokens this process minted for its DIMSE research face (auth/internal-token.ts) are also
 * taken, each a researcher in the one project it names, marked `internal` in the request state. Any
 * other token whose `sub` starts with `dimse:` is refused (401): that prefix is the research face's.
 */
export function authenticate(verify: TokenVerifier, roles: RoleOptions, internal?: InternalTokens) {
  const verifyAny = internal ? withInternalTokens(verify, internal) : verify;
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    try {
      const payload = await verifyAny(req.headers.authorization);
      const minted = internal !== undefined && payload.iss === internal.issuer;
      const project = payload[INTERNAL_PROJECT_CLAIM];
      const subject = typeof payload.sub === 'string' ? payload.sub : undefined;
      if (!minted && subject?.startsWith(INTERNAL_SUBJECT_PREFIX)) throw new TokenInvalidError('a subject reserved for the DIMSE research face');
      requestState(res).caller = minted
        ? { role: 'researcher', subject, projects: typeof project === 'string' ? [project] : [], internal: true }
        : { role: resolveRole(payload, roles), subject, projects: resolveProjects(payload, roles), internal: false };
      next();
    } catch (error) {
      next(error);
    }
  };
}

import type { NextFunction, Request, Response } from 'express';
import { resolveProjects, resolveRole, type RoleOptions } from '../auth/role.ts';
import { INTERNAL_PROJECT_CLAIM, withInternalTokens, type InternalTokens } from '../auth/internal-token.ts';
import type { TokenVerifier } from '../auth/token.ts';
import { requestState } from './request-context.ts';

/**
 * Verifies the bearer token and records the caller (gateway role, token `sub`) in the request state.
 * `internal`: tokens this process minted for its DIMSE research face (auth/internal-token.ts) are also
 * taken, each a researcher in the one project it names.
 */
export function authenticate(verify: TokenVerifier, roles: RoleOptions, internal?: InternalTokens) {
  const verifyAny = internal ? withInternalTokens(verify, internal) : verify;
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    try {
      const payload = await verifyAny(req.headers.authorization);
      const minted = internal !== undefined && payload.iss === internal.issuer;
      const project = payload[INTERNAL_PROJECT_CLAIM];
      requestState(res).caller = minted
        ? { role: 'researcher', subject: typeof payload.sub === 'string' ? payload.sub : undefined, projects: typeof project === 'string' ? [project] : [] }
        : {
            role: resolveRole(payload, roles),
            subject: typeof payload.sub === 'string' ? payload.sub : undefined,
            projects: resolveProjects(payload, roles),
          };
      next();
    } catch (error) {
      next(error);
    }
  };
}

import type { NextFunction, Request, Response } from 'express';
import { resolveProjects, resolveRole, type RoleOptions } from '../auth/role.ts';
import type { TokenVerifier } from '../auth/token.ts';
import { requestState } from './request-context.ts';

/** Verifies the bearer token and records the caller (gateway role, token `sub`) in the request state. */
export function authenticate(verify: TokenVerifier, roles: RoleOptions) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    try {
      const payload = await verify(req.headers.authorization);
      requestState(res).caller = {
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

import type { NextFunction, Request, Response } from 'express';
import { resolveRole, type RoleOptions } from '../auth/role.ts';
import type { TokenVerifier } from '../auth/token.ts';

/** Verifies the bearer token and attaches the caller's gateway role and subject to `res.locals`. */
export function authenticate(verify: TokenVerifier, roles: RoleOptions) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    try {
      const payload = await verify(req.headers.authorization);
      res.locals['role'] = resolveRole(payload, roles);
      res.locals['subject'] = typeof payload.sub === 'string' ? payload.sub : undefined;
      next();
    } catch (error) {
      next(error);
    }
  };
}

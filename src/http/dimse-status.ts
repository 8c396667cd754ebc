// The DIMSE ingress's operator routes:
//   GET  /dimse/status                 the queue as JSON (counts only: never a UID, an AE title or a path)
//   GET  /dimse/quarantine             the quarantine folders: id, reason (codes and counts), originals, time
//   POST /dimse/quarantine/{id}/retry  sends a quarantined study again once its cause is fixed (202: queued);
//                                      audited with who asked (the credential), when and the outcome
// Who may call them:
//   - the metrics bearer token (`metrics.auth`), as `/metrics`: every route;
//   - a steward's JWT (role steward, verified as the other steward routes verify it): the quarantine's two
//     routes; the retry's audit record names the token's subject;
//   - with no metrics token, a loopback peer: the two GET routes only, and never a request that came
//     through a proxy (a `Forwarded`, `X-Forwarded-*`, `X-Real-IP` or `Via` header, or a peer listed in
//     `server.trustedProxies`): behind a proxy on the same host every request is loopback. The retry
//     never takes the bare loopback fallback: it changes what is sent, so it names who asked.
import { Router, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { LoopbackOnlyError, RoleForbiddenError, TokenMissingError } from '../auth/errors.ts';
import type { RoleOptions } from '../auth/role.ts';
import type { TokenVerifier } from '../auth/token.ts';
import { NO_SUBJECT } from './audit.ts';
import { authenticate } from './auth.ts';
import { checkToken } from './metrics.ts';
import { callerOf, requestState, setRoute } from './request-context.ts';

/** What the route shows; the ingress (dimse/ingress.ts) gives it. */
export type DimseStatusSource = () => object;

/** Who asked for a retry, for its audit record: the credential (`userId`) and what it is (`roleId`). */
export interface DimseOperator {
  readonly userId: string;
  readonly roleId: 'operator' | 'steward';
  readonly requestId?: string;
}

/** The ingress's quarantine (dimse/ingress.ts): its list, and the retry of one folder. */
export interface DimseQuarantineSource {
  list(): Promise<readonly object[]>;
  retry(id: string, operator: DimseOperator): Promise<object>;
}

/** The credentials the operator routes take (see the head of this file). */
export interface DimseOperatorAccess {
  /** `metrics.auth`'s bearer token; absent: the loopback fallback for the GET routes. */
  readonly token: string | undefined;
  /** `server.trustedProxies`: a request from one of them never takes the loopback fallback. */
  readonly trustedProxy: (address: string | undefined) => boolean;
  /** The IdP's verifier and role mapping, for a steward's JWT; absent: no steward access. */
  readonly steward?: { readonly verify: TokenVerifier; readonly roles: RoleOptions };
}

export const DIMSE_STATUS_PATH = '/dimse/status';
export const DIMSE_QUARANTINE_PATH = '/dimse/quarantine';
export const DIMSE_QUARANTINE_RETRY_PATH = '/dimse/quarantine/:id/retry';

/** Headers a proxy adds (RFC 7239 Forwarded, the de-facto X-Forwarded-* and X-Real-IP, RFC 9110 7.6.3 Via). */
const PROXY_HEADERS = /^(forwarded|x-forwarded-.+|x-real-ip|via)$/;

/** The request came through a proxy, as far as the gateway can tell: a proxy's header, or a trusted proxy's address. */
export function viaProxy(req: Request, trustedProxy: (address: string | undefined) => boolean): boolean {
  return Object.keys(req.headers).some((name) => PROXY_HEADERS.test(name)) || trustedProxy(req.socket.remoteAddress);
}

/** The metrics token when one is set; else a loopback peer that did not come through a proxy. */
function tokenOrLoopback(access: DimseOperatorAccess, path: string): (req: Request) => void {
  const check = checkToken(access.token, path);
  return (req) => {
    if (access.token === undefined && viaProxy(req, access.trustedProxy)) throw new LoopbackOnlyError(path);
    check(req);
  };
}

/** A steward's JWT on the request (401 for a missing or bad token, 403 for another role); the operator it names. */
async function steward(req: Request, res: Response, access: DimseOperatorAccess): Promise<DimseOperator> {
  if (!access.steward) throw new TokenMissingError();
  const authn = authenticate(access.steward.verify, access.steward.roles);
  await new Promise<void>((resolve, reject) => {
    void authn(req, res, (error?: unknown) => (error ? reject(error) : resolve()));
  });
  const caller = callerOf(res);
  if (caller.role !== 'steward') throw new RoleForbiddenError(caller.role, 'the DIMSE quarantine');
  return { userId: caller.subject ?? NO_SUBJECT, roleId: 'steward' };
}

/**
 * The quarantine's guard: the metrics token (when set and presented), else a steward's JWT; with neither
 * presented, the loopback fallback when `loopback` (the listing), else 401 (the retry).
 */
function quarantineGuard(access: DimseOperatorAccess, path: string, loopback: boolean) {
  const metrics = access.token === undefined ? undefined : checkToken(access.token, path);
  const fallback = tokenOrLoopback(access, path);
  return async (req: Request, res: Response): Promise<DimseOperator> => {
    if (req.headers.authorization === undefined) {
      if (!loopback) throw new TokenMissingError();
      fallback(req);
      return { userId: `loopback ${req.socket.remoteAddress ?? ''}`.trim(), roleId: 'operator' };
    }
    if (metrics) {
      try {
        metrics(req);
        return { userId: 'metrics.auth bearer token', roleId: 'operator' };
      } catch (error) {
        // Not the metrics token: a steward's JWT, or refused as the token verifier refuses it.
        if (!access.steward) throw error;
      }
    }
    return steward(req, res, access);
  };
}

export function dimseStatusRoute(status: DimseStatusSource, access: DimseOperatorAccess): RequestHandler {
  const check = tokenOrLoopback(access, DIMSE_STATUS_PATH);
  return (req: Request, res: Response, next: NextFunction): void => {
    setRoute(res, DIMSE_STATUS_PATH);
    try {
      check(req);
      res.setHeader('cache-control', 'no-store');
      res.json(status());
    } catch (error) {
      next(error);
    }
  };
}

/** `GET /dimse/quarantine` and `POST /dimse/quarantine/{id}/retry` (guards: the head of this file). */
export function dimseQuarantineRoutes(quarantine: DimseQuarantineSource, access: DimseOperatorAccess): Router {
  const router = Router({ caseSensitive: true, strict: true });
  const listing = quarantineGuard(access, DIMSE_QUARANTINE_PATH, true);
  const retrying = quarantineGuard(access, DIMSE_QUARANTINE_PATH, false);
  router.get(DIMSE_QUARANTINE_PATH, async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    setRoute(res, DIMSE_QUARANTINE_PATH);
    try {
      await listing(req, res);
      const list = await quarantine.list();
      res.setHeader('cache-control', 'no-store');
      res.json({ quarantine: list });
    } catch (error) {
      next(error);
    }
  });
  router.post(DIMSE_QUARANTINE_RETRY_PATH, async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    setRoute(res, DIMSE_QUARANTINE_RETRY_PATH);
    try {
      const operator = await retrying(req, res);
      const requestId = requestState(res).requestId;
      const result = await quarantine.retry(String(req.params['id']), { ...operator, ...(requestId ? { requestId } : {}) });
      res.setHeader('cache-control', 'no-store');
      res.status(202).json({ ...result, status: 'queued' });
    } catch (error) {
      next(error);
    }
  });
  return router;
}

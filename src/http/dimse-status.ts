// `GET /dimse/status`: the DIMSE ingress's queue as JSON (counts only: never a UID, an AE title or a
// path), for an operator or a probe. Guarded as `/metrics` is: the metrics bearer token when one is
// configured (`metrics.auth`), else loopback peers only.
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { checkToken } from './metrics.ts';
import { setRoute } from './request-context.ts';

/** What the route shows; the ingress (dimse/ingress.ts) gives it. */
export type DimseStatusSource = () => object;

export const DIMSE_STATUS_PATH = '/dimse/status';

export function dimseStatusRoute(status: DimseStatusSource, token: string | undefined): RequestHandler {
  const check = checkToken(token, DIMSE_STATUS_PATH);
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

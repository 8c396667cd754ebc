// The DIMSE ingress's operator routes, guarded as `/metrics` is: the metrics bearer token when one is
// configured (`metrics.auth`), else loopback peers only.
//   GET  /dimse/status                 the queue as JSON (counts only: never a UID, an AE title or a path)
//   GET  /dimse/quarantine             the quarantine folders: id, reason (codes and counts), originals, time
//   POST /dimse/quarantine/{id}/retry  sends a quarantined study again once its cause is fixed (202: queued);
//                                      audited with who asked (the credential), when and the outcome
import { Router, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { checkToken } from './metrics.ts';
import { requestState, setRoute } from './request-context.ts';

/** What the route shows; the ingress (dimse/ingress.ts) gives it. */
export type DimseStatusSource = () => object;

/** The ingress's quarantine (dimse/ingress.ts): its list, and the retry of one folder. */
export interface DimseQuarantineSource {
  list(): Promise<readonly object[]>;
  retry(id: string, operator: { readonly userId: string; readonly requestId?: string }): Promise<object>;
}

export const DIMSE_STATUS_PATH = '/dimse/status';
export const DIMSE_QUARANTINE_PATH = '/dimse/quarantine';
export const DIMSE_QUARANTINE_RETRY_PATH = '/dimse/quarantine/:id/retry';

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

/** `GET /dimse/quarantine` and `POST /dimse/quarantine/{id}/retry`, behind the same guard as the status. */
export function dimseQuarantineRoutes(quarantine: DimseQuarantineSource, token: string | undefined): Router {
  const router = Router({ caseSensitive: true, strict: true });
  const check = checkToken(token, DIMSE_QUARANTINE_PATH);
  router.get(DIMSE_QUARANTINE_PATH, async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    setRoute(res, DIMSE_QUARANTINE_PATH);
    try {
      check(req);
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
      check(req);
      // Who asked, as far as the guard knows it: the holder of the operator token, or a loopback peer.
      const userId = token === undefined ? `loopback ${req.socket.remoteAddress ?? ''}`.trim() : 'metrics.auth bearer token';
      const requestId = requestState(res).requestId;
      const result = await quarantine.retry(String(req.params['id']), { userId, ...(requestId ? { requestId } : {}) });
      res.setHeader('cache-control', 'no-store');
      res.status(202).json({ ...result, status: 'queued' });
    } catch (error) {
      next(error);
    }
  });
  return router;
}

import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from './logging.ts';

const SAFE_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * Gives each request an id of the gateway's own (it joins the log and the audit trail, so a caller
 * cannot choose it) and a child logger; a sane caller `X-Request-Id` is logged beside it. Logs completion.
 */
export function requestContext(logger: Logger) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const incoming = req.headers['x-request-id'];
    const requestId = randomUUID();
    const started = process.hrtime.bigint();
    const log = logger.child(typeof incoming === 'string' && SAFE_ID.test(incoming) ? { requestId, callerRequestId: incoming } : { requestId });
    res.locals['requestId'] = requestId;
    res.locals['log'] = log;
    res.setHeader('x-request-id', requestId);
    res.once('close', () => {
      log.info(
        {
          method: req.method,
          route: res.locals['route'] ?? 'unmatched',
          role: res.locals['role'],
          status: res.statusCode,
          complete: res.writableFinished,
          ms: Number(process.hrtime.bigint() - started) / 1e6,
        },
        'request',
      );
    });
    next();
  };
}

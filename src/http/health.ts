import { Router } from 'express';
import type { Upstream } from '../dicomweb/upstream.ts';

/** `/healthz`: the process is alive. `/readyz`: the PACS answers a minimal QIDO. */
export function healthRoutes(upstream: Upstream): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    try {
      const answer = await upstream.send({
        method: 'GET',
        pathAndQuery: '/studies?limit=1',
        headers: { accept: 'application/dicom+json' },
        signal: AbortSignal.timeout(3_000),
      });
      answer.body.resume();
      const ready = answer.statusCode < 500;
      res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', upstream: answer.statusCode });
    } catch {
      res.status(503).json({ status: 'not ready', upstream: 'unreachable' });
    }
  });
  return router;
}

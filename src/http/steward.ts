import { readFileSync } from 'node:fs';
import { Router } from 'express';
import { setRoute } from './request-context.ts';

/** Where the steward's page is served. */
export const STEWARD_PATH = '/steward';

const ASSETS = new URL('./steward-page/', import.meta.url);
const asset = (name: string) => readFileSync(new URL(name, ASSETS));

/**
 * The page's own Content-Security-Policy, stricter than helmet's default: its three files and calls to
 * this origin, nothing else (no inline script or style, no frames, no form posts: the forms are handled
 * by the script, which calls the JSON API).
 */
export const STEWARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * `GET /steward`: a plain page of our own assets over the steward's JSON API (http/projects.ts,
 * `POST /reidentify`, `GET /audit`): re-identification of a pasted pseudonym, the audit trail with
 * filters a page at a time, projects and their counts, a project's studies, withdrawals. It holds no
 * authority of its own: the steward pastes a token, and every call carries it. Scripts are files, never
 * inline (STEWARD_CSP).
 * `GET /steward/demo-token.json`: the demo's steward token (only `deid-gateway demo` passes one), to a
 * loopback Host only, as the viewer's demo tokens are.
 */
export function stewardPageRoutes(options: { demoToken?: string }): Router {
  const router = Router({ caseSensitive: true, strict: true });
  const html = asset('index.html');
  const js = asset('app.js');
  const css = asset('style.css');
  router.use(STEWARD_PATH, (_req, res, next) => {
    setRoute(res, STEWARD_PATH);
    res.setHeader('content-security-policy', STEWARD_CSP);
    next();
  });
  router.get(STEWARD_PATH, (_req, res) => {
    res.setHeader('cache-control', 'no-store');
    res.type('html').send(html);
  });
  router.get(`${STEWARD_PATH}/app.js`, (_req, res) => {
    res.type('application/javascript').send(js);
  });
  router.get(`${STEWARD_PATH}/style.css`, (_req, res) => {
    res.type('text/css').send(css);
  });
  router.get(`${STEWARD_PATH}/demo-token.json`, (req, res) => {
    res.setHeader('cache-control', 'no-store');
    // Only to a loopback Host: a DNS-rebinding page under another name cannot read the demo's token.
    if (!options.demoToken || !/^(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/.test(req.headers.host ?? '')) {
      res.status(404).json({ error: { code: 'STEWARD_NO_DEMO_TOKEN', message: 'a demo token is offered only by `deid-gateway demo`' } });
      return;
    }
    res.json({ token: options.demoToken });
  });
  return router;
}

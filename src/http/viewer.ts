import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, resolve, sep } from 'node:path';
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import type { RoleOptions } from '../auth/role.ts';
import type { TokenVerifier } from '../auth/token.ts';
import { PROJECT_NAME } from '../projects/project.ts';
import { authenticate } from './auth.ts';
import { projectBaseUrl } from './project-choice.ts';
import { callerOf, setRoute } from './request-context.ts';

/** Where the viewer is served. OHIF's own routes (`/`, `/viewer`, …) live below it. */
export const VIEWER_PATH = '/viewer';

/** sessionStorage keys shared by the sign-in page (viewer-page/app.js) and the generated app-config.js. */
const TOKEN_KEY = 'deid-gateway.token';
const ROLE_KEY = 'deid-gateway.role';
/** The project the researcher chose (OHIF reads `/projects/{project}/dicom-web`); '' for the plain base. */
const PROJECT_KEY = 'deid-gateway.project';

export interface ViewerOptions {
  /** The unpacked `@ohif/app` dist (scripts/setup.sh puts it in `.viewer/dist`). */
  dir: string;
  /** The gateway's DICOMweb base path (`server.basePath`), same origin as the viewer. */
  dicomwebBase: string;
  /**
   * Label → token, offered on the sign-in page (the clinician's, and researchers': `researcher`,
   * `researcher-<project>`). Only `deid-gateway demo` passes these; `serve` never does.
   */
  demoTokens?: Readonly<Record<string, string>>;
  /**
   * The token checks DICOMweb uses, for `GET /viewer/sign-in/access`: which role and projects the caller's
   * token grants, so the sign-in page knows whether to ask for a project. Absent: that route answers 404
   * and the viewer opens on the plain DICOMweb base.
   */
  access?: { verify: TokenVerifier; roles: RoleOptions };
  /**
   * `viewer.oidc`: OHIF signs in through the provider itself (its `oidc` configuration: authorization code
   * with PKCE, redirect URI `/viewer/callback`), and sends the access token on every DICOMweb request.
   */
  oidc?: ViewerOidc;
}

/** OHIF's `oidc` settings that the config chooses (`viewer.oidc`, the authority being `auth.issuer`). */
export interface ViewerOidc {
  /** The provider's issuer (`auth.issuer`): OHIF discovers it from `<authority>/.well-known/openid-configuration`. */
  authority: string;
  clientId: string;
  scope: string;
  /** RFC 8707 resource indicator, where the provider makes `aud` from it. */
  resource?: string;
  extraQueryParams?: Readonly<Record<string, string>>;
  /** Origins besides the issuer's that the browser must reach (a token endpoint on another host). */
  connectOrigins: readonly string[];
}

/**
 * The viewer's own Content-Security-Policy; the rest of the app keeps helmet's. Each source beyond
 * `'self'` was found missing in a real browser (chromium, OHIF 3.13) and nothing else is allowed:
 * - `style-src 'unsafe-inline'`: the React UI sets style attributes and injects <style> elements
 *   (helmet's default allows this too; CSS cannot run script);
 * - `img-src data:`: OHIF's icons are data: URIs;
 * - `script-src 'wasm-unsafe-eval'`: compiling WebAssembly, never `eval` of a string. Stack viewing
 *   compiles its codecs in workers (below); this is for OHIF tools that run wasm in the page, such
 *   as the ONNX runtime of its segmentation tools (dist/ort).
 * No inline script: index.html's two inline scripts are dropped and their work done by
 * app-config.js, a file of ours. DICOMweb is same-origin, so `connect-src` stays `'self'`: no CDN,
 * no telemetry, and a service worker is never registered.
 */
export const VIEWER_CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "script-src-attr 'none'",
  "img-src 'self' data:",
  "style-src 'self' 'unsafe-inline'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'self'",
].join('; ');

/**
 * A dedicated worker runs under the policy delivered with its own script (CSP3, "Initialize a
 * global object's CSP list"), so the image decoders get one source more than the page:
 * `'unsafe-eval'`, because the emscripten-built codecs (JPEG 2000, JPEG-LS, HTJ2K…) make their
 * embind bindings with `new Function`. Workers have no DOM and no sessionStorage, so the token is
 * out of their reach; the page, which holds both, never gets `'unsafe-eval'`. Browsers tell a
 * worker's script from others by `Sec-Fetch-Dest: worker` (Fetch Metadata).
 */
export const VIEWER_WORKER_CSP = VIEWER_CSP.replace("script-src 'self' 'wasm-unsafe-eval'", "script-src 'self' 'unsafe-eval'");

/**
 * The page's policy when OHIF signs in through the provider: `connect-src` adds the issuer's origin (OHIF
 * reads the discovery document and exchanges the code for tokens there, RFC 7636 4.5) and the origins the
 * config lists, nothing else. Going to the provider's sign-in page is a navigation, which the CSP does not
 * govern; its silent-renewal iframe is not allowed (`frame-src` stays `'self'`), so a provider that issues
 * no refresh token sends the tab back to sign-in when the access token expires. Workers fetch only from the
 * gateway and keep VIEWER_WORKER_CSP.
 */
export function viewerCspFor(oidc: ViewerOidc | undefined): string {
  if (!oidc) return VIEWER_CSP;
  const origins = [...new Set([new URL(oidc.authority).origin, ...oidc.connectOrigins.map((o) => new URL(o).origin)])];
  return `${VIEWER_CSP}; connect-src 'self' ${origins.join(' ')}`;
}

/** Whether `dir` holds an unpacked OHIF dist (scripts/setup.sh puts one in `.viewer/dist`). */
export function viewerInstalled(dir: string): boolean {
  return existsSync(join(resolve(dir), 'index.html'));
}

const ASSETS = new URL('./viewer-page/', import.meta.url);
const asset = (name: string) => readFileSync(new URL(name, ASSETS));

interface Rewritten {
  body: Buffer;
  etag: string;
}

/**
 * `GET /viewer/sign-in`: picks a token (pasted, or a demo role) into sessionStorage, and a researcher's
 * project among those the token grants (`GET /viewer/sign-in/access` says which).
 * `GET /viewer/app-config.js`: OHIF's config, generated: one `dicomweb` data source on the gateway, on
 * the chosen project's base for a researcher.
 * `GET /viewer/*`: the OHIF dist, with a single-page fallback to its index.html.
 *
 * OHIF 3.13's prebuilt dist assumes it is served at `/` (webpack publicPath "/", absolute asset
 * URLs in index.html and the CSS). The few files that say so are rewritten in memory when served
 * (the dist on disk is never changed), so everything lives under `/viewer`.
 */
export function viewerRoutes(options: ViewerOptions): Router {
  const router = Router({ caseSensitive: true, strict: false });
  const dir = resolve(options.dir);
  const page = asset('index.html');
  // The sign-in page says which way in it offers: a pasted token, or the provider (then it only chooses projects).
  const signIn = { html: options.oidc ? Buffer.from(page.toString('utf8').replace('<body>', '<body data-sign-in="oidc">')) : page, js: asset('app.js'), css: asset('style.css') };
  const csp = viewerCspFor(options.oidc);
  // The reading roles only: never the uploader's or the steward's token.
  const demoTokens = options.demoTokens
    ? JSON.stringify(Object.fromEntries(Object.entries(options.demoTokens).filter(([label]) => label === 'clinician' || /^researcher(-|$)/.test(label))))
    : undefined;
  const appConfig = Buffer.from(appConfigScript(options.dicomwebBase, options.oidc));
  const rewritten = new Map<string, Rewritten | null>();

  router.use((req, res, next) => {
    setRoute(res, VIEWER_PATH);
    const dest = req.headers['sec-fetch-dest'];
    res.setHeader('Content-Security-Policy', dest === 'worker' || dest === 'sharedworker' ? VIEWER_WORKER_CSP : csp);
    res.vary('Sec-Fetch-Dest'); // the same chunk can be a worker's script or not: never cache one policy for both
    next();
  });
  router.get('/sign-in', (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.type('html').send(signIn.html);
  });
  router.get('/sign-in/app.js', (_req, res) => {
    res.type('application/javascript').send(signIn.js);
  });
  router.get('/sign-in/style.css', (_req, res) => {
    res.type('text/css').send(signIn.css);
  });
  router.get('/sign-in/demo-tokens.json', (req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    // Only to a loopback Host: a DNS-rebinding page under another name cannot read the demo's tokens.
    if (!demoTokens || !/^(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/.test(req.headers.host ?? '')) {
      res.status(404).json({ error: { code: 'VIEWER_NO_DEMO_TOKENS', message: 'demo tokens are offered only by `deid-gateway demo`' } });
      return;
    }
    res.type('application/json').send(demoTokens);
  });
  // The caller's own role and, for a researcher, the projects its token grants, read by the same code as
  // every DICOMweb request (auth/role.ts), so the page never second-guesses claim paths, prefixes or role
  // precedence. It tells the caller nothing the token does not already say, and nothing of the store.
  router.get(
    '/sign-in/access',
    (_req, res, next) => {
      res.setHeader('Cache-Control', 'no-store');
      if (options.access) return next();
      res.status(404).json({ error: { code: 'NOT_FOUND', message: 'not found' } });
    },
    options.access ? authenticate(options.access.verify, options.access.roles) : (_req, _res, next) => next(),
    (_req, res) => {
      const caller = callerOf(res);
      res.json({ role: caller.role, projects: caller.role === 'researcher' ? caller.projects : [] });
    },
  );

  router.use((_req, res, next) => {
    if (viewerInstalled(dir)) return next();
    res.status(503).json({
      error: { code: 'VIEWER_NOT_INSTALLED', message: 'the OHIF viewer is not installed: run scripts/setup.sh (it unpacks it into viewer.dir)' },
    });
  });
  router.get('/app-config.js', (_req, res) => {
    res.setHeader('Cache-Control', 'no-cache');
    res.type('application/javascript').send(appConfig);
  });
  // Files OHIF must not get: the service worker would cache DICOMweb answers (patient data) in the
  // browser, and its loader imports workbox from a CDN; app-config.js above replaces the shipped one.
  router.get(['/sw.js', '/init-service-worker.js'], (_req, res) => {
    res.status(404).json({ error: { code: 'NOT_FOUND', message: 'not found' } });
  });
  router.use((req: Request, res: Response, next: NextFunction) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    const path = req.path;
    const file = path === '/index.html' ? undefined : fileFor(dir, path);
    if (file === undefined && ((extname(path) === '' && !path.includes('/.')) || path === '/index.html')) {
      // A client-side route (/viewer, /viewer/viewer?StudyInstanceUIDs=…): OHIF's router takes it.
      return sendRewritten(res, 'index.html', 'text/html; charset=utf-8', () => rewriteIndex(readFileSync(join(dir, 'index.html'), 'utf8')));
    }
    if (file === undefined) {
      res.status(404).json({ error: { code: 'NOT_FOUND', message: 'not found' } });
      return;
    }
    const ext = extname(file);
    if (ext === '.js' || ext === '.css') {
      const body = cachedRewrite(file, () => {
        const text = readFileSync(file, 'utf8');
        const out = ext === '.js' ? rewriteScript(text) : rewriteStyle(text);
        return out === text ? null : out;
      });
      if (body) return sendBody(req, res, body, ext === '.js' ? 'application/javascript; charset=utf-8' : 'text/css; charset=utf-8');
    }
    next();
  });
  router.use(express.static(dir, { index: false, redirect: false, dotfiles: 'ignore', fallthrough: false }));
  return router;

  function cachedRewrite(file: string, make: () => string | null): Rewritten | null {
    if (!rewritten.has(file)) {
      const text = make();
      rewritten.set(file, text === null ? null : { body: Buffer.from(text), etag: `"${createHash('sha1').update(text).digest('base64url')}"` });
    }
    return rewritten.get(file) ?? null;
  }

  function sendRewritten(res: Response, key: string, type: string, make: () => string): void {
    const body = cachedRewrite(join(dir, key), make) as Rewritten;
    res.setHeader('Cache-Control', 'no-cache');
    sendBody(res.req, res, body, type);
  }
}

function sendBody(req: Request, res: Response, body: Rewritten, type: string): void {
  res.setHeader('ETag', body.etag);
  res.type(type);
  if (req.fresh) {
    res.status(304).end();
    return;
  }
  res.send(body.body);
}

/** The dist file a URL path names, if it is a plain relative path to an existing file inside `dir`. */
function fileFor(dir: string, path: string): string | undefined {
  if (path === '/' || !/^(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)+$/.test(path)) return undefined;
  const file = resolve(dir, `.${path}`);
  if (!file.startsWith(dir + sep)) return undefined;
  try {
    return statSync(file).isFile() ? file : undefined;
  } catch {
    return undefined;
  }
}

/**
 * index.html, for a sub-path: asset URLs under /viewer/, no inline script (the CSP forbids it; the
 * generated app-config.js sets `window.PUBLIC_URL` instead), no service worker.
 */
export function rewriteIndex(html: string): string {
  return html
    .replace(/<script>[^<]*<\/script>/g, '')
    .replace(/<script[^>]*src="\/init-service-worker\.js"[^>]*><\/script>/g, '')
    .replace(/(\s(?:href|src))="\/(?!\/)/g, `$1="${VIEWER_PATH}/`);
}

/** webpack's runtime public path, baked in as "/" by the OHIF build; chunks and workers load from it. */
export function rewriteScript(js: string): string {
  return js.replace(/__webpack_require__\.p = "\/";/g, `__webpack_require__.p = "${VIEWER_PATH}/";`);
}

export function rewriteStyle(css: string): string {
  return css.replace(/url\(\/(?!\/)/g, `url(${VIEWER_PATH}/`);
}

/**
 * OHIF's `window.config`, generated. One `dicomweb` data source on the gateway's own DICOMweb base
 * (PS3.18 QIDO-RS and WADO-RS, same origin); the caller's token, put in sessionStorage by the sign-in
 * page, goes on every request as `Authorization: Bearer` (RFC 6750 2.1) through OHIF's
 * userAuthenticationService, set by a tiny extension registered here. Without a token, on a 401
 * (RFC 6750 3.1 invalid_token) or a 403 (a role that may not read, e.g. uploader), the viewer goes
 * back to the sign-in page, which says why.
 *
 * Projects: OHIF takes one DICOMweb root per data source, so a researcher's root is the project's own
 * base, `/projects/{project}/dicom-web` (http/project-choice.ts), for the project chosen on the sign-in
 * page; that holds for a token of one project too, so the URL always names the project served. Other
 * roles read the plain base. A tab with a token but no choice yet goes back to the sign-in page to make it.
 *
 * Thumbnails: `thumbnailRendering: 'wadors'` renders them in the browser from the same frames the
 * viewer shows, so they go through the same de-identified pixel path; `/thumbnail` and `/rendered`
 * (server-rendered, refused to researchers unless `deid.researcherRendered`) are never asked for.
 *
 * With `oidc`, OHIF signs in itself (its `oidc` configuration, oidc-client-ts: authorization code with
 * PKCE S256, redirect URI `/viewer/callback`): a tab without a user goes to the provider, and OHIF sends
 * the access token it got. The project is still chosen on the gateway's sign-in page: once OHIF has the
 * token (its userAuthenticationService.setUser), a tab with no project chosen goes there with that token,
 * which asks the gateway what it grants, as for a pasted token, and comes back. A 401 or 403 forgets the
 * provider's user in this tab and goes to the sign-in page, which says why (never straight back to the
 * provider: a token the gateway always refuses must not loop).
 */
export function appConfigScript(dicomwebBase: string, oidc?: ViewerOidc): string {
  const signIn = `${VIEWER_PATH}/sign-in`;
  // OHIF's `oidc` entry (platform/app/src/utils/OpenIdConnectRoutes.tsx): paths relative to routerBasename.
  const oidcEntry = oidc && {
    authority: oidc.authority,
    client_id: oidc.clientId,
    redirect_uri: '/callback',
    post_logout_redirect_uri: '/',
    response_type: 'code',
    scope: oidc.scope,
    ...(oidc.resource ? { resource: oidc.resource } : {}),
    ...(oidc.extraQueryParams ? { extraQueryParams: oidc.extraQueryParams } : {}),
  };
  const [projectBefore, projectAfter] = projectBaseUrl(dicomwebBase, dicomwebBase, '\u0000').split('\u0000') as [string, string];
  return `// Generated by deid-gateway (src/http/viewer.ts); replaces the app-config.js shipped with OHIF.
'use strict';
(function () {
  var TOKEN_KEY = ${JSON.stringify(TOKEN_KEY)};
  var ROLE_KEY = ${JSON.stringify(ROLE_KEY)};
  var PROJECT_KEY = ${JSON.stringify(PROJECT_KEY)};
  var PROJECT_NAME = new RegExp(${JSON.stringify(PROJECT_NAME.source)});
  var SIGN_IN = ${JSON.stringify(signIn)};
  var OIDC = ${oidcEntry ? JSON.stringify(oidcEntry) : 'null'};
  // Where oidc-client-ts keeps the signed-in user (its default store: this tab's sessionStorage).
  var OIDC_USER_KEY = OIDC ? 'oidc.user:' + OIDC.authority + ':' + OIDC.client_id : '';
  var SUBJECT_KEY = 'deid-gateway.subject';
  // Set once the tab is leaving for the sign-in page: answers to requests already under way change nothing.
  var leaving = false;
  function back(reason) {
    leaving = true;
    var next = location.pathname + location.search;
    location.replace(SIGN_IN + '?next=' + encodeURIComponent(next) + (reason ? '&reason=' + reason : ''));
  }
  function signIn(reason) {
    if (leaving) return;
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(PROJECT_KEY);
    if (OIDC) sessionStorage.removeItem(OIDC_USER_KEY);
    back(reason);
  }
  function expired(token) {
    try {
      var payload = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
      return typeof payload.exp === 'number' && payload.exp * 1000 < Date.now();
    } catch (e) {
      return true;
    }
  }
  // '' for the plain base; a project name for a researcher (the sign-in page asked the gateway which).
  var project = sessionStorage.getItem(PROJECT_KEY);
  // After the provider's sign-in (OIDC): the sign-in page chooses the project with OHIF's new token, then
  // opens \`next\` (where OHIF was going: its 'ohif-redirect-to', relative to routerBasename).
  function chooseProject(token, next) {
    sessionStorage.setItem(TOKEN_KEY, token);
    leaving = true;
    location.replace(SIGN_IN + '?next=' + encodeURIComponent(next) + '&reason=project');
  }
  function ohifRedirectTo() {
    var to = {};
    try {
      to = JSON.parse(sessionStorage.getItem('ohif-redirect-to') || '{}') || {};
    } catch (e) {}
    var path = typeof to.pathname === 'string' && to.pathname.charAt(0) === '/' ? to.pathname : '/';
    return ${JSON.stringify(VIEWER_PATH)} + path + (typeof to.search === 'string' ? to.search : '');
  }
  if (OIDC) {
    // No user yet: OHIF goes to the provider, and comes back to /viewer/callback.
    var user = null;
    try {
      user = JSON.parse(sessionStorage.getItem(OIDC_USER_KEY) || 'null');
    } catch (e) {}
    if (location.pathname !== ${JSON.stringify(`${VIEWER_PATH}/callback`)} && user && user.access_token && !expired(user.access_token) && project === null) {
      chooseProject(user.access_token, location.pathname + location.search);
      return;
    }
    if (project !== null && project !== '' && !PROJECT_NAME.test(project)) project = null;
  } else {
    var token = sessionStorage.getItem(TOKEN_KEY);
    if (!token || expired(token)) {
      signIn(token ? 'expired' : '');
      return;
    }
    if (project === null || (project !== '' && !PROJECT_NAME.test(project))) {
      back('project');
      return;
    }
  }
  window.PUBLIC_URL = ${JSON.stringify(`${VIEWER_PATH}/`)};
  window.browserImportFunction = function (name) {
    return import(name);
  };
  var base = location.origin + (project ? ${JSON.stringify(projectBefore)} + project + ${JSON.stringify(projectAfter)} : ${JSON.stringify(dicomwebBase)});
  var auth = {
    id: 'deid-gateway.auth',
    preRegistration: function (hooks) {
      var service = hooks.servicesManager.services.userAuthenticationService;
      if (OIDC) {
        // OHIF's OpenIdConnectRoutes set the header and the provider's sign-in; this only watches for the
        // token (at sign-in and at each renewal) and sends a tab with no project chosen to choose one.
        var setUser = service.setUser.bind(service);
        service.setUser = function (user) {
          var token = user && user.access_token;
          // Another person signing in in this tab chooses again: the project chosen was the last one's.
          var subject = user && user.profile && typeof user.profile.sub === 'string' ? user.profile.sub : '';
          if (token && sessionStorage.getItem(SUBJECT_KEY) !== subject) {
            sessionStorage.removeItem(PROJECT_KEY);
            sessionStorage.setItem(SUBJECT_KEY, subject);
          }
          if (token) sessionStorage.setItem(TOKEN_KEY, token);
          setUser(user);
          if (token && sessionStorage.getItem(PROJECT_KEY) === null) chooseProject(token, ohifRedirectTo());
        };
        return;
      }
      service.setServiceImplementation({
        getAuthorizationHeader: function () {
          var current = sessionStorage.getItem(TOKEN_KEY);
          return current ? { Authorization: 'Bearer ' + current } : {};
        },
        handleUnauthenticated: function () {
          signIn('expired');
        },
      });
    },
  };
  window.config = {
    name: 'deid-gateway',
    routerBasename: ${JSON.stringify(VIEWER_PATH)},
    extensions: [auth],
    modes: [],
    customizationService: {},
    showStudyList: true,
    maxNumberOfWebWorkers: 3,
    showWarningMessageForCrossOrigin: false,
    showCPUFallbackMessage: true,
    showLoadingIndicator: true,
    strictZSpacingForVolumeViewport: true,
    investigationalUseDialog: { option: 'never' },
    defaultDataSourceName: 'gateway',
    dataSources: [
      {
        namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
        sourceName: 'gateway',
        configuration: {
          friendlyName: 'deid-gateway',
          name: 'gateway',
          qidoRoot: base,
          wadoRoot: base,
          wadoUriRoot: base,
          qidoSupportsIncludeField: true,
          supportsFuzzyMatching: true,
          supportsWildcard: true,
          supportsReject: false,
          dicomUploadEnabled: false,
          imageRendering: 'wadors',
          thumbnailRendering: 'wadors',
          enableStudyLazyLoad: true,
          omitQuotationForMultipartRequest: true,
          bulkDataURI: { enabled: true },
        },
      },
    ],
    httpErrorHandler: function (error) {
      if (error && error.status === 401) signIn('expired');
      else if (error && error.status === 403) signIn('forbidden');
    },
  };
  if (OIDC) window.config.oidc = [OIDC];
  // A small badge: who is signed in, in which project, and a way to switch (back to the sign-in page).
  document.addEventListener('DOMContentLoaded', function () {
    var badge = document.createElement('a');
    badge.id = 'deid-gateway-role';
    badge.href = SIGN_IN;
    badge.textContent = (sessionStorage.getItem(ROLE_KEY) || 'signed in') + (project ? ' \\u00b7 project ' + project : '') + ' \\u00b7 switch';
    var s = badge.style;
    s.position = 'fixed';
    s.right = '8px';
    s.bottom = '8px';
    s.zIndex = '10000';
    s.padding = '2px 8px';
    s.borderRadius = '4px';
    s.font = '12px sans-serif';
    s.color = '#fff';
    s.background = 'rgba(40, 60, 120, 0.85)';
    s.textDecoration = 'none';
    document.body.appendChild(badge);
  });
})();
`;
}

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runInNewContext } from 'node:vm';
import { appConfigScript, rewriteIndex, rewriteScript, rewriteStyle, VIEWER_CSP, VIEWER_WORKER_CSP } from '../../../src/http/viewer.ts';

const INDEX =
  '<html><head><script>console.time("scriptToView"),window.PUBLIC_URL="/"</script><link rel="manifest" href="/manifest.json">' +
  '<script rel="preload" as="script" src="/app-config.js"></script><script rel="preload" as="script" type="module" src="/init-service-worker.js"></script>' +
  '<script>function browserImportFunction(n){return import(n)}window.PUBLIC_URL="/"</script><script defer src="/app.bundle.1.js"></script>' +
  '<link href="//cdn.example/x.css" rel="stylesheet"></head><body><div id="root"></div></body></html>';

/** Runs the generated app-config.js against a fake window with the given sessionStorage. */
function runConfig(storage: Record<string, string>, path = '/viewer/viewer', search = '?StudyInstanceUIDs=1.2.3') {
  const replaced: string[] = [];
  const listeners: (() => void)[] = [];
  const window: Record<string, unknown> = {};
  const sandbox = {
    window,
    sessionStorage: {
      getItem: (k: string) => storage[k] ?? null,
      removeItem: (k: string) => void delete storage[k],
    },
    location: { pathname: path, search, origin: 'http://gw.test', replace: (url: string) => replaced.push(url) },
    document: { addEventListener: (_e: string, fn: () => void) => listeners.push(fn) },
    atob: (s: string) => Buffer.from(s, 'base64').toString('latin1'),
    Date,
    JSON,
  };
  runInNewContext(appConfigScript('/dicom-web'), sandbox);
  return { window, replaced, listeners };
}

const jwt = (payload: object) => `h.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.s`;

describe('the OHIF viewer, served under /viewer', () => {
  test('index.html: assets under /viewer/, no inline script, no service worker, other origins untouched', () => {
    const out = rewriteIndex(INDEX);
    assert.doesNotMatch(out, /<script>/);
    assert.doesNotMatch(out, /init-service-worker/);
    assert.match(out, /src="\/viewer\/app-config\.js"/);
    assert.match(out, /src="\/viewer\/app\.bundle\.1\.js"/);
    assert.match(out, /href="\/viewer\/manifest\.json"/);
    assert.match(out, /href="\/\/cdn\.example\/x\.css"/);
  });

  test('webpack public path and CSS urls move to /viewer/', () => {
    assert.equal(rewriteScript('(() => {\n__webpack_require__.p = "/";\n})();'), '(() => {\n__webpack_require__.p = "/viewer/";\n})();');
    assert.equal(rewriteScript('x.p = "/";'), 'x.p = "/";');
    assert.equal(rewriteStyle('a{src:url(/a.woff2)}b{src:url(//c/d)}'), 'a{src:url(/viewer/a.woff2)}b{src:url(//c/d)}');
  });

  test('app-config.js without a token sends the tab to sign-in, remembering where it was', () => {
    const { window, replaced } = runConfig({});
    assert.deepEqual(replaced, [`/viewer/sign-in?next=${encodeURIComponent('/viewer/viewer?StudyInstanceUIDs=1.2.3')}`]);
    assert.equal(window['config'], undefined);
  });

  test('app-config.js with an expired token sends the tab to sign-in and forgets the token', () => {
    const storage: Record<string, string> = { 'deid-gateway.token': jwt({ exp: Math.floor(Date.now() / 1000) - 60 }) };
    const { replaced } = runConfig(storage);
    assert.match(replaced[0] ?? '', /^\/viewer\/sign-in\?next=.*&reason=expired$/);
    assert.equal(storage['deid-gateway.token'], undefined);
  });

  test("app-config.js with a researcher's token: one dicomweb source on the chosen project's base, the token on every request", () => {
    const token = jwt({ exp: Math.floor(Date.now() / 1000) + 600, roles: ['researcher'] });
    const storage = { 'deid-gateway.token': token, 'deid-gateway.project': 'ct-cohort' };
    const { window, replaced } = runConfig(storage);
    assert.deepEqual(replaced, []);
    assert.equal(window['PUBLIC_URL'], '/viewer/');
    const config = window['config'] as {
      routerBasename: string;
      dataSources: { configuration: Record<string, unknown> }[];
      extensions: { preRegistration(h: unknown): void }[];
    };
    assert.equal(config.routerBasename, '/viewer');
    assert.equal(config.dataSources.length, 1);
    const source = config.dataSources[0]?.configuration ?? {};
    for (const root of ['qidoRoot', 'wadoRoot', 'wadoUriRoot']) assert.equal(source[root], 'http://gw.test/projects/ct-cohort/dicom-web');
    assert.equal(source['thumbnailRendering'], 'wadors');
    assert.equal(source['dicomUploadEnabled'], false);
    let impl: { getAuthorizationHeader(): unknown } | undefined;
    config.extensions[0]?.preRegistration({
      servicesManager: { services: { userAuthenticationService: { setServiceImplementation: (i: typeof impl) => (impl = i) } } },
    });
    assert.deepEqual({ ...(impl?.getAuthorizationHeader() as object) }, { Authorization: `Bearer ${token}` });
  });

  test('app-config.js without a project (the sign-in page chose none: not a researcher) reads the plain base', () => {
    const storage = { 'deid-gateway.token': jwt({ exp: Math.floor(Date.now() / 1000) + 600 }), 'deid-gateway.project': '' };
    const { window, replaced } = runConfig(storage);
    assert.deepEqual(replaced, []);
    const config = window['config'] as { dataSources: { configuration: Record<string, unknown> }[] };
    assert.equal(config.dataSources[0]?.configuration['qidoRoot'], 'http://gw.test/dicom-web');
  });

  test('app-config.js with a token but no project chosen, or a value that is no project name, goes back to choose, keeping the token', () => {
    for (const project of [undefined, '../studies', 'CT Cohort']) {
      const storage: Record<string, string> = { 'deid-gateway.token': jwt({ exp: Math.floor(Date.now() / 1000) + 600 }) };
      if (project !== undefined) storage['deid-gateway.project'] = project;
      const { window, replaced } = runConfig(storage);
      assert.deepEqual(replaced, [`/viewer/sign-in?next=${encodeURIComponent('/viewer/viewer?StudyInstanceUIDs=1.2.3')}&reason=project`], String(project));
      assert.equal(window['config'], undefined);
      assert.ok(storage['deid-gateway.token'], 'the token is kept: only the project is asked for');
    }
  });

  test('the page policy never allows eval or inline script; only the worker policy adds unsafe-eval', () => {
    const scriptSrc = (csp: string) => csp.split('; ').find((d) => d.startsWith('script-src '));
    assert.doesNotMatch(scriptSrc(VIEWER_CSP) ?? '', /'unsafe-eval'|'unsafe-inline'/);
    assert.match(scriptSrc(VIEWER_WORKER_CSP) ?? '', /'unsafe-eval'/);
    assert.equal(VIEWER_WORKER_CSP.replace(scriptSrc(VIEWER_WORKER_CSP) ?? '', ''), VIEWER_CSP.replace(scriptSrc(VIEWER_CSP) ?? '', ''));
  });
});

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DestinationStream } from 'pino';
import { resolve } from 'node:path';
import { createDiscoveredKeys } from './auth/discovery.ts';
import { createTokenVerifier, type TokenVerifier } from './auth/token.ts';
import { addressMatcher, parseAddressRange, type AddressRange } from './config/address-range.ts';
import { resolveConfig, type ResolvedConfig } from './config/resolve.ts';
import { usesDiscovery, type GatewayConfig } from './config/schema.ts';
import { createUpstream, type Upstream } from './dicomweb/upstream.ts';
import { createStudyIndex, type StudyIndex } from './dicomweb/study-index.ts';
import type { StudyIndexStore } from './store/study-index-store.ts';
import type { DeidPolicy } from './deid/deidentify.ts';
import { projectViews } from './dicomweb/project-view.ts';
import { UPLOAD_SCOPE } from './projects/project.ts';
import { bootstrapProjects } from './projects/bootstrap.ts';
import { prepareTempDir, type RefusalObserver, type StowView } from './dicomweb/stow.ts';
import { withCache } from './store/cached-store.ts';
import { scopedPseudonyms, type PseudonymStore } from './store/pseudonym-store.ts';
import type { ProjectStore } from './store/project-store.ts';
import { openSqliteStore } from './store/sqlite-store.ts';
import type { AuditTrail } from './store/audit-trail.ts';
import { withAuditExports } from './store/audit-export.ts';
import { auditExportMetrics } from './http/audit-export-metrics.ts';
import { createRateLimiter } from './http/token-bucket.ts';
import { createApp, type AppOptions } from './http/app.ts';
import { stowFailureReason } from './http/error-mapping.ts';
import { viewerInstalled, type ViewerOidc } from './http/viewer.ts';
import { createMetrics, startMetricsListener, type GatewayMetrics, type MetricsListener } from './http/metrics.ts';
import { withTiming } from './store/timed-store.ts';
import { createLogger, type Logger } from './http/logging.ts';
import { originForm } from './http/request-target.ts';
import { createViewClient, loopbackUrl } from './dimse/view-client.ts';
import { createInternalIssuer } from './auth/internal-token.ts';
import { TextDetectionError, type TextDetector, type TextDetectorOptions } from './pixel/text-detection.ts';
import { textRegionSource, type TextRegionObserver, type TextRegionSource } from './dicomweb/text-regions.ts';

export interface RunningGateway {
  readonly url: string;
  readonly server: Server;
  readonly logger: Logger;
  /** The separate metrics listener's URL, when `metrics.port` is set. */
  readonly metricsUrl?: string;
  /** The DIMSE listener's port, when `dimse.enabled`. */
  readonly dimsePort?: number;
  close(): Promise<void>;
}

/**
 * Wires config → verifier, upstream, app → a listening HTTP server, in the numbered steps below. A config
 * not yet resolved is resolved first (secrets, key files, policies: every problem in one ConfigError),
 * before anything starts.
 */
export async function startGateway(
  input: GatewayConfig | ResolvedConfig,
  options: {
    logDestination?: DestinationStream;
    env?: NodeJS.ProcessEnv;
    /** Role → token for the viewer's sign-in page; only the demo passes them. */
    viewerDemoTokens?: Readonly<Record<string, string>>;
  } = {},
): Promise<RunningGateway> {
  // 1. The config, resolved in one pass, and the logger it names.
  const resolved = 'secrets' in input ? input : resolveConfig(input, options.env ?? process.env);
  const { config, secrets } = resolved;
  const logger = createLogger(config.log.level, options.logDestination);
  warnKeptOverrides(resolved, logger);
  // 2. What the gateway talks to: metrics, the PACS, the token verifier.
  const metrics = config.metrics.enabled ? createMetrics() : undefined;
  const upstream = upstreamFor(resolved, metrics);
  const verify = verifierFor(resolved, logger);
  // 3. Storage: STOW parts wait in <dataDir>/tmp (0700), never in the shared system temp directory; then
  // the pseudonym store and its audit trail.
  const stowTempDir = resolve(config.dataDir, 'tmp');
  if (config.deid) await prepareTempDir(stowTempDir);
  const { store, audit, projects, studyIndexStore, closeExports } = await openStore(config, secrets, logger, metrics);
  // The config's projects, created in the store where it has none of that name (never overwritten).
  await bootstrapProjects(projects, config.projects, logger);
  // 4. The express app over the de-identified views; the DIMSE ingress (dimse.enabled) stores through the
  // uploader's; its research face (researcher callers) asks this gateway's own DICOMweb routes, with
  // tokens minted in memory (auth/internal-token.ts) that only those routes take.
  const researchCallers = config.dimse.enabled && config.dimse.callers.some((c) => c.role === 'researcher');
  const internal = researchCallers ? await createInternalIssuer() : undefined;
  let ownBase: string | undefined;
  const viewClient = internal
    ? createViewClient({
        base: () => {
          if (ownBase === undefined) throw new Error('the gateway is not listening yet');
          return ownBase;
        },
        issuer: internal,
        timeoutMs: config.upstream.headersTimeoutMs + config.upstream.bodyTimeoutMs,
      })
    : undefined;
  // The DIMSE modules (and dcmjs-dimse, about 13 MB resident) are loaded only when the listener is on.
  const research = viewClient ? (await import('./dimse/research.ts')).createResearchFace({ config: config.dimse, client: viewClient, log: logger, audit }) : undefined;
  // The OCR detector (issue 18): one pool for every project and the upload page, its workers started at the
  // first detection (idle memory), never when no policy asks for OCR.
  const textDetector = config.deid ? lazyTextDetector(config.ocr) : undefined;
  const textRegions = textDetector
    ? textRegionSource(textDetector, config.ocr, metrics?.observeOcr ?? {})
    : undefined;
  // The de-identified study index (issue 20, qido.index), its change feed asked like the PACS (its auth, its timeouts).
  const feed = config.deid && config.qido.index.enabled && config.qido.index.orthancUrl ? upstreamFor(resolved, metrics, config.qido.index.orthancUrl) : undefined;
  const studyIndex =
    config.deid && config.qido.index.enabled
      ? createStudyIndex({ store: studyIndexStore, rescanSeconds: config.qido.index.rescanSeconds, log: logger, ...(feed ? { changes: feed } : {}) })
      : undefined;
  const parts = appOptions(resolved, { upstream, verify, store, audit, projects, metrics, logger, stowTempDir, viewerDemoTokens: options.viewerDemoTokens, textRegions, textDetector, studyIndex });
  const dimse =
    config.dimse.enabled && parts.upload
      ? await (await import('./dimse/ingress.ts')).startDimseIngress({ config, view: parts.upload, audit, log: logger, registry: metrics?.registry, secrets, ...(research ? { research } : {}) })
      : undefined;
  const app = createApp({
    ...parts,
    ...(textDetector ? { textDetector } : {}),
    ...(internal ? { internalTokens: internal } : {}),
    ...(dimse ? { dimseStatus: { status: dimse.status, token: secrets.metricsToken, quarantine: dimse.quarantine } } : {}),
  });
  // 5. The HTTP server in front of it, listening; the metrics listener beside it when it has its own port.
  const server = createHttpServer(config.server, app, logger);
  await listen(server, config.server.port, config.server.host);
  const bound = server.address() as AddressInfo;
  const { port } = bound;
  // The research face asks the address the server is bound to, never `server.host` (a name could resolve elsewhere).
  ownBase = loopbackUrl(bound, config.server.basePath);
  const metricsListener: MetricsListener | undefined =
    metrics && config.metrics.port !== undefined
      ? await startMetricsListener(metrics, { host: config.metrics.host, port: config.metrics.port, token: secrets.metricsToken, logger })
      : undefined;
  const host = config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host;
  logger.info({ port, basePath: config.server.basePath }, 'gateway listening');
  // 6. The handle: close stops the listeners, then the PACS client, then the store.
  return {
    url: `http://${host}:${port}`,
    server,
    logger,
    ...(metricsListener ? { metricsUrl: metricsListener.url } : {}),
    ...(dimse ? { dimsePort: dimse.port } : {}),
    async close() {
      await dimse?.close();
      await viewClient?.close();
      await metricsListener?.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      studyIndex?.close();
      await feed?.close();
      await upstream.close();
      await textDetector?.close();
      await closeExports();
      await store.close();
    },
  };
}

/**
 * The OCR detector (pixel/text-detector.ts, tesseract.js in worker threads), created and its module loaded
 * only at the first detection; a creation that fails fails that detection (TEXT_DETECTION_FAILED: the
 * instance stays withheld) and is tried again at the next. `close` stops it if it was started.
 */
function lazyTextDetector(options: TextDetectorOptions): TextDetector {
  let started: Promise<TextDetector> | undefined;
  let closed = false;
  const open = (): Promise<TextDetector> => {
    started ??= import('./pixel/text-detector.ts')
      .then((m) => m.createTextDetector({ workers: options.workers, timeoutMs: options.timeoutMs, marginPx: options.marginPx, maxQueue: options.maxQueue }))
      .catch((cause: unknown) => {
        started = undefined;
        throw new TextDetectionError('TEXT_DETECTION_FAILED', 'the text detector could not be started', { cause });
      });
    return started;
  };
  return {
    async detect(frame, detectOptions) {
      if (closed) throw new TextDetectionError('TEXT_DETECTION_ABORTED', 'the text detector is closed');
      return (await open()).detect(frame, detectOptions);
    },
    async close() {
      closed = true;
      const running = started;
      started = undefined;
      if (running) await (await running.catch(() => undefined))?.close();
    },
  };
}

function warnKeptOverrides(resolved: ResolvedConfig, logger: Logger): void {
  for (const kept of resolved.deid?.keptOverrides ?? []) {
    logger.warn({ role: kept.role, tag: kept.tag, keyword: kept.keyword, basic: kept.basic }, 'an override keeps an attribute the Basic Profile does not keep');
  }
  // Issue 16: burned-in text passes when the pixel policy is off; that is an explicit choice, said aloud.
  for (const profile of resolved.deid?.pixelsOff ?? []) {
    logger.warn({ profile }, 'pixels.enabled is false: every pixel passes as stored, burned-in text included');
  }
}

function upstreamFor({ config, secrets }: ResolvedConfig, metrics: GatewayMetrics | undefined, url = config.upstream.url): Upstream {
  return createUpstream({
    observe: metrics?.observeUpstream,
    url,
    authorization: secrets.upstreamAuthorization,
    connectTimeoutMs: config.upstream.connectTimeoutMs,
    headersTimeoutMs: config.upstream.headersTimeoutMs,
    bodyTimeoutMs: config.upstream.bodyTimeoutMs,
  });
}

/**
 * The token verifier over the configured key sources. With OpenID Connect discovery (`auth.discovery`) the
 * provider's configuration is read now, without waiting: a provider that does not answer yet is logged,
 * and tokens are refused (503 AUTH_ISSUER_UNAVAILABLE) until it does; the process starts either way.
 */
function verifierFor({ config, secrets, publicKeys }: ResolvedConfig, logger: Logger): TokenVerifier {
  const discovered = usesDiscovery(config.auth)
    ? createDiscoveredKeys({
        issuer: config.auth.issuer as string, // one issuer: the schema checks it
        cacheMaxAgeMs: config.auth.jwksCacheMaxAgeMs,
        cooldownMs: config.auth.jwksCooldownMs,
        allowHttp: config.auth.allowHttp,
        observe: (outcome) => {
          if (outcome.ok) logger.info({ key: 'auth.issuer', jwksUri: outcome.jwksUri }, 'OpenID Connect discovery: the provider names its JWKS');
          else {
            const cause = outcome.error.cause instanceof Error ? outcome.error.cause.message : undefined;
            logger.warn({ key: 'auth.issuer', code: outcome.error.code, cause }, 'OpenID Connect discovery failed: tokens are refused (503) until the provider answers');
          }
        },
      })
    : undefined;
  discovered?.load().catch(() => undefined); // observed above; requests retry after auth.jwksCooldownMs
  return createTokenVerifier({
    ...(discovered ? { discovered: discovered.getKey } : {}),
    ...(config.auth.authorizedParties ? { authorizedParties: [...config.auth.authorizedParties] } : {}),
    issuer: [...[config.auth.issuer].flat()],
    audience: [...[config.auth.audience].flat()],
    algorithms: [...config.auth.algorithms],
    clockToleranceSec: config.auth.clockToleranceSec,
    maxTokenBytes: config.auth.maxTokenBytes,
    jwksUrl: config.auth.jwksUrl,
    jwksCooldownMs: config.auth.jwksCooldownMs,
    jwksCacheMaxAgeMs: config.auth.jwksCacheMaxAgeMs,
    publicKeys: [...publicKeys],
    sharedSecret: secrets.sharedSecret,
  });
}

/** `viewer.oidc` for OHIF: the provider is `auth.issuer` (one https URL: the schema checks it). */
function viewerOidc({ auth, viewer }: GatewayConfig): ViewerOidc | undefined {
  if (!viewer.oidc) return undefined;
  const { clientId, scope, resource, extraQueryParams, connectOrigins } = viewer.oidc;
  return { authority: auth.issuer as string, clientId, scope, connectOrigins, ...(resource ? { resource } : {}), ...(extraQueryParams ? { extraQueryParams } : {}) };
}

/** Step 4's options: the views for the restricted roles (the store timed when metrics are on) and the routes' settings. */
function appOptions(
  { config, secrets, deid }: ResolvedConfig,
  parts: {
    upstream: Upstream;
    verify: TokenVerifier;
    store: PseudonymStore;
    audit: AuditTrail;
    projects: ProjectStore;
    metrics: GatewayMetrics | undefined;
    logger: Logger;
    stowTempDir: string;
    viewerDemoTokens: Readonly<Record<string, string>> | undefined;
    textRegions: TextRegionSource | undefined;
    textDetector: TextDetector | undefined;
    studyIndex: StudyIndex | undefined;
  },
): AppOptions {
  const { upstream, store, metrics, logger } = parts;
  const timedStore = metrics ? withTiming(store, metrics.observeStore) : store;
  const deidentified = deid ? researcherViews(config, deid, upstream, timedStore, parts.projects, parts.textRegions, parts.studyIndex) : undefined;
  const upload = deid
    ? uploadView(config, deid.policies.uploader, upstream, timedStore, {
        tempDir: parts.stowTempDir,
        observeRefusal: metrics?.observeStowRefusal,
        log: logger,
        textDetector: parts.textDetector,
        observeOcr: metrics?.observeOcr,
      })
    : undefined;
  if (config.viewer.enabled && !viewerInstalled(config.viewer.dir)) {
    logger.warn({ key: 'viewer.dir' }, 'the OHIF viewer is not installed (run scripts/setup.sh); /viewer answers 503');
  }
  return {
    deidentified,
    upload,
    basePath: config.server.basePath,
    upstream,
    verify: parts.verify,
    roles: config.auth,
    logger,
    forwardCallerToken: config.upstream.forwardCallerToken,
    sendForwarded: config.upstream.sendForwarded,
    publicUrl: config.server.publicUrl,
    trustedProxy: addressMatcher(config.server.trustedProxies.map((text) => parseAddressRange(text) as AddressRange)),
    metrics: metrics && { metrics, serve: config.metrics.port === undefined, token: secrets.metricsToken },
    audit: parts.audit,
    reidentify: {
      store,
      limiter: createRateLimiter(config.reidentify.rateLimit),
      maxItems: config.reidentify.rateLimit.burst,
    },
    queryLimiter: config.qido.rateLimit ? createRateLimiter(config.qido.rateLimit) : undefined,
    viewer: config.viewer.enabled ? { dir: resolve(config.viewer.dir), demoTokens: parts.viewerDemoTokens, oidc: viewerOidc(config) } : undefined,
    // The steward's project API: profiles are checked by building them, so it needs the deid section.
    projects: deid ? { projects: parts.projects, store, scopedPolicy: deid.scopedPolicy, demoToken: parts.viewerDemoTokens?.['steward'] } : undefined,
  };
}

/** The node:http server around the app: origin-form targets only, tight timeouts, malformed HTTP answered plainly. */
function createHttpServer(settings: GatewayConfig['server'], app: (req: IncomingMessage, res: ServerResponse) => void, logger: Logger): Server {
  const server = createServer(
    {
      headersTimeout: settings.headersTimeoutMs,
      requestTimeout: settings.requestTimeoutMs,
      // Node checks both timeouts only this often (default 30 s): a slowloris would outlive headersTimeout.
      connectionsCheckingInterval: Math.min(1_000, settings.headersTimeoutMs, settings.requestTimeoutMs),
    },
    (req, res) => {
      // RFC 9112 3.2.2: an absolute-form target is routed and relayed as its path only (never its authority).
      const target = originForm(req.url);
      if (target === undefined) {
        res.writeHead(400, { 'content-type': 'application/json', connection: 'close' });
        res.end(JSON.stringify({ error: { code: 'HTTP_BAD_REQUEST', message: 'the request target is not a path' } }));
        return;
      }
      req.url = target;
      app(req, res);
    },
  );
  // Malformed HTTP never reaches express: answer it here, plainly, and never crash (RFC 9110 15.5).
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    const status =
      error.code === 'HPE_HEADER_OVERFLOW'
        ? '431 Request Header Fields Too Large'
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? '408 Request Timeout'
          : '400 Bad Request';
    logger.info({ code: error.code, status }, 'malformed HTTP request refused');
    // As Node's own handler: never write a status line into a response already under way.
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (socket.writable && !inFlight?.headersSent) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    else socket.destroy();
  });
  return server;
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
}

/** The configured backend behind the read-through cache, and the audit trail and projects it also keeps. */
async function openStore(
  config: GatewayConfig,
  secrets: ResolvedConfig['secrets'],
  logger: Logger,
  metrics: GatewayMetrics | undefined,
): Promise<{ store: PseudonymStore; audit: AuditTrail; projects: ProjectStore; studyIndexStore: StudyIndexStore; closeExports(): Promise<void> }> {
  const password = secrets.storePassword;
  const c = config.store;
  // pg is loaded only where it is used (about 15 MB of RSS the embedded default does not need).
  const backend =
    c.type === 'postgres'
      ? await (await import('./store/postgres-store.ts')).openPostgresStore({ url: c.url as string, password, poolMax: c.poolMax })
      : openSqliteStore(resolve(config.dataDir, c.file));
  const store = withCache(backend, { maxKeys: c.cacheMaxKeys, ttlSeconds: c.cacheTtlSeconds });
  // The trail's exports (a JSON-lines file, syslog) run after the store has each record: it stays the source of truth.
  const exports = withAuditExports(backend, config.audit, {
    dataDir: config.dataDir,
    tls: secrets.auditSyslogTls,
    log: logger,
    observe: metrics ? auditExportMetrics(metrics.registry) : undefined,
  });
  return { store, audit: exports.audit, projects: backend, studyIndexStore: backend, closeExports: exports.close };
}

/** Every project's view, each request reading its project from the store (dicomweb/project-view.ts). */
function researcherViews(
  config: GatewayConfig,
  deid: NonNullable<ResolvedConfig['deid']>,
  upstream: Upstream,
  store: PseudonymStore,
  projects: ProjectStore,
  textRegions: TextRegionSource | undefined,
  studyIndex: StudyIndex | undefined,
) {
  const settings = config.deid as NonNullable<GatewayConfig['deid']>;
  const views = projectViews({
    upstream,
    store,
    projects,
    scopedPolicy: deid.scopedPolicy,
    maxHeaderBytes: settings.maxHeaderBytes,
    maxJsonDatasetBytes: settings.maxJsonDatasetBytes,
    allowRendered: settings.researcherRendered,
    ...(textRegions ? { textRegions } : {}),
    ...(studyIndex ? { studyIndex } : {}),
  });
  return { ...views, policy: deid.policies.researcher, allowRendered: settings.researcherRendered, store };
}

function uploadView(
  config: GatewayConfig,
  policy: DeidPolicy,
  upstream: Upstream,
  store: PseudonymStore,
  io: { tempDir: string; observeRefusal: RefusalObserver | undefined; log: Logger; textDetector: TextDetector | undefined; observeOcr: TextRegionObserver | undefined },
): StowView {
  const deid = config.deid as NonNullable<GatewayConfig['deid']>;
  return {
    policy,
    // Uploads are pseudonymised in a scope of their own: no researcher pseudonym equals an upload's.
    store: scopedPseudonyms(store, UPLOAD_SCOPE),
    upstream,
    maxHeaderBytes: deid.maxHeaderBytes,
    maxPartBytes: config.stow.maxPartBytes,
    maxBodyBytes: config.stow.maxBodyBytes,
    tempDir: io.tempDir,
    // The Failure Reason is decided where every error's mapping is (http/error-mapping.ts).
    failureReason: stowFailureReason,
    observeRefusal: io.observeRefusal,
    log: io.log,
    // Issue 18: an upload the uploader profile's `pixels.ocr` lets OCR redact, found by the shared pool.
    ...(io.textDetector ? { ocr: { detector: io.textDetector, settings: config.ocr, observe: io.observeOcr ?? {} } } : {}),
  };
}

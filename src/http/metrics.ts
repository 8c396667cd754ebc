// `GET /metrics` in the Prometheus text exposition format (prom-client, a Registry of our own, not the
// global one). Labels are route *patterns*, roles, status codes and stable error codes: never a UID,
// a query, a token or anything from a dataset, so the metrics can leave the trust boundary. The one
// exception is the researcher query count (a steward's view of extraction attempts): its `subject` is
// the token's `sub` and its `study` a pseudonymous StudyInstanceUID the gateway issued, never an
// original or a UID the caller made up, with the number of series capped.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { LoopbackOnlyError, TokenInvalidError, TokenMissingError } from '../auth/errors.ts';
import { DeidError } from '../deid/errors.ts';
import { DicomError } from '../dicom/errors.ts';
import { UpstreamUnusableError } from '../dicomweb/errors.ts';
import { bodyBytesWritten } from '../dicomweb/response-writer.ts';
import type { RefusalObserver } from '../dicomweb/stow.ts';
import type { UpstreamObserver } from '../dicomweb/upstream.ts';
import { NOT_ISSUED } from '../store/audit-trail.ts';
import type { StoreObserver } from '../store/timed-store.ts';
import { errorHandler, type MappedError } from './error-mapping.ts';
import type { Logger } from './logging.ts';
import { requestState, roleOf, setRoute } from './request-context.ts';

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']);
const CODE = /^[A-Z][A-Z0-9_]{0,47}$/;
/**
 * Distinct (subject, study) series of `deid_gateway_queries_per_study_total` (and subjects of the
 * rate-limited count); past it, a new pair is counted under study `(other)` (one more series per
 * subject at most; a new subject of the rate-limited count under `(other)`), so callers cannot grow
 * the exposition without bound.
 */
const QUERY_SERIES_CAP = 10_000;
/** The `study` label of a query that targets no study. */
const NO_STUDY = '(none)';
const OTHER = '(other)';

/** Latency buckets (seconds): a cached store hit is microseconds, a large retrieval many seconds. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface GatewayMetrics {
  readonly registry: Registry;
  /** Counts each request when its response closes: route pattern, role, status, duration, bytes. */
  readonly middleware: RequestHandler;
  /** For `errorHandler`: de-identification failures by the engine's error code (one hook for all). */
  readonly observeError: (error: unknown, mapped: MappedError, aborted: boolean) => void;
  /** For STOW (`StowView.observeRefusal`): a part the engine refused, which never reaches `errorHandler`. */
  readonly observeStowRefusal: RefusalObserver;
  readonly observeUpstream: UpstreamObserver;
  readonly observeStore: StoreObserver;
  /**
   * One researcher QIDO-RS request (allowed or refused) by its token subject, counted once under each
   * pseudonymous study it targets (`studies` empty: under `(none)`).
   */
  readonly observeQuery: (subject: string, studies: readonly string[]) => void;
  /** A researcher QIDO-RS request refused by the per-subject rate limit (`qido.rateLimit`). */
  readonly observeQueryRateLimited: (subject: string) => void;
  /**
   * Instances a response withheld or redacted under the pixel policy (issue 16), by role, the route's
   * resource (search, metadata, instances, pixels, rendered, store), outcome and reason.
   */
  readonly observePixels: (role: string, resource: string, outcome: 'withheld' | 'redacted', reason: string, count: number) => void;
  /**
   * OCR-assisted redaction (issue 18; dicomweb/text-regions.ts TextRegionObserver): instances OCR-redacted,
   * instances left withheld because OCR failed (by the failure's code), seconds per frame read, cache hits.
   */
  readonly observeOcr: {
    outcome(outcome: 'redacted' | 'withheld', reason: string, count: number): void;
    frame(ms: number): void;
    cacheHit(): void;
  };
}

/** The label values `observePixels` keeps; anything else is counted as `other` (labels never carry data). */
const PIXEL_RESOURCES = new Set(['search', 'metadata', 'instances', 'pixels', 'rendered', 'store']);
const PIXEL_REASONS = new Set(['risky', 'filtered', 'unredactable', 'unlisted', 'rule', 'ocr']);
/** OCR frame durations (seconds): tesseract reads a small frame in a fraction of a second, a large one in seconds. */
const OCR_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60];

export function createMetrics(options: { querySeriesCap?: number } = {}): GatewayMetrics {
  const querySeriesCap = options.querySeriesCap ?? QUERY_SERIES_CAP;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'deid_gateway_http_requests_total',
    help: 'Requests answered, by method, route pattern, caller role and HTTP status',
    labelNames: ['method', 'route', 'role', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'deid_gateway_http_request_duration_seconds',
    help: 'Time from request to the end (or abort) of the response, by route pattern and role',
    labelNames: ['method', 'route', 'role'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const aborted = new Counter({
    name: 'deid_gateway_http_responses_aborted_total',
    help: 'Responses that closed before they were complete (failure mid-body, or the caller left)',
    labelNames: ['route', 'role'] as const,
    registers: [registry],
  });
  const bytes = new Counter({
    name: 'deid_gateway_response_bytes_total',
    help: 'Response body bytes written to callers, by role',
    labelNames: ['role'] as const,
    registers: [registry],
  });
  const deidErrors = new Counter({
    name: 'deid_gateway_deid_errors_total',
    help: 'Responses (and STOW parts) refused or aborted because the data could not be de-identified safely, by error code',
    labelNames: ['code', 'aborted'] as const,
    registers: [registry],
  });
  const upstream = new Histogram({
    name: 'deid_gateway_upstream_duration_seconds',
    help: 'PACS requests: time to response headers, by method and status (or error code)',
    labelNames: ['method', 'outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const store = new Histogram({
    name: 'deid_gateway_store_duration_seconds',
    help: 'Pseudonym store calls as requests see them (cache included), by operation and outcome',
    labelNames: ['operation', 'outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });

  const queriesPerStudy = new Counter({
    name: 'deid_gateway_queries_per_study_total',
    help: `Researcher QIDO-RS requests by token subject and pseudonymous StudyInstanceUID targeted (${NO_STUDY}: none; ${NOT_ISSUED}: only UIDs the gateway never issued; ${OTHER}: past ${querySeriesCap} series)`,
    labelNames: ['subject', 'study'] as const,
    registers: [registry],
  });
  const queriesLimited = new Counter({
    name: 'deid_gateway_queries_rate_limited_total',
    help: 'Researcher QIDO-RS requests refused by the per-subject rate limit (qido.rateLimit), by token subject',
    labelNames: ['subject'] as const,
    registers: [registry],
  });
  const pixelInstances = new Counter({
    name: 'deid_gateway_pixel_instances_total',
    help: 'Instances the pixel policy withheld (reason: risky, filtered, unredactable, unlisted) or redacted (reason: rule), by role and resource',
    labelNames: ['role', 'resource', 'outcome', 'reason'] as const,
    registers: [registry],
  });
  const querySeries = new Set<string>();
  const limitedSubjects = new Set<string>();
  /** Keeps a label combination if it is known or there is room; false once the cap is reached. */
  const admit = (seen: Set<string>, key: string): boolean => {
    if (seen.has(key)) return true;
    if (seen.size >= querySeriesCap) return false;
    seen.add(key);
    return true;
  };

  const middleware: RequestHandler = (req, res, next) => {
    const started = process.hrtime.bigint();
    res.once('close', () => {
      const route = routeOf(req, res);
      const role = roleOf(res) ?? 'none';
      const method = METHODS.has(req.method) ? req.method : 'OTHER';
      requests.inc({ method, route, role, status: String(res.statusCode) });
      duration.observe({ method, route, role }, Number(process.hrtime.bigint() - started) / 1e9);
      bytes.inc({ role }, bodyBytes(req, res));
      if (!res.writableFinished) aborted.inc({ route, role });
    });
    next();
  };

  const ocrInstances = new Counter({
    name: 'deid_gateway_ocr_instances_total',
    help: 'Instances OCR may redact (issue 18): redacted by the regions OCR found, or withheld because OCR failed (reason: the failure code)',
    labelNames: ['outcome', 'reason'] as const,
    registers: [registry],
  });
  const ocrFrameSeconds = new Histogram({
    name: 'deid_gateway_ocr_frame_seconds',
    help: 'Time to find the text regions of one sampled frame, queueing for a worker included',
    buckets: OCR_BUCKETS,
    registers: [registry],
  });
  const ocrCacheHits = new Counter({
    name: 'deid_gateway_ocr_cache_hits_total',
    help: 'Text regions reused for a series and layout (cached, or found by a detection another request waited on) instead of running OCR',
    registers: [registry],
  });

  return {
    registry,
    middleware,
    observeOcr: {
      outcome(outcome, reason, count) {
        if (count > 0) ocrInstances.inc({ outcome, reason: CODE.test(reason) || reason === 'ocr' ? reason : 'OTHER' }, count);
      },
      frame(ms) {
        ocrFrameSeconds.observe(ms / 1000);
      },
      cacheHit() {
        ocrCacheHits.inc();
      },
    },
    observeError(error, mapped, wasAborted) {
      const code = deidErrorCode(error, mapped);
      if (code !== undefined) deidErrors.inc({ code, aborted: String(wasAborted) });
    },
    observeStowRefusal(error) {
      const code = deidErrorCode(error);
      if (code !== undefined) deidErrors.inc({ code, aborted: 'false' });
    },
    observeUpstream(method, outcome, seconds) {
      upstream.observe({ method: METHODS.has(method) ? method : 'OTHER', outcome: CODE.test(outcome) || /^[1-5][0-9]{2}$/.test(outcome) ? outcome : 'ERROR' }, seconds);
    },
    observeStore(operation, outcome, seconds) {
      store.observe({ operation, outcome }, seconds);
    },
    observeQuery(subject, studies) {
      for (const study of studies.length > 0 ? new Set(studies) : [NO_STUDY]) {
        queriesPerStudy.inc({ subject, study: admit(querySeries, `${subject}\u0000${study}`) ? study : OTHER });
      }
    },
    observeQueryRateLimited(subject) {
      queriesLimited.inc({ subject: admit(limitedSubjects, subject) ? subject : OTHER });
    },
    observePixels(role, resource, outcome, reason, count) {
      if (!(count > 0)) return;
      pixelInstances.inc(
        {
          role: /^[a-z]{1,16}$/.test(role) ? role : 'other',
          resource: PIXEL_RESOURCES.has(resource) ? resource : 'other',
          outcome,
          reason: PIXEL_REASONS.has(reason) ? reason : 'other',
        },
        count,
      );
    },
  };
}

/**
 * The engine's code when a response failed for lack of a safe de-identification: a DicomError or
 * DeidError anywhere in the cause chain (truncation, bad length, unsupported value…), else
 * UPSTREAM_UNUSABLE (a PACS answer the gateway cannot rewrite) or DEID_UNAVAILABLE (no deid
 * config; `mapped` is there only for errors that reach the error handler). A caller that went away is
 * not a de-identification failure.
 */
function deidErrorCode(error: unknown, mapped?: MappedError): string | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof DicomError || e instanceof DeidError) return e.code;
    if ((e as { code?: unknown }).code === 'CLIENT_GONE') return undefined;
  }
  if (mapped && (error instanceof UpstreamUnusableError || mapped.code === 'DEID_UNAVAILABLE')) return mapped.code;
  return undefined;
}

function routeOf(req: Request, res: Response): string {
  const set = requestState(res).route;
  if (set !== undefined) return set;
  // Express's matched route: a pattern from our code (e.g. '/healthz'), never the concrete URL.
  const path = (req as { route?: { path?: unknown } }).route?.path;
  return typeof path === 'string' ? path : 'unmatched';
}

/** RFC 9110 6.4.1: responses that never carry content whatever their headers say. */
const NO_CONTENT = (method: string, status: number) => method === 'HEAD' || status < 200 || status === 204 || status === 304;

/**
 * The response's body bytes: as counted where its chunks were written (the DICOMweb writers in
 * `dicomweb/response-writer.ts`: relayed streams, de-identified rewrites, STOW answers), or, for a body
 * express sent whole (`res.json`, `res.send`, static files, which all declare it), its Content-Length
 * once the response finished (RFC 9110 8.6). Never by wrapping `res.write`. The socket's own counter is
 * shared by the requests of a keep-alive connection and includes headers, so it is not used.
 */
function bodyBytes(req: Request, res: Response): number {
  const counted = bodyBytesWritten(res);
  if (counted !== undefined) return counted;
  if (!res.writableFinished || NO_CONTENT(req.method, res.statusCode)) return 0;
  const declared = Number(res.getHeader('content-length'));
  return Number.isSafeInteger(declared) && declared > 0 ? declared : 0;
}

function isLoopback(address: string | undefined): boolean {
  return address !== undefined && (/^127\./.test(address) || address === '::1' || /^::ffff:127\./.test(address));
}

/**
 * A bearer token to present, if configured; compared in constant time (over digests, any length). The
 * operator endpoints share it: `/metrics` and `/dimse/status` (`path` names the one refused).
 */
export function checkToken(expected: string | undefined, path = '/metrics') {
  const want = expected === undefined ? undefined : createHash('sha256').update(expected).digest();
  return (req: Request): void => {
    if (want === undefined) {
      // No token configured: fail closed towards the network. The socket's own peer address (not
      // X-Forwarded-For) must be loopback; set a token, or a separate `metrics.port`, to scrape remotely.
      if (!isLoopback(req.socket.remoteAddress)) throw new LoopbackOnlyError(path);
      return;
    }
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer +([^ ]+) *$/i.exec(header) : null;
    if (!match) throw new TokenMissingError();
    const got = createHash('sha256').update(match[1] as string).digest();
    if (!timingSafeEqual(got, want)) throw new TokenInvalidError('not the metrics token');
  };
}

/** `GET /metrics`: Prometheus text format; with `token`, only for a caller presenting it (401 otherwise). */
export function metricsRoute(metrics: GatewayMetrics, token: string | undefined): RequestHandler {
  const check = checkToken(token);
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    setRoute(res, '/metrics');
    try {
      check(req);
      const text = await metrics.registry.metrics();
      res.setHeader('cache-control', 'no-store');
      res.type(metrics.registry.contentType).send(text);
    } catch (error) {
      next(error);
    }
  };
}

export interface MetricsListener {
  readonly url: string;
  close(): Promise<void>;
}

/** `/metrics` on a listener of its own (e.g. loopback only, for a local Prometheus agent or sidecar). */
export async function startMetricsListener(
  metrics: GatewayMetrics,
  options: { host: string; port: number; token: string | undefined; logger: Logger },
): Promise<MetricsListener> {
  const app = express();
  app.disable('x-powered-by');
  app.get('/metrics', metricsRoute(metrics, options.token));
  app.use((_req, res) => {
    res.status(404).json({ error: { code: 'NOT_FOUND', message: 'not found' } });
  });
  app.use(errorHandler(options.logger));
  const server: Server = createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

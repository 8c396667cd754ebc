import { readFileSync } from 'node:fs';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import helmet from 'helmet';
import { treatmentFor, type RoleOptions } from '../auth/role.ts';
import type { InternalTokens } from '../auth/internal-token.ts';
import type { TokenVerifier } from '../auth/token.ts';
import { BadRequestError, DeidentificationUnavailableError } from '../dicomweb/errors.ts';
import { relayOriginal } from '../dicomweb/relay.ts';
import { fillPath, invalidParam, pathParams, rawPathProblem, ROUTES, type DicomwebRoute } from '../dicomweb/routes.ts';
import type { Upstream } from '../dicomweb/upstream.ts';
import type { ProjectViews } from '../dicomweb/project-view.ts';
import type { DeidentifiedView } from '../dicomweb/deidentified-view.ts';
import type { DeidPolicy } from '../deid/deidentify.ts';
import { storeDeidentified, type StowView } from '../dicomweb/stow.ts';
import { searchDeidentified } from '../dicomweb/qido.ts';
import { retrieveInstances, retrieveMetadata, retrievePixels, retrieveQuery, retrieveRendered, type RetrieveRequest } from '../dicomweb/wado.ts';
import { authenticate } from './auth.ts';
import { errorHandler } from './error-mapping.ts';
import { healthRoutes } from './health.ts';
import { uploadRoutes } from './upload.ts';
import { auditRoutes } from './audit.ts';
import { reidentifyRoutes } from './reidentify.ts';
import { projectRoutes, type ProjectRoutesOptions } from './projects.ts';
import { stewardPageRoutes } from './steward.ts';
import type { RateLimiter } from './token-bucket.ts';
import type { AuditTrail } from '../store/audit-trail.ts';
import type { PseudonymStore } from '../store/pseudonym-store.ts';
import { VIEWER_PATH, viewerRoutes, type ViewerOptions } from './viewer.ts';
import type { Logger } from './logging.ts';
import { publicBaseResolver, forwardedHeader, type PublicBase } from './public-base.ts';
import { callerOf, requestContext, requestState } from './request-context.ts';
import { chooseProject, PROJECT_PATH, projectBaseUrl } from './project-choice.ts';
import { rawPathOf, rawQueryOf } from './request-target.ts';
import { conformanceRoute } from './conformance.ts';
import { metricsRoute, type GatewayMetrics } from './metrics.ts';
import { DIMSE_STATUS_PATH, dimseQuarantineRoutes, dimseStatusRoute, type DimseQuarantineSource, type DimseStatusSource } from './dimse-status.ts';
import { transactionOversight } from './transaction-oversight.ts';
import type { TextDetector } from '../pixel/text-detection.ts';

export interface AppOptions {
  /** Each project's de-identified view for researchers; absent: they are refused (fail closed). */
  deidentified?: ProjectViews & {
    /** The configured researcher profile, for the conformance statement. */
    readonly policy: DeidPolicy;
    readonly allowRendered: boolean;
    /** The store behind every project's scope (audit: was a UID issued in the caller's project?). */
    readonly store: PseudonymStore;
  };
  /** STOW-RS de-identified on the way in, for the uploader; absent: refused. */
  upload?: StowView;
  basePath: string;
  upstream: Upstream;
  verify: TokenVerifier;
  roles: RoleOptions;
  /** The DIMSE research face's own tokens (auth/internal-token.ts), taken on the DICOMweb routes only. */
  internalTokens?: InternalTokens;
  logger: Logger;
  forwardCallerToken: boolean;
  sendForwarded: boolean;
  /** `server.publicUrl`: the base URL links use; absent, each request's (trusted) forwarding headers or Host decide. */
  publicUrl?: string;
  /** `server.trustedProxies`: whether a peer's `Forwarded` / `X-Forwarded-*` headers are believed. */
  trustedProxy: (address: string | undefined) => boolean;
  /** Request metrics; `serve`: also answer `GET /metrics` here, with the bearer token if one is set. */
  metrics?: { metrics: GatewayMetrics; serve: boolean; token: string | undefined };
  /** The audit trail: restricted-role DICOMweb requests, re-identifications, reads of the trail. */
  audit?: AuditTrail;
  /** The steward's `POST /reidentify` (needs `audit`); absent: not served. */
  reidentify?: { store: PseudonymStore; limiter: RateLimiter; maxItems: number };
  /** The steward's project API and page at /steward (need `audit`); absent: not served. `demoToken`: only the demo's. */
  projects?: Pick<ProjectRoutesOptions, 'projects' | 'store' | 'scopedPolicy'> & { demoToken?: string };
  /** Researcher QIDO-RS requests per token subject (config `qido.rateLimit`); absent: not limited. */
  queryLimiter?: RateLimiter;
  /** The OHIF viewer at /viewer (config `viewer.enabled`); absent: not served. */
  viewer?: Omit<ViewerOptions, 'dicomwebBase'>;
  /**
   * `GET /dimse/status` (config `dimse.enabled`), guarded as `/metrics` (its token, else loopback peers not
   * behind a proxy); absent: not served. With `quarantine`, also `GET /dimse/quarantine` and
   * `POST /dimse/quarantine/{id}/retry`, which also take a steward's JWT (the retry never the loopback fallback).
   */
  dimseStatus?: { status: DimseStatusSource; token: string | undefined; quarantine?: DimseQuarantineSource };
  /**
   * The shared OCR detector (issue 18; pixel/, worker threads, bounded), started at its first use. The
   * researcher views reach it through their text regions (dicomweb/text-regions.ts); the upload page's
   * preview through its router. Absent: nothing is OCR-redacted (such instances stay withheld).
   */
  textDetector?: TextDetector;
}

const OPENAPI = new URL('../../openapi/openapi.json', import.meta.url);

export function createApp(options: AppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  // Forwarding headers are read by public-base.ts, from trusted proxies only; express never interprets them.
  app.set('trust proxy', false);
  app.set('query parser', false); // the raw query is relayed; nothing here parses it yet
  app.use(helmet());
  app.use(requestContext(options.logger));
  if (options.metrics) {
    app.use(options.metrics.metrics.middleware);
    if (options.metrics.serve) app.get('/metrics', metricsRoute(options.metrics.metrics, options.metrics.token));
  }
  app.use(healthRoutes(options.upstream));
  const dimseAccess = { token: options.dimseStatus?.token, trustedProxy: options.trustedProxy, steward: { verify: options.verify, roles: options.roles } };
  if (options.dimseStatus) app.get(DIMSE_STATUS_PATH, dimseStatusRoute(options.dimseStatus.status, dimseAccess));
  if (options.dimseStatus?.quarantine) app.use(dimseQuarantineRoutes(options.dimseStatus.quarantine, dimseAccess));
  app.use(uploadRoutes({ verify: options.verify, roles: options.roles, view: options.upload, audit: options.audit, textDetector: options.textDetector }));
  if (options.audit) {
    app.use(auditRoutes({ verify: options.verify, roles: options.roles, audit: options.audit }));
    if (options.reidentify) app.use(reidentifyRoutes({ verify: options.verify, roles: options.roles, audit: options.audit, ...options.reidentify }));
    if (options.projects) {
      const { demoToken, ...projects } = options.projects;
      app.use(projectRoutes({ verify: options.verify, roles: options.roles, audit: options.audit, ...projects }));
      app.use(stewardPageRoutes({ ...(demoToken !== undefined ? { demoToken } : {}) }));
    }
  }
  if (options.viewer) {
    app.use(VIEWER_PATH, viewerRoutes({ ...options.viewer, dicomwebBase: options.basePath, access: { verify: options.verify, roles: options.roles } }));
  }

  const openapi = readFileSync(OPENAPI, 'utf8');
  app.get('/openapi.json', (_req, res) => {
    res.type('application/json').send(openapi);
  });
  app.get(
    '/conformance',
    conformanceRoute({
      researcher: options.deidentified && { policy: options.deidentified.policy, allowRendered: options.deidentified.allowRendered },
      uploader: options.upload && { policy: options.upload.policy },
    }),
  );

  // One router for `/dicom-web` and `/projects/{project}/dicom-web` (project-choice.ts): mergeParams
  // gives it the project named in the path.
  const dicomweb = express.Router({ caseSensitive: true, strict: false, mergeParams: true });
  dicomweb.use(authenticate(options.verify, options.roles, options.internalTokens));
  dicomweb.use(chooseProject(options.basePath));
  const publicBase = publicBaseResolver({ publicUrl: options.publicUrl, trusted: options.trustedProxy, basePath: options.basePath });
  for (const route of ROUTES) {
    const handler = transactionHandler(route, options, publicBase);
    // The audit hook, the per-study query count and the QIDO rate limit, before the transaction runs.
    const oversight = transactionOversight(route, {
      audit: options.audit,
      store: options.deidentified?.store,
      queryLimiter: options.queryLimiter,
      metrics: options.metrics?.metrics,
    });
    if (route.method === 'GET') dicomweb.get(route.path, oversight, handler);
    else dicomweb.post(route.path, oversight, handler);
  }
  dicomweb.use((_req, res) => {
    res.status(404).json({ error: { code: 'NOT_A_DICOMWEB_RESOURCE', message: 'no such DICOMweb resource' } });
  });
  app.use(options.basePath, dicomweb);
  app.use(`${PROJECT_PATH}${options.basePath}`, dicomweb);
  app.use((_req, res) => {
    res.status(404).json({ error: { code: 'NOT_FOUND', message: 'not found' } });
  });
  app.use(errorHandler(options.logger, options.metrics?.metrics.observeError));
  return app;
}

function transactionHandler(route: DicomwebRoute, options: AppOptions, publicBase: (req: Request) => PublicBase | undefined) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    try {
      const treatment = treatmentFor(callerOf(res).role, route.routeClass);
      // Decoded exactly once, validated, then rebuilt: no caller's text reaches the PACS as written.
      const problem = rawPathProblem(rawPathOf(req));
      if (problem) throw new BadRequestError('DICOMWEB_BAD_PATH', `the request path has ${problem}`);
      // The researcher's UIDs are pseudonyms (PS3.5 9.1); the clinician's are whatever the PACS lists.
      const bad = invalidParam(req.params, treatment);
      if (bad) throw new BadRequestError('DICOMWEB_BAD_PARAMETER', `path parameter ${bad} is not valid`);
      if (treatment === 'deidentified') {
        // Fail closed: a restricted role never receives bytes that did not pass through deid/.
        await serveDeidentified(route, req, res, options, projectBase(req, publicBase(req), options.basePath));
        return;
      }
      const base = options.sendForwarded ? publicBase(req) : undefined;
      await relayOriginal(req, res, {
        upstream: options.upstream,
        pathAndQuery: `${fillPath(route, pathParams(req.params))}${canonicalQuery(rawQueryOf(req))}`,
        forwarded: base && forwardedHeader(base),
        callerAuthorization: options.forwardCallerToken ? req.headers.authorization : undefined,
      });
    } catch (error) {
      next(error);
    }
  };
}

async function serveDeidentified(
  route: DicomwebRoute,
  req: Request,
  res: Response,
  options: AppOptions,
  base: PublicBase | undefined,
): Promise<void> {
  if (!base) throw new BadRequestError('HTTP_BAD_HOST', 'the Host header is missing or malformed');
  const publicBase = base.url;
  const params = pathParams(req.params);
  if (route.resource === 'store') {
    if (!options.upload) throw new DeidentificationUnavailableError(route.transaction);
    await storeDeidentified(options.upload, req, res, { targetStudy: params.study, publicBase });
    return;
  }
  const project = requestState(res).project;
  if (!options.deidentified || project === undefined) throw new DeidentificationUnavailableError(route.transaction);
  const view = observingPixels(await options.deidentified.viewFor(project), route, res, options.metrics?.metrics);
  const path = { study: params.study, series: params.series, instance: params.instance };
  if (route.resource === 'search') {
    await searchDeidentified(view, req, res, { level: route.level, path, query: rawQueryOf(req), publicBase });
    return;
  }
  const r: RetrieveRequest = {
    path,
    resource: fillPath(route, params, { below: true }),
    ...(params.bulk ? { bulk: params.bulk } : {}),
    query: retrieveQuery(route.resource === 'rendered', rawQueryOf(req)),
    publicBase,
  };
  switch (route.resource) {
    case 'metadata':
      return retrieveMetadata(view, req, res, r);
    case 'instances':
      return retrieveInstances(view, req, res, r);
    case 'pixels':
      return retrievePixels(view, req, res, r);
    case 'rendered':
      return retrieveRendered(view, req, res, r);
  }
}

/**
 * The view with a pixel observer of this request (issue 16): what the response withheld and redacted goes
 * to the request state (the audit record) and the metric. No pixel policy in force: no counts at all.
 */
function observingPixels(view: DeidentifiedView, route: DicomwebRoute, res: Response, metrics: GatewayMetrics | undefined): DeidentifiedView {
  if (!view.policy.pixels.active) return view;
  const counts = { withheld: 0, redacted: 0 };
  const state = requestState(res);
  state.pixels = counts;
  const role = state.caller?.role ?? 'none';
  return {
    ...view,
    observePixels(outcome, reason, count) {
      counts[outcome] += count;
      metrics?.observePixels(role, route.resource, outcome, reason, count);
    },
  };
}

/** The links of a request through a project's path point below that path. */
function projectBase(req: Request, base: PublicBase | undefined, basePath: string): PublicBase | undefined {
  const project = req.params['project'];
  if (base === undefined || typeof project !== 'string') return base;
  return { ...base, url: projectBaseUrl(base.url, basePath, project) };
}

/** The clinician's query, decoded once and re-encoded (RFC 3986 3.4): every key and value as sent. */
function canonicalQuery(raw: string): string {
  const text = new URLSearchParams(raw).toString();
  return text ? `?${text}` : '';
}

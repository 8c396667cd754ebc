import { readFileSync } from 'node:fs';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import helmet from 'helmet';
import { treatmentFor, type RoleOptions } from '../auth/role.ts';
import type { TokenVerifier } from '../auth/token.ts';
import type { Role } from '../config/schema.ts';
import { BadRequestError, DeidentificationUnavailableError } from '../dicomweb/errors.ts';
import { relayOriginal } from '../dicomweb/relay.ts';
import { invalidParam, ROUTES, type DicomwebRoute } from '../dicomweb/routes.ts';
import type { Upstream } from '../dicomweb/upstream.ts';
import type { DeidentifiedView } from '../dicomweb/deidentified-view.ts';
import { storeDeidentified, type StowView } from '../dicomweb/stow.ts';
import { searchDeidentified } from '../dicomweb/qido.ts';
import { retrieveInstances, retrieveMetadata, retrievePixels, retrieveRendered, type RetrieveRequest } from '../dicomweb/wado.ts';
import { authenticate } from './auth.ts';
import { errorHandler } from './error-mapping.ts';
import { healthRoutes } from './health.ts';
import { uploadRoutes } from './upload.ts';
import { auditRoutes, auditTransaction } from './audit.ts';
import { reidentifyRoutes } from './reidentify.ts';
import type { RateLimiter } from '../audit/token-bucket.ts';
import type { AuditTrail } from '../store/audit-trail.ts';
import type { PseudonymStore } from '../store/pseudonym-store.ts';
import { VIEWER_PATH, viewerRoutes, type ViewerOptions } from './viewer.ts';
import type { Logger } from './logging.ts';
import { requestContext } from './request-context.ts';
import { conformanceRoute } from './conformance.ts';
import { metricsRoute, type GatewayMetrics } from './metrics.ts';

export interface AppOptions {
  /** The de-identified view for restricted roles; absent: they are refused (fail closed). */
  deidentified?: DeidentifiedView;
  /** STOW-RS de-identified on the way in, for the uploader; absent: refused. */
  upload?: StowView;
  basePath: string;
  upstream: Upstream;
  verify: TokenVerifier;
  roles: RoleOptions;
  logger: Logger;
  forwardCallerToken: boolean;
  sendForwarded: boolean;
  trustProxy: boolean;
  /** Request metrics; `serve`: also answer `GET /metrics` here, with the bearer token if one is set. */
  metrics?: { metrics: GatewayMetrics; serve: boolean; token: string | undefined };
  /** The audit trail: restricted-role DICOMweb requests, re-identifications, reads of the trail. */
  audit?: AuditTrail;
  /** The steward's `POST /reidentify` (needs `audit`); absent: not served. */
  reidentify?: { store: PseudonymStore; limiter: RateLimiter; maxItems: number };
  /** The OHIF viewer at /viewer (config `viewer.enabled`); absent: not served. */
  viewer?: Omit<ViewerOptions, 'dicomwebBase'>;
}

const OPENAPI = new URL('../../openapi/openapi.json', import.meta.url);

export function createApp(options: AppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', options.trustProxy);
  app.set('query parser', false); // the raw query is relayed; nothing here parses it yet
  app.use(helmet());
  app.use(requestContext(options.logger));
  if (options.metrics) {
    app.use(options.metrics.metrics.middleware);
    if (options.metrics.serve) app.get('/metrics', metricsRoute(options.metrics.metrics, options.metrics.token));
  }
  app.use(healthRoutes(options.upstream));
  app.use(uploadRoutes({ verify: options.verify, roles: options.roles, view: options.upload, audit: options.audit }));
  if (options.audit) {
    app.use(auditRoutes({ verify: options.verify, roles: options.roles, audit: options.audit }));
    if (options.reidentify) app.use(reidentifyRoutes({ verify: options.verify, roles: options.roles, audit: options.audit, ...options.reidentify }));
  }
  if (options.viewer) app.use(VIEWER_PATH, viewerRoutes({ ...options.viewer, dicomwebBase: options.basePath }));

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

  const dicomweb = express.Router({ caseSensitive: true, strict: false });
  dicomweb.use(authenticate(options.verify, options.roles));
  for (const route of ROUTES) {
    const handler = transactionHandler(route, options);
    if (route.method === 'GET') dicomweb.get(route.path, handler);
    else dicomweb.post(route.path, handler);
  }
  dicomweb.use((_req, res) => {
    res.status(404).json({ error: { code: 'NOT_A_DICOMWEB_RESOURCE', message: 'no such DICOMweb resource' } });
  });
  app.use(options.basePath, dicomweb);
  app.use((_req, res) => {
    res.status(404).json({ error: { code: 'NOT_FOUND', message: 'not found' } });
  });
  app.use(errorHandler(options.logger, options.metrics?.metrics.observeError));
  return app;
}

function transactionHandler(route: DicomwebRoute, options: AppOptions) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    res.locals['route'] = route.path;
    auditTransaction(options.audit, route, req, res);
    try {
      const role = res.locals['role'] as Role;
      const treatment = treatmentFor(role, route.routeClass);
      const bad = invalidParam(req.params);
      if (bad) throw new BadRequestError('DICOMWEB_BAD_PARAMETER', `path parameter ${bad} is not valid`);
      if (treatment === 'deidentified') {
        // Fail closed: a restricted role never receives bytes that did not pass through deid/.
        await serveDeidentified(route, req, res, options);
        return;
      }
      await relayOriginal(req, res, {
        upstream: options.upstream,
        pathAndQuery: req.originalUrl.slice(options.basePath.length),
        forwarded: options.sendForwarded ? forwardedFor(req) : undefined,
        callerAuthorization: options.forwardCallerToken ? req.headers.authorization : undefined,
      });
    } catch (error) {
      next(error);
    }
  };
}

async function serveDeidentified(route: DicomwebRoute, req: Request, res: Response, options: AppOptions): Promise<void> {
  const host = hostOf(req);
  if (!host) throw new BadRequestError('HTTP_BAD_HOST', 'the Host header is missing or malformed');
  const publicBase = `${req.protocol}://${host}${options.basePath}`;
  const param = (name: string) => {
    const value = (req.params as Record<string, unknown>)[name];
    return typeof value === 'string' ? value : undefined;
  };
  if (route.resource === 'store') {
    if (!options.upload) throw new DeidentificationUnavailableError(route.transaction);
    await storeDeidentified(options.upload, req, res, { targetStudy: param('study'), publicBase });
    return;
  }
  const view = options.deidentified;
  if (!view) throw new DeidentificationUnavailableError(route.transaction);
  const path = { study: param('study'), series: param('series'), instance: param('instance') };
  const queryAt = req.originalUrl.indexOf('?');
  const query = queryAt >= 0 ? req.originalUrl.slice(queryAt) : '';
  if (route.resource === 'search') {
    await searchDeidentified(view, req, res, { level: route.level, path, query: query.slice(1), publicBase });
    return;
  }
  const pathOnly = queryAt >= 0 ? req.originalUrl.slice(0, queryAt) : req.originalUrl;
  const marker = path.instance ? `/instances/${path.instance}` : path.series ? `/series/${path.series}` : `/studies/${path.study}`;
  const r: RetrieveRequest = { path, resource: pathOnly.slice(pathOnly.indexOf(marker) + marker.length), query, publicBase };
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
 * RFC 7239 `Forwarded: host=…;proto=…`, from the gateway's own view of the request. The host is sent
 * unquoted although RFC 7239 quotes a value with `:`, because Orthanc copies the quotes into its URLs.
 */
function forwardedFor(req: Request): string | undefined {
  const host = hostOf(req);
  return host ? `host=${host};proto=${req.protocol}` : undefined;
}

/** The request's Host, if it is a plain host[:port]; it goes into URLs the gateway builds. */
function hostOf(req: Request): string | undefined {
  const host = req.headers.host;
  return host && /^[A-Za-z0-9.\-:[\]]+$/.test(host) ? host : undefined;
}

// The DIMSE ingress, composed in numbered steps: the spool, the forwarder (recovering what a previous run
// left), the metrics, then the listener. An adapter beside http/: it calls the same dicomweb/ STOW path
// the uploader's requests take, with the uploader's StowView (its upstream replaced by the client of
// `dimse.forward.destination` when one is configured).
import { resolve } from 'node:path';
import type { Registry } from 'prom-client';
import type { GatewayConfig } from '../config/schema.ts';
import type { StowView } from '../dicomweb/stow.ts';
import type { AuditTrail } from '../store/audit-trail.ts';
import { createDestination, type Destination, type DestinationSecrets } from './destination.ts';
import { Forwarder, type DimseLog, type ForwardStatus, type Operator } from './forwarder.ts';
import { startDimseListener } from './listener.ts';
import { dimseMetrics } from './metrics.ts';
import type { ResearchFace } from './research-face.ts';
import { Spool, type QuarantinedStudy } from './spool.ts';

export interface DimseStatus extends ForwardStatus {
  readonly spoolBytes: number;
  readonly quotaBytes: number;
}

export interface DimseIngress {
  /** The port the listener took (`dimse.port` 0: a free one). */
  readonly port: number;
  status(): DimseStatus;
  /** The operator's view of the quarantine, and its retry (`GET /dimse/quarantine`, `POST /dimse/quarantine/{id}/retry`). */
  readonly quarantine: {
    list(): Promise<QuarantinedStudy[]>;
    retry(id: string, operator: Operator): Promise<{ readonly id: string; readonly instances: number }>;
  };
  /** Stops the listener, then the forwarder; the spool keeps whatever is not yet confirmed for the next start. */
  close(): Promise<void>;
}

export async function startDimseIngress(options: {
  config: GatewayConfig;
  /** The uploader's view: the policy, the pseudonym store, the upstream, the temp dir, the failure reasons. */
  view: StowView;
  audit: AuditTrail;
  log: DimseLog;
  registry?: Registry;
  now?: () => Date;
  /** The research face for researcher callers (C-FIND, C-GET, C-MOVE). */
  research?: ResearchFace;
  /** `dimse.forward.destination`'s secrets (config/resolve.ts); needed when it names credentials. */
  secrets?: DestinationSecrets;
}): Promise<DimseIngress> {
  const { config } = options;
  const dimse = config.dimse;
  // 1. The spool: folders made 0700, partial instances of a crashed run removed, usage counted.
  const spool = await Spool.open(resolve(config.dataDir, 'spool'), dimse.spool.quotaBytes);
  // 2. The forwarder, and the metrics that read it.
  // Read at scrape time only, once the forwarder exists.
  const status = (): DimseStatus => ({ ...forwarder.status(), spoolBytes: spool.usage, quotaBytes: spool.quotaBytes });
  const observers = options.registry ? dimseMetrics(options.registry, status) : undefined;
  // Where studies go: the upstream PACS, or the destination with its own client and credentials (never the upstream's).
  const target = dimse.forward.destination;
  const destination: Destination | undefined = target
    ? createDestination(target, options.secrets ?? { destinationAuthorization: undefined, destinationClientSecret: undefined }, {
        connectTimeoutMs: config.upstream.connectTimeoutMs,
        headersTimeoutMs: config.upstream.headersTimeoutMs,
        bodyTimeoutMs: config.upstream.bodyTimeoutMs,
        log: options.log,
        ...(options.now ? { now: () => (options.now as () => Date)().getTime() } : {}),
        ...(observers ? { observe: observers.token } : {}),
      })
    : undefined;
  const view: StowView = destination ? { ...options.view, upstream: destination.upstream } : options.view;
  const forwarder = new Forwarder({
    spool,
    view,
    destination: destination ? 'destination' : 'upstream',
    renewsAuthorization: destination?.renewsAuthorization ?? false,
    audit: options.audit,
    log: options.log,
    idleTimeoutMs: dimse.spool.idleTimeoutMs,
    maxAttempts: dimse.forward.maxAttempts,
    backoffMs: dimse.forward.backoffMs,
    maxBackoffMs: dimse.forward.maxBackoffMs,
    concurrency: dimse.forward.concurrency,
    batchInstances: dimse.forward.batchInstances,
    observe: observers?.forward,
    now: options.now,
  });
  // 3. Every study a previous run left is queued before the first association is accepted.
  await forwarder.recover();
  // 4. The listener.
  const listener = await startDimseListener({
    config: dimse,
    spool,
    forwarder,
    policy: view.policy,
    maxHeaderBytes: view.maxHeaderBytes,
    ...(view.ocr && view.policy.pixels.ocr ? { ocr: view.ocr } : {}),
    log: options.log,
    observe: observers?.listener,
    ...(options.research ? { research: options.research } : {}),
  }).catch(async (error: unknown) => {
    await forwarder.close();
    await destination?.upstream.close();
    throw error;
  });
  return {
    port: listener.port,
    status,
    quarantine: {
      list: () => forwarder.quarantine(),
      retry: (id, operator) => forwarder.retryQuarantined(id, operator),
    },
    async close() {
      await listener.close();
      await forwarder.close();
      await destination?.upstream.close();
    },
  };
}

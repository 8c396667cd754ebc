// Prometheus series of the DIMSE ingress, on the gateway's registry (http/metrics.ts): queue gauges read
// at scrape time, and counters of associations, C-STORE statuses and forwarded instances. Labels are
// outcomes and status codes only: never an AE title, a UID or a path.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { TokenObserver } from './destination.ts';
import type { ForwardObserver, ForwardStatus } from './forwarder.ts';
import type { ListenerObserver } from './listener.ts';
import { statusHex } from './store-status.ts';

export function dimseMetrics(
  registry: Registry,
  status: () => ForwardStatus & { readonly spoolBytes: number },
): { listener: ListenerObserver; forward: ForwardObserver; token: TokenObserver } {
  const gauge = (name: string, help: string, read: (s: ReturnType<typeof status>) => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read(status()));
      },
    });
  };
  gauge('deid_gateway_dimse_studies_queued', 'DIMSE studies holding originals not yet forwarded, not in flight', (s) => s.queued);
  gauge('deid_gateway_dimse_studies_in_flight', 'DIMSE studies being de-identified and forwarded now', (s) => s.inFlight);
  gauge('deid_gateway_dimse_studies_quarantined', 'DIMSE study folders in quarantine, waiting for an operator', (s) => s.quarantined);
  gauge('deid_gateway_dimse_instances_pending', 'Originals in the spool not yet confirmed by the destination', (s) => s.instancesPending);
  gauge('deid_gateway_dimse_spool_bytes', 'Bytes in the DIMSE spool (incoming, queued and quarantined)', (s) => s.spoolBytes);
  const associations = new Counter({
    name: 'deid_gateway_dimse_associations_total',
    help: 'DIMSE associations by outcome (accepted, rejected at association, aborted by the PDU guard)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const stores = new Counter({
    name: 'deid_gateway_dimse_cstore_total',
    help: 'C-STORE requests answered, by status (PS3.4 B.2.3, four hex digits)',
    labelNames: ['status'] as const,
    registers: [registry],
  });
  const forwarded = new Counter({
    name: 'deid_gateway_dimse_instances_forwarded_total',
    help: 'Spooled instances by forwarding outcome: stored (confirmed by the destination) or refused (quarantined)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const studies = new Counter({
    name: 'deid_gateway_dimse_study_batches_total',
    help: 'Forwarding batches of DIMSE studies by outcome: forwarded, partial (some quarantined), retrying, quarantined',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const retries = new Counter({
    name: 'deid_gateway_dimse_quarantine_retries_total',
    help: "Operators' retries of quarantined DIMSE studies by outcome: queued (sent again) or refused",
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const tokens = new Counter({
    name: 'deid_gateway_dimse_destination_tokens_total',
    help: "OAuth 2.0 token requests to the forwarding destination's token endpoint by outcome: obtained, refused (4xx), unavailable",
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  return {
    token: (outcome) => tokens.inc({ outcome }),
    listener: {
      association: (outcome) => associations.inc({ outcome }),
      instance: (status) => stores.inc({ status: statusHex(status) }),
    },
    forward: {
      instances: (outcome, count) => forwarded.inc({ outcome }, count),
      study: (outcome) => studies.inc({ outcome }),
      retry: (outcome) => retries.inc({ outcome }),
    },
  };
}

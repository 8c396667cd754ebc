import { Counter, type Registry } from 'prom-client';
import type { ExportObserver } from '../store/audit-syslog.ts';

/**
 * `deid_gateway_audit_export_total{sink, outcome}`: audit records on their way to the JSON-lines file and
 * to syslog, by outcome (sent; dropped from a full queue; oversize; failed). The store's trail is not
 * counted here: it is the source of truth, and a record it cannot take fails its request.
 */
export function auditExportMetrics(registry: Registry): ExportObserver {
  const exported = new Counter({
    name: 'deid_gateway_audit_export_total',
    help: 'Audit records exported after the store has them, by sink (file, syslog) and outcome (sent, dropped, oversize, failed)',
    labelNames: ['sink', 'outcome'] as const,
    registers: [registry],
  });
  return (sink, outcome) => exported.inc({ sink, outcome });
}

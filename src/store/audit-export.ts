import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { GatewayConfig } from '../config/schema.ts';
import { withAuditFile } from './audit-file.ts';
import { createSyslogSender, withAuditSyslog, type ExportLog, type ExportObserver } from './audit-syslog.ts';
import type { AuditTrail } from './audit-trail.ts';
import { AUTHPRIV } from './syslog-message.ts';

/** RFC 5426 / RFC 6587: 514; RFC 5425: 6514. */
const DEFAULT_PORT = { udp: 514, tcp: 514, tls: 6514 } as const;

/**
 * The trail with the exports `audit` configures around it: the JSON-lines file (`audit.file`, relative
 * to `dataDir`), then syslog (`audit.syslog`). Each runs after the store has the record; `close` sends
 * what syslog still holds (briefly) and closes its connection.
 */
export function withAuditExports(
  trail: AuditTrail,
  settings: GatewayConfig['audit'],
  io: { dataDir: string; tls: { ca?: string; cert?: string; key?: string } | undefined; log: ExportLog; observe: ExportObserver | undefined },
): { audit: AuditTrail; close(): Promise<void> } {
  let audit = settings.file ? withAuditFile(trail, resolve(io.dataDir, settings.file), { log: io.log, observe: io.observe }) : trail;
  const s = settings.syslog;
  if (!s) return { audit, close: async () => {} };
  const sender = createSyslogSender({
    transport: s.transport,
    host: s.host,
    port: s.port ?? DEFAULT_PORT[s.transport],
    facility: s.facility ?? AUTHPRIV,
    hostname: s.hostname ?? hostname(),
    procId: String(process.pid),
    maxMessageBytes: s.maxMessageBytes,
    queueMax: s.queueMax,
    ...(s.transport === 'tls' ? { tls: { ...io.tls, ...(s.tls?.servername ? { servername: s.tls.servername } : {}) } } : {}),
    log: io.log,
    ...(io.observe ? { observe: io.observe } : {}),
  });
  audit = withAuditSyslog(audit, sender);
  return { audit, close: () => sender.close() };
}

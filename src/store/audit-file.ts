import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AuditTrail } from './audit-trail.ts';
import type { ExportLog, ExportObserver } from './audit-syslog.ts';

/**
 * Tees every record into a JSON-lines file as well (for a log shipper or a SIEM), after the store has
 * it, in order (each line is written before the request goes on). Reading stays with the store, which
 * is the source of truth: a line that cannot be written is logged (its error code) and counted, and the
 * request is not failed for it.
 */
export function withAuditFile(trail: AuditTrail, file: string, options: { log: ExportLog; observe?: ExportObserver }): AuditTrail {
  // Settled either way (an unhandled rejection would end the process before the first record).
  const ready = mkdir(dirname(file), { recursive: true }).then(
    () => undefined,
    (error: unknown) => error,
  );
  let lastFailure = '';
  return {
    async append(event) {
      await trail.append(event);
      try {
        const failed = await ready;
        if (failed) throw failed;
        await appendFile(file, `${JSON.stringify(event)}\n`, { mode: 0o600 });
        options.observe?.('file', 'sent');
        lastFailure = '';
      } catch (cause) {
        options.observe?.('file', 'failed');
        const code = (cause as NodeJS.ErrnoException).code ?? 'ERROR';
        if (code !== lastFailure) options.log.warn({ code, key: 'audit.file' }, 'audit file: a record could not be written (the store has it)');
        lastFailure = code;
      }
    },
    list: (query) => trail.list(query),
  };
}

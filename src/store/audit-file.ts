import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AuditTrail } from './audit-trail.ts';
import { StoreError } from './errors.ts';

/**
 * Tees every record into a JSON-lines file as well (for a log shipper or a SIEM), after the store has
 * it. Reading stays with the store.
 */
export function withAuditFile(trail: AuditTrail, file: string): AuditTrail {
  const ready = mkdir(dirname(file), { recursive: true });
  return {
    async append(event) {
      await trail.append(event);
      try {
        await ready;
        await appendFile(file, `${JSON.stringify(event)}\n`, { mode: 0o600 });
      } catch (cause) {
        throw new StoreError('STORE_AUDIT_WRITE_FAILED', 'the audit file could not be written', { cause });
      }
    },
    list: (query) => trail.list(query),
  };
}

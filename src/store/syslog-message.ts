// An audit record as a syslog message (RFC 5424), and its frame on a stream transport (RFC 6587 3.4.1
// octet counting, which RFC 5425 TLS uses too). Pure: the sender (audit-syslog.ts) does the I/O.
import type { AuditEvent } from './audit-trail.ts';

export const APP_NAME = 'deid-gateway';
/** RFC 5424 6.2.1: facility 10, security/authorization messages (IHE ATNA's choice for audit records). */
export const AUTHPRIV = 10;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

export interface SyslogHeader {
  readonly facility: number;
  /** HOSTNAME (RFC 5424 6.2.4): the FQDN or address of this gateway. */
  readonly hostname: string;
  /** PROCID (6.2.6): the process id. */
  readonly procId: string;
}

/** RFC 5424 6.2.4–6.2.7: 1–N printable US-ASCII characters (no space), else the NILVALUE `-`. */
export function headerField(value: string, max: number): string {
  return value.length > 0 && value.length <= max && /^[\x21-\x7e]+$/.test(value) ? value : '-';
}

/**
 * IHE ATNA (ITI TF-2 3.20.4.2.1): severity 5 (notice) for most audit messages, 4 (warning) where the
 * message says something went wrong: here every EventOutcomeIndicator but 0.
 */
export function severityOf(event: Pick<AuditEvent, 'eventOutcomeIndicator'>): number {
  return event.eventOutcomeIndicator === 0 ? 5 : 4;
}

/** RFC 5424 6.3.3: `"`, `\` and `]` are escaped in a PARAM-VALUE. */
const sdValue = (value: string): string => value.replace(/["\\\]]/g, (c) => `\\${c}`);

/**
 * One record as an RFC 5424 SYSLOG-MSG:
 *   <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [meta sequenceId="n"] BOM{json}
 * TIMESTAMP is the record's EventDateTime (RFC 3339, UTC); MSGID its EventTypeCode or EventID code
 * (`REIDENTIFY`, `110112`); the structured data is RFC 5424 7.3.1 `meta` (IANA-registered: no private
 * enterprise number needed), whose sequenceId lets a receiver see a gap; MSG is the record as JSON, UTF-8
 * after a BOM (6.4), the same object `audit.file` writes and `GET /audit` answers (without its id).
 * Past `maxBytes`, the QIDO query description is left out (`participantObjectQueryOmitted: true`); if
 * that is not enough either, undefined: the record is not sent (the store keeps it whole).
 */
export function syslogMessage(event: AuditEvent, header: SyslogHeader, sequenceId: number, maxBytes: number): Buffer | undefined {
  const pri = header.facility * 8 + severityOf(event);
  const msgId = headerField(event.eventTypeCode?.code ?? event.eventId.code, 32);
  const head = `<${pri}>1 ${event.eventDateTime.toISOString()} ${headerField(header.hostname, 255)} ${APP_NAME} ${headerField(header.procId, 128)} ${msgId} [meta sequenceId="${sdValue(String(sequenceId))}"] `;
  for (const body of [event, { ...event, participantObjectQuery: undefined, participantObjectQueryOmitted: true }]) {
    if (body !== event && event.participantObjectQuery === undefined) break;
    const message = Buffer.concat([Buffer.from(head, 'ascii'), BOM, Buffer.from(JSON.stringify(body), 'utf8')]);
    if (message.length <= maxBytes) return message;
  }
  return undefined;
}

/** RFC 6587 3.4.1 octet counting (and RFC 5425 4.3): MSG-LEN SP SYSLOG-MSG. */
export function octetCounted(message: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${message.length} `, 'ascii'), message]);
}

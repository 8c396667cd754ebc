// The audit trail forwarded as syslog (RFC 5424) to a SIEM or an ATNA audit record repository: over UDP
// (RFC 5426, one message a datagram), TCP (RFC 6587 octet counting) or TLS (RFC 5425, ATNA's transport:
// the same framing, the receiver's certificate verified, ours presented for mutual authentication). The
// store stays the source of truth: a record is sent after the store has it, sending never blocks or
// fails a request, and what cannot be sent (receiver down, queue full, too large) is counted and logged,
// never retried from the store.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect as tcpConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { AuditTrail } from './audit-trail.ts';
import { octetCounted, syslogMessage, type SyslogHeader } from './syslog-message.ts';

export type SyslogTransport = 'udp' | 'tcp' | 'tls';

/** What happened to records on their way out: for the metrics (`deid_gateway_audit_export_total`). */
export type ExportOutcome = 'sent' | 'dropped' | 'oversize' | 'failed';
export type ExportObserver = (sink: 'syslog' | 'file', outcome: ExportOutcome) => void;

/** The part of a logger the sender uses (pino's signature). */
export interface ExportLog {
  warn(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
}

export interface SyslogOptions extends SyslogHeader {
  readonly transport: SyslogTransport;
  readonly host: string;
  readonly port: number;
  /** The largest message sent (bytes, header included); larger ones lose their query description, then are not sent. */
  readonly maxMessageBytes: number;
  /** TCP/TLS: records held while the receiver is away; past it the oldest is dropped. */
  readonly queueMax: number;
  /** TLS: the receiver's CA (PEM; else the system's), our certificate and key (PEM), the name to verify. */
  readonly tls?: { readonly ca?: string; readonly cert?: string; readonly key?: string; readonly servername?: string };
  readonly observe?: ExportObserver;
  readonly log: ExportLog;
  /** Reconnection back-off (ms), doubling from `min` to `max`. */
  readonly retryMs?: { readonly min: number; readonly max: number };
}

export interface SyslogSender {
  /** Queues one record; returns at once and never throws. */
  send(event: Parameters<AuditTrail['append']>[0]): void;
  /** Sends what is queued (for at most `graceMs`), then closes the connection. */
  close(graceMs?: number): Promise<void>;
}

/** RFC 5424 7.3.1: sequenceId runs 1..2147483647, then starts over at 1. */
const MAX_SEQUENCE = 2_147_483_647;

export function createSyslogSender(options: SyslogOptions): SyslogSender {
  let sequence = 0;
  const observe = options.observe ?? (() => {});
  const frame = (event: Parameters<SyslogSender['send']>[0]): Buffer | undefined => {
    sequence = sequence >= MAX_SEQUENCE ? 1 : sequence + 1;
    const message = syslogMessage(event, options, sequence, options.maxMessageBytes);
    if (!message) observe('syslog', 'oversize');
    return message;
  };
  return options.transport === 'udp' ? udpSender(options, frame, observe) : streamSender(options, frame, observe);
}

function udpSender(options: SyslogOptions, frame: (e: Parameters<SyslogSender['send']>[0]) => Buffer | undefined, observe: ExportObserver): SyslogSender {
  const socket: UdpSocket = createSocket(isIP(options.host) === 6 ? 'udp6' : 'udp4');
  socket.unref();
  socket.on('error', (error: NodeJS.ErrnoException) => options.log.warn({ code: error.code }, 'audit syslog: UDP socket error'));
  let inFlight = 0;
  let closed = false;
  let lastFailure = '';
  return {
    send(event) {
      try {
        const message = frame(event);
        if (!message || closed) return;
        // dgram queues sends while it resolves the host: bounded like the stream transports' queue.
        if (inFlight >= options.queueMax) return observe('syslog', 'dropped');
        inFlight++;
        socket.send(message, options.port, options.host, (error) => {
          inFlight--;
          if (!error) {
            lastFailure = '';
            return observe('syslog', 'sent');
          }
          observe('syslog', 'failed');
          const code = (error as NodeJS.ErrnoException).code ?? 'ERROR';
          if (code !== lastFailure) options.log.warn({ code, host: options.host, port: options.port }, 'audit syslog: a datagram could not be sent');
          lastFailure = code;
        });
      } catch (error) {
        observe('syslog', 'failed');
        options.log.warn({ code: (error as NodeJS.ErrnoException).code }, 'audit syslog: a record could not be sent');
      }
    },
    async close() {
      closed = true;
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}

/**
 * TCP or TLS: one connection, opened at start and again after any failure (back-off doubling), frames
 * written in order as the socket drains, the rest queued (at most `queueMax`; past it the oldest is
 * dropped). Syslog has no acknowledgement: frames written to a connection that then breaks may be lost.
 */
function streamSender(options: SyslogOptions, frame: (e: Parameters<SyslogSender['send']>[0]) => Buffer | undefined, observe: ExportObserver): SyslogSender {
  const retry = options.retryMs ?? { min: 500, max: 30_000 };
  const queue: Buffer[] = [];
  let socket: Socket | undefined;
  let ready = false;
  let closed = false;
  let backoff = retry.min;
  let timer: NodeJS.Timeout | undefined;
  let dropped = 0;
  let lastFailure = '';

  const flush = (): void => {
    while (ready && socket && queue.length > 0) {
      const next = queue.shift() as Buffer;
      observe('syslog', 'sent');
      if (!socket.write(next)) return; // 'drain' flushes the rest
    }
    if (dropped > 0 && ready) {
      options.log.warn({ dropped }, 'audit syslog: records dropped while the receiver was away (the store has them)');
      dropped = 0;
    }
  };

  const connect = (): void => {
    timer = undefined;
    if (closed) return;
    const s = options.transport === 'tls'
      ? tlsConnect({
          host: options.host,
          port: options.port,
          ...(options.tls?.ca ? { ca: options.tls.ca } : {}),
          ...(options.tls?.cert ? { cert: options.tls.cert, key: options.tls.key } : {}),
          servername: options.tls?.servername ?? (isIP(options.host) ? undefined : options.host),
          minVersion: 'TLSv1.2',
        })
      : tcpConnect({ host: options.host, port: options.port });
    socket = s;
    s.setKeepAlive(true, 60_000);
    s.setNoDelay(true);
    s.unref();
    s.once(options.transport === 'tls' ? 'secureConnect' : 'connect', () => {
      ready = true;
      backoff = retry.min;
      if (lastFailure !== '') options.log.info({ host: options.host, port: options.port }, 'audit syslog: connected again');
      lastFailure = '';
      flush();
    });
    s.on('drain', flush);
    s.on('data', () => {}); // a receiver has nothing to say; whatever it sends is read and ignored
    s.on('error', (error: NodeJS.ErrnoException) => {
      const code = error.code ?? 'ERROR';
      if (code !== lastFailure) options.log.warn({ code, host: options.host, port: options.port, transport: options.transport }, 'audit syslog: connection failed; retrying');
      lastFailure = code;
    });
    s.once('close', () => {
      ready = false;
      socket = undefined;
      if (closed) return;
      if (lastFailure === '') {
        options.log.warn({ host: options.host, port: options.port, transport: options.transport }, 'audit syslog: connection closed; reconnecting');
        lastFailure = 'CLOSED';
      }
      timer = setTimeout(connect, backoff);
      timer.unref();
      backoff = Math.min(retry.max, backoff * 2);
    });
  };
  connect();

  return {
    send(event) {
      try {
        const message = frame(event);
        if (!message || closed) return;
        queue.push(octetCounted(message));
        if (queue.length > options.queueMax) {
          queue.shift();
          dropped++;
          observe('syslog', 'dropped');
        }
        flush();
      } catch (error) {
        observe('syslog', 'failed');
        options.log.warn({ code: (error as NodeJS.ErrnoException).code }, 'audit syslog: a record could not be queued');
      }
    },
    async close(graceMs = 1_000) {
      const deadline = Date.now() + graceMs;
      while (queue.length > 0 && ready && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      closed = true;
      clearTimeout(timer);
      const s = socket;
      if (!s) return;
      await new Promise<void>((resolve) => {
        s.once('close', () => resolve());
        s.end();
        setTimeout(() => s.destroy(), Math.max(200, deadline - Date.now())).unref();
      });
    },
  };
}

/** The trail, each record also sent as syslog once the store has it. Reading stays with the store. */
export function withAuditSyslog(trail: AuditTrail, sender: SyslogSender): AuditTrail {
  return {
    async append(event) {
      await trail.append(event);
      sender.send(event);
    },
    list: (query) => trail.list(query),
  };
}

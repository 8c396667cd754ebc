// The PACS client. Built on node:http rather than undici: undici 7 (the line Node 20 can run) crashes the
// process with an uncatchable `assert(!this.paused)` when the PACS closes a connection while a response
// body is held under back-pressure (nodejs/undici#5360, fixed only in undici 8, which wants Node 22.19).
// Orthanc ends every streamed study retrieval that way (`Connection: close`, the body delimited by EOF),
// so a researcher who reads slowly could bring the gateway down. node:http ends such a body normally.
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { pipeline, type Readable } from 'node:stream';
import { UpstreamTimeoutError, UpstreamUnreachableError } from './errors.ts';

export interface UpstreamOptions {
  /** Base URL of the PACS's DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web */
  url: string;
  /** Already-resolved `Authorization` value for the PACS, if any. */
  authorization?: string;
  connectTimeoutMs: number;
  /** From the request being sent to the response's headers. */
  headersTimeoutMs: number;
  /** The longest wait for body bytes while the gateway is ready to take them (time the gateway itself holds the body back does not count). */
  bodyTimeoutMs: number;
  /** Told the time to response headers of each request (metrics); never the path or query. */
  observe?: UpstreamObserver;
}

/** `outcome`: the status code, or the error code when no response came (`UPSTREAM_TIMEOUT`, …). */
export type UpstreamObserver = (method: string, outcome: string, seconds: number) => void;

export interface UpstreamRequest {
  method: 'GET' | 'POST';
  /** Path below the DICOMweb root, starting with `/`, with its raw query string. */
  pathAndQuery: string;
  headers: Record<string, string>;
  body?: Readable;
  signal?: AbortSignal;
}

export interface UpstreamResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: Readable;
}

export interface Upstream {
  send(req: UpstreamRequest): Promise<UpstreamResponse>;
  close(): Promise<void>;
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EPIPE', 'EAI_AGAIN', 'ECONNABORTED']);
/** How long an idle kept-alive connection is kept (less if the PACS's `Keep-Alive: timeout=` hint says so). */
const IDLE_CONNECTION_MS = 4_000;
/**
 * Bytes the PACS's answer buffers before it pushes back (its highWaterMark; Node's default is 16 KiB),
 * so the PACS is stalled less often by a caller that reads in bursts. At most this much more is held per
 * response. The caller's side keeps Node's default: 1 MiB there too doubled the gateway's RSS growth
 * under a large STOW (test/integration/uploader-stow.test.ts: 34 → 60–71 MiB) and did not move the
 * retrieval figures beyond the noise (README, "The pump, measured since").
 */
const STREAM_BUFFER_BYTES = 1024 * 1024;
/** http.request takes `highWaterMark` (Node ≥ 20.1), which @types/node's RequestOptions does not list. */
const RESPONSE_BUFFERING: { highWaterMark: number } = { highWaterMark: STREAM_BUFFER_BYTES };
/** Time allowed for the PACS's close and the next request to cross on the wire. */
const KEEP_ALIVE_MARGIN_MS = 250;

/** When each connection's last response arrived, and how long the PACS keeps the connection after one. */
const ANSWERED = new WeakMap<Socket, { at: number; keepMs: number }>();

/** The PACS client: one pooled keep-alive agent, bodies streamed both ways under back-pressure. */
export function createUpstream(options: UpstreamOptions): Upstream {
  const base = new URL(options.url.replace(/\/+$/, ''));
  const secure = base.protocol === 'https:';
  const agentOptions = { keepAlive: true, maxSockets: 64, maxFreeSockets: 64, timeout: IDLE_CONNECTION_MS, scheduling: 'lifo' as const };
  const agent = secure ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
  // A PACS closes a kept-alive connection a set time after it has sent a response (Orthanc: 1 s, from
  // `Keep-Alive: timeout=1`), and a study the gateway's caller reads slowly is consumed long after it was
  // sent. Such a connection is not handed to the next request, which would be refused by a connection
  // already closed: it is destroyed before the agent sees it free, and the agent opens a new one.
  agent.prependListener('free', (socket: Socket) => {
    const answered = ANSWERED.get(socket);
    if (answered && Date.now() - answered.at > answered.keepMs - KEEP_ALIVE_MARGIN_MS) socket.destroy();
  });
  const basePath = base.pathname.replace(/\/+$/, '');
  return {
    async send(req) {
      const headers: Record<string, string> = { ...req.headers };
      if (options.authorization && !headers['authorization']) headers['authorization'] = options.authorization;
      const started = process.hrtime.bigint();
      const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
      try {
        const res = await exchange(secure, agent, base, `${basePath}${req.pathAndQuery}`, req, headers, options);
        options.observe?.(req.method, String(res.statusCode), seconds());
        return res;
      } catch (error) {
        const classified = classify(error);
        const code = (classified as { code?: unknown } | null)?.code;
        options.observe?.(req.method, typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? code : 'ERROR', seconds());
        throw classified;
      }
    },
    async close() {
      agent.destroy();
    },
  };
}

/**
 * One request and its response. A GET that fails on a kept-alive connection the PACS closed meanwhile
 * (reset before any byte of a response) is sent once more, on a connection of its own; a POST is not, as
 * its body has been consumed.
 */
async function exchange(
  secure: boolean,
  agent: http.Agent,
  base: URL,
  path: string,
  req: UpstreamRequest,
  headers: Record<string, string>,
  options: UpstreamOptions,
): Promise<UpstreamResponse> {
  try {
    return await once(secure, agent, base, path, req, headers, options);
  } catch (error) {
    if (req.method === 'GET' && error instanceof StaleConnectionError && !req.signal?.aborted) {
      return once(secure, false, base, path, req, headers, options); // a connection of its own, not the pool's
    }
    throw error instanceof StaleConnectionError ? error.cause : error;
  }
}

/** A reused connection that the PACS had closed: the request never reached it. */
class StaleConnectionError extends Error {
  constructor(override readonly cause: unknown) {
    super('kept-alive connection closed by the PACS', { cause });
  }
}

function once(
  secure: boolean,
  agent: http.Agent | false,
  base: URL,
  path: string,
  req: UpstreamRequest,
  headers: Record<string, string>,
  options: UpstreamOptions,
): Promise<UpstreamResponse> {
  return new Promise<UpstreamResponse>((resolve, reject) => {
    const signal = req.signal;
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const client = (secure ? https : http).request({
      agent,
      protocol: base.protocol,
      hostname: base.hostname.replace(/^\[|\]$/g, ''),
      port: base.port || (secure ? 443 : 80),
      method: req.method,
      path,
      headers,
      ...RESPONSE_BUFFERING,
    });
    let settled = false;
    let response: IncomingMessage | undefined;
    const timers = new Set<NodeJS.Timeout>();
    const after = (ms: number, fire: () => void) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        fire();
      }, ms);
      timers.add(timer);
      return timer;
    };
    const cancel = (timer: NodeJS.Timeout | undefined) => {
      if (timer === undefined) return;
      clearTimeout(timer);
      timers.delete(timer);
    };
    const stopTimers = () => {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    };
    const fail = (error: unknown) => {
      stopTimers();
      if (!settled) {
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        reject(error);
      }
      client.destroy(error instanceof Error ? error : undefined);
      response?.destroy(error instanceof Error ? error : undefined);
    };
    const onAbort = () => fail(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });

    // From the request written whole (a STOW body may take long to send) to the response's headers.
    client.once('finish', () => {
      if (!settled) after(options.headersTimeoutMs, () => fail(new UpstreamTimeoutError({ cause: new Error(`no response headers within ${options.headersTimeoutMs} ms`) })));
    });
    // Whether the connection carried an exchange before this one. Not `client.reusedSocket`: Node sets that
    // only for a socket taken from the idle pool, not for one handed straight to a queued request.
    let reused = false;
    client.once('socket', (socket: Socket) => {
      reused = socket.bytesRead > 0;
      if (!socket.connecting) return;
      const connect = after(options.connectTimeoutMs, () => fail(new UpstreamTimeoutError({ cause: new Error(`no connection within ${options.connectTimeoutMs} ms`) })));
      socket.once(secure ? 'secureConnect' : 'connect', () => cancel(connect));
    });
    client.on('error', (error) => {
      if (settled) return;
      const code = (error as { code?: string }).code;
      fail(reused && response === undefined && (code === 'ECONNRESET' || code === 'EPIPE') ? new StaleConnectionError(error) : error);
    });
    client.once('response', (res) => {
      response = res;
      ANSWERED.set(res.socket, { at: Date.now(), keepMs: keepAliveMs(res.headers) });
      stopTimers();
      settled = true;
      watchBody(res, options.bodyTimeoutMs, signal, () => signal?.removeEventListener('abort', onAbort));
      resolve({ statusCode: res.statusCode ?? 502, headers: res.headers, body: res });
    });

    if (req.body) {
      pipeline(req.body, client, (error) => {
        if (error) fail(error);
      });
    } else {
      client.end();
    }
  });
}

/**
 * Keeps a response body within its lifetime: destroyed with the caller's abort reason, and with an
 * `UpstreamTimeoutError` when no byte comes for `bodyTimeoutMs` while the gateway waits for one. Time the
 * body sits unread because the gateway's own caller is slow is not the PACS stalling and does not count.
 */
function watchBody(res: IncomingMessage, bodyTimeoutMs: number, signal: AbortSignal | undefined, done: () => void): void {
  const onAbort = () => res.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
  signal?.addEventListener('abort', onAbort, { once: true });
  // Progress is read from the connection's byte count: a 'data' listener would switch the body to flowing
  // mode and undo the back-pressure the gateway relies on.
  const socket = res.socket;
  let seen = socket.bytesRead;
  let last = Date.now();
  const check = () => {
    const now = Date.now();
    // Bytes arrived, or bytes wait unread (the gateway's reader is behind; `isPaused()` cannot tell, as an
    // async iterator reads in paused mode): either way the PACS is not what stalls.
    if (socket.bytesRead !== seen || res.readableLength > 0) {
      seen = socket.bytesRead;
      last = now;
    } else if (now - last >= bodyTimeoutMs) {
      res.destroy(new UpstreamTimeoutError({ cause: new Error(`no body bytes within ${bodyTimeoutMs} ms`) }));
      return;
    }
    arm(Math.ceil(bodyTimeoutMs / 4));
  };
  let timer: NodeJS.Timeout | undefined;
  const arm = (ms: number) => {
    timer = setTimeout(check, ms);
    timer.unref();
  };
  arm(Math.ceil(bodyTimeoutMs / 4));
  res.once('close', () => {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    done();
  });
}

/** How long the PACS keeps a connection open after this response (RFC 9112 9.3; `Keep-Alive: timeout=N`). */
function keepAliveMs(headers: IncomingHttpHeaders): number {
  const hint = /(?:^|[\s,])timeout=(\d{1,6})/i.exec(String(headers['keep-alive'] ?? ''))?.[1];
  return hint === undefined ? IDLE_CONNECTION_MS : Math.min(Number(hint) * 1000, IDLE_CONNECTION_MS);
}

/** Turns a network failure into the gateway's error; anything else goes through unchanged. */
export function classify(error: unknown): unknown {
  if (error instanceof UpstreamTimeoutError || error instanceof UpstreamUnreachableError) return error;
  const code = (error as { code?: string } | null)?.code;
  const causeCode = (error as { cause?: { code?: string } } | null)?.cause?.code;
  if ((code && UNREACHABLE.has(code)) || (causeCode && UNREACHABLE.has(causeCode)) || isPrematureClose(error)) {
    return new UpstreamUnreachableError({ cause: error });
  }
  return error;
}

/** The PACS closed the connection before the response (or its body) was complete. */
function isPrematureClose(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  return code === 'ERR_STREAM_PREMATURE_CLOSE' || (error instanceof Error && error.message === 'aborted' && code === 'ECONNRESET');
}

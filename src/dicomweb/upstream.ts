import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { Agent, errors as undiciErrors, request } from 'undici';
import { UpstreamTimeoutError, UpstreamUnreachableError } from './errors.ts';

export interface UpstreamOptions {
  /** Base URL of the PACS's DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web */
  url: string;
  /** Already-resolved `Authorization` value for the PACS, if any. */
  authorization?: string;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
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

const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE', 'EAI_AGAIN']);

/** The PACS client: undici with one pooled agent, bodies streamed both ways. */
export function createUpstream(options: UpstreamOptions): Upstream {
  const base = options.url.replace(/\/+$/, '');
  const agent = new Agent({
    connect: { timeout: options.connectTimeoutMs },
    headersTimeout: options.headersTimeoutMs,
    bodyTimeout: options.bodyTimeoutMs,
    keepAliveTimeout: 4_000,
    connections: 64,
  });
  return {
    async send(req) {
      const headers: Record<string, string> = { ...req.headers };
      if (options.authorization && !headers['authorization']) headers['authorization'] = options.authorization;
      const started = process.hrtime.bigint();
      const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
      try {
        const res = await request(`${base}${req.pathAndQuery}`, {
          dispatcher: agent,
          method: req.method,
          headers,
          body: req.body ?? null,
          signal: req.signal,
        });
        options.observe?.(req.method, String(res.statusCode), seconds());
        return { statusCode: res.statusCode, headers: res.headers as IncomingHttpHeaders, body: res.body };
      } catch (error) {
        const classified = classify(error);
        const code = (classified as { code?: unknown } | null)?.code;
        options.observe?.(req.method, typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? code : 'ERROR', seconds());
        throw classified;
      }
    },
    close: () => agent.close(),
  };
}

/** Turns an undici/network failure into the gateway's error; anything else goes through unchanged. */
export function classify(error: unknown): unknown {
  if (error instanceof undiciErrors.HeadersTimeoutError || error instanceof undiciErrors.ConnectTimeoutError) {
    return new UpstreamTimeoutError({ cause: error });
  }
  if (error instanceof undiciErrors.BodyTimeoutError) return new UpstreamTimeoutError({ cause: error });
  const code = (error as { code?: string; cause?: { code?: string } } | null)?.code;
  const causeCode = (error as { cause?: { code?: string } } | null)?.cause?.code;
  if (
    error instanceof undiciErrors.SocketError ||
    (code && UNREACHABLE.has(code)) ||
    (causeCode && UNREACHABLE.has(causeCode))
  ) {
    return new UpstreamUnreachableError({ cause: error });
  }
  return error;
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Upstream } from './upstream.ts';
import { classify } from './upstream.ts';
import { pipeBody } from './response-writer.ts';
import { withStreamLifetime } from './stream-lifetime.ts';

/** Request headers a DICOMweb transaction needs upstream; nothing else is forwarded. */
const FORWARD_REQUEST = ['accept', 'accept-charset', 'content-type', 'content-length'] as const;
/** Response headers relayed to the caller (PS3.18 8.4, 8.6: media types, `Warning` on QIDO). */
const RELAY_RESPONSE = [
  'content-type',
  'content-length',
  'content-location',
  'content-encoding',
  'content-disposition',
  'warning',
  'etag',
  'last-modified',
  'location',
] as const;

export interface RelayContext {
  upstream: Upstream;
  /** Path below the DICOMweb root with the raw query string, as the caller wrote it. */
  pathAndQuery: string;
  /** RFC 7239 `Forwarded` value naming the gateway, so the PACS builds URLs that point back here. */
  forwarded?: string;
  /** The caller's `Authorization`, only when `upstream.forwardCallerToken` is on. */
  callerAuthorization?: string;
}

function upstreamHeaders(req: IncomingMessage, ctx: RelayContext): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of FORWARD_REQUEST) {
    const value = req.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  if (ctx.forwarded) headers['forwarded'] = ctx.forwarded;
  if (ctx.callerAuthorization) headers['authorization'] = ctx.callerAuthorization;
  return headers;
}

/**
 * Relays one transaction untouched (the clinician's view): the request body streams up, the
 * response streams down, back-pressure end to end, within the caller's stream lifetime (a caller who
 * leaves aborts the PACS request). A failure after the status line has gone out destroys the
 * response, so the caller sees an aborted body, never one that looks complete.
 */
export function relayOriginal(req: IncomingMessage, res: ServerResponse, ctx: RelayContext): Promise<void> {
  return withStreamLifetime(res, async (lifetime) => {
    const method = req.method === 'POST' ? 'POST' : 'GET';
    const upstreamRes = await lifetime.send(ctx.upstream, {
      method,
      pathAndQuery: ctx.pathAndQuery,
      headers: upstreamHeaders(req, ctx),
      body: method === 'POST' ? req : undefined,
    });
    res.statusCode = upstreamRes.statusCode;
    for (const name of RELAY_RESPONSE) {
      const value = upstreamRes.headers[name];
      if (value !== undefined) res.setHeader(name, value);
    }
    try {
      await pipeBody(upstreamRes.body, res);
    } catch (error) {
      const failure = lifetime.failure(classify(error)); // decided before the gateway's own destroy below
      res.destroy();
      throw failure;
    }
  });
}

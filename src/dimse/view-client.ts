// The research face's way into the de-identified view: HTTP requests to this gateway's own DICOMweb
// routes on its loopback listener, each with a token minted for the caller (auth/internal-token.ts):
// the researcher role in the caller's project, subject `dimse:<calling AE>`. Every check of the HTTP
// path applies, and every request is on the audit trail as that subject.
import type { AddressInfo } from 'node:net';
import type { InternalIssuer } from '../auth/internal-token.ts';
import { createUpstream, type Upstream, type UpstreamResponse } from '../dicomweb/upstream.ts';
import type { Researcher } from './callers.ts';

export interface ViewClient {
  /**
   * GET `pathAndQuery` (below the DICOMweb base, e.g. `/studies?PatientID=…` or
   * `/studies/{s}/series/{se}/instances/{i}`) as the caller, with `accept`. The response as the gateway
   * gave it: the caller reads (or resumes) the body.
   */
  get(caller: Researcher, pathAndQuery: string, accept: string, signal?: AbortSignal): Promise<UpstreamResponse>;
  close(): Promise<void>;
}

export interface ViewClientOptions {
  /** This gateway's DICOMweb base URL (`http://127.0.0.1:{port}{basePath}`), known once it listens. */
  readonly base: () => string;
  readonly issuer: InternalIssuer;
  readonly timeoutMs: number;
}

/**
 * The gateway's own DICOMweb base, from the address its HTTP server is bound to (`server.address()`), never
 * from `server.host`: a DNS name there could resolve elsewhere and the minted tokens would go with it. A
 * listener bound to every address is asked on loopback (0.0.0.0 → 127.0.0.1, :: → ::1).
 */
export function loopbackUrl(bound: Pick<AddressInfo, 'address' | 'port'>, basePath: string): string {
  const own = bound.address === '0.0.0.0' || bound.address === '' ? '127.0.0.1' : bound.address === '::' ? '::1' : bound.address;
  return `http://${own.includes(':') ? `[${own}]` : own}:${bound.port}${basePath}`;
}

export function createViewClient(options: ViewClientOptions): ViewClient {
  let client: Upstream | undefined;
  const upstream = (): Upstream =>
    (client ??= createUpstream({ url: options.base(), connectTimeoutMs: options.timeoutMs, headersTimeoutMs: options.timeoutMs, bodyTimeoutMs: options.timeoutMs }));
  return {
    async get(caller, pathAndQuery, accept, signal) {
      const token = await options.issuer.mint(`dimse:${caller.aeTitle}`, caller.project);
      return upstream().send({ method: 'GET', pathAndQuery, headers: { accept, authorization: `Bearer ${token}` }, ...(signal ? { signal } : {}) });
    },
    close: async () => client?.close(),
  };
}

// One caller's exchange and every PACS request made for it share one lifetime. When the caller goes
// away before its response is complete, every upstream request still open is aborted and no new one is
// made; when the transaction fails, what is still open upstream is destroyed with the cause (STYLE habit
// 7). WADO, QIDO (each page of gateway-side paging), the clinician's relay, STOW and the upload page all
// take their signal from here.
import type { ServerResponse } from 'node:http';
import { ClientGoneError } from './errors.ts';
import type { Upstream, UpstreamRequest, UpstreamResponse } from './upstream.ts';

export interface StreamLifetime {
  /**
   * Aborted when the caller leaves before its response is complete (the reason: a `ClientGoneError`,
   * which the PACS client passes on as the error of the request or its body), or when the transaction fails.
   */
  readonly signal: AbortSignal;
  /** Whether the caller went away before its response was complete. */
  readonly gone: boolean;
  /** An upstream request bound to this lifetime: refused before it is sent once the caller has gone. */
  send(upstream: Upstream, request: Omit<UpstreamRequest, 'signal'>): Promise<UpstreamResponse>;
  /**
   * The error a failed transaction ends with: a `ClientGoneError` (with the original as its cause) when
   * the caller left, since nobody waits for an answer and the PACS did not fail; otherwise the error
   * itself, after every upstream request still open has been aborted with it.
   */
  failure(error: unknown): unknown;
}

const LIFETIMES = new WeakMap<ServerResponse, StreamLifetime>();

/** The lifetime of the exchange answered by `res` (one per response, however often it is asked for). */
export function streamLifetime(res: ServerResponse): StreamLifetime {
  const known = LIFETIMES.get(res);
  if (known) return known;
  const controller = new AbortController();
  // How the exchange ended early, decided once: the caller closed it ('gone') or the gateway failed
  // ('failed', after which the gateway itself may destroy the response: that is not the caller leaving).
  let ended: 'gone' | 'failed' | undefined;
  const leave = () => {
    if (ended !== undefined || res.writableFinished) return;
    ended = 'gone';
    controller.abort(new ClientGoneError());
  };
  if (res.closed) leave();
  else res.once('close', leave);
  const lifetime: StreamLifetime = {
    signal: controller.signal,
    get gone() {
      return ended === 'gone';
    },
    async send(upstream, request) {
      controller.signal.throwIfAborted(); // gone (ClientGoneError) or failed: nothing more goes upstream
      return upstream.send({ ...request, signal: controller.signal });
    },
    failure(error) {
      if (ended === 'gone') return error instanceof ClientGoneError ? error : new ClientGoneError({ cause: error });
      if (ended === undefined) {
        ended = 'failed';
        controller.abort(error);
      }
      return error;
    },
  };
  LIFETIMES.set(res, lifetime);
  return lifetime;
}

/** Runs one transaction answered by `res` within its lifetime: a failure ends it (`failure`). */
export async function withStreamLifetime(res: ServerResponse, run: (lifetime: StreamLifetime) => Promise<void>): Promise<void> {
  const lifetime = streamLifetime(res);
  try {
    await run(lifetime);
  } catch (error) {
    throw lifetime.failure(error);
  }
}

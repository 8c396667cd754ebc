// A logging proxy between the gateway and a real Orthanc (loopback only): every request is forwarded
// unchanged and its request line is recorded, so a test sees exactly what the PACS was asked — the
// position an attacker with a view of the PACS's access log would have. The PACS itself is real.
// It also reports how each exchange ended on the PACS side (answered whole, or closed by the gateway
// first), and can slow chosen answers down, so a test can leave mid-way and watch the gateway let go.
import { once } from 'node:events';
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** How one exchange ended, seen from the PACS side of the gateway. */
export interface ExchangeEnd {
  /** 'complete': the answer went to the gateway whole; 'aborted': the gateway closed it before that. */
  readonly outcome: 'complete' | 'aborted';
  /** `Date.now()` when it ended. */
  readonly at: number;
}

export interface RecordedRequest {
  readonly method: string;
  /** The request-target as the PACS received it: path and raw query. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /** `Date.now()` when the request arrived. */
  readonly at: number;
  /** Settles once the exchange is over, either way. */
  readonly ended: Promise<ExchangeEnd>;
}

/** How to slow one answer: held `headMs` before its status line, then its body `chunkBytes` every `chunkMs`. */
export interface Pacing {
  readonly headMs?: number;
  readonly chunkBytes?: number;
  readonly chunkMs?: number;
}

export interface RecordingProxy {
  /** The DICOMweb root to give the gateway as `upstream.url`. */
  readonly dicomWebUrl: string;
  readonly seen: RecordedRequest[];
  /** The requests recorded since `mark` (an index into `seen`). */
  since(mark: number): RecordedRequest[];
  /** Slows the answers `rule` gives a pacing for; `undefined` passes every answer on at once again. */
  pace(rule: ((request: RecordedRequest) => Pacing | undefined) | undefined): void;
  /** The next request recorded from `mark` on that `match` picks (waits up to `timeoutMs`). */
  next(mark: number, match?: (request: RecordedRequest) => boolean, timeoutMs?: number): Promise<RecordedRequest>;
  close(): Promise<void>;
}

/** Passes `answer`'s body on slowly; stops (and lets go of the PACS) when the gateway has gone. */
async function pacedBody(answer: IncomingMessage, res: ServerResponse, pacing: Pacing): Promise<void> {
  const size = Math.max(1, pacing.chunkBytes ?? 16_384);
  try {
    for await (const chunk of answer as AsyncIterable<Buffer>) {
      for (let at = 0; at < chunk.length; at += size) {
        if (res.destroyed) return;
        if (!res.write(chunk.subarray(at, at + size))) await Promise.race([once(res, 'drain'), once(res, 'close')]);
        if (pacing.chunkMs) await sleep(pacing.chunkMs);
      }
    }
    res.end();
  } catch {
    res.destroy();
  } finally {
    answer.destroy();
  }
}

/** Starts the proxy on 127.0.0.1 in front of `orthancHttpUrl` (e.g. http://127.0.0.1:8042). */
export async function startRecordingProxy(orthancHttpUrl: string): Promise<RecordingProxy> {
  const target = new URL(orthancHttpUrl);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(target.hostname)) throw new Error('the recording proxy only forwards to loopback');
  const seen: RecordedRequest[] = [];
  const waiting = new Set<() => void>();
  let rule: ((request: RecordedRequest) => Pacing | undefined) | undefined;
  const server: Server = createServer((req, res) => {
    let settle: (end: ExchangeEnd) => void = () => undefined;
    const ended = new Promise<ExchangeEnd>((resolve) => (settle = resolve));
    const record: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, at: Date.now(), ended };
    seen.push(record);
    for (const wake of waiting) wake();
    res.on('close', () => settle({ outcome: res.writableFinished ? 'complete' : 'aborted', at: Date.now() }));
    const pacing = rule?.(record);
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
      (answer) => {
        const forward = () => {
          if (res.destroyed) {
            answer.destroy();
            return;
          }
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          if (pacing?.chunkMs || pacing?.chunkBytes) void pacedBody(answer, res, pacing);
          else answer.pipe(res);
        };
        if (pacing?.headMs) setTimeout(forward, pacing.headMs);
        else forward();
      },
    );
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    dicomWebUrl: `http://127.0.0.1:${port}/dicom-web`,
    seen,
    since: (mark) => seen.slice(mark),
    pace(next) {
      rule = next;
    },
    async next(mark, match = () => true, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = seen.slice(mark).find(match);
        if (found) return found;
        if (Date.now() > deadline) throw new Error('no such request reached the PACS in time');
        await new Promise<void>((resolve) => {
          const wake = () => {
            waiting.delete(wake);
            clearTimeout(timer);
            resolve();
          };
          const timer = setTimeout(wake, Math.max(1, deadline - Date.now()));
          waiting.add(wake);
        });
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

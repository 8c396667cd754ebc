import assert from 'node:assert/strict';
import type { Server } from 'node:http';

/** Closes a loopback test server, its kept-alive connections first. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

/** Reads a response body to its end or to its abort; an aborted body is never mistaken for a whole one. */
export async function readBody(res: Response): Promise<{ outcome: 'complete' | 'aborted'; body: Buffer }> {
  const chunks: Buffer[] = [];
  let outcome: 'complete' | 'aborted' = 'complete';
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) chunks.push(Buffer.from(chunk));
  } catch {
    outcome = 'aborted';
  }
  return { outcome, body: Buffer.concat(chunks) };
}

/** After an attack: the gateway process still answers its liveness probe. */
export async function assertHealthy(gatewayUrl: string): Promise<void> {
  const res = await fetch(`${gatewayUrl}/healthz`);
  assert.equal(res.status, 200, 'the process stays healthy');
  await res.arrayBuffer();
}

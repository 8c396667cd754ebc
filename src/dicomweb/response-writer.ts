import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ClientGoneError } from './errors.ts';

/**
 * Body bytes handed to each response by the writers below, counted where the chunks are written (the
 * metrics read it; a response no writer here touched has no entry).
 */
const BODY_BYTES = new WeakMap<ServerResponse, number>();

function count(res: ServerResponse, bytes: number): void {
  BODY_BYTES.set(res, (BODY_BYTES.get(res) ?? 0) + bytes);
}

/** The body bytes written to `res` through `writeChunk`, `endBody` and `pipeBody`; undefined if none of them wrote. */
export function bodyBytesWritten(res: ServerResponse): number | undefined {
  return BODY_BYTES.get(res);
}

/** Writes one chunk and waits for drain when the socket is full: back-pressure from caller to PACS. */
export async function writeChunk(res: ServerResponse, chunk: Uint8Array): Promise<void> {
  if (res.destroyed) throw new ClientGoneError();
  count(res, chunk.byteLength);
  if (res.write(chunk)) return;
  await new Promise<void>((resolve, reject) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', gone);
      resolve();
    };
    const gone = () => {
      res.off('drain', done);
      reject(new ClientGoneError());
    };
    res.once('drain', done);
    res.once('close', gone);
  });
}

/** Ends the response with a last (small) piece of body, counted like the chunks before it. */
export function endBody(res: ServerResponse, last?: string | Uint8Array): void {
  if (last === undefined) {
    res.end();
    return;
  }
  count(res, typeof last === 'string' ? Buffer.byteLength(last) : last.byteLength);
  res.end(last);
}

/** Streams `source` into the response with back-pressure (the clinician's relay), counting each chunk. */
export async function pipeBody(source: Readable, res: ServerResponse): Promise<void> {
  const done = pipeline(source, res);
  // Attached after pipe() so it never changes how the source flows; each chunk read is a chunk written.
  source.on('data', (chunk: Uint8Array) => count(res, chunk.byteLength));
  await done;
}

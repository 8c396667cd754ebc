import type { ServerResponse } from 'node:http';

/** Writes one chunk and waits for drain when the socket is full: back-pressure from caller to PACS. */
export async function writeChunk(res: ServerResponse, chunk: Uint8Array): Promise<void> {
  if (res.destroyed) throw Object.assign(new Error('the caller went away'), { code: 'CLIENT_GONE' });
  if (res.write(chunk)) return;
  await new Promise<void>((resolve, reject) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', gone);
      resolve();
    };
    const gone = () => {
      res.off('drain', done);
      reject(Object.assign(new Error('the caller went away'), { code: 'CLIENT_GONE' }));
    };
    res.once('drain', done);
    res.once('close', gone);
  });
}

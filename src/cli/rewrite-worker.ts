// A worker thread of `deidentify --jobs N` (N > 1): builds its own policy from the inputs the main thread
// read (so pseudonyms are those of a run in one thread), then rewrites each file it is handed and answers
// with the file's pseudonym pairs, output size and hash, or its outcome and reason. Everything stateful
// (job order, resume, the report, the pair files, progress, signals) stays in the main thread.
import { parentPort, workerData } from 'node:worker_threads';
import { createPolicy } from '../deid/deidentify.ts';
import { failureOf } from './file-outcome.ts';
import { rewriteFile, type RewriteContext } from './file-rewrite.ts';
import type { RewriteReply, RewriteRequest, WorkerInit } from './rewrite-pool.ts';

const init = workerData as WorkerInit;
const port = parentPort;
if (port === null) throw new Error('rewrite-worker: not a worker thread');
const context: RewriteContext = { policy: createPolicy(init.policy), salt: init.salt, folders: new Map(), hashOutputs: init.hashOutputs, blockingIo: true };

async function rewrite({ id, input, size, output }: RewriteRequest): Promise<RewriteReply> {
  try {
    const { pairs, outputBytes, outputSha256 } = await rewriteFile(context, input, size, output);
    return { id, pairs, outputBytes, outputSha256 };
  } catch (error) {
    return { id, failure: failureOf(error) };
  }
}

port.on('message', (batch: readonly RewriteRequest[]) => {
  for (const request of batch) void rewrite(request).then((reply) => port.postMessage(reply));
});

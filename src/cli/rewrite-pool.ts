// `deidentify --jobs N` (N > 1): N worker threads (cli/rewrite-worker.ts), each rewriting the files it is
// handed with its own policy built from the same inputs. The engine is CPU-bound JS, so files in flight on
// one thread do not add up; threads do. A worker that stops with files in flight (a crash, out of memory)
// refuses them (CLI_WORKER_FAILED, their temporary outputs removed) and is replaced; one that stops before
// finishing any file is not (it would fail again), and once none is left every further file is refused:
// the run ends, exit 1, never hangs.
import { readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { startModuleWorker } from '../pixel/worker-thread.ts';
import type { DeidPolicyOptions } from '../deid/deidentify.ts';
import type { PseudonymPair } from '../deid/pseudonym.ts';
import { WorkerFailedError } from './errors.ts';
import type { FileFailure } from './file-outcome.ts';
import type { Rewritten } from './file-rewrite.ts';

/** What a worker builds its policy and context from (structured-cloned: plain data only). */
export interface WorkerInit {
  readonly policy: DeidPolicyOptions;
  /** Fresh mode's salt for the run (the main thread's): pseudonyms stay linked across workers. */
  readonly salt: Uint8Array | undefined;
  readonly hashOutputs: boolean;
}

export interface RewriteRequest {
  readonly id: number;
  readonly input: string;
  readonly size: number;
  readonly output: string;
}

export type RewriteReply =
  | { readonly id: number; readonly pairs: readonly PseudonymPair[]; readonly outputBytes: number; readonly outputSha256: string | undefined }
  | { readonly id: number; readonly failure: FileFailure };

export interface RewritePool {
  /** Rewrites one file on the least busy worker: what rewriteFile returns, or the file's outcome and reason. */
  rewrite(input: string, size: number, output: string): Promise<Rewritten | FileFailure>;
  close(): Promise<void>;
}

interface Pending {
  readonly request: RewriteRequest;
  readonly resolve: (value: Rewritten | FileFailure) => void;
  readonly reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  readonly inFlight: Map<number, Pending>;
  /** Requests not posted yet: sent together on the next turn (one message for several files). */
  queued: RewriteRequest[];
  finishedAny: boolean;
  dead: boolean;
}

function startWorker(init: WorkerInit): Worker {
  return startModuleWorker(import.meta.url, 'rewrite-worker', { workerData: init });
}

/** Removes what a stopped worker may have left of `output` (its temporary `.NAME.*.partial`). */
async function removePartials(output: string): Promise<void> {
  const dir = dirname(output);
  const prefix = `.${basename(output)}.`;
  const names = await readdir(dir).catch(() => [] as string[]);
  await Promise.all(names.filter((n) => n.startsWith(prefix) && n.endsWith('.partial')).map((n) => rm(join(dir, n), { force: true })));
}

export function createRewritePool(size: number, init: WorkerInit): RewritePool {
  let nextId = 0;
  let closing = false;
  const slots: Slot[] = [];

  const spawn = (slot: Slot | undefined): Slot => {
    const worker = startWorker(init);
    const s: Slot = slot ?? { worker, inFlight: new Map(), queued: [], finishedAny: false, dead: false };
    s.worker = worker;
    s.finishedAny = false;
    worker.on('message', (reply: RewriteReply) => {
      const pending = s.inFlight.get(reply.id);
      if (!pending) return;
      s.inFlight.delete(reply.id);
      s.finishedAny = true;
      if ('failure' in reply) pending.resolve(reply.failure);
      else pending.resolve({ pairs: reply.pairs, outputBytes: reply.outputBytes, outputSha256: reply.outputSha256 });
    });
    // 'exit' follows 'error' (an uncaught exception), process.exit() in the worker and an out-of-memory
    // stop alike: the one place a worker's end is handled. The error, if any, goes on each refusal's cause.
    let cause: unknown;
    worker.on('error', (error) => {
      cause = error;
    });
    worker.on('exit', (exitCode) => {
      if (closing || s.worker !== worker) return;
      const lost = [...s.inFlight.values()];
      s.inFlight.clear();
      s.queued = [];
      s.dead = true;
      if (s.finishedAny) spawn(s).dead = false;
      for (const p of lost) {
        const error = new WorkerFailedError(`a worker thread stopped (exit code ${exitCode}) with this file in flight`, { cause });
        void removePartials(p.request.output).finally(() => p.reject(error));
      }
    });
    return s;
  };
  for (let i = 0; i < size; i++) slots.push(spawn(undefined));

  const flush = (slot: Slot): void => {
    if (slot.queued.length === 0 || slot.dead) return;
    const batch = slot.queued;
    slot.queued = [];
    slot.worker.postMessage(batch);
  };

  return {
    rewrite(input, bytes, output) {
      return new Promise((resolve, reject) => {
        let best: Slot | undefined;
        for (const s of slots) if (!s.dead && (best === undefined || s.inFlight.size < best.inFlight.size)) best = s;
        if (closing || best === undefined) {
          reject(new WorkerFailedError('no worker thread left'));
          return;
        }
        const slot = best;
        const request: RewriteRequest = { id: nextId++, input, size: bytes, output };
        slot.inFlight.set(request.id, { request, resolve, reject });
        slot.queued.push(request);
        if (slot.queued.length === 1) queueMicrotask(() => flush(slot));
      });
    },
    async close() {
      closing = true;
      await Promise.all(slots.map((s) => s.worker.terminate()));
    },
  };
}

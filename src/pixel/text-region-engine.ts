// The main thread's side of one slot's worker (text-region-worker.ts): a frame in, tesseract's pages and
// the text-region model's boxes out, one at a time. The pool in text-detector.ts owns it beside its
// tesseract engine: it starts with the slot's first frame, and is terminated with the engine when a frame
// is cut short (a running inference cannot be cancelled) or the pool closes.
import type { GrayFrame } from './text-detection.ts';
import type { ModelReply, ModelRequest, WorkerReading } from './text-region-worker.ts';
import { startModuleWorker } from './worker-thread.ts';

/** The worker's reading of one frame, its pages as Buffers (which tesseract.js takes). */
export type FrameReading = Omit<WorkerReading, 'images'> & { readonly images: Buffer[] };

export interface RegionModel {
  /** `frame` read (see FrameReading); rejects when the model fails or the worker stops. */
  read(frame: GrayFrame): Promise<FrameReading>;
  terminate(): Promise<void>;
}

/** A model worker; `onCrash` is called when its thread dies of an error or exits unasked. */
export function startRegionModel(onCrash: (error: unknown) => void): RegionModel {
  const worker = startModuleWorker(import.meta.url, 'text-region-worker');
  const pending = new Map<number, { resolve: (reading: FrameReading) => void; reject: (error: Error) => void }>();
  let next = 0;
  let stopping = false;
  let crashed = false;
  const crash = (error: Error) => {
    failAll(error);
    if (crashed) return;
    crashed = true;
    onCrash(error);
  };
  const failAll = (error: Error) => {
    for (const { reject } of pending.values()) reject(error);
    pending.clear();
  };
  worker.on('message', (reply: ModelReply) => {
    const waiting = pending.get(reply.id);
    if (waiting === undefined) return;
    pending.delete(reply.id);
    // The pages arrive as plain Uint8Arrays (structured clone): viewed as Buffers, which tesseract.js takes.
    if ('boxes' in reply) waiting.resolve({ images: reply.images.map((i) => Buffer.from(i.buffer, i.byteOffset, i.byteLength)), scale: reply.scale, boxes: reply.boxes });
    else waiting.reject(new Error(`the text-region model failed: ${reply.failed}`));
  });
  worker.on('error', (error) => crash(new Error('the text-region model stopped', { cause: error })));
  worker.on('exit', (code) => {
    if (!stopping) crash(new Error(`the text-region model exited (${code})`));
  });
  return {
    read(frame) {
      return new Promise((resolve, reject) => {
        const id = next++;
        pending.set(id, { resolve, reject });
        // A copy of the frame's bytes, handed over (transferred), so the caller's frame stays its own.
        const data = Uint8Array.from(frame.data.subarray(0, frame.width * frame.height));
        worker.postMessage({ id, width: frame.width, height: frame.height, data } satisfies ModelRequest, [data.buffer]);
      });
    },
    async terminate() {
      stopping = true;
      failAll(new Error('the text-region model was stopped'));
      await worker.terminate();
    },
  };
}

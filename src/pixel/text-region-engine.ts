// The main thread's side of one text-region model worker (text-region-worker.ts): frames in, boxes out,
// one at a time. The pool in text-detector.ts owns it beside its tesseract engine: it starts with the
// slot's first frame, and is terminated with the engine when a frame is cut short (a running inference
// cannot be cancelled) or the pool closes.
import type { GrayFrame } from './text-detection.ts';
import type { ModelBox } from './text-region-model.ts';
import type { ModelReply, ModelRequest } from './text-region-worker.ts';
import { startModuleWorker } from './worker-thread.ts';

export interface RegionModel {
  /** The model's text boxes of `frame`, in frame pixels; rejects when the model fails or the worker stops. */
  detect(frame: GrayFrame): Promise<ModelBox[]>;
  terminate(): Promise<void>;
}

/** A model worker; `onCrash` is called when its thread dies of an error or exits unasked. */
export function startRegionModel(onCrash: (error: unknown) => void): RegionModel {
  const worker = startModuleWorker(import.meta.url, 'text-region-worker');
  const pending = new Map<number, { resolve: (boxes: ModelBox[]) => void; reject: (error: Error) => void }>();
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
    if ('boxes' in reply) waiting.resolve(reply.boxes);
    else waiting.reject(new Error(`the text-region model failed: ${reply.failed}`));
  });
  worker.on('error', (error) => crash(new Error('the text-region model stopped', { cause: error })));
  worker.on('exit', (code) => {
    if (!stopping) crash(new Error(`the text-region model exited (${code})`));
  });
  return {
    detect(frame) {
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

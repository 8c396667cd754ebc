import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * A worker thread running the module `name` that lies beside `callerUrl` (the caller's import.meta.url).
 * Under dist/ the module is compiled JS; under src/ it is TypeScript, and a worker does not inherit the
 * transpiler the main thread registered (Node 20: neither tsx's register() nor `--import tsx` in
 * execArgv reaches it), so it registers tsx itself before importing the module.
 */
export function startModuleWorker(callerUrl: string, name: string, options: WorkerOptions = {}): Worker {
  if (!callerUrl.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, callerUrl), options);
  const api = import.meta.resolve('tsx/esm/api');
  const entry = new URL(`./${name}.ts`, callerUrl).href;
  const boot = `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(boot, { ...options, eval: true });
}

// Helpers for the DIMSE ingress tests: the listener's config, waiting for the forwarder to settle, what
// the spool still holds, what Orthanc stores, and the gateway as its own process (to SIGKILL it).
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { freePort } from '../../src/demo/orthanc-process.ts';
import { testConfig, type TestKeys } from './gateway.ts';
import type { OrthancProcess } from './orthanc.ts';
import { syntheticInstance } from './synthetic-instance.ts';

/** The `dimse` block of a test gateway: MODALITY from loopback (keyed), on a free port, short timeouts. */
export function dimseBlock(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    enabled: true,
    port: 0,
    callers: [{ aeTitle: 'MODALITY', hosts: ['127.0.0.1'] }],
    spool: { idleTimeoutMs: 1_500 },
    forward: { backoffMs: 200, maxBackoffMs: 1_000 },
    ...overrides,
  };
}

/**
 * `count` small instances (no pixels) of study `study` written to `dir` as i0000.dcm…, instance `i` with
 * SOPInstanceUID `<study>.<i+1>`, the first five in series `.1` and the rest in `.2`, the patient named
 * `patient` (a canary); `padding` bytes of ImageComments (which the profile removes) make them larger.
 */
export function writeSyntheticStudy(dir: string, study: string, count: number, options: { patient?: string; padding?: number } = {}): string[] {
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const file = join(dir, `i${String(i).padStart(4, '0')}.dcm`);
    writeFileSync(
      file,
      syntheticInstance(`${study}.${i + 1}`, [
        [0x00080020, 'DA', '20240102'],
        [0x00080060, 'CS', 'OT'],
        [0x00100010, 'PN', options.patient ?? 'CANARY^DIMSE'],
        [0x00100020, 'LO', `PID-${study.slice(-6)}`],
        [0x0020000d, 'UI', study],
        [0x0020000e, 'UI', `${study}.${i < 5 ? 1 : 2}`],
        ...(options.padding ? [[0x00204000, 'LT', 'x'.repeat(options.padding)] as const] : []),
      ]),
    );
    files.push(file);
  }
  return files;
}

export interface DimseStatusBody {
  queued: number;
  inFlight: number;
  quarantined: number;
  instancesPending: number;
  spoolBytes: number;
  quotaBytes: number;
}

export async function dimseStatus(gatewayUrl: string): Promise<DimseStatusBody> {
  const res = await fetch(`${gatewayUrl}/dimse/status`);
  if (!res.ok) throw new Error(`/dimse/status answered ${res.status}`);
  return (await res.json()) as DimseStatusBody;
}

/** Waits until nothing is queued, in flight or pending (everything forwarded or quarantined). */
export async function forwarded(gatewayUrl: string, timeoutMs = 30_000): Promise<DimseStatusBody> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await dimseStatus(gatewayUrl).catch(() => undefined);
    if (status && status.queued === 0 && status.inFlight === 0 && status.instancesPending === 0) return status;
    if (Date.now() > deadline) throw new Error(`the DIMSE ingress did not settle: ${JSON.stringify(status)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Files under `<dataDir>/spool` by kind: originals waiting (.dcm), partial instances (.part), quarantined originals. */
export function spoolContents(dataDir: string): { originals: string[]; partial: string[]; quarantined: string[] } {
  const out = { originals: [] as string[], partial: [] as string[], quarantined: [] as string[] };
  const walk = (dir: string, inQuarantine: boolean): void => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const path = join(dir, e.name);
      if (e.isDirectory()) walk(path, inQuarantine || e.name === 'quarantine');
      else if (e.name.endsWith('.part')) out.partial.push(path);
      else if (e.name.endsWith('.dcm')) (inQuarantine ? out.quarantined : out.originals).push(path);
    }
  };
  walk(join(dataDir, 'spool'), false);
  return out;
}

/** Every instance Orthanc holds, as Part 10 files written into `dir`; returns their Orthanc ids. */
export async function dumpOrthanc(orthanc: OrthancProcess, dir: string): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const ids = (await (await fetch(`${orthanc.httpUrl}/instances`)).json()) as string[];
  for (const id of ids) {
    const file = Buffer.from(await (await fetch(`${orthanc.httpUrl}/instances/${id}/file`)).arrayBuffer());
    writeFileSync(join(dir, `${id}.dcm`), file);
  }
  return ids;
}

export async function orthancCount(orthanc: OrthancProcess, level: 'studies' | 'series' | 'instances'): Promise<number> {
  return ((await (await fetch(`${orthanc.httpUrl}/${level}`)).json()) as string[]).length;
}

/** The main DICOM tags of every study Orthanc holds (PatientName, StudyInstanceUID, …) and its instance count. */
export async function orthancStudies(orthanc: OrthancProcess): Promise<{ tags: Record<string, string>; patient: Record<string, string>; instances: number }[]> {
  const ids = (await (await fetch(`${orthanc.httpUrl}/studies`)).json()) as string[];
  const out = [];
  for (const id of ids) {
    const study = (await (await fetch(`${orthanc.httpUrl}/studies/${id}`)).json()) as { MainDicomTags: Record<string, string>; PatientMainDicomTags: Record<string, string> };
    const instances = ((await (await fetch(`${orthanc.httpUrl}/studies/${id}/instances`)).json()) as unknown[]).length;
    out.push({ tags: study.MainDicomTags, patient: study.PatientMainDicomTags, instances });
  }
  return out;
}

export interface SpawnedGateway {
  readonly url: string;
  readonly dimsePort: number;
  readonly pid: number;
  /** Sends `signal`; resolves once the process is gone. */
  kill(signal: NodeJS.Signals): Promise<void>;
}

/**
 * `deid-gateway serve` as its own process, with `testConfig(upstreamUrl, keys, overrides)` written as its
 * config file and the DIMSE listener on a free port; its dataDir (keys.dir/data) outlives it.
 */
export async function spawnDimseGateway(upstreamUrl: string, keys: TestKeys, overrides: Record<string, unknown>): Promise<SpawnedGateway> {
  const port = await freePort();
  const dimsePort = await freePort();
  const config = testConfig(upstreamUrl, keys, {
    ...overrides,
    server: { port },
    log: { level: 'warn' },
    dimse: { ...(overrides['dimse'] as object), port: dimsePort },
  });
  const configFile = join(keys.dir, `gateway-${port}.json`);
  writeFileSync(configFile, JSON.stringify(config));
  const cli = resolve(import.meta.dirname, '../../bin/deid-gateway.js');
  const child = spawn(process.execPath, [cli, 'serve', '--config', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += String(d)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const res = await fetch(`${url}/dimse/status`);
      await res.arrayBuffer();
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`gateway did not start: ${stderr.slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    dimsePort,
    pid: child.pid as number,
    async kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

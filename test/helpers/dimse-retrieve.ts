// dcmtk's retrieve tools (Debian `dcmtk`) as a legacy research workstation or research PACS uses them
// against the gateway's DICOM listener on loopback: getscu (C-GET, PS3.4 C.4.3), movescu (C-MOVE, PS3.4
// C.4.2) and storescp as the C-MOVE destination. Every C-GET / C-MOVE response is read from the tools'
// debug dump; every instance received is a file written bit for bit (+B) as it came off the wire.
import { execFile, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../src/demo/orthanc-process.ts';

/** One C-GET-RSP or C-MOVE-RSP as the tool dumped it (PS3.7 9.3.3.2, 9.3.4.2). */
export interface RetrieveResponse {
  readonly status: number;
  /** Number of Remaining, Completed, Failed and Warning Sub-operations; dcmtk's "none" (absent) is undefined. */
  readonly remaining: number | undefined;
  readonly completed: number | undefined;
  readonly failed: number | undefined;
  readonly warning: number | undefined;
  /** The response carried an Identifier (the Failed SOP Instance UID List). */
  readonly dataset: boolean;
}

export interface RetrieveOutcome {
  /** The tool's exit code. */
  readonly code: number;
  /** stdout and stderr: the debug dump (test output only). */
  readonly log: string;
  /** Every C-GET or C-MOVE response, in order; the last one is the final one. */
  readonly responses: readonly RetrieveResponse[];
  readonly final: RetrieveResponse | undefined;
  /** getscu only: the instances written, one file each (named by SOP Instance UID). */
  readonly files: readonly string[];
}

export interface RetrieveOptions {
  /** getscu: a fresh folder is made in it for the instances received. */
  readonly dir?: string;
  readonly callingAe?: string;
  readonly calledAe?: string;
  /** `study` (-S, the default) or `patient` (-P) root. */
  readonly model?: 'study' | 'patient';
  /** movescu: the Move Destination (0000,0600). */
  readonly destination?: string;
  /** movescu: sends a C-CANCEL after this many responses (--cancel). */
  readonly cancelAfter?: number;
  /** More dcmtk options (e.g. `+xi`: accept Implicit VR Little Endian only). */
  readonly extra?: readonly string[];
  readonly timeoutMs?: number;
}

function run(command: string, args: readonly string[], timeoutMs: number): Promise<{ code: number; log: string }> {
  return new Promise((resolve, reject) => {
    // TCP_NODELAY=1: dcmtk's switch to disable Nagle's algorithm (see dcmtk.ts).
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024, env: { ...process.env, TCP_NODELAY: '1' } }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      if (code < 0) reject(error);
      else resolve({ code, log: `${stdout}\n${stderr}` });
    });
  });
}

/** The C-GET-RSP / C-MOVE-RSP blocks of a dcmtk debug dump ("INCOMING DIMSE MESSAGE" … "END DIMSE MESSAGE"). */
export function retrieveResponses(log: string): RetrieveResponse[] {
  const out: RetrieveResponse[] = [];
  const count = (block: string, name: string) => {
    const m = new RegExp(`${name} Suboperations\\s*:\\s*(\\d+|none)`).exec(block);
    return m && m[1] !== 'none' ? Number(m[1]) : undefined;
  };
  for (const block of log.split('INCOMING DIMSE MESSAGE').slice(1)) {
    const body = block.split('END DIMSE MESSAGE')[0] as string;
    if (!/Message Type\s*:\s*C-(GET|MOVE) RSP/.test(body)) continue;
    const status = /DIMSE Status\s*:\s*0x([0-9a-fA-F]{4})/.exec(body);
    if (!status) continue;
    out.push({
      status: Number.parseInt(status[1] as string, 16),
      remaining: count(body, 'Remaining'),
      completed: count(body, 'Completed'),
      failed: count(body, 'Failed'),
      warning: count(body, 'Warning'),
      dataset: /Data Set\s*:\s*present/.test(body),
    });
  }
  return out;
}

function common(options: RetrieveOptions, defaultAe: string): string[] {
  return [
    '-d',
    options.model === 'patient' ? '-P' : '-S',
    '-aet',
    options.callingAe ?? defaultAe,
    '-aec',
    options.calledAe ?? 'DEID_GATEWAY',
    ...(options.extra ?? []),
  ];
}

/**
 * One C-GET in one association: `keys` are getscu's `-k` arguments (`QueryRetrieveLevel=STUDY`,
 * `StudyInstanceUID=…`), sent as they are. getscu proposes its storage contexts with the SCP role
 * (PS3.7 D.3.3.4) and writes each instance received, bit for bit (+B), into a fresh folder in `dir`.
 */
export async function getscu(port: number, keys: readonly string[], options: RetrieveOptions & { readonly dir: string }): Promise<RetrieveOutcome> {
  const dir = mkdtempSync(join(options.dir, 'get-'));
  const args = [...common(options, 'RESEARCH_WS'), '+B', '-od', dir, ...keys.flatMap((k) => ['-k', k]), '127.0.0.1', String(port)];
  const { code, log } = await run('getscu', args, options.timeoutMs ?? 60_000);
  const responses = retrieveResponses(log);
  const files = readdirSync(dir)
    .sort()
    .map((f) => join(dir, f));
  return { code, log, responses, final: responses.at(-1), files };
}

/** One C-MOVE in one association, to `options.destination`; movescu itself receives nothing (no +P). */
export async function movescu(port: number, keys: readonly string[], options: RetrieveOptions & { readonly destination: string }): Promise<RetrieveOutcome> {
  const args = [
    ...common(options, 'RESEARCH_WS'),
    '-aem',
    options.destination,
    ...(options.cancelAfter === undefined ? [] : ['--cancel', String(options.cancelAfter)]),
    ...keys.flatMap((k) => ['-k', k]),
    '127.0.0.1',
    String(port),
  ];
  const { code, log } = await run('movescu', args, options.timeoutMs ?? 60_000);
  const responses = retrieveResponses(log);
  return { code, log, responses, final: responses.at(-1), files: [] };
}

export interface StoreScp {
  readonly aeTitle: string;
  readonly port: number;
  /** Where it writes each instance, bit for bit (+B). */
  readonly dir: string;
  /** The files received so far. */
  files(): string[];
  /** Its debug dump so far (each C-STORE-RQ's command: Move Originator AE Title and ID). */
  log(): string;
  stop(): Promise<void>;
}

/**
 * storescp as a C-MOVE destination (a research PACS): `aeTitle` on a free loopback port, writing into a
 * fresh folder in `dir`; `syntaxes` are its transfer syntax options (default `--accept-all`; `+xi`:
 * Implicit VR Little Endian only).
 */
export async function startStoreScp(aeTitle: string, dir: string, syntaxes: readonly string[] = ['--accept-all']): Promise<StoreScp> {
  const port = await freePort();
  const out = mkdtempSync(join(dir, 'storescp-'));
  const child = spawn('storescp', ['-d', '-aet', aeTitle, '-od', out, '+B', ...syntaxes, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (d) => (log += String(d)));
  child.stderr.on('data', (d) => (log += String(d)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (up) break;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`storescp did not start: ${log.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    aeTitle,
    port,
    dir: out,
    files: () =>
      readdirSync(out)
        .sort()
        .map((f) => join(out, f)),
    log: () => log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A Part 10 file's File Meta values and its dataset bytes (PS3.10 7.1: after the group 0002 its length names). */
export function part10Dataset(file: Buffer): { sopInstanceUid: string; transferSyntaxUid: string; dataset: Buffer } {
  if (file.toString('latin1', 128, 132) !== 'DICM') throw new Error('not a Part 10 file');
  const end = 144 + file.readUInt32LE(140);
  const meta = file.subarray(144, end);
  const ui = (element: number) => {
    for (let at = 0; at + 8 <= meta.length; ) {
      const vr = meta.toString('latin1', at + 4, at + 6);
      const long = ['OB', 'OW', 'SQ', 'UN', 'UT'].includes(vr);
      const length = long ? meta.readUInt32LE(at + 8) : meta.readUInt16LE(at + 6);
      const start = at + (long ? 12 : 8);
      if (meta.readUInt16LE(at + 2) === element) return meta.toString('latin1', start, start + length).replace(/[\0 ]+$/, '');
      at = start + length;
    }
    return '';
  };
  return { sopInstanceUid: ui(0x0003), transferSyntaxUid: ui(0x0010), dataset: file.subarray(end) };
}

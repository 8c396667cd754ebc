// dcmtk's DIMSE clients (Debian `dcmtk`) as a hospital's modality or PACS would use them, against the
// gateway's DICOM listener on loopback: echoscu (C-ECHO) and storescu (C-STORE), each run to its end.
import { execFile } from 'node:child_process';

export interface DcmtkRun {
  /** The process's exit code (0: every step succeeded). */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** One C-STORE as storescu reported it: the file sent and the status the listener answered. */
export interface StoreOutcome {
  readonly file: string;
  /** PS3.4 B.2.3 status, e.g. 0x0000; undefined when no response came. */
  readonly status: number | undefined;
}

function run(command: string, args: readonly string[], timeoutMs: number): Promise<DcmtkRun> {
  return new Promise((resolve, reject) => {
    // TCP_NODELAY=1: dcmtk's switch to disable Nagle's algorithm; with it on, each small PDU after the first
    // of a message waits for the listener's delayed ACK (~40 ms per instance on Linux).
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, TCP_NODELAY: '1' } }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      if (code < 0) reject(error);
      else resolve({ code, stdout, stderr });
    });
  });
}

/** C-ECHO (PS3.7 9.1.5) from `callingAe` to `calledAe` at 127.0.0.1:`port`. */
export function echoscu(port: number, callingAe: string, calledAe = 'DEID_GATEWAY'): Promise<DcmtkRun> {
  return run('echoscu', ['-aet', callingAe, '-aec', calledAe, '127.0.0.1', String(port)], 30_000);
}

/**
 * Sends `paths` (files, or folders scanned recursively) in one association: `-R` proposes only the SOP
 * classes of the files, `propose` a compressed transfer syntax (proposeOption), `-nh` goes on after a
 * refused instance, `-d` reports each response's status.
 */
export async function storescu(
  port: number,
  paths: readonly string[],
  options: { callingAe?: string; calledAe?: string; timeoutMs?: number; propose?: string } = {},
): Promise<DcmtkRun & { readonly outcomes: readonly StoreOutcome[]; readonly ignored: readonly string[] }> {
  const propose = options.propose ? [options.propose] : [];
  const args = ['-d', '-R', '-nh', '+sd', '+r', ...propose, '-aet', options.callingAe ?? 'MODALITY', '-aec', options.calledAe ?? 'DEID_GATEWAY', '127.0.0.1', String(port), ...paths];
  const result = await run('storescu', args, options.timeoutMs ?? 120_000);
  const log = `${result.stdout}\n${result.stderr}`;
  // Files storescu does not send at all (no SOP Class or Instance UID it can read), each named in a warning.
  const ignored = [...log.matchAll(/in file: (.+), ignoring file/g)].map((m) => (m[1] as string).trim());
  return { ...result, outcomes: storeOutcomes(log), ignored };
}

/** Pairs each "Sending file" line with the Status of the C-STORE-RSP that followed it (dcmtk's debug dump). */
export function storeOutcomes(log: string): StoreOutcome[] {
  const outcomes: StoreOutcome[] = [];
  let current: { file: string; status?: number } | undefined;
  const done = () => {
    if (current) outcomes.push({ file: current.file, status: current.status });
    current = undefined;
  };
  for (const line of log.split('\n')) {
    const sending = /Sending file: (.+)$/.exec(line);
    if (sending) {
      done();
      current = { file: sending[1]?.trim() ?? '' };
      continue;
    }
    const status = /^\S*\s*Status\s*:\s*0x([0-9a-fA-F]{4})/.exec(line.replace(/^[A-Z]: /, ''));
    if (status && current && current.status === undefined) current.status = Number.parseInt(status[1] as string, 16);
  }
  done();
  return outcomes;
}

/**
 * The storescu option that proposes a compressed transfer syntax (dcmtk 3.6.7); undefined for the
 * uncompressed ones it proposes by default, null for those it cannot propose at all (HTJ2K, Deflated
 * Image Frame Compression).
 */
export function proposeOption(transferSyntaxUid: string): string | undefined | null {
  const options: Record<string, string | undefined> = {
    '1.2.840.10008.1.2': undefined,
    '1.2.840.10008.1.2.1': undefined,
    '1.2.840.10008.1.2.2': undefined,
    '1.2.840.10008.1.2.1.99': '-xd',
    '1.2.840.10008.1.2.5': '-xr',
    '1.2.840.10008.1.2.4.50': '-xy',
    '1.2.840.10008.1.2.4.51': '-xx',
    '1.2.840.10008.1.2.4.57': '-xs',
    '1.2.840.10008.1.2.4.70': '-xs',
    '1.2.840.10008.1.2.4.80': '-xt',
    '1.2.840.10008.1.2.4.81': '-xu',
    '1.2.840.10008.1.2.4.90': '-xv',
    '1.2.840.10008.1.2.4.91': '-xw',
  };
  return transferSyntaxUid in options ? options[transferSyntaxUid] : null;
}

// dcmtk's findscu (Debian `dcmtk`) as a legacy research workstation would use it: one C-FIND (PS3.4 C.4.1)
// in one association to the gateway's DICOM listener on loopback, every response's status read from its
// debug dump and every match written to a file (-X) and read back with the repo's Part 10 reader.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { JsonDataset } from '../../src/dicom/json-model.ts';
import { datasetToJson } from '../../src/dicom/json-model.ts';
import { readPart10Buffer } from '../../src/dicom/part10-reader.ts';

export interface FindOutcome {
  /** findscu's exit code (0: the association and the C-FIND went through, whatever its final status). */
  readonly code: number;
  /** stdout and stderr: findscu's debug dump (test output only; it holds the responses' values). */
  readonly log: string;
  /** The status of every C-FIND response, in order (PS3.4 C.4.1.1.4). */
  readonly statuses: readonly number[];
  /** The last status; undefined when no response came. */
  readonly final: number | undefined;
  /** The final response's Error Comment (0000,0902), when it had one. */
  readonly errorComment: string | undefined;
  /** Each match (pending response) as a response file findscu wrote, in order. */
  readonly files: readonly string[];
  /** Each match's Identifier as DICOM JSON (PS3.18 F.2). */
  readonly matches: readonly JsonDataset[];
  /** The association was rejected (A-ASSOCIATE-RJ). */
  readonly rejected: boolean;
  /** The association was accepted but not the Query/Retrieve presentation context. */
  readonly noContext: boolean;
}

export interface FindOptions {
  /** A fresh folder is made in it for the response files of this C-FIND. */
  readonly dir: string;
  readonly callingAe?: string;
  readonly calledAe?: string;
  /** `study` (-S, the default) or `patient` (-P) root. */
  readonly model?: 'study' | 'patient';
  /** Sends a C-CANCEL after this many responses (findscu --cancel). */
  readonly cancelAfter?: number;
  readonly timeoutMs?: number;
}

/**
 * One C-FIND: `keys` are findscu's `-k` arguments (`QueryRetrieveLevel=STUDY`, `PatientName`, `(0009,1001)`…),
 * sent as they are. Resolves with what findscu saw; rejects only when findscu cannot be run.
 */
export async function findscu(port: number, keys: readonly string[], options: FindOptions): Promise<FindOutcome> {
  const dir = mkdtempSync(join(options.dir, 'find-'));
  const args = [
    '-d',
    options.model === 'patient' ? '-P' : '-S',
    '-X',
    '-od',
    dir,
    '-aet',
    options.callingAe ?? 'RESEARCH_WS',
    '-aec',
    options.calledAe ?? 'DEID_GATEWAY',
    ...(options.cancelAfter === undefined ? [] : ['--cancel', String(options.cancelAfter)]),
    ...keys.flatMap((k) => ['-k', k]),
    '127.0.0.1',
    String(port),
  ];
  const { code, log } = await new Promise<{ code: number; log: string }>((resolve, reject) => {
    // TCP_NODELAY=1: dcmtk's switch to disable Nagle's algorithm (see dcmtk.ts).
    execFile('findscu', args, { timeout: options.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, TCP_NODELAY: '1' } }, (error, stdout, stderr) => {
      const exit = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      if (exit < 0) reject(error);
      else resolve({ code: exit, log: `${stdout}\n${stderr}` });
    });
  });
  const statuses = [...log.matchAll(/DIMSE Status\s*:\s*0x([0-9a-fA-F]{4})/g)].map((m) => Number.parseInt(m[1] as string, 16));
  // The Status Detail dump: `(0000,0902) LO [text ] # length, 1 ErrorComment`.
  const comments = [...log.matchAll(/\(0000,0902\) LO \[(.*)\]\s+#.*ErrorComment/g)].map((m) => (m[1] as string).trim());
  const files = readdirSync(dir)
    .filter((f) => /^rsp\d+\.dcm$/.test(f))
    .sort()
    .map((f) => join(dir, f));
  const matches: JsonDataset[] = [];
  for (const file of files) {
    const { header } = await readPart10Buffer(readFileSync(file));
    matches.push(datasetToJson(header.dataset, [], header.encoding.littleEndian));
  }
  return {
    code,
    log,
    statuses,
    final: statuses.at(-1),
    errorComment: comments.at(-1),
    files,
    matches,
    rejected: /Association Rejected/i.test(log),
    noContext: /No Acceptable Presentation Contexts/i.test(log),
  };
}

// One input through the engine (reader -> policy -> writer, deid/rewrite-part10.ts) into a temporary
// name beside its output, renamed only when the whole file rewrote cleanly, so a refused file leaves no
// output. The output's size, and with a report its SHA-256, are taken as it is written (the report keeps
// them for resume). A file of up to WHOLE_FILE_BYTES (a CT or MR slice, most instances) is read and written
// in one call each, so memory per file in flight stays bounded by that size whatever the input; a larger
// one is streamed.
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, openSync, readFileSync, renameSync, writeSync, writevSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createSession, type DeidPolicy } from '../deid/deidentify.ts';
import type { PseudonymPair } from '../deid/pseudonym.ts';
import { rewritePart10 } from '../deid/rewrite-part10.ts';

const READ_CHUNK = 1024 * 1024;
/**
 * Inputs up to this size are read in one call and their output written in one: a stream's set-up and
 * its round trips through the thread pool cost more than such a file's bytes (issue 20: the CLI against
 * gdcmanon). With `--jobs N`, at most N such files are held at once.
 */
const WHOLE_FILE_BYTES = 8 * 1024 * 1024;

/** Temporary names: this process's random prefix and a count (a random draw per file costs a system call). */
const RUN = randomBytes(6).toString('hex');
let made = 0;

export interface Rewritten {
  readonly pairs: readonly PseudonymPair[];
  readonly outputBytes: number;
  /** Taken only when `RewriteContext.hashOutputs` (a report is kept). */
  readonly outputSha256: string | undefined;
}

export interface RewriteContext {
  readonly policy: DeidPolicy;
  /** Fresh mode's salt for the run (files of one study stay linked within it); none: keyed pseudonyms. */
  readonly salt: Uint8Array | undefined;
  /** One mkdir per output folder, not per file. */
  readonly folders: Map<string, Promise<unknown>>;
  /** Whether each output's SHA-256 is taken (for the report's resume check; a tenth of the time otherwise). */
  readonly hashOutputs: boolean;
  /**
   * A small file is read, written and renamed with blocking calls: on a worker thread that does nothing
   * else, a round trip through the (shared, four-thread) libuv pool per call costs more than the call.
   */
  readonly blockingIo?: boolean;
}

/** Writes `chunks` (`bytes` in all) to a new file `path` (0600), blocking. */
function writeWholeSync(path: string, chunks: readonly Buffer[], bytes: number): void {
  const fd = openSync(path, 'w', 0o600);
  try {
    let written = writevSync(fd, chunks as Buffer[]);
    if (written < bytes) {
      const rest = Buffer.concat(chunks as Buffer[], bytes);
      while (written < bytes) written += writeSync(fd, rest, written, bytes - written);
    }
  } finally {
    closeSync(fd);
  }
}

/** Streams `input` (of `size` bytes) through the engine into `output`. Engine errors propagate as they are. */
export async function rewriteFile(context: RewriteContext, input: string, size: number, output: string): Promise<Rewritten> {
  const session = createSession(context.policy, context.salt ? { fresh: true, salt: context.salt } : { fresh: false });
  const dir = dirname(output);
  const partial = join(dir, `.${basename(output)}.${RUN}-${(made++).toString(36)}.partial`);
  let folder = context.folders.get(dir);
  if (folder === undefined) {
    folder = mkdir(dir, { recursive: true });
    context.folders.set(dir, folder);
  }
  await folder;
  const hash = context.hashOutputs ? createHash('sha256') : undefined;
  let outputBytes = 0;
  try {
    if (size <= WHOLE_FILE_BYTES) {
      // A small file: read whole, its output gathered and written in one call (no streams to set up).
      const chunks: Buffer[] = [];
      for await (const chunk of rewritePart10([context.blockingIo ? readFileSync(input) : await readFile(input)], session).output) {
        hash?.update(chunk);
        outputBytes += chunk.length;
        chunks.push(chunk);
      }
      // Gathered, not concatenated: the pixel data is written from the input's own buffer.
      if (context.blockingIo) {
        writeWholeSync(partial, chunks, outputBytes);
        renameSync(partial, output);
        return { pairs: session.pairs(), outputBytes, outputSha256: hash?.digest('hex') };
      }
      const handle = await open(partial, 'w', 0o600);
      try {
        await handle.writev(chunks);
      } finally {
        await handle.close();
      }
    } else {
      const { output: rewritten } = rewritePart10(createReadStream(input, { highWaterMark: READ_CHUNK }), session);
      const measured = async function* () {
        for await (const chunk of rewritten) {
          hash?.update(chunk);
          outputBytes += chunk.length;
          yield chunk;
        }
      };
      await pipeline(measured, createWriteStream(partial, { mode: 0o600 }));
    }
    await rename(partial, output);
    return { pairs: session.pairs(), outputBytes, outputSha256: hash?.digest('hex') };
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
}

/** Whether `file` is there with this size and SHA-256 (what an earlier run recorded for its output). */
export async function outputMatches(file: string, bytes: number, sha256: string): Promise<boolean> {
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile() || info.size !== bytes) return false;
  const hash = createHash('sha256');
  if (bytes <= WHOLE_FILE_BYTES) hash.update(await readFile(file));
  else for await (const chunk of createReadStream(file, { highWaterMark: READ_CHUNK })) hash.update(chunk as Buffer);
  return hash.digest('hex') === sha256;
}

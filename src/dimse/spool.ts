// The durable spool under <dataDir>/spool (0700; files 0600). Originals wait here between the C-STORE
// success response and the destination's confirmation, and survive a crash:
//
//   incoming/<random>.part       an instance being received (swept at start: never acknowledged)
//   studies/<key>/state.json     one open study of one caller: its pseudonym mode (and fresh salt), attempts
//   studies/<key>/<random>.dcm   its originals, each renamed here (and the folder fsynced) before success
//   studies/<key>/forwarded.log  the originals the destination confirmed in the batch under way (fsynced each)
//   quarantine/<time>-<random>/  originals that could not be forwarded, with reason.json, a copy of the state
//                                and study.key (the study they came from), kept for an operator, who may move
//                                them back (`restore`) to be sent again
//
// A study's key is a hash of its calling AE title and StudyInstanceUID: no UID is ever a path, and a study
// sent by two callers (each with its own pseudonym mode) is two spool entries. The key is never shown: a
// quarantine folder's id (which GET /dimse/quarantine lists) is its time and 96 random bits, so whoever can
// list the quarantine cannot confirm a guessed AE title and StudyInstanceUID by hashing them; the key it
// goes back to is read from the folder's study.key. Folders of the earlier form (<key>-<time>-<r>) are
// renamed to the new one when the spool opens. The quota covers all three
// folders; past it a new instance is refused (A700) and nothing already acknowledged is touched.
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readdir, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { PseudonymMode } from './callers.ts';
import { SpoolJournalError, SpoolStateError } from './errors.ts';

const STATE = 'state.json';
const JOURNAL = 'forwarded.log';
const REASON = 'reason.json';
const STUDY_KEY = 'study.key';
const INSTANCE = /^[0-9a-f]{24}\.dcm$/;
const PART = /^[0-9a-f]{24}\.part$/;
const KEY = /^[0-9a-f]{32}$/;
/** A quarantine folder: the time (ISO 8601 basic, to the millisecond) and 96 random bits; nothing of the study. */
const QUARANTINE_ID = /^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{24}$/;
/** The earlier form, which began with the study's key (an unkeyed hash of AE title and UID): renamed at open. */
const LEGACY_QUARANTINE_ID = /^([0-9a-f]{32})-([0-9]{8}T[0-9]{9}Z)-[0-9a-f]{6}$/;

/** A quarantine folder's id (never a path: checked before any use). */
export function isQuarantineId(id: string): boolean {
  return QUARANTINE_ID.test(id);
}

function newQuarantineId(time: string): string {
  return `${time}-${randomBytes(12).toString('hex')}`;
}

/** What a quarantine folder holds: its originals, the study it came from and, if it can be read, the study's state at the time. */
export interface QuarantineHold {
  readonly names: readonly string[];
  /** The study's key (study.key); undefined when it cannot be read. */
  readonly key: string | undefined;
  readonly state: StudyState | undefined;
}

/** One quarantine folder as an operator lists it (codes and counts: no UID, no AE title, no path). */
export interface QuarantinedStudy {
  readonly id: string;
  readonly quarantinedAt: string | undefined;
  /** Originals it holds now. */
  readonly instances: number;
  /** reason.json's codes (`code`, `cause`, `causeDetail`, `attempts`, `refused`, `file`, `err`); `{ code: 'DIMSE_QUARANTINE_REASON_UNREADABLE' }` if it cannot be read. */
  readonly reason: Readonly<Record<string, unknown>>;
}

/** The keys of reason.json an operator is shown (all written by the forwarder: codes, counts, Failure Reasons). */
const REASON_KEYS = ['code', 'cause', 'causeDetail', 'attempts', 'refused', 'file', 'err'] as const;

/** What the spool keeps about an open study (state.json). */
export interface StudyState {
  readonly version: 1;
  readonly callingAe: string;
  readonly profile: 'uploader';
  readonly pseudonyms: PseudonymMode;
  /** Fresh mode: the study's salt (hex), so every batch of the study, before or after a restart, gets the same pseudonyms. */
  readonly salt?: string;
  /** ISO time the study was opened. */
  readonly openedAt: string;
  /** Forwarding attempts that failed for a reason that may pass, since the last success. */
  readonly attempts: number;
}

/** The key of a caller's study: hex, never the UID itself. */
export function studyKey(callingAe: string, studyInstanceUid: string): string {
  return createHash('sha256').update(callingAe).update('\u0000').update(studyInstanceUid).digest('hex').slice(0, 32);
}

/** fsync a directory, so a rename or unlink in it survives power loss. */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/** Bytes under `dir`, recursively. */
async function treeSize(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await treeSize(path);
    else if (entry.isFile()) total += await sizeOf(path);
  }
  return total;
}

async function writeFileDurably(path: string, text: string): Promise<void> {
  const partial = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(partial, text, { mode: 0o600, flag: 'wx' });
  const handle = await open(partial, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(partial, path);
}

/** The journal of one forwarding batch: which originals the destination confirmed, each line fsynced. */
export interface Journal {
  readonly confirmed: ReadonlySet<string>;
  append(name: string): Promise<void>;
  close(): Promise<void>;
}

export class Spool {
  readonly root: string;
  readonly quotaBytes: number;
  #usage = 0;

  private constructor(root: string, quotaBytes: number) {
    this.root = root;
    this.quotaBytes = quotaBytes;
  }

  /**
   * Makes the folders (0700), removes partial instances a crash left (never acknowledged, so the sender
   * still has them) and counts what the spool holds against the quota.
   */
  static async open(root: string, quotaBytes: number): Promise<Spool> {
    const spool = new Spool(root, quotaBytes);
    for (const dir of [root, spool.#incoming, spool.#studies, spool.#quarantine]) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await chmod(dir, 0o700);
    }
    for (const name of await readdir(spool.#incoming)) {
      if (PART.test(name)) await rm(join(spool.#incoming, name), { force: true });
    }
    // A state file half written when the process died (its rename never happened): the old one stands.
    for (const key of await spool.studyKeys()) {
      for (const name of await readdir(spool.studyDir(key))) {
        if (name.endsWith('.tmp')) await rm(join(spool.studyDir(key), name), { force: true });
      }
    }
    await spool.#renameLegacyQuarantine();
    spool.#usage = await treeSize(root);
    return spool;
  }

  /**
   * Quarantine folders named by their study's key (the earlier form): the key is written into the folder,
   * durably, then the folder takes a random id. A crash between the two leaves the old name, done again next time.
   */
  async #renameLegacyQuarantine(): Promise<void> {
    let renamed = false;
    for (const entry of await readdir(this.#quarantine, { withFileTypes: true })) {
      const legacy = entry.isDirectory() ? LEGACY_QUARANTINE_ID.exec(entry.name) : null;
      if (!legacy) continue;
      const dir = join(this.#quarantine, entry.name);
      await writeFileDurably(join(dir, STUDY_KEY), `${legacy[1]}\n`);
      await syncDir(dir);
      await rename(dir, join(this.#quarantine, newQuarantineId(legacy[2] as string)));
      renamed = true;
    }
    if (renamed) await syncDir(this.#quarantine);
  }

  get #incoming(): string {
    return join(this.root, 'incoming');
  }
  get #studies(): string {
    return join(this.root, 'studies');
  }
  get #quarantine(): string {
    return join(this.root, 'quarantine');
  }

  /** Bytes the spool holds (incoming, studies, quarantine). */
  get usage(): number {
    return this.#usage;
  }

  /** Counts `bytes` more against the quota, if they fit. */
  reserve(bytes: number): boolean {
    if (this.#usage + bytes > this.quotaBytes) return false;
    this.#usage += bytes;
    return true;
  }

  release(bytes: number): void {
    this.#usage = Math.max(0, this.#usage - bytes);
  }

  /** A writer for one instance being received: `head` (preamble and File Meta), then the dataset as it arrives. */
  incoming(head: Buffer): SpoolWriter {
    return new SpoolWriter(this, join(this.#incoming, `${randomBytes(12).toString('hex')}.part`), head);
  }

  /** Removes a received instance that is not kept (refused, incomplete) and gives its bytes back. */
  async discard(writer: SpoolWriter): Promise<void> {
    if (writer.discarded) return;
    writer.discarded = true;
    await rm(writer.path, { force: true });
    this.release(writer.bytes);
  }

  studyDir(key: string): string {
    return join(this.#studies, key);
  }

  /**
   * Moves a received, checked instance into its study (opened with `opening()` if it is new) and makes the
   * move durable: the folder is fsynced before this resolves, so the C-STORE success that follows holds.
   */
  async commit(writer: SpoolWriter, key: string, opening: () => StudyState, open = false): Promise<{ name: string; opened: boolean }> {
    const dir = this.studyDir(key);
    let opened = false;
    // `open`: the caller knows the study is (its state file written, not closed since).
    try {
      if (!open) await stat(join(dir, STATE));
    } catch {
      await mkdir(dir, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
      });
      await this.writeState(key, opening());
      await syncDir(this.#studies);
      opened = true;
    }
    const name = `${randomBytes(12).toString('hex')}.dcm`;
    await rename(writer.path, join(dir, name));
    await syncDir(dir);
    return { name, opened };
  }

  /** The keys of the studies on disk (at start: what a previous run left to forward). */
  async studyKeys(): Promise<string[]> {
    return (await readdir(this.#studies)).filter((name) => KEY.test(name));
  }

  async readState(key: string): Promise<StudyState> {
    return readStateFile(join(this.studyDir(key), STATE));
  }

  async writeState(key: string, state: StudyState): Promise<void> {
    const path = join(this.studyDir(key), STATE);
    const before = await sizeOf(path);
    const text = `${JSON.stringify(state)}\n`;
    await writeFileDurably(path, text);
    await syncDir(this.studyDir(key));
    this.#usage += Buffer.byteLength(text) - before;
  }

  /** The originals a study holds, in a stable order. */
  async instances(key: string): Promise<string[]> {
    try {
      return (await readdir(this.studyDir(key))).filter((name) => INSTANCE.test(name)).sort();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  instancePath(key: string, name: string): string {
    return join(this.studyDir(key), name);
  }

  /** The batch journal: what an earlier run (or attempt) already saw confirmed is read back first. */
  async journal(key: string): Promise<Journal> {
    const path = join(this.studyDir(key), JOURNAL);
    // None yet is the usual case; one that exists and cannot be read is not taken for empty (that would
    // send again what the destination confirmed, and hide the fault): SpoolJournalError.
    const text = await readFile(path, 'utf8').catch((cause: NodeJS.ErrnoException) => {
      if (cause.code === 'ENOENT') return '';
      throw new SpoolJournalError({ cause });
    });
    const confirmed = new Set(text.split('\n').filter((line) => INSTANCE.test(line)));
    // Opened once, on the first append (workers append concurrently).
    let opening: Promise<FileHandle> | undefined;
    return {
      confirmed,
      append: async (name) => {
        opening ??= open(path, 'a', 0o600);
        const handle = await opening;
        const line = `${name}\n`;
        await handle.write(line);
        await handle.datasync();
        this.#usage += line.length;
        confirmed.add(name);
      },
      close: async () => {
        const handle = await opening?.catch(() => undefined);
        opening = undefined;
        await handle?.close();
      },
    };
  }

  /** Deletes originals the destination confirmed, then the journal that named them. */
  async deleteConfirmed(key: string, names: Iterable<string>): Promise<void> {
    const dir = this.studyDir(key);
    for (const name of names) {
      if (!INSTANCE.test(name)) continue;
      const path = join(dir, name);
      const size = await sizeOf(path);
      await rm(path, { force: true });
      this.release(size);
    }
    const journal = join(dir, JOURNAL);
    const size = await sizeOf(journal);
    await rm(journal, { force: true });
    this.release(size);
    await syncDir(dir);
  }

  /**
   * Moves originals into quarantine/<key>-<time>/ with a reason file (codes and counts, no patient data)
   * and a copy of the study state; returns the folder's name. They stay there until an operator acts.
   */
  async quarantine(key: string, names: readonly string[], reason: object, now: Date): Promise<string> {
    const folder = newQuarantineId(now.toISOString().replace(/[-:.]/g, ''));
    const target = join(this.#quarantine, folder);
    await mkdir(target, { mode: 0o700 });
    // First the study it belongs to (a retry needs it), then the originals.
    await writeFileDurably(join(target, STUDY_KEY), `${key}\n`);
    this.#usage += key.length + 1;
    for (const name of names) {
      if (INSTANCE.test(name)) await rename(join(this.studyDir(key), name), join(target, name));
    }
    const state = await readFile(join(this.studyDir(key), STATE), 'utf8').catch(() => undefined);
    if (state !== undefined) await writeFile(join(target, STATE), state, { mode: 0o600 });
    const text = `${JSON.stringify({ ...reason, quarantinedAt: now.toISOString(), instances: names.length }, null, 2)}\n`;
    await writeFileDurably(join(target, REASON), text);
    this.#usage += Buffer.byteLength(text) + (state === undefined ? 0 : Buffer.byteLength(state));
    await syncDir(target);
    await syncDir(this.studyDir(key));
    await syncDir(this.#quarantine);
    return folder;
  }

  /** Closes a study with nothing left to forward: its state (and fresh salt) is forgotten. */
  async removeStudy(key: string): Promise<void> {
    const dir = this.studyDir(key);
    const size = await treeSize(dir).catch(() => 0);
    await rm(dir, { recursive: true, force: true });
    this.release(size);
    await syncDir(this.#studies);
  }

  /** Removes a study's state file or journal that cannot be read (after its originals went to quarantine). */
  async discardMeta(key: string, file: 'state' | 'journal'): Promise<void> {
    const path = join(this.studyDir(key), file === 'state' ? STATE : JOURNAL);
    const size = await treeSize(path).catch(() => sizeOf(path));
    await rm(path, { recursive: true, force: true });
    this.release(size);
    await syncDir(this.studyDir(key)).catch(() => undefined);
  }

  /** How many studies (folders) wait in quarantine. */
  async quarantinedCount(): Promise<number> {
    return (await readdir(this.#quarantine, { withFileTypes: true })).filter((e) => e.isDirectory()).length;
  }

  /** Every quarantine folder, oldest first (the ids sort by time within a study; the list by `quarantinedAt`). */
  async listQuarantine(): Promise<QuarantinedStudy[]> {
    const out: QuarantinedStudy[] = [];
    for (const entry of await readdir(this.#quarantine, { withFileTypes: true })) {
      if (!entry.isDirectory() || !QUARANTINE_ID.test(entry.name)) continue;
      const dir = join(this.#quarantine, entry.name);
      const names = await readdir(dir).catch(() => [] as string[]);
      let reason: Record<string, unknown> = { code: 'DIMSE_QUARANTINE_REASON_UNREADABLE' };
      let quarantinedAt: string | undefined;
      try {
        const parsed = JSON.parse(await readFile(join(dir, REASON), 'utf8')) as Record<string, unknown>;
        reason = Object.fromEntries(REASON_KEYS.filter((k) => parsed[k] !== undefined).map((k) => [k, parsed[k]]));
        if (typeof parsed['quarantinedAt'] === 'string') quarantinedAt = parsed['quarantinedAt'];
      } catch {
        // listed with the code above: the operator still sees the folder and what it holds
      }
      out.push({ id: entry.name, quarantinedAt, instances: names.filter((n) => INSTANCE.test(n)).length, reason });
    }
    return out.sort((a, b) => (a.quarantinedAt ?? '').localeCompare(b.quarantinedAt ?? '') || a.id.localeCompare(b.id));
  }

  /** A quarantine folder's originals, study key and state (undefined: no such folder). */
  async quarantined(id: string): Promise<QuarantineHold | undefined> {
    if (!QUARANTINE_ID.test(id)) return undefined;
    const dir = join(this.#quarantine, id);
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => INSTANCE.test(n)).sort();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw error;
    }
    const state = await readStateFile(join(dir, STATE)).catch(() => undefined);
    return { names, key: await this.#quarantineKey(id), state };
  }

  /** The study key written in a quarantine folder, or undefined when it cannot be read or is not one. */
  async #quarantineKey(id: string): Promise<string | undefined> {
    const text = await readFile(join(this.#quarantine, id, STUDY_KEY), 'utf8').catch(() => '');
    const key = text.trim();
    return KEY.test(key) ? key : undefined;
  }

  /**
   * Moves a quarantine folder's originals back into study `key` (opened with `opening` when given, i.e.
   * when the study has no folder now), durably, then removes the quarantine folder; returns how many
   * moved. A crash part-way leaves each original in one place or the other, never both, and the folder
   * listed until a retry finishes it.
   */
  async restore(id: string, key: string, opening: StudyState | undefined): Promise<number> {
    if (!QUARANTINE_ID.test(id) || !KEY.test(key) || (await this.#quarantineKey(id)) !== key) throw new Error('not a quarantine id of this study');
    const from = join(this.#quarantine, id);
    const dir = this.studyDir(key);
    const names = (await readdir(from)).filter((n) => INSTANCE.test(n));
    if (opening) {
      await mkdir(dir, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
      });
      await this.writeState(key, opening);
      await syncDir(this.#studies);
    }
    for (const name of names) await rename(join(from, name), join(dir, name));
    await syncDir(dir);
    await syncDir(from);
    const rest = await treeSize(from);
    await rm(from, { recursive: true, force: true });
    this.release(rest);
    await syncDir(this.#quarantine);
    return names.length;
  }
}

/** A study state file, checked (version, caller, pseudonym mode and fresh salt); SpoolStateError otherwise. */
async function readStateFile(path: string): Promise<StudyState> {
  try {
    const state = JSON.parse(await readFile(path, 'utf8')) as StudyState;
    if (state.version !== 1 || typeof state.callingAe !== 'string' || state.profile !== 'uploader' || (state.pseudonyms !== 'keyed' && state.pseudonyms !== 'fresh')) throw new Error('bad state');
    if (state.pseudonyms === 'fresh' && !/^[0-9a-f]{32}$/.test(state.salt ?? '')) throw new Error('bad salt');
    if (!Number.isInteger(state.attempts) || state.attempts < 0) throw new Error('bad attempts');
    return state;
  } catch (cause) {
    throw new SpoolStateError({ cause });
  }
}

/**
 * One instance as it arrives: `head` first, then each PDV fragment, appended to a 0600 file opened
 * exclusively. Past the quota it stops writing and remembers it (the rest of the dataset is read and
 * dropped, so the association stays in step); `end()` fsyncs. `writableNeedDrain` tells the listener to
 * stop reading the socket until the disk has caught up (back-pressure the library does not apply).
 */
export class SpoolWriter extends Writable {
  readonly path: string;
  readonly #spool: Spool;
  readonly #head: Buffer;
  #handle: FileHandle | undefined;
  /** Bytes written to the file (and counted against the quota). */
  bytes = 0;
  overQuota = false;
  /** Removed from the spool (its bytes given back once). */
  discarded = false;
  /** Settles once the file is synced and closed (or the writer failed or was destroyed). */
  readonly settled: Promise<void>;

  constructor(spool: Spool, path: string, head: Buffer) {
    super({ highWaterMark: 1024 * 1024 });
    this.#spool = spool;
    this.path = path;
    this.#head = head;
    this.settled = new Promise<void>((resolve, reject) => {
      this.once('close', () => {
        if (this.errored) reject(this.errored);
        else if (!this.writableFinished) reject(new Error('closed before the instance ended'));
        else resolve();
      });
    });
    this.settled.catch(() => undefined);
  }

  override _construct(callback: (error?: Error | null) => void): void {
    open(this.path, 'wx', 0o600)
      .then(async (handle) => {
        this.#handle = handle;
        await this.#append([this.#head]);
      })
      .then(() => callback(), callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.#append(chunks.map((c) => c.chunk)).then(() => callback(), callback);
  }

  async #append(buffers: Buffer[]): Promise<void> {
    if (this.overQuota) return;
    const size = buffers.reduce((n, b) => n + b.length, 0);
    if (!this.#spool.reserve(size)) {
      this.overQuota = true;
      return;
    }
    this.bytes += size;
    const handle = this.#handle as FileHandle;
    const { bytesWritten } = await handle.writev(buffers);
    // A short write (rare on a file, possible near a full disk): the rest, until done or an error.
    for (let rest = Buffer.concat(buffers).subarray(bytesWritten); rest.length > 0; ) {
      const { bytesWritten: more } = await handle.write(rest);
      rest = rest.subarray(more);
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.overQuota) {
      callback();
      return;
    }
    (this.#handle as FileHandle).sync().then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const handle = this.#handle;
    this.#handle = undefined;
    if (!handle) {
      callback(error);
      return;
    }
    handle.close().then(
      () => callback(error),
      () => callback(error),
    );
  }
}

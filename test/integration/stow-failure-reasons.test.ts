// Issue 14: a STOW part that fails through no fault of its own carries the PS3.18 I.2.2 (Table I.2-2)
// Failure Reason of its error's class, on the real STOW path in front of a real Orthanc: a temp dir the
// gateway can no longer write, or a pseudonym store it cannot write, is 0x0110 Processing failure; a disk
// that is full is 0xA700 Refused: Out of Resources. Never 0xC000 "cannot understand", which would tell
// the uploader to fix a file that is fine. In every case nothing reaches the PACS, and the operator's log
// says which code failed.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { makeKeys, startTestGateway, type TestGateway, type TestKeys } from '../helpers/gateway.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { sample } from '../helpers/sample.ts';
import { parseStowAnswer, stowBody } from '../helpers/stow.ts';

const run = promisify(execFile);

describe('STOW failure reasons come from the error’s class', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;
  let keys: TestKeys;
  let tempDir: string;

  before(async () => {
    ({ orthanc } = await startTestOrthanc());
    keys = await makeKeys();
    tempDir = join(keys.dir, 'data', 'tmp');
    gateway = await startTestGateway(orthanc.dicomWebUrl, {}, keys);
  });
  after(async () => {
    await gateway?.close();
    await orthanc?.stop();
    if (keys) await rm(keys.dir, { recursive: true, force: true });
  });

  const stow = async (file: string) => {
    const { body, contentType } = stowBody([sample(file)]);
    const res = await fetch(`${gateway.base}/studies`, {
      method: 'POST',
      body: new Uint8Array(body),
      headers: { authorization: `Bearer ${await gateway.token('uploader')}`, 'content-type': contentType, accept: 'application/dicom+json' },
    });
    return parseStowAnswer(res.status, (await res.json()) as never);
  };
  const held = async () => ((await (await fetch(`${orthanc.httpUrl}/instances`)).json()) as string[]).length;
  /** The gateway's log lines since `mark` (an index into its lines). */
  const logSince = (mark: number) =>
    gateway
      .logs()
      .split('\n')
      .filter(Boolean)
      .slice(mark)
      .map((l) => JSON.parse(l) as { level: number; msg: string; reason?: number; err?: { code?: string }; cause?: { code?: string } });
  const logMark = () => gateway.logs().split('\n').filter(Boolean).length;

  test('a temp dir that became unwritable: 0x0110 Processing failure, nothing stored, the log names the code; fixed, the same file is stored', async () => {
    const mark = logMark();
    await rm(tempDir, { recursive: true, force: true });
    await writeFile(tempDir, 'not a directory any more'); // even root cannot create a file under it
    try {
      const answer = await stow('transfer-syntax/MR_small.dcm');
      assert.equal(answer.status, 409, JSON.stringify(answer));
      assert.deepEqual(answer.failed.map((f) => f.reason.toString(16)), ['110']);
      assert.equal(await held(), 0, 'nothing reached the PACS');
      const warned = logSince(mark).filter((l) => l.msg === 'a STOW part was not stored');
      assert.deepEqual(warned.map((l) => [l.level, l.reason, l.err?.code]), [[40, 0x0110, 'ENOTDIR']]);
    } finally {
      await rm(tempDir, { force: true });
      await mkdir(tempDir, { mode: 0o700 });
    }
    const again = await stow('transfer-syntax/MR_small.dcm');
    assert.equal(again.status, 200, JSON.stringify(again));
    assert.equal(await held(), 1);
  });

  test('a pseudonym store that cannot be written: 0x0110 Processing failure, and the PACS never sees pseudonyms that are not durable', async () => {
    const before = await held();
    const mark = logMark();
    // Another writer holds the SQLite store: the gateway's write waits out its busy timeout, then fails.
    const lock = new Database(join(keys.dir, 'data', 'pseudonyms.sqlite'));
    lock.exec('BEGIN EXCLUSIVE');
    let answer: Awaited<ReturnType<typeof stow>>;
    try {
      answer = await stow('private-tags/CT_small.dcm');
    } finally {
      lock.exec('ROLLBACK');
      lock.close();
    }
    assert.equal(answer.status, 409, JSON.stringify(answer));
    assert.deepEqual(answer.failed.map((f) => f.reason.toString(16)), ['110']);
    assert.ok(answer.failed.every((f) => f.sopInstance === undefined || /^2\.25\./.test(f.sopInstance)), 'no original UID is quoted');
    assert.equal(await held(), before, 'nothing reached the PACS');
    const warned = logSince(mark).filter((l) => l.msg === 'a STOW part was not stored');
    assert.deepEqual(warned.map((l) => [l.level, l.reason, l.err?.code]), [[40, 0x0110, 'STORE_WRITE_FAILED']]);
  });

  test('a full disk under the temp dir: 0xA700 Refused: Out of Resources, nothing stored', async (t) => {
    // A real ENOSPC needs a small file system: a 16 KiB tmpfs over <dataDir>/tmp (skipped where mount is not allowed).
    try {
      await run('mount', ['-t', 'tmpfs', '-o', 'size=16k,mode=0700', 'tmpfs', tempDir]);
    } catch {
      t.skip('cannot mount a tmpfs here');
      return;
    }
    try {
      await chmod(tempDir, 0o700);
      const before = await held();
      const mark = logMark();
      const answer = await stow('private-tags/CT_small.dcm'); // 39 KB: does not fit
      assert.equal(answer.status, 409, JSON.stringify(answer));
      assert.deepEqual(answer.failed.map((f) => f.reason.toString(16)), ['a700']);
      assert.equal(await held(), before, 'nothing reached the PACS');
      const warned = logSince(mark).filter((l) => l.msg === 'a STOW part was not stored');
      assert.deepEqual(warned.map((l) => [l.level, l.reason, l.err?.code]), [[40, 0xa700, 'ENOSPC']]);
    } finally {
      await run('umount', [tempDir]).catch(() => run('umount', ['-l', tempDir]));
    }
  });
});

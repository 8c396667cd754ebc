// Where STOW parts wait between de-identification and the PACS: <dataDir>/tmp (0700, files 0600),
// swept at start of the parts a crashed process left; never the shared system temp directory.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeKeys, startTestGateway, type TestGateway, type TestKeys } from '../helpers/gateway.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { sample } from '../helpers/sample.ts';

const LEFTOVER = 'deid-stow-0123456789abcdef01234567.dcm';
const isPart = (name: string) => /^deid-stow-[0-9a-f]{24}\.dcm$/.test(name);

describe('STOW temporary files live in dataDir/tmp', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;
  let keys: TestKeys;
  let dir: string;

  before(async () => {
    ({ orthanc } = await startTestOrthanc());
    keys = await makeKeys();
    dir = join(keys.dir, 'data', 'tmp');
    // What a crashed process leaves: a part file, in a directory someone made world-readable.
    await mkdir(dir, { recursive: true, mode: 0o755 });
    await writeFile(join(dir, LEFTOVER), 'de-identified bytes of an upload that never finished');
    await writeFile(join(dir, 'not-ours.txt'), 'x');
    gateway = await startTestGateway(orthanc.dicomWebUrl, {}, keys);
  });
  after(async () => {
    await gateway?.close();
    await orthanc?.stop();
    if (keys) await rm(keys.dir, { recursive: true, force: true });
  });

  test('at start, a leftover part is swept, other files are kept, and the directory is owner-only', async () => {
    const names = await readdir(dir);
    assert.ok(!names.includes(LEFTOVER), 'the leftover part is gone');
    assert.ok(names.includes('not-ours.txt'), 'only our own pattern is swept');
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
  });

  test('a part in flight is written there (0600), not in the system temp directory, and deleted after', async () => {
    const file = sample('transfer-syntax/MR_small.dcm');
    const boundary = 'slow-stow-boundary';
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(new Uint8Array(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`)));
        controller.enqueue(new Uint8Array(file.subarray(0, 1024)));
        await released; // the part is half sent: its temp file exists, the request is not over
        controller.enqueue(new Uint8Array(file.subarray(1024)));
        controller.enqueue(new Uint8Array(Buffer.from(`\r\n--${boundary}--\r\n`)));
        controller.close();
      },
    });
    const response = fetch(`${gateway.base}/studies`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${await gateway.token('uploader')}`,
        'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
      },
      body,
      duplex: 'half',
    } as RequestInit);
    try {
      let inFlight: string[] = [];
      for (let i = 0; i < 100 && inFlight.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        inFlight = (await readdir(dir)).filter(isPart);
      }
      assert.equal(inFlight.length, 1, 'the part in flight is in dataDir/tmp');
      const name = inFlight[0] as string;
      assert.equal((await stat(join(dir, name))).mode & 0o777, 0o600);
      assert.ok(!existsSync(join(tmpdir(), name)), 'not in the system temp directory');
    } finally {
      release();
    }
    const res = await response;
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.deepEqual((await readdir(dir)).filter(isPart), [], 'deleted once stored');
  });
});

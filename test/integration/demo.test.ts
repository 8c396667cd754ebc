// Demo hygiene: a demo keeps its keys and secret in its own data dir, and its Orthanc opens no
// port but loopback-guarded HTTP.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, jwtVerify, type JWK } from 'jose';
import { startOrthanc, type OrthancProcess } from '../../src/demo/orthanc-process.ts';

const ROOT = resolve(import.meta.dirname, '../..');

interface ListeningSocket {
  readonly address: string;
  readonly port: number;
}

/** The TCP sockets a process listens on, from /proc (no tools needed): its socket inodes in /proc/net/tcp{,6}. */
function listeningSockets(pid: number): ListeningSocket[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const out: ListeningSocket[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(table)) continue;
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || cols[3] !== '0A' || !inodes.has(cols[9]!)) continue; // 0A: LISTEN
      const [hex, port] = cols[1]!.split(':') as [string, string];
      out.push({ address: decodeAddress(hex), port: parseInt(port, 16) });
    }
  }
  return out;
}

/** /proc/net/tcp writes addresses as host-order 32-bit words in hex. */
function decodeAddress(hex: string): string {
  const words = hex.match(/.{8}/g)!.map((w) => Buffer.from(w, 'hex').reverse());
  if (words.length === 1) return [...words[0]!].join('.');
  const bytes = Buffer.concat(words);
  if (bytes.subarray(0, 12).equals(Buffer.from('00000000000000000000ffff', 'hex'))) return `::ffff:${[...bytes.subarray(12)].join('.')}`;
  return (bytes.toString('hex').match(/.{4}/g) ?? []).join(':');
}

describe("the demo's Orthanc", () => {
  let orthanc: OrthancProcess;

  before(async () => {
    orthanc = await startOrthanc();
  });
  after(async () => {
    await orthanc?.stop();
  });

  test('listens on its HTTP port only: no DICOM port on any interface', () => {
    const sockets = listeningSockets(orthanc.pid!);
    assert.deepEqual(sockets.map((s) => s.port), [orthanc.httpPort], JSON.stringify(sockets));
  });

  test('is configured with the DICOM server off and HTTP for loopback callers only', () => {
    const config = JSON.parse(readFileSync(join(orthanc.storageDir, 'orthanc.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config['DicomServerEnabled'], false);
    assert.equal(config['RemoteAccessAllowed'], false);
  });
});

describe('the demo with DEID_GATEWAY__DATADIR', () => {
  let dir: string;
  let demo: ChildProcess | undefined;
  let output = '';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'deid-demo-'));
    const samples = join(dir, 'no-samples');
    await mkdir(samples);
    demo = spawn(process.execPath, [join(ROOT, 'bin/deid-gateway.js'), 'demo'], {
      cwd: ROOT,
      env: {
        ...process.env,
        DEID_GATEWAY__DATADIR: join(dir, 'data'),
        DEID_GATEWAY__SERVER__PORT: '0',
        DEID_GATEWAY__LOG__LEVEL: 'warn',
        DEID_GATEWAY_SAMPLES: samples,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    demo.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    demo.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    await new Promise<void>((ready, fail) => {
      const timer = setTimeout(() => fail(new Error(`the demo did not start:\n${output}`)), 60_000);
      const check = (): void => {
        if (/^export STEWARD=/m.test(output)) {
          clearTimeout(timer);
          ready();
        }
      };
      demo!.stdout!.on('data', check);
      demo!.once('exit', (code) => fail(new Error(`the demo exited with ${code}:\n${output}`)));
    });
  });
  after(async () => {
    if (demo && demo.exitCode === null) {
      const gone = new Promise((r) => demo!.once('exit', r));
      demo.kill('SIGTERM');
      await gone;
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('keeps its signing keys and secret under that data dir, and its tokens verify with those keys', async () => {
    const keyDir = join(dir, 'data', 'demo-keys');
    for (const name of ['demo-private.jwk.json', 'demo-public.jwk.json', 'deid.secret']) {
      assert.ok(existsSync(join(keyDir, name)), `${name} in ${keyDir}`);
    }
    const token = /^export CLINICIAN=(\S+)$/m.exec(output)?.[1];
    assert.ok(token);
    const publicJwk = JSON.parse(readFileSync(join(keyDir, 'demo-public.jwk.json'), 'utf8')) as JWK;
    await jwtVerify(token, createLocalJWKSet({ keys: [publicJwk] }));
  });

  test('its gateway accepts those tokens and keeps its pseudonym store in the same data dir', async () => {
    const base = /gateway DICOMweb:\s+(http:\/\/127\.0\.0\.1:\d+\/\S*)/.exec(output)?.[1];
    assert.ok(base, output);
    const token = /^export CLINICIAN=(\S+)$/m.exec(output)![1]!;
    const res = await fetch(`${base}/studies`, { headers: { authorization: `Bearer ${token}` } });
    await res.arrayBuffer();
    assert.ok(res.status === 200 || res.status === 204, String(res.status));
    assert.ok(existsSync(join(dir, 'data', 'pseudonyms.sqlite')));
  });
});

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A real Orthanc with its DICOMweb plugin, for loopback callers, with a throw-away storage dir.
 *
 * Orthanc (1.10.1 in Debian) has no option for the address it listens on: both servers bind every
 * interface. So its DICOM (DIMSE) server is off, since the demo, tests and benches only use REST and
 * DICOMweb, and the HTTP server answers loopback peers only (`RemoteAccessAllowed: false`).
 */
export interface OrthancProcess {
  readonly httpUrl: string;
  readonly dicomWebUrl: string;
  readonly httpPort: number;
  readonly storageDir: string;
  /** The running Orthanc's process id; undefined while it is stopped. */
  readonly pid: number | undefined;
  stop(): Promise<void>;
  /** Stops the process but keeps the storage, so `start` can bring it back (fault tests). */
  kill(): Promise<void>;
  restart(): Promise<void>;
}

const ORTHANC_BINARY = process.env['ORTHANC_BINARY'] ?? '/usr/sbin/Orthanc';
const DICOMWEB_PLUGIN =
  process.env['ORTHANC_DICOMWEB_PLUGIN'] ?? '/usr/share/orthanc/plugins/libOrthancDicomWeb.so';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface OrthancOptions {
  storageDir?: string;
  quiet?: boolean;
  /**
   * More Orthanc configuration, merged one level deep (its `DicomWeb` keys join the defaults), e.g.
   * `{ DicomWeb: { Servers: { gateway: { Url, HttpHeaders } } } }` to make it a DICOMweb client.
   */
  extraConfig?: Record<string, unknown>;
}

export async function startOrthanc(options: OrthancOptions = {}): Promise<OrthancProcess> {
  const storageDir = options.storageDir ?? (await mkdtemp(join(tmpdir(), 'deid-orthanc-')));
  const httpPort = await freePort();
  const configPath = join(storageDir, 'orthanc.json');
  await writeFile(
    configPath,
    JSON.stringify(mergeConfig({
      Name: 'deid-gateway-test',
      StorageDirectory: join(storageDir, 'db'),
      IndexDirectory: join(storageDir, 'db'),
      HttpPort: httpPort,
      DicomServerEnabled: false, // it would listen on 0.0.0.0 (see above)
      RemoteAccessAllowed: false,
      AuthenticationEnabled: false,
      HttpCompressionEnabled: false,
      StorageCompression: false,
      Plugins: [DICOMWEB_PLUGIN],
      DicomWeb: { Enable: true, Root: '/dicom-web/', StudiesMetadata: 'Full', SeriesMetadata: 'Full' },
    }, options.extraConfig)),
  );
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    const logFile = join(storageDir, 'orthanc.log');
    child = spawn(ORTHANC_BINARY, [`--logfile=${logFile}`, configPath], { stdio: 'ignore' });
    const exited = new Promise<never>((_, reject) =>
      child?.once('exit', (code) => reject(new Error(`Orthanc exited early with code ${code}; see ${logFile}`))),
    );
    exited.catch(() => undefined);
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      try {
        const res = await fetch(`${httpUrl}/system`);
        if (res.ok) {
          await res.arrayBuffer();
          return;
        }
      } catch {
        // not listening yet
      }
      await Promise.race([new Promise((r) => setTimeout(r, 100)), exited]);
    }
    const log = await readFile(logFile, 'utf8').catch(() => '');
    throw new Error(`Orthanc did not start on ${httpUrl}\n${log.slice(-2000)}`);
  };

  const kill = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(timer);
  };

  await launch();
  return {
    httpUrl,
    dicomWebUrl: `${httpUrl}/dicom-web`,
    httpPort,
    storageDir,
    get pid() {
      return child?.exitCode === null ? child.pid : undefined;
    },
    kill,
    restart: launch,
    async stop() {
      await kill();
      if (!options.storageDir) await rm(storageDir, { recursive: true, force: true });
    },
  };
}

/** `base` with `extra` laid over it; a key both hold as objects is merged (one level), any other replaced. */
function mergeConfig(base: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const out = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const under = out[key];
    out[key] = isObject(under) && isObject(value) ? { ...under, ...value } : value;
  }
  return out;
}

/** Uploads Part 10 files through Orthanc's REST API (`POST /instances`); returns how many it stored. */
export async function loadIntoOrthanc(httpUrl: string, files: Iterable<{ name: string; bytes: Uint8Array }>) {
  const stored: string[] = [];
  const refused: string[] = [];
  for (const file of files) {
    const res = await fetch(`${httpUrl}/instances`, {
      method: 'POST',
      body: new Uint8Array(file.bytes),
      headers: { 'content-type': 'application/dicom' },
    });
    await res.arrayBuffer();
    (res.ok ? stored : refused).push(file.name);
  }
  return { stored, refused };
}

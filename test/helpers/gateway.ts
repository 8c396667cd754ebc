import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { readFileSync } from 'node:fs';
import { scopedSecret } from '../../src/deid/pseudonym.ts';
import { projectScope, UPLOAD_SCOPE } from '../../src/projects/project.ts';
import { exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { validateConfig } from '../../src/config/load.ts';
import type { GatewayConfig } from '../../src/config/schema.ts';
import { freePort } from '../../src/demo/orthanc-process.ts';
import { startGateway, type RunningGateway } from '../../src/server.ts';

export const ISSUER = 'https://idp.test/realm';
export const AUDIENCE = 'deid-gateway';

/** Per-run signing keys (RS256) and a signer for test tokens. */
export interface TestKeys {
  privateKey: CryptoKey;
  publicPem: string;
  publicKeyFile: string;
  /** The de-identification HMAC secret (fresh per run). */
  secretFile: string;
  dir: string;
}

export async function makeKeys(): Promise<TestKeys> {
  const dir = await mkdtemp(join(tmpdir(), 'deid-keys-'));
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const publicPem = await exportSPKI(publicKey);
  const publicKeyFile = join(dir, 'public.pem');
  await writeFile(publicKeyFile, publicPem);
  const secretFile = join(dir, 'deid.secret');
  await writeFile(secretFile, `test-secret-${Date.now()}-0123456789abcdef`);
  return { privateKey, publicPem, publicKeyFile, secretFile, dir };
}

export async function signToken(
  keys: TestKeys,
  claims: JWTPayload = {},
  options: { issuer?: string; audience?: string; expiresIn?: string | number; kid?: string } = {},
): Promise<string> {
  const jwt = new SignJWT({ sub: 'test-user', ...claims })
    .setProtectedHeader({ alg: 'RS256', ...(options.kid ? { kid: options.kid } : {}) })
    .setIssuer(options.issuer ?? ISSUER)
    .setAudience(options.audience ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '10m');
  return jwt.sign(keys.privateKey);
}

/**
 * The project every test researcher token names unless it says otherwise (`token(role, { project })`):
 * it holds every study, so tests about something else see what they did before projects.
 */
export const TEST_PROJECT = 'all';

/** Claims for a token: a researcher names TEST_PROJECT unless `claims` says which (or none: `project: undefined`). */
function withTestProject(roles: string[], claims: JWTPayload | undefined): JWTPayload {
  const project = roles.includes('researcher') && !(claims && 'project' in claims) ? { project: TEST_PROJECT } : {};
  return { roles, ...project, ...claims };
}

/**
 * The key a project's researcher pseudonyms and date offsets are made with (deid/pseudonym.ts
 * scopedSecret): tests that predict a pseudonym use it. `upload`: the uploader's scope.
 */
export function scopeKey(keys: TestKeys, scope: 'upload' | { project: string } = { project: TEST_PROJECT }): Uint8Array {
  const secret = Buffer.from(readFileSync(keys.secretFile, 'utf8').trim());
  return scopedSecret(secret, scope === 'upload' ? UPLOAD_SCOPE : projectScope(scope.project));
}

/**
 * Pixels off unless a test asks for them: the tests about headers, queries and streaming use SC, US and
 * SR samples, which the product's pixel policy (issue 16) withholds or filters by default. A profile
 * that names its own `pixels` keeps them; `productPixelDefaults: true` in the overrides keeps the
 * product's defaults everywhere (the pixel-safety tests).
 */
const PIXELS_OFF = { enabled: false } as const;
const DEFAULT_PROFILE_OPTIONS = ['retainLongitudinalTemporalModifiedDates'];

function withPixelsOff(profile: unknown): Record<string, unknown> {
  const given = (profile ?? { options: DEFAULT_PROFILE_OPTIONS }) as Record<string, unknown>;
  return 'pixels' in given ? given : { ...given, pixels: PIXELS_OFF };
}

/** The overrides with pixels off in the researcher, uploader and project profiles, unless asked otherwise. */
function pixelsOffUnlessAsked(overrides: Record<string, unknown>): Record<string, unknown> {
  const { productPixelDefaults, ...rest } = overrides;
  if (productPixelDefaults === true || rest['deid'] === null) return rest;
  const deid = (rest['deid'] ?? {}) as Record<string, unknown>;
  const profiles = (deid['profiles'] ?? {}) as Record<string, unknown>;
  const out: Record<string, unknown> = {
    ...rest,
    deid: { ...deid, profiles: { ...profiles, researcher: withPixelsOff(profiles['researcher']), uploader: withPixelsOff(profiles['uploader']) } },
  };
  const projects = rest['projects'] as Record<string, Record<string, unknown>> | undefined;
  if (projects) {
    out['projects'] = Object.fromEntries(
      Object.entries(projects).map(([name, p]) => [name, p?.['profile'] ? { ...p, profile: withPixelsOff(p['profile']) } : p]),
    );
  }
  return out;
}

export function testConfig(upstreamUrl: string, keys: TestKeys, given: Record<string, unknown> = {}): GatewayConfig {
  const overrides = pixelsOffUnlessAsked(given);
  const { server, upstream, auth, ...rest } = overrides as Record<string, Record<string, unknown> | undefined>;
  const deid = rest['deid'] !== null;
  return validateConfig({
    server: { host: '127.0.0.1', port: 0, ...server },
    upstream: { url: upstreamUrl, headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000, ...upstream },
    auth: { issuer: ISSUER, audience: AUDIENCE, publicKeyFiles: [keys.publicKeyFile], ...auth },
    log: { level: 'info' },
    dataDir: join(keys.dir, 'data'),
    ...(deid ? { deid: { secret: { file: keys.secretFile }, ...(rest['deid'] as object | undefined) } } : {}),
    ...(deid && !('projects' in rest) ? { projects: { [TEST_PROJECT]: { membership: { all: true } } } } : {}),
    ...Object.fromEntries(Object.entries(rest).filter(([k]) => k !== 'deid')),
  });
}

export interface TestGateway extends RunningGateway {
  readonly base: string;
  readonly keys: TestKeys;
  token(role: string | string[], claims?: JWTPayload): Promise<string>;
  /** Every log line the gateway wrote, for checks that nothing sensitive was logged. */
  logs(): string;
}

/** The gateway in this process, in front of `upstreamUrl`, with logs captured in memory. */
export async function startTestGateway(
  upstreamUrl: string,
  overrides: Record<string, unknown> = {},
  keys?: TestKeys,
): Promise<TestGateway> {
  const k = keys ?? (await makeKeys());
  const config = testConfig(upstreamUrl, k, overrides);
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const gateway = await startGateway(config, { logDestination: sink });
  return {
    ...gateway,
    base: `${gateway.url}${config.server.basePath}`,
    keys: k,
    token: (role, claims) => signToken(k, withTestProject([role].flat(), claims)),
    logs: () => lines.join(''),
    async close() {
      await gateway.close();
      if (!keys) await rm(k.dir, { recursive: true, force: true });
    },
  };
}

/** The gateway as its own process (`deid-gateway serve`), for measuring its memory apart from the client. */
export async function spawnGateway(upstreamUrl: string, keys: TestKeys, extraConfig: Record<string, unknown> = {}) {
  const port = await freePort();
  const configFile = join(keys.dir, 'gateway.json');
  await writeFile(
    configFile,
    JSON.stringify({
      server: { host: '127.0.0.1', port },
      upstream: { url: upstreamUrl },
      auth: { issuer: ISSUER, audience: AUDIENCE, publicKeyFiles: [keys.publicKeyFile] },
      log: { level: 'warn' },
      dataDir: join(keys.dir, 'data'),
      projects: { [TEST_PROJECT]: { membership: { all: true } } },
      ...pixelsOffUnlessAsked(extraConfig),
      deid: { secret: { file: keys.secretFile }, ...(pixelsOffUnlessAsked(extraConfig)['deid'] as object) },
    }),
  );
  const cli = resolve(import.meta.dirname, '../../bin/deid-gateway.js');
  // DEID_GATEWAY_NODE_ARGS: extra node flags for the gateway process (the bench's --cpu-prof).
  const nodeArgs = process.env['DEID_GATEWAY_NODE_ARGS']?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, cli, 'serve', '--config', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += String(d)));
  let stopping = false;
  child.once('exit', (code, signal) => {
    // A gateway that dies under a test or the bench says why, instead of showing up as ECONNREFUSED.
    if (!stopping) process.stderr.write(`gateway process exited (${code ?? signal}):\n${stderr.slice(-4000)}\n`);
  });
  const url = `http://127.0.0.1:${port}`;
  // Generous: two replicas starting beside other tests on two loaded cores (only a wait for /healthz).
  const deadline = Date.now() + 45_000;
  for (;;) {
    try {
      const res = await fetch(`${url}/healthz`);
      await res.arrayBuffer();
      if (res.ok) break;
    } catch {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`gateway did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    url,
    base: `${url}/dicom-web`,
    pid: child.pid as number,
    async stop() {
      stopping = true;
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    },
  };
}

/** Reads a process's current and peak resident set size from /proc, in bytes. */
export async function memoryOf(pid: number): Promise<{ rss: number; peak: number }> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

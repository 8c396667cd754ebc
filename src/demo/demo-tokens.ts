import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';

export const DEMO_ISSUER = 'https://deid-gateway.demo/issuer';
export const DEMO_AUDIENCE = 'deid-gateway';
const ALG = 'ES256';
/** The gateway roles the demo signs tokens for; the steward's is for the steward API, `/reidentify` and `/audit`. */
export const DEMO_ROLES = ['clinician', 'researcher', 'uploader', 'steward'] as const;
export type DemoRole = (typeof DEMO_ROLES)[number];

/** What one demo token grants: a role and, for a researcher, the projects it names. */
export interface DemoGrant {
  readonly role: DemoRole;
  readonly projects?: readonly string[];
}

/** Where a token names its projects, as the config says: `auth.projectClaim` (a dot path) and `auth.projectPrefix`. */
export interface ProjectClaim {
  readonly path: string;
  readonly prefix: string;
}

/**
 * The demo's tokens, by label: one per role, and for researchers one per project plus one that grants
 * every project (`researcher`: the viewer asks which project to open). A label is also the token's
 * `sub` (`demo-<label>`) and, upper-cased, the shell variable the demo exports (`RESEARCHER_CT_COHORT`).
 * The steward comes last: scripts and tests wait for the demo's `export STEWARD=` line.
 */
export function demoGrants(projects: readonly string[]): Record<string, DemoGrant> {
  return {
    clinician: { role: 'clinician' },
    researcher: { role: 'researcher', projects },
    ...Object.fromEntries(projects.map((p) => [`researcher-${p}`, { role: 'researcher', projects: [p] }])),
    uploader: { role: 'uploader' },
    steward: { role: 'steward' },
  };
}

/** The shell variable a demo token is exported as: `researcher-ct-cohort` → `RESEARCHER_CT_COHORT`. */
export function envName(label: string): string {
  return label.toUpperCase().replace(/[^A-Z0-9]+/g, '_');
}

/**
 * The claims that name `projects` the way the gateway reads them (auth/role.ts resolveProjects): an
 * array of prefixed names at the claim's dot path (`groups: ['/projects/ct-cohort']` for Keycloak groups).
 */
export function projectClaims(claim: ProjectClaim, projects: readonly string[]): JWTPayload {
  const keys = claim.path.split('.');
  const last = keys.pop() as string;
  const root: Record<string, unknown> = {};
  let node = root;
  for (const key of keys) {
    const next: Record<string, unknown> = {};
    node[key] = next;
    node = next;
  }
  node[last] = projects.map((p) => `${claim.prefix}${p}`);
  return root;
}

export interface DemoKeys {
  privateKey: CryptoKey;
  publicJwkFile: string;
  kid: string;
}

/** Demo signing keys, generated on first start and kept in the (git-ignored) data dir. */
export async function demoKeys(dir: string): Promise<DemoKeys> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const privateFile = join(dir, 'demo-private.jwk.json');
  const publicJwkFile = join(dir, 'demo-public.jwk.json');
  let privateJwk: JWK;
  try {
    privateJwk = JSON.parse(await readFile(privateFile, 'utf8')) as JWK;
  } catch {
    const pair = await generateKeyPair(ALG, { extractable: true });
    privateJwk = { ...(await exportJWK(pair.privateKey)), kid: `demo-${Date.now().toString(36)}`, alg: ALG };
    const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: privateJwk.kid, alg: ALG, use: 'sig' };
    await writeFile(privateFile, JSON.stringify(privateJwk), { mode: 0o600 });
    await writeFile(publicJwkFile, JSON.stringify(publicJwk));
  }
  return { privateKey: (await importJWK(privateJwk, ALG)) as CryptoKey, publicJwkFile, kid: privateJwk.kid as string };
}

/** A signed token: the role in the `roles` claim, a researcher's projects in the project claim. */
export async function signDemoToken(keys: DemoKeys, label: string, grant: DemoGrant, claim: ProjectClaim, ttl = '12h'): Promise<string> {
  const payload = grant.projects && grant.projects.length > 0 ? projectClaims(claim, grant.projects) : {};
  // One claim may carry both (`projectClaim: roles` with a prefix): the role joins the project values.
  const shared = payload['roles'];
  payload['roles'] = [grant.role, ...(Array.isArray(shared) ? shared : [])];
  return new SignJWT(payload)
    .setProtectedHeader({ alg: ALG, kid: keys.kid, typ: 'JWT' })
    .setIssuer(DEMO_ISSUER)
    .setAudience(DEMO_AUDIENCE)
    .setSubject(`demo-${label}`)
    .setIssuedAt()
    .setExpirationTime(ttl)
    .sign(keys.privateKey);
}

/** The demo's de-identification secret: random, made once, kept beside the demo keys. */
export async function demoSecret(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'deid.secret');
  try {
    await readFile(file, 'utf8');
  } catch {
    await writeFile(file, randomBytes(32).toString('base64url'), { mode: 0o600 });
  }
  return file;
}

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type CryptoKey, type JWK } from 'jose';

export const DEMO_ISSUER = 'https://deid-gateway.demo/issuer';
export const DEMO_AUDIENCE = 'deid-gateway';
const ALG = 'ES256';
/** One demo token per gateway role; the steward's is for `POST /reidentify` and `GET /audit`. */
export const DEMO_ROLES = ['clinician', 'researcher', 'uploader', 'steward'] as const;

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

/** A signed token carrying one role in the `roles` claim. */
export async function signDemoToken(keys: DemoKeys, role: string, ttl = '12h'): Promise<string> {
  return new SignJWT({ roles: [role] })
    .setProtectedHeader({ alg: ALG, kid: keys.kid, typ: 'JWT' })
    .setIssuer(DEMO_ISSUER)
    .setAudience(DEMO_AUDIENCE)
    .setSubject(`demo-${role}`)
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

import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { JWK } from 'jose';

/**
 * Reads a PEM (SPKI or certificate) or JWK / JWKS file (RFC 7517 4, 5) into public JWKs, for
 * `auth.publicKeyFiles`; read at start by `resolve.ts`, never at first use. A private key lends only its
 * public members; a symmetric key is refused (HS* keys are `auth.sharedSecret`). Throws the file
 * system's error (with its `code`) or a parse error.
 */
export function loadPublicKeyFile(file: string): JWK[] {
  const text = readFileSync(file, 'utf8').trim();
  if (text.startsWith('{')) {
    const parsed = JSON.parse(text) as { keys?: JWK[] } & JWK;
    const keys = parsed.keys ?? [parsed];
    return keys.map(publicOnly);
  }
  const jwk = createPublicKey(text).export({ format: 'jwk' }) as JWK;
  return [jwk];
}

function publicOnly(jwk: JWK): JWK {
  if (jwk.kty === 'oct') throw new Error('a symmetric key is not a public key; use auth.sharedSecret');
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = jwk;
  return pub;
}

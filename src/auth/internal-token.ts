// The DIMSE research face (dimse/research-*.ts) is served by this gateway's own DICOMweb routes, so a
// C-FIND or C-GET takes exactly the path a researcher's HTTP request takes: project membership, reverse
// mapping, no oracle, the pixel policy, the audit trail. Its requests carry a token minted here, signed
// with a key pair made in memory at start and never written anywhere: no one outside this process can
// make one, and an IdP's token can never be taken for one (its issuer is a random URN of this process).
import { randomBytes } from 'node:crypto';
import { SignJWT, generateKeyPair, jwtVerify, type JWTPayload } from 'jose';
import { TokenInvalidError } from './errors.ts';
import type { TokenVerifier } from './token.ts';

const ALG = 'ES256';
/** A minted token lives this long: one C-FIND or one sub-operation's request. */
const LIFETIME_SEC = 120;

export interface InternalIssuer {
  /** `urn:deid-gateway:dimse:<random>`: the `iss` and `aud` of every token minted here. */
  readonly issuer: string;
  /** A bearer token naming the researcher role in one project, for `subject` (e.g. `dimse:RESEARCH_WS`). */
  mint(subject: string, project: string): Promise<string>;
}

/** The claim naming the project of a minted token. */
export const INTERNAL_PROJECT_CLAIM = 'project';

/** What verifies the tokens minted here (http/auth.ts). */
export interface InternalTokens {
  readonly issuer: string;
  verify(token: string): Promise<JWTPayload>;
}

export async function createInternalIssuer(): Promise<InternalIssuer & InternalTokens> {
  const { privateKey, publicKey } = await generateKeyPair(ALG, { extractable: false });
  const issuer = `urn:deid-gateway:dimse:${randomBytes(16).toString('hex')}`;
  return {
    issuer,
    mint: (subject, project) =>
      new SignJWT({ [INTERNAL_PROJECT_CLAIM]: project })
        .setProtectedHeader({ alg: ALG })
        .setIssuer(issuer)
        .setAudience(issuer)
        .setSubject(subject)
        .setIssuedAt()
        .setExpirationTime(`${LIFETIME_SEC}s`)
        .sign(privateKey),
    async verify(token) {
      try {
        return (await jwtVerify(token, publicKey, { issuer, audience: issuer, algorithms: [ALG], requiredClaims: ['exp', 'sub', INTERNAL_PROJECT_CLAIM] })).payload;
      } catch (error) {
        throw new TokenInvalidError('bad internal token', { cause: error });
      }
    },
  };
}

/** The token's `iss`, read without verifying (only to choose the verifier; the chosen one verifies it). */
function unverifiedIssuer(authorization: string): string | undefined {
  const payload = /^Bearer [A-Za-z0-9\-_]+\.([A-Za-z0-9\-_]+)\.[A-Za-z0-9\-_]*$/.exec(authorization)?.[1];
  if (payload === undefined || payload.length > 4096) return undefined;
  try {
    const iss = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { iss?: unknown } | null)?.iss;
    return typeof iss === 'string' ? iss : undefined;
  } catch {
    return undefined;
  }
}

/** The IdP's verifier, with this process's own tokens verified by their own key (and only by it). */
export function withInternalTokens(verify: TokenVerifier, internal: InternalTokens): TokenVerifier {
  return async (authorization) => {
    if (authorization !== undefined && unverifiedIssuer(authorization) === internal.issuer) return internal.verify(authorization.slice('Bearer '.length));
    return verify(authorization);
  };
}

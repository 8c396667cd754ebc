// The config in one pass, before anything starts: the schema (load.ts), then every secret, key file and
// de-identification policy the config names, read and checked here rather than at first use. Every
// problem is reported at once, each naming its key, as one ConfigError (the CLI exits 78, EX_CONFIG).
// The checks run on the raw object too, so a schema error elsewhere does not hide a missing file.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { JWK } from 'jose';
import { createPolicy, type DeidPolicy } from '../deid/deidentify.ts';
import type { PixelPolicyConfig, PixelPolicyContext } from '../deid/pixel-policy.ts';
import type { StoredProfile } from '../store/project-store.ts';
import { ProjectDefinitionError } from '../projects/errors.ts';
import { projectDefinition } from '../projects/project.ts';
import { DeidPolicyError } from '../deid/errors.ts';
import { overridesKeepingBasicRemoved } from '../deid/profile.ts';
import { ConfigError } from './errors.ts';
import { applyEnvOverrides, readConfigFile, readSecret, validateConfig } from './load.ts';
import { loadPublicKeyFile } from './public-key-file.ts';
import { configSchema, secretRef, type GatewayConfig, type PixelsConfig } from './schema.ts';

export type RestrictedRole = 'researcher' | 'uploader';

/** An override that keeps what the Basic Profile does not keep: allowed, and logged as a warning at start. */
interface KeptOverride {
  readonly role: RestrictedRole;
  readonly tag: string;
  readonly keyword: string | undefined;
  readonly basic: string | undefined;
}

export interface ResolvedConfig {
  readonly config: GatewayConfig;
  readonly secrets: {
    /** The `Authorization` value for the PACS (`upstream.auth`), if it asks for one. */
    readonly upstreamAuthorization: string | undefined;
    readonly sharedSecret: string | undefined;
    readonly storePassword: string | undefined;
    readonly metricsToken: string | undefined;
    /** The `Authorization` value for `dimse.forward.destination` with `auth.type: bearer`. */
    readonly destinationAuthorization: string | undefined;
    /** The OAuth 2.0 client secret of `dimse.forward.destination` with `auth.type: oauth2` (RFC 6749 2.3.1). */
    readonly destinationClientSecret: string | undefined;
    /** `audit.syslog.tls`: the PEM texts of the receiver's CA, our certificate and our key, read at start. */
    readonly auditSyslogTls: { readonly ca?: string; readonly cert?: string; readonly key?: string } | undefined;
  };
  /** `auth.publicKeyFiles`, read and converted to public JWKs. */
  readonly publicKeys: readonly JWK[];
  /** The PS3.15 policy per restricted role, built with `deid.secret`; undefined without a `deid` section. */
  readonly deid:
    | {
        /**
         * `researcher`: the configured researcher profile (the conformance statement; the profile of a
         * project without one of its own). `uploader`: the uploads' policy, in the UPLOAD_SCOPE.
         */
        readonly policies: Readonly<Record<RestrictedRole, DeidPolicy>>;
        readonly keptOverrides: readonly KeptOverride[];
        /** Profiles whose pixel policy is explicitly off (`pixels: { enabled: false }`): to be logged as a warning at start. */
        readonly pixelsOff: readonly string[];
        /** A policy in `scope` with `profile` (absent: the researcher profile); DeidPolicyError if it is invalid. */
        readonly scopedPolicy: (profile: StoredProfile | undefined, scope: string) => DeidPolicy;
      }
    | undefined;
}

/** The uploader's pseudonym scope (projects/project.ts UPLOAD_SCOPE, which config/ cannot import). */
const UPLOAD_SCOPE = 'upload';

/** A stored profile may carry a pixel policy (a project's, from the config or the store). */
type ProfileWithPixels = Omit<StoredProfile, 'pixels'> & { readonly pixels?: PixelsConfig | PixelPolicyConfig };

type ScriptTexts = Map<string, string | { readonly error: string }>;

/**
 * The CTP scripts the config names (`pixels.ctpScripts` of any profile), read at start: a relative
 * name is read from `baseDir` (the config file's directory). A file that cannot be read is kept as
 * its error, which the policy reports under the key that names it.
 */
function scriptReader(baseDir: string): { texts: ScriptTexts; read: (names: readonly unknown[] | undefined) => void } {
  const texts: ScriptTexts = new Map();
  const read = (names: readonly unknown[] | undefined): void => {
    for (const name of names ?? []) {
      if (typeof name !== 'string' || name === '' || texts.has(name)) continue;
      try {
        texts.set(name, readFileSync(path.resolve(baseDir, name), 'utf8'));
      } catch (cause) {
        const code = (cause as NodeJS.ErrnoException).code;
        texts.set(name, { error: `cannot read file ${name}${code && /^E[A-Z]+$/.test(code) ? ` (${code})` : ''}` });
      }
    }
  };
  return { texts, read };
}

/** `pixels.ctpScripts` of a profile-shaped value, whatever else it holds. */
function scriptNames(profile: unknown): readonly unknown[] | undefined {
  const names = at(profile, 'pixels.ctpScripts');
  return Array.isArray(names) ? names : undefined;
}

/** Reads the file, applies environment overrides, validates, then resolves: all problems in one ConfigError. */
export function loadResolvedConfig(file: string, env: NodeJS.ProcessEnv = process.env): ResolvedConfig {
  const raw = applyEnvOverrides(readConfigFile(file), env);
  const baseDir = path.dirname(path.resolve(file));
  let config: GatewayConfig | undefined;
  const problems: string[] = [];
  try {
    config = validateConfig(raw);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    problems.push(...error.problems);
  }
  const resolved = resolveParts(config ?? raw, env, baseDir);
  problems.push(...resolved.problems);
  if (problems.length > 0 || !config) throw new ConfigError(problems);
  return finish(config, resolved);
}

/**
 * Reads and checks what a validated config names (secrets, key files, policies). CTP scripts with a
 * relative name are read from `options.baseDir` (default: the working directory).
 */
export function resolveConfig(config: GatewayConfig, env: NodeJS.ProcessEnv = process.env, options: { baseDir?: string } = {}): ResolvedConfig {
  const resolved = resolveParts(config, env, options.baseDir ?? process.cwd());
  if (resolved.problems.length > 0) throw new ConfigError(resolved.problems);
  return finish(config, resolved);
}

/**
 * A role's PS3.15 policy from the config, with any secret (the conformance statement passes a
 * throw-away one: nothing it prints depends on the key). Policy problems are reported as config keys.
 */
export function policyFor(config: GatewayConfig, role: RestrictedRole, secret: string, baseDir: string = process.cwd()): DeidPolicy {
  if (!config.deid) throw new ConfigError(['deid: required for restricted roles']);
  const problems: string[] = [];
  const scripts = scriptReader(baseDir);
  scripts.read(config.deid.profiles[role].pixels?.ctpScripts);
  const policy = buildPolicy(config.deid, role, secret, problems, scripts.texts);
  if (!policy) throw new ConfigError(problems);
  return policy;
}

type Deid = NonNullable<GatewayConfig['deid']>;

interface Parts {
  problems: string[];
  upstreamAuthorization?: string;
  sharedSecret?: string;
  storePassword?: string;
  metricsToken?: string;
  destinationAuthorization?: string;
  destinationClientSecret?: string;
  auditSyslogTls?: { ca?: string; cert?: string; key?: string };
  publicKeys: JWK[];
  policies?: Record<RestrictedRole, DeidPolicy>;
  deidSecret?: string;
  scripts?: ReturnType<typeof scriptReader>;
}

function finish(config: GatewayConfig, parts: Parts): ResolvedConfig {
  const keptOverrides = parts.policies
    ? (['researcher', 'uploader'] as const).flatMap((role) =>
        overridesKeepingBasicRemoved((parts.policies as Record<RestrictedRole, DeidPolicy>)[role].profile).map(
          (k): KeptOverride => ({ role, tag: k.tag, keyword: k.keyword, basic: k.basic }),
        ),
      )
    : [];
  const pixelsOff = config.deid
    ? [
        ...(['researcher', 'uploader'] as const).filter((role) => config.deid?.profiles[role].pixels?.enabled === false).map((role) => `deid.profiles.${role}`),
        ...Object.entries(config.projects).filter(([, p]) => p.profile?.pixels?.enabled === false).map(([name]) => `projects.${name}.profile`),
      ]
    : [];
  return Object.freeze({
    config,
    secrets: Object.freeze({
      upstreamAuthorization: parts.upstreamAuthorization,
      sharedSecret: parts.sharedSecret,
      storePassword: parts.storePassword,
      metricsToken: parts.metricsToken,
      destinationAuthorization: parts.destinationAuthorization,
      destinationClientSecret: parts.destinationClientSecret,
      auditSyslogTls: parts.auditSyslogTls && Object.freeze(parts.auditSyslogTls),
    }),
    publicKeys: Object.freeze(parts.publicKeys),
    deid:
      parts.policies && config.deid && parts.deidSecret !== undefined
        ? Object.freeze({
            policies: Object.freeze(parts.policies),
            keptOverrides: Object.freeze(keptOverrides),
            pixelsOff: Object.freeze(pixelsOff),
            scopedPolicy: scopedPolicyFactory(config.deid, parts.deidSecret, parts.scripts ?? scriptReader(process.cwd())),
          })
        : undefined,
  });
}

/** The value at a dotted path of a (possibly invalid) config object. */
function at(node: unknown, path: string): unknown {
  for (const key of path.split('.')) {
    if (typeof node !== 'object' || node === null || Array.isArray(node)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** Works on a validated config or, after a schema failure, on the raw object: each part checked where it is well formed. */
function resolveParts(source: unknown, env: NodeJS.ProcessEnv, baseDir: string): Parts {
  const problems: string[] = [];
  const scripts = scriptReader(baseDir);
  scripts.read(scriptNames(at(source, 'deid.profiles.researcher')));
  scripts.read(scriptNames(at(source, 'deid.profiles.uploader')));
  const projectsNode = at(source, 'projects');
  if (typeof projectsNode === 'object' && projectsNode !== null) for (const p of Object.values(projectsNode)) scripts.read(scriptNames(at(p, 'profile')));
  const secret = (key: string): string | undefined => {
    const ref = secretRef.safeParse(at(source, key));
    if (!ref.success) return undefined; // absent, or malformed: the schema names it
    try {
      return readSecret(ref.data, env, key);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(...error.problems);
      return undefined;
    }
  };

  const parts: Parts = { problems, publicKeys: [], scripts };
  const upstreamAuth = at(source, 'upstream.auth.type');
  if (upstreamAuth === 'basic') {
    const password = secret('upstream.auth.password');
    const username = at(source, 'upstream.auth.username');
    // RFC 7617 2: user-id ":" password, base64.
    if (password !== undefined && typeof username === 'string') {
      parts.upstreamAuthorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    }
  } else if (upstreamAuth === 'bearer') {
    const token = secret('upstream.auth.token');
    if (token !== undefined) parts.upstreamAuthorization = `Bearer ${token}`; // RFC 6750 2.1
  }
  parts.sharedSecret = secret('auth.sharedSecret');
  if (at(source, 'store.type') === 'postgres') parts.storePassword = secret('store.password');
  if (at(source, 'metrics.auth.type') === 'bearer') parts.metricsToken = secret('metrics.auth.token');
  resolveDestination(source, secret, parts);
  resolveAuditSyslogTls(source, secret, parts);

  const keyFiles = at(source, 'auth.publicKeyFiles');
  if (Array.isArray(keyFiles)) {
    keyFiles.forEach((file, i) => {
      if (typeof file !== 'string' || file === '') return; // the schema names it
      try {
        const keys = loadPublicKeyFile(file);
        if (keys.length === 0) problems.push(`auth.publicKeyFiles.${i}: ${file} holds no key`);
        parts.publicKeys.push(...keys);
      } catch (cause) {
        const code = (cause as NodeJS.ErrnoException).code;
        problems.push(
          code && /^E[A-Z]+$/.test(code)
            ? `auth.publicKeyFiles.${i}: cannot read file ${file} (${code})`
            : `auth.publicKeyFiles.${i}: ${file} is not a public key (PEM SPKI or certificate, JWK or JWKS)`,
        );
      }
    });
  }

  if (at(source, 'deid') !== undefined) {
    const deidSecret = secret('deid.secret');
    const deid = configSchema.shape.deid.safeParse(at(source, 'deid'));
    if (deid.success && deid.data) {
      // Without a readable secret the profiles are still checked (with a throw-away key), so their
      // problems are reported in the same pass; the policies are only kept with the real one.
      const key = deidSecret ?? 'a-throw-away-key-for-checking-only';
      const researcher = buildPolicy(deid.data, 'researcher', key, problems, scripts.texts);
      const uploader = buildPolicy(deid.data, 'uploader', key, problems, scripts.texts);
      if (deidSecret !== undefined && researcher && uploader) {
        parts.policies = { researcher, uploader };
        parts.deidSecret = deidSecret;
      }
    }
  }
  checkProjects(source, problems, scripts.texts);
  return parts;
}

/**
 * `dimse.forward.destination`: its secret, read like the upstream's (a file or an environment variable,
 * every problem named by its key). A value that cannot go in an HTTP header (RFC 9110 5.5: no control
 * character) or, for a client secret, outside RFC 6749 A.2's VSCHAR, is a config error too.
 */
function resolveDestination(source: unknown, secret: (key: string) => string | undefined, parts: Parts): void {
  const type = at(source, 'dimse.forward.destination.auth.type');
  if (type === 'bearer') {
    const token = secret('dimse.forward.destination.auth.token');
    if (token === undefined) return;
    // RFC 6750 2.1: b64token.
    if (/^[A-Za-z0-9\-._~+/]+=*$/.test(token)) parts.destinationAuthorization = `Bearer ${token}`;
    else parts.problems.push('dimse.forward.destination.auth.token: not a bearer token (RFC 6750 2.1 b64token characters)');
  } else if (type === 'oauth2') {
    const clientSecret = secret('dimse.forward.destination.auth.clientSecret');
    const clientId = at(source, 'dimse.forward.destination.auth.clientId');
    if (typeof clientId === 'string' && !/^[\x20-\x7e]+$/.test(clientId)) parts.problems.push('dimse.forward.destination.auth.clientId: printable ASCII only (RFC 6749 A.1 VSCHAR)');
    if (clientSecret === undefined) return;
    if (/^[\x20-\x7e]+$/.test(clientSecret)) parts.destinationClientSecret = clientSecret;
    else parts.problems.push('dimse.forward.destination.auth.clientSecret: printable ASCII only (RFC 6749 A.2 VSCHAR)');
  }
}

/** `audit.syslog.tls`: the CA and certificate files and the key (a secret reference), read now, as PEM. */
function resolveAuditSyslogTls(source: unknown, secret: (key: string) => string | undefined, parts: Parts): void {
  if (at(source, 'audit.syslog.transport') !== 'tls') return;
  const tls: { ca?: string; cert?: string; key?: string } = {};
  for (const name of ['ca', 'cert'] as const) {
    const file = at(source, `audit.syslog.tls.${name}`);
    if (typeof file !== 'string' || file === '') continue;
    try {
      const pem = readFileSync(file, 'utf8');
      if (/-----BEGIN CERTIFICATE-----/.test(pem)) tls[name] = pem;
      else parts.problems.push(`audit.syslog.tls.${name}: ${file} holds no PEM certificate`);
    } catch (cause) {
      parts.problems.push(`audit.syslog.tls.${name}: cannot read file ${file} (${(cause as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  const key = at(source, 'audit.syslog.tls.key') === undefined ? undefined : secret('audit.syslog.tls.key');
  if (key !== undefined) {
    if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) tls.key = key;
    else parts.problems.push('audit.syslog.tls.key: not a PEM private key');
  }
  parts.auditSyslogTls = tls;
}

/** Each bootstrap project: its definition (projects/project.ts) and its own profile, if any. */
function checkProjects(source: unknown, problems: string[], scripts: ScriptTexts): void {
  const projects = configSchema.shape.projects.safeParse(at(source, 'projects'));
  if (!projects.success) return; // the schema names it
  const entries = Object.entries(projects.data);
  if (entries.length > 0 && at(source, 'deid') === undefined) problems.push('projects: need a deid section (researchers are served de-identified)');
  for (const [name, input] of entries) {
    try {
      projectDefinition(name, input);
    } catch (error) {
      if (!(error instanceof ProjectDefinitionError)) throw error;
      problems.push(...error.issues.map((issue) => `projects.${name}.${issue}`));
    }
    if (!input.profile) continue;
    try {
      createPolicy({
        secret: 'a-throw-away-key-for-checking-only',
        profile: Object.fromEntries(input.profile.options.map((option) => [option, true])),
        overrides: input.profile.overrides,
        ...(input.profile.pixels ? { pixels: input.profile.pixels } : {}),
        pixelScripts: scripts,
      });
    } catch (error) {
      if (!(error instanceof DeidPolicyError)) throw error;
      problems.push(...error.issues.map((issue) => `projects.${name}.${issue}`));
    }
  }
}

/**
 * Researcher policies per scope and profile (a project's), each built once. A stored profile's CTP
 * scripts were read at start when the config names them; one named only in the store is read on first
 * use, from the same directory.
 */
function scopedPolicyFactory(deid: Deid, secret: string, scripts: ReturnType<typeof scriptReader>): (profile: StoredProfile | undefined, scope: string) => DeidPolicy {
  const built = new Map<string, DeidPolicy>();
  return (profile, scope) => {
    const chosen: ProfileWithPixels = profile ?? deid.profiles.researcher;
    const key = JSON.stringify([scope, chosen.options, Object.entries(chosen.overrides), chosen.pixels ?? null]);
    let policy = built.get(key);
    if (policy === undefined) {
      scripts.read(chosen.pixels?.ctpScripts);
      policy = createPolicy({
        ...(chosen.pixels ? { pixels: chosen.pixels } : {}),
        pixelScripts: scripts.texts,
        secret,
        scope,
        profile: Object.fromEntries(chosen.options.map((name) => [name, true])),
        overrides: chosen.overrides,
        dateShift: deid.dateShift,
        pseudonymMode: 'deterministic',
      });
      built.set(key, policy);
    }
    return policy;
  };
}

/** createPolicy with its issues renamed to the config keys they come from. */
function buildPolicy(deid: Deid, role: RestrictedRole, secret: string, problems: string[], scripts: PixelPolicyContext['scripts']): DeidPolicy | undefined {
  const profile = deid.profiles[role];
  try {
    return createPolicy({
      secret,
      ...(profile.pixels ? { pixels: profile.pixels } : {}),
      ...(scripts ? { pixelScripts: scripts } : {}),
      profile: Object.fromEntries(profile.options.map((name) => [name, true])),
      overrides: profile.overrides,
      dateShift: deid.dateShift,
      pseudonymMode: role === 'uploader' && deid.uploadPseudonyms === 'fresh' ? 'fresh' : 'deterministic',
      // Uploads are keyed in a scope of their own: an uploaded copy never carries a pseudonym that a
      // project's researcher sees for the same original (projects have theirs: scopedPolicy).
      ...(role === 'uploader' ? { scope: UPLOAD_SCOPE } : {}),
    });
  } catch (error) {
    if (!(error instanceof DeidPolicyError)) throw error;
    for (const issue of error.issues) {
      const key = issue.startsWith('profile.')
        ? `deid.profiles.${role}.${issue.slice('profile.'.length)}`
        : issue.startsWith('pseudonymMode')
          ? `deid.uploadPseudonyms${issue.slice('pseudonymMode'.length)}`
          : `deid.${issue}`;
      // The secret and date-shift range are shared by both roles: reported once.
      if (!problems.includes(key)) problems.push(key);
    }
    return undefined;
  }
}

import { z } from 'zod';
import { TABLE_E1_1_OPTION_COLUMNS } from '../deid/profile-table.generated.ts';
import { parseAddressRange } from './address-range.ts';

/** A project's name, as projects/project.ts PROJECT_NAME checks it (imported, it would close a cycle through store/). */
const PROJECT_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/**
 * Gateway roles. The order is the default precedence: most restrictive first. `steward` (re-identification
 * and the audit trail, no DICOMweb) comes after researcher and uploader, so a token holding one of those and
 * steward stays pseudonymous (whoever sees the de-identified data does not also map it back: separation of
 * duties), and before clinician, whose PACS access is the wider one.
 */
const ROLES = ['researcher', 'uploader', 'steward', 'clinician'] as const;
export type Role = (typeof ROLES)[number];

/** Paths the gateway serves itself, outside DICOMweb: `server.basePath` may not lie on or under one. */
const OWN_ROUTES = ['/projects', '/withdrawals', '/steward', '/audit', '/reidentify', '/viewer', '/upload', '/metrics', '/dimse', '/healthz', '/readyz', '/conformance', '/openapi.json'];

/** A secret is never written in the config file itself: it names a file or an environment variable. */
export const secretRef = z
  .object({ file: z.string().min(1).optional(), env: z.string().min(1).optional() })
  .strict()
  .refine((s) => Boolean(s.file) !== Boolean(s.env), { message: 'give exactly one of "file" or "env"' });
export type SecretRef = z.infer<typeof secretRef>;

/**
 * The pixel policy of a profile (issue 16; deid/pixel-policy.ts): per instance, pixels kept, redacted
 * by a rule, or the instance withheld. The shape is checked here; conditions (attribute keywords,
 * regular expressions) and the CTP scripts are checked when the policy is built (config/resolve.ts),
 * every problem named by its key. Absent: the product defaults (risky instances withheld, SR/PR/KO and
 * encapsulated documents filtered).
 */
const riskyAction = z.enum(['withhold', 'allow']);
const condition = z.record(z.string(), z.unknown());
/** A condition, or a list of conditions of which any may hold. */
const match = z.union([condition, z.array(condition).min(1)]);
const rectangle = z
  .object({ x: z.number().int().min(0), y: z.number().int().min(0), width: z.number().int().min(1), height: z.number().int().min(1) })
  .strict();
export const pixelsSchema = z
  .object({
    /** false: every pixel is kept as it is (an explicit choice, logged as a warning at start). */
    enabled: z.boolean().default(true),
    /** Each risky criterion: withhold (the default) or allow. Modality and Image Type maps merge over the defaults. */
    risky: z
      .object({
        burnedInAnnotation: riskyAction.optional(),
        recognizableVisualFeatures: riskyAction.optional(),
        encapsulatedDocument: riskyAction.optional(),
        modality: z.record(z.string(), riskyAction).optional(),
        imageType: z.record(z.string(), riskyAction).optional(),
        sopClass: z.object({ secondaryCapture: riskyAction.optional(), video: riskyAction.optional() }).strict().optional(),
      })
      .strict()
      .optional(),
    /** Series filters (absent: SR unless cleanStructuredContent, PR, KO, Encapsulated Document; [] none). */
    filters: z.array(z.object({ name: z.string().min(1), exclude: match }).strict()).optional(),
    /** Redaction rules, tried in order (then the CTP scripts' signatures); the first that matches wins. */
    rules: z.array(z.object({ name: z.string().min(1), match, rectangles: z.array(rectangle).min(1) }).strict()).optional(),
    /** RSNA CTP DicomPixelAnonymizer scripts, relative to the config file's directory. */
    ctpScripts: z.array(z.string().min(1)).optional(),
    /**
     * Issue 18: a risky instance no rule covers is OCR-redacted (text regions found by the top-level `ocr`
     * engine, blanked in every frame) instead of withheld; if OCR fails, it stays withheld. Default false.
     */
    ocr: z.boolean().optional(),
  })
  .strict();

/**
 * The OCR engine (issue 18; pixel/text-detector.ts, dicomweb/text-regions.ts), shared by every profile and
 * project whose `pixels.ocr` is true. Nothing of it is started until the first detection.
 */
export const ocrSchema = z
  .object({
    /** Worker threads, each holding one OCR engine: the most frames read at once. */
    workers: z.number().int().min(1).max(16).default(1),
    /** The longest one frame may take, queueing included; past it the instance is withheld. */
    timeoutMs: z.number().int().min(1).max(600_000).default(20_000),
    /** Pixels added on every side of each text region found. */
    marginPx: z.number().int().min(0).max(256).default(4),
    /** Frames waiting for a worker beyond which a detection is refused at once (the instance withheld). */
    maxQueue: z.number().int().min(0).max(10_000).default(32),
    /** Frames read: the first and every Nth (widened so that at most maxSampledFrames spread over the whole instance). */
    sampleEvery: z.number().int().min(1).max(10_000).default(10),
    maxSampledFrames: z.number().int().min(1).max(256).default(8),
    /** How long the regions found for a series (and layout) are reused; 0: never reused. */
    cacheTtlSeconds: z.number().int().min(0).max(86_400).default(600),
  })
  .strict();
export type OcrConfig = z.infer<typeof ocrSchema>;
export type PixelsConfig = z.infer<typeof pixelsSchema>;

/** PS3.15 E.3: the Basic Profile plus any of the ten options (named as Table E.1-1's columns), and per-tag overrides. */
const PROFILE_OPTION_NAMES = TABLE_E1_1_OPTION_COLUMNS;
const profile = z
  .object({
    options: z.array(z.enum(PROFILE_OPTION_NAMES)).default([]),
    /** Tag or keyword → `keep | remove | empty | replace:<value> | hash`. */
    overrides: z.record(z.string(), z.string()).default({}),
    /** The pixel policy (absent: the defaults). */
    pixels: pixelsSchema.optional(),
  })
  .strict();

const upstreamAuth = z.discriminatedUnion('type', [
  z.object({ type: z.literal('none') }).strict(),
  z.object({ type: z.literal('basic'), username: z.string().min(1), password: secretRef }).strict(),
  z.object({ type: z.literal('bearer'), token: secretRef }).strict(),
]);

const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
const SYMMETRIC = ['HS256', 'HS384', 'HS512'] as const;
const ALGORITHMS = [...ASYMMETRIC, ...SYMMETRIC] as const;
const isSymmetric = (alg: string): boolean => alg.startsWith('HS');

/**
 * Keys travel only over https, or http to a loopback host (a provider on this machine, the tests), or with
 * `auth.allowHttp` (an explicit choice: anyone on the path could then swap the keys).
 */
export function secureTransport(url: URL, allowHttp: boolean): boolean {
  if (url.protocol === 'https:') return true;
  if (url.protocol !== 'http:') return false;
  return allowHttp || url.hostname === 'localhost' || url.hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(url.hostname);
}

/** Whether `issuer` can name a provider to discover (OpenID Connect Discovery 1.0 §2: https, no query or fragment). */
function discoverableIssuer(issuer: string | readonly string[], allowHttp: boolean): boolean {
  if (typeof issuer !== 'string' || !URL.canParse(issuer)) return false;
  const url = new URL(issuer);
  return secureTransport(url, allowHttp) && !url.search && !url.hash && !url.username && !url.password;
}

/**
 * Whether the gateway finds its keys through OpenID Connect Discovery: `auth.discovery`, which by default is
 * on exactly when no other key source (jwksUrl, publicKeyFiles, sharedSecret) is configured.
 */
export function usesDiscovery(auth: { discovery?: boolean | undefined; jwksUrl?: string | undefined; publicKeyFiles: readonly string[]; sharedSecret?: unknown }): boolean {
  return auth.discovery ?? (!auth.jwksUrl && auth.publicKeyFiles.length === 0 && !auth.sharedSecret);
}

/** PS3.5 6.2 AE: up to 16 characters of the Default Character Repertoire, no backslash or control character, not only spaces. */
const aeTitle = z
  .string()
  .regex(/^[\x20-\x5b\x5d-\x7e]{1,16}$/, 'an AE title: 1 to 16 printable ASCII characters, no backslash')
  .refine((t) => t.trim() !== '', 'an AE title is not only spaces');

/** A loopback host as the WHATWG URL parser gives it (`127.1` and `0x7f.1` arrive as 127.0.0.1): `localhost`, 127.0.0.0/8, [::1]. */
const isLoopbackHost = (hostname: string): boolean => hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);

/**
 * A URL the DIMSE ingress sends credentials or studies to: http(s), without userinfo, query or fragment
 * (as `server.publicUrl`), and plain http only to a loopback host (a token or a client secret never
 * crosses a network in clear).
 */
const serviceUrl = z.string().superRefine((text, ctx) => {
  // One problem per URL, the first that applies.
  const url = URL.canParse(text) ? new URL(text) : undefined;
  const problem =
    url === undefined || (url.protocol !== 'https:' && url.protocol !== 'http:')
      ? 'an http(s) URL'
      : url.username || url.password || url.search || url.hash
        ? 'an http(s) URL without credentials, query or fragment'
        : url.protocol === 'http:' && !isLoopbackHost(url.hostname)
          ? 'https, or http to a loopback host (localhost, 127.0.0.0/8, [::1]) only'
          : undefined;
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/**
 * The DICOM (DIMSE) listener, off by default: C-ECHO and C-STORE from the callers listed, each instance
 * spooled to `<dataDir>/spool`, de-identified with the uploader's policy and forwarded by STOW-RS to the
 * upstream PACS.
 */
const dimse = z
  .object({
    enabled: z.boolean().default(false),
    /** The Called AE Title the listener answers to (PS3.8 9.3.2); an association to another is rejected. */
    aeTitle: aeTitle.default('DEID_GATEWAY'),
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(11112),
    /** Calling AE titles allowed, each from the listed addresses or CIDR blocks; any other is rejected at association. */
    callers: z
      .array(
        z
          .object({
            aeTitle,
            hosts: z.array(z.string().refine((t) => parseAddressRange(t) !== undefined, 'an IP address or CIDR block, such as 10.0.0.0/8 or 192.0.2.7')).min(1),
            /**
             * `uploader` (the default): C-STORE in, de-identified and forwarded. `researcher`: C-FIND, C-GET and
             * C-MOVE on the de-identified view of `project` (PS3.4 Annex C), and no C-STORE.
             */
            role: z.enum(['uploader', 'researcher']).default('uploader'),
            /** The de-identification profile the caller's studies get; only the uploader's for now. */
            profile: z.literal('uploader').default('uploader'),
            /** Overrides `dimse.pseudonyms` for this caller. */
            pseudonyms: z.enum(['keyed', 'fresh']).optional(),
            /** A researcher caller: the project whose view it queries and retrieves (as a token naming that one project). */
            project: z.string().regex(PROJECT_NAME, 'a project name').optional(),
            /** A researcher caller: the `moveDestinations` (by AE title) its C-MOVE may name; none by default (any other: A801). */
            moveDestinations: z.array(aeTitle).optional(),
          })
          .strict()
          .superRefine((c, ctx) => {
            if (c.role === 'researcher' && c.project === undefined) ctx.addIssue({ code: 'custom', path: ['project'], message: 'a researcher caller names its project' });
            if (c.role === 'uploader' && c.project !== undefined) ctx.addIssue({ code: 'custom', path: ['project'], message: 'only a researcher caller names a project' });
            if (c.role === 'uploader' && c.moveDestinations !== undefined) ctx.addIssue({ code: 'custom', path: ['moveDestinations'], message: 'only a researcher caller names move destinations' });
          }),
      )
      .default([])
      .refine((list) => new Set(list.map((c) => c.aeTitle.trim())).size === list.length, 'each calling AE title is listed once'),
    /** The research face (PS3.4 C.4.2 C-MOVE): the only AEs a C-MOVE may send to, by title, host and port. */
    moveDestinations: z
      .array(z.object({ aeTitle, host: z.string().min(1), port: z.number().int().min(1).max(65535) }).strict())
      .default([])
      .refine((list) => new Set(list.map((d) => d.aeTitle.trim())).size === list.length, 'each destination AE title is listed once'),
    /** The research face: C-FIND answers at most this many matches (then A700 is not sent: the rest are cut, and a warning logged). */
    maxFindResults: z.number().int().positive().default(1_000),
    /** `keyed`: a study sent twice lands as one; `fresh`: unlinkable per study (a salt kept while the study is open). */
    pseudonyms: z.enum(['keyed', 'fresh']).default('keyed'),
    spool: z
      .object({
        /** Bytes the spool (incoming, queued and quarantined originals) may hold; past it C-STORE answers A700. */
        quotaBytes: z.number().int().positive().default(10 * 1024 ** 3),
        /**
         * A study stays open this long after its last instance: more instances (another association) join
         * it, under the same fresh salt; an association left open this long without a new instance has its
         * studies forwarded anyway.
         */
        idleTimeoutMs: z.number().int().positive().default(60_000),
      })
      .strict()
      .prefault({}),
    forward: z
      .object({
        /** Attempts of a study whose forwarding fails for a reason that may pass (PACS down, 5xx); then quarantine. */
        maxAttempts: z.number().int().positive().default(5),
        /** First retry delay, doubled per attempt up to `maxBackoffMs`. */
        backoffMs: z.number().int().positive().default(2_000),
        maxBackoffMs: z.number().int().positive().default(300_000),
        /** Instances of a study in flight to the PACS at once. */
        concurrency: z.number().int().min(1).max(16).default(2),
        /**
         * A study still being received is forwarded in batches once it holds this many originals not yet
         * forwarded (receiving and forwarding overlap; the spool stays small); 0: only when its
         * associations end or it is idle.
         */
        batchInstances: z.number().int().min(0).default(50),
        /**
         * Where de-identified studies go: absent, the upstream PACS (`upstream.url`, its auth); present, a
         * separate DICOMweb platform by STOW-RS, with its own auth (a static bearer token, or OAuth 2.0 client
         * credentials, RFC 6749 4.4).
         */
        destination: z
          .object({
            url: serviceUrl,
            auth: z
              .discriminatedUnion('type', [
                z.object({ type: z.literal('none') }).strict(),
                z.object({ type: z.literal('bearer'), token: secretRef }).strict(),
                z
                  .object({
                    type: z.literal('oauth2'),
                    tokenUrl: serviceUrl,
                    clientId: z.string().min(1),
                    clientSecret: secretRef,
                    scope: z.string().min(1).optional(),
                    audience: z.string().min(1).optional(),
                  })
                  .strict(),
              ])
              .default({ type: 'none' }),
          })
          .strict()
          .optional(),
      })
      .strict()
      .prefault({}),
    /** The longest PDU accepted (PS3.8 9.3.1); the listener offers at most this as its Maximum Length. */
    maxPduBytes: z.number().int().min(4096).max(4 * 1024 * 1024).default(256 * 1024),
    /** A connection with no PDU for this long is aborted. */
    pduTimeoutMs: z.number().int().positive().default(60_000),
  })
  .strict()
  .superRefine((d, ctx) => {
    if (d.enabled && d.callers.length === 0) ctx.addIssue({ code: 'custom', path: ['callers'], message: 'list at least one caller when dimse.enabled' });
    // Each caller's move destinations name entries of dimse.moveDestinations (PS3.5 6.2: AE titles compared without padding).
    const destinations = new Set(d.moveDestinations.map((m) => m.aeTitle.trim()));
    for (const [i, c] of d.callers.entries()) {
      for (const [j, title] of (c.moveDestinations ?? []).entries()) {
        if (!destinations.has(title.trim())) ctx.addIssue({ code: 'custom', path: ['callers', i, 'moveDestinations', j], message: 'not an AE title of dimse.moveDestinations' });
      }
    }
  })
  .prefault({});

export const configSchema = z
  .object({
    server: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8080),
        basePath: z
          .string()
          .regex(/^\/[A-Za-z0-9._~\-/]*[^/]$/, 'a path such as /dicom-web, without a trailing slash')
          // The gateway's own routes live beside the DICOMweb base: it must not lie on or under one of them.
          .refine((p) => !OWN_ROUTES.some((r) => p === r || p.startsWith(`${r}/`)), `not one of the gateway's own paths (${OWN_ROUTES.join(', ')})`)
          .default('/dicom-web'),
        headersTimeoutMs: z.number().int().positive().default(15_000),
        requestTimeoutMs: z.number().int().positive().default(600_000),
        /**
         * The DICOMweb base URL as clients reach it (scheme, host, port, path), which every link the
         * gateway builds starts with and which it names to the PACS in `Forwarded`, as Orthanc's
         * `DicomWeb.Host`/`PublicRoot`. Absent: taken per request from a trusted proxy's headers or Host.
         */
        publicUrl: z
          .url({ protocol: /^https?$/ })
          .refine((u) => {
            const url = new URL(u);
            return !url.username && !url.password && !url.search && !url.hash;
          }, 'a base URL such as https://pacs.example.org/dicom-web, without credentials, query or fragment')
          .optional(),
        /**
         * Peers (IP addresses or CIDR blocks) whose RFC 7239 `Forwarded` and `X-Forwarded-Host`/`-Proto`
         * headers are believed; from any other peer they are ignored.
         */
        trustedProxies: z
          .array(z.string().refine((t) => parseAddressRange(t) !== undefined, 'an IP address or CIDR block, such as 10.0.0.0/8 or 192.0.2.7'))
          .default([]),
        /** Replaced by `trustedProxies`; `false` is still accepted, `true` is refused with a migration hint. */
        trustProxy: z
          .boolean()
          .refine((on) => !on, 'replaced by server.trustedProxies: list the proxies\' addresses or CIDR blocks (true trusted every peer, so any caller could choose the host and scheme of links)')
          .optional(),
      })
      .strict()
      .prefault({}),
    upstream: z
      .object({
        url: z.url({ protocol: /^https?$/ }),
        auth: upstreamAuth.default({ type: 'none' }),
        forwardCallerToken: z.boolean().default(false),
        connectTimeoutMs: z.number().int().positive().default(5_000),
        headersTimeoutMs: z.number().int().positive().default(30_000),
        bodyTimeoutMs: z.number().int().positive().default(60_000),
        /** Sends RFC 7239 `Forwarded` so the PACS builds RetrieveURLs that point at the gateway. */
        sendForwarded: z.boolean().default(true),
      })
      .strict(),
    auth: z
      .object({
        issuer: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
        audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
        /**
         * OpenID Connect Discovery 1.0: the JWKS is the one `<issuer>/.well-known/openid-configuration` names
         * (`jwks_uri`), once the document repeats the issuer exactly. Default: on when no jwksUrl, publicKeyFiles
         * or sharedSecret is set; it needs one https issuer. Refreshed as the JWKS is (jwksCacheMaxAgeMs).
         */
        discovery: z.boolean().optional(),
        jwksUrl: z.url({ protocol: /^https?$/ }).optional(),
        /** http (not https) to a host that is not loopback, for jwksUrl, the discovery document and its jwks_uri. */
        allowHttp: z.boolean().default(false),
        /**
         * When set, a token must also have been requested by one of these clients: its `azp` (Keycloak, Entra ID
         * v2), or without one its `client_id` (RFC 9068 JWT access tokens). Absent: any client of the issuer whose
         * token carries the audience.
         */
        authorizedParties: z.array(z.string().min(1)).min(1).optional(),
        /** After a JWKS fetch, an unknown `kid` refetches only once this has passed (limits refetch storms). */
        jwksCooldownMs: z.number().int().min(0).max(600_000).default(30_000),
        /** How long a fetched JWKS is trusted; a key removed by the IdP keeps verifying until then. */
        jwksCacheMaxAgeMs: z.number().int().positive().max(86_400_000).default(600_000),
        publicKeyFiles: z.array(z.string().min(1)).default([]),
        sharedSecret: secretRef.optional(),
        algorithms: z.array(z.enum(ALGORITHMS)).min(1).default([...ASYMMETRIC]),
        clockToleranceSec: z.number().int().min(0).max(300).default(30),
        maxTokenBytes: z.number().int().positive().default(16_384),
        /** Dot path to the claim that carries roles: `roles`, `realm_access.roles`, `scope`. */
        roleClaim: z.string().min(1).default('roles'),
        /** Claim value → gateway role. */
        roleMap: z.record(z.string(), z.enum(ROLES)).default({
          clinician: 'clinician',
          researcher: 'researcher',
          uploader: 'uploader',
          steward: 'steward',
        }),
        /** When a token carries several roles, the first of this list that it has wins. */
        rolePrecedence: z.array(z.enum(ROLES)).min(1).default([...ROLES]),
        /**
         * Dot path to the claim that names the researcher's projects (a string, a space-separated string
         * or an array): `project`, `projects`, `groups` (Keycloak). A researcher without one sees nothing.
         */
        projectClaim: z.string().min(1).default('project'),
        /**
         * Only claim values that start with this name projects, and it is removed: `/projects/` for Keycloak
         * groups such as `/projects/lung-ct`. Other values are ignored.
         */
        projectPrefix: z.string().default(''),
      })
      .strict()
      .superRefine((auth, ctx) => {
        const otherKeys = Boolean(auth.jwksUrl) || auth.publicKeyFiles.length > 0 || Boolean(auth.sharedSecret);
        if (auth.discovery === true && auth.jwksUrl) {
          ctx.addIssue({ code: 'custom', path: ['discovery'], message: 'the JWKS comes from jwksUrl or from discovery, not both' });
        }
        if (usesDiscovery(auth) && !discoverableIssuer(auth.issuer, auth.allowHttp)) {
          ctx.addIssue({
            code: 'custom',
            path: ['issuer'],
            message: otherKeys
              ? 'discovery needs one issuer that is an https URL (http only on loopback or with allowHttp), without query or fragment'
              : 'not one https URL (http only on loopback or with allowHttp) to discover the keys from (OpenID Connect Discovery); or configure jwksUrl, publicKeyFiles or sharedSecret',
          });
        }
        if (auth.discovery === false && !otherKeys) {
          ctx.addIssue({ code: 'custom', message: 'with discovery off, configure jwksUrl, publicKeyFiles or sharedSecret', path: [] });
        }
        if (auth.jwksUrl && !secureTransport(new URL(auth.jwksUrl), auth.allowHttp)) {
          ctx.addIssue({ code: 'custom', path: ['jwksUrl'], message: 'not https (http only to a loopback host, or with allowHttp: true)' });
        }
        const symmetric = auth.algorithms.filter(isSymmetric);
        if (symmetric.length > 0 && !auth.sharedSecret) {
          ctx.addIssue({
            code: 'custom',
            path: ['algorithms'],
            message: `${symmetric.join(', ')} allowed only with an explicit sharedSecret`,
          });
        }
        if (auth.sharedSecret && symmetric.length === 0) {
          ctx.addIssue({ code: 'custom', path: ['sharedSecret'], message: 'set, but no HS* algorithm is allowed' });
        }
      }),
    /** De-identification (PS3.15 Annex E). Without it, restricted roles are refused (fail closed). */
    deid: z
      .object({
        /** HMAC key for pseudonyms and date offsets (≥ 16 bytes); the same secret gives the same pseudonyms. */
        secret: secretRef,
        dateShift: z
          .object({ minDays: z.number().int().default(-365), maxDays: z.number().int().default(-1) })
          .strict()
          .prefault({}),
        /** Cap on a Part 10 header (everything before Pixel Data); larger is refused. */
        maxHeaderBytes: z.number().int().positive().default(64 * 1024 * 1024),
        /** Cap on one DICOM JSON dataset from the PACS. */
        maxJsonDatasetBytes: z.number().int().positive().default(16 * 1024 * 1024),
        profiles: z
          .object({
            researcher: profile.prefault({ options: ['retainLongitudinalTemporalModifiedDates'] }),
            uploader: profile.prefault({ options: ['retainLongitudinalTemporalModifiedDates'] }),
          })
          .strict()
          .prefault({}),
        /** Uploads: `keyed` (the same study twice lands as one) or `fresh` (unlinkable per upload). */
        uploadPseudonyms: z.enum(['keyed', 'fresh']).default('keyed'),
        /** `/rendered` and `/thumbnail` for researchers: server-rendered pixels can show burned-in text. */
        researcherRendered: z.boolean().default(false),
      })
      .strict()
      .optional(),
    /**
     * Projects created in the store at start when it has none of that name (bootstrap): afterwards the
     * steward API changes them, and the config does not overwrite what the store holds. A researcher
     * sees only the studies of a project the token grants, under that project's profile and pseudonyms.
     */
    projects: z
      .record(
        z.string(),
        z
          .object({
            description: z.string().max(1024).optional(),
            /** The project's own PS3.15 profile; absent: `deid.profiles.researcher`. */
            profile: profile.optional(),
            membership: z
              .object({
                /** Every study of the PACS is a member (an explicit choice). */
                all: z.boolean().optional(),
                /** Keyword → PS3.4 matching value, over study-level attributes the PACS can match. */
                query: z.record(z.string(), z.string()).optional(),
                /** Original StudyInstanceUIDs, added to the project's explicit list when it is created. */
                studies: z.array(z.string()).optional(),
              })
              .strict()
              .prefault({}),
          })
          .strict(),
      )
      .default({}),
    /**
     * QIDO-RS for the researcher. `rateLimit` (off unless set): a token bucket per token subject, in
     * process (so per replica); past it, 429 QIDO_RATE_LIMITED with Retry-After. The clinician is never limited.
     */
    qido: z
      .object({
        rateLimit: z
          .object({
            /** Queries one subject may send at once. */
            burst: z.number().int().positive(),
            /** Refill rate of the bucket. */
            perMinute: z.number().positive(),
          })
          .strict()
          .optional(),
        /**
         * The de-identified study index (issue 20; dicomweb/study-index.ts): study-level searches on
         * attributes the gateway matches itself (pseudonymous names, shifted dates) answered from an
         * index in the store instead of paging through the PACS. Built by a full scan in the background
         * at the first such search of a project of every study.
         */
        index: z
          .object({
            enabled: z.boolean().default(false),
            /**
             * Orthanc's REST root (the PACS behind `upstream.url`, asked with its auth), whose change feed
             * (`/changes`) keeps the index current: read before each answer. Absent: no change feed, and
             * the index answers only for `rescanSeconds` after each full scan (a study stored since is
             * found by the next scan).
             */
            orthancUrl: z.url({ protocol: /^https?$/ }).optional(),
            /** Age of a full scan past which the PACS is scanned again. */
            rescanSeconds: z.number().int().min(10).max(30 * 86_400).default(3_600),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    /** STOW-RS limits (413 past them). */
    stow: z
      .object({
        maxPartBytes: z.number().int().positive().default(4 * 1024 ** 3),
        maxBodyBytes: z.number().int().positive().default(64 * 1024 ** 3),
      })
      .strict()
      .prefault({}),
    store: z
      .object({
        /** `sqlite`: one embedded file; `postgres`: one database shared by several gateway replicas. */
        type: z.enum(['sqlite', 'postgres']).default('sqlite'),
        /** SQLite: relative to `dataDir`. */
        file: z.string().min(1).default('pseudonyms.sqlite'),
        /** PostgreSQL connection string, without the password (`postgres://gateway@db:5432/deid`). */
        url: z.string().regex(/^postgres(ql)?:\/\//, 'a postgres:// connection string').optional(),
        /** PostgreSQL password, if the server asks for one. */
        password: secretRef.optional(),
        poolMax: z.number().int().positive().default(10),
        cacheMaxKeys: z.number().int().positive().default(200_000),
        cacheTtlSeconds: z.number().int().positive().default(3_600),
      })
      .strict()
      .refine((s) => s.type !== 'postgres' || Boolean(s.url), { path: ['url'], message: 'required when type is postgres' })
      .prefault({}),
    /** The steward's re-identification endpoint (`POST /reidentify`): a token bucket per token subject. */
    reidentify: z
      .object({
        rateLimit: z
          .object({
            /** Pseudonyms one subject may resolve at once; also the most one request may carry. */
            burst: z.number().int().positive().default(20),
            /** Refill rate of the bucket. */
            perMinute: z.number().positive().default(60),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    /**
     * The audit trail (IHE ATNA vocabulary) is kept in the store, the source of truth; each record can
     * also be exported, after the store has it, as JSON lines in a file and as syslog (store/audit-syslog.ts).
     */
    audit: z
      .object({
        /** Relative to `dataDir`; every record is appended as one JSON line. */
        file: z.string().min(1).optional(),
        /** RFC 5424 messages over UDP (RFC 5426), TCP (RFC 6587 octet counting) or TLS (RFC 5425, ATNA's). */
        syslog: z
          .object({
            transport: z.enum(['udp', 'tcp', 'tls']),
            host: z.string().min(1),
            /** Default 514 (UDP, TCP) or 6514 (TLS). */
            port: z.number().int().min(1).max(65535).optional(),
            /** The HOSTNAME field; default this machine's name. */
            hostname: z.string().regex(/^[\x21-\x7e]{1,255}$/, 'printable ASCII, no space (RFC 5424 6.2.4)').optional(),
            /** RFC 5424 facility; 10 (security/authorization) as IHE ATNA asks. */
            facility: z.number().int().min(0).max(23).default(10),
            /** Larger messages lose their query description, then are not sent (the store keeps them). */
            maxMessageBytes: z.number().int().min(480).max(65_000).default(8_192),
            /** TCP/TLS: records held while the receiver is away; past it the oldest are dropped (and counted). */
            queueMax: z.number().int().positive().default(10_000),
            /** TLS: the receiver's CA (PEM file; default the system's), and our certificate and key for mutual authentication. */
            tls: z
              .object({ ca: z.string().min(1).optional(), cert: z.string().min(1).optional(), key: secretRef.optional(), servername: z.string().min(1).optional() })
              .strict()
              .refine((t) => Boolean(t.cert) === Boolean(t.key), { message: 'give cert and key together' })
              .optional(),
          })
          .strict()
          .refine((s) => s.transport === 'tls' || s.tls === undefined, { path: ['tls'], message: 'only with transport: tls' })
          .optional(),
      })
      .strict()
      .prefault({}),
    /**
     * `GET /metrics` (Prometheus text format): counts by route pattern, role and status, never a UID or
     * token. `auth: bearer` asks for a static token (a secret reference); `port` serves it on a listener
     * of its own at `host` (loopback by default) instead of the main one.
     */
    metrics: z
      .object({
        enabled: z.boolean().default(true),
        auth: z
          .discriminatedUnion('type', [
            z.object({ type: z.literal('none') }).strict(),
            z.object({ type: z.literal('bearer'), token: secretRef }).strict(),
          ])
          .default({ type: 'none' }),
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).optional(),
      })
      .strict()
      .prefault({}),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .strict()
      .prefault({}),
    /** The OHIF viewer at /viewer: the prebuilt dist that scripts/setup.sh unpacks (relative to the working directory). */
    viewer: z
      .object({
        enabled: z.boolean().default(false),
        dir: z.string().min(1).default('.viewer/dist'),
        /**
         * Sign in through the provider `auth.issuer` (OHIF's own `oidc`: authorization code with PKCE,
         * redirect URI `<origin>/viewer/callback`) instead of pasting a token. Absent: the paste page.
         */
        oidc: z
          .object({
            /** A public client at the provider (no secret), allowed the redirect URI `<origin>/viewer/callback`. */
            clientId: z.string().min(1),
            scope: z.string().min(1).default('openid'),
            /** RFC 8707 resource indicator to ask for, where the provider makes the access token's `aud` from it. */
            resource: z.url().optional(),
            /** Added to the authorization request, e.g. Auth0's `{ audience: … }`. */
            extraQueryParams: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/), z.string()).optional(),
            /**
             * Origins the browser may reach besides the issuer's (the viewer's CSP `connect-src`): a provider whose
             * token or revocation endpoint is on another host (Google's is). Origins only, https.
             */
            connectOrigins: z
              .array(z.url({ protocol: /^https$/ }).refine((u) => new URL(u).origin === u.replace(/\/$/, ''), 'an origin such as https://oauth2.example.org, without a path'))
              .default([]),
          })
          .strict()
          .optional(),
      })
      .strict()
      .prefault({}),
    dimse,
    /** The OCR engine of `pixels.ocr` (issue 18): its limits; started lazily, at the first detection. */
    ocr: ocrSchema.prefault({}),
    /** The SQLite store, the audit file and `tmp/` (STOW parts in flight, 0700, swept of leftovers at start): one gateway process per dataDir. */
    dataDir: z.string().min(1).default('./data'),
  })
  .strict()
  .superRefine((c, ctx) => {
    // DIMSE callers' studies are de-identified with the uploader's policy: no deid section, no listener (fail closed).
    // The browser discovers the provider from the issuer itself (OpenID Connect Discovery), as the gateway does.
    if (c.viewer.oidc && !discoverableIssuer(c.auth.issuer, c.auth.allowHttp)) ctx.addIssue({ code: 'custom', path: ['viewer', 'oidc'], message: 'needs auth.issuer to be one https URL (the provider the viewer signs in with)' });
    if (c.dimse.enabled && !c.deid) ctx.addIssue({ code: 'custom', path: ['dimse', 'enabled'], message: 'needs the deid section (the uploader policy de-identifies what DIMSE callers send)' });
  });

export type GatewayConfig = z.infer<typeof configSchema>;

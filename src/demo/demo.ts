import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { applyEnvOverrides, readConfigFile, validateConfig } from '../config/load.ts';
import { startGateway } from '../server.ts';
import { projectBaseUrl } from '../http/project-choice.ts';
import { viewerInstalled } from '../http/viewer.ts';
import { DEMO_AUDIENCE, DEMO_ISSUER, demoGrants, demoKeys, demoSecret, envName, signDemoToken } from './demo-tokens.ts';
import { demoProjects, ECHO_STUDY, LIST_PROJECT, listStudies, QUERY_PROJECT } from './demo-projects.ts';
import type { StoredProfile } from '../store/project-store.ts';
import { loadIntoOrthanc, startOrthanc } from './orthanc-process.ts';
import { readDicomFiles, samplesDir } from './samples.ts';

export interface DemoConfig {
  /** The config file with the environment's overrides applied, before the demo's own settings. */
  readonly raw: Record<string, unknown>;
  /** `dataDir` after `DEID_GATEWAY__DATADIR`, absolute (a relative one is read from the checkout). */
  readonly dataDir: string;
  /** Where the demo's signing keys and de-identification secret live: inside `dataDir`, never shared. */
  readonly keyDir: string;
}

/**
 * Reads the demo's config as `serve` would (file, then `DEID_GATEWAY__*` overrides), so every path the
 * demo derives (keys, secret, store) follows one `dataDir`: two demos with two data dirs share nothing.
 */
export function readDemoConfig(root: string, env: NodeJS.ProcessEnv): DemoConfig {
  const raw = applyEnvOverrides(readConfigFile(env['DEID_GATEWAY_CONFIG'] ?? join(root, 'config/gateway.yaml')), env);
  const dataDir = resolve(root, String(raw['dataDir'] ?? './data'));
  return { raw, dataDir, keyDir: join(dataDir, 'demo-keys') };
}

/** The demo's pixel policy (issue 16): a profile's `pixels` block, our redaction rule for the samples' echo. */
export const DEMO_PIXELS_FILE = 'config/demo-pixels.yaml';

/**
 * The de-identification profiles with the demo's pixel policy: the researcher's and the uploader's get
 * `pixels` unless the config names one for them (then the config's stands).
 */
export function withDemoPixels(profiles: unknown, pixels: Record<string, unknown>): Record<string, unknown> {
  const given = (profiles ?? {}) as Record<string, Record<string, unknown> | undefined>;
  const out: Record<string, unknown> = { ...given };
  for (const role of ['researcher', 'uploader']) {
    const profile = given[role] ?? { options: ['retainLongitudinalTemporalModifiedDates'] };
    out[role] = 'pixels' in profile ? profile : { ...profile, pixels };
  }
  return out;
}

/**
 * The demo: a throw-away Orthanc on loopback loaded with the shared samples, the gateway in front
 * of it, two projects over those samples (demo-projects.ts), and a signed token for each role and each
 * project.
 */
export async function runDemo(): Promise<void> {
  const root = resolve(import.meta.dirname, '../..');
  const { raw, dataDir, keyDir } = readDemoConfig(root, process.env);
  const keys = await demoKeys(keyDir);

  const orthanc = await startOrthanc();
  const dir = samplesDir();
  let loaded = { stored: [] as string[], refused: [] as string[] };
  if (existsSync(dir)) loaded = await loadIntoOrthanc(orthanc.httpUrl, readDicomFiles(dir));
  // The explicit project's UIDs are read from what Orthanc holds now. The config's projects are created
  // when the store has none of that name: a data dir kept from an earlier demo keeps its projects as they were.
  // Checked with the rest of the config below (validateConfig names any problem by its key).
  const pixels = readConfigFile(join(root, DEMO_PIXELS_FILE)) as StoredProfile['pixels'] & Record<string, unknown>;
  const projects = demoProjects(await listStudies(orthanc.dicomWebUrl), pixels);

  // The environment's overrides are already in `raw`; what the demo sets here (its Orthanc, its keys,
  // its secret, the absolute dataDir, its two projects beside any the config names) is not overridden
  // again. The viewer is on unless the config (file or environment) turns it off.
  const config = validateConfig({
    ...raw,
    upstream: { ...(raw['upstream'] as object), url: orthanc.dicomWebUrl, auth: { type: 'none' } },
    auth: {
      ...(raw['auth'] as object),
      issuer: DEMO_ISSUER,
      audience: DEMO_AUDIENCE,
      jwksUrl: undefined,
      publicKeyFiles: [keys.publicJwkFile],
    },
    dataDir,
    deid: {
      ...(raw['deid'] as object),
      secret: { file: await demoSecret(keyDir) },
      profiles: withDemoPixels((raw['deid'] as Record<string, unknown> | undefined)?.['profiles'], pixels),
    },
    viewer: { dir: join(root, '.viewer/dist'), enabled: true, ...(raw['viewer'] as object) },
    projects: { ...(raw['projects'] as object), ...projects.definitions },
    dimse: demoDimse(raw['dimse'] as Record<string, unknown> | undefined),
  });
  // Tokens name projects as the config says a token does (auth.projectClaim, auth.projectPrefix).
  const claim = { path: config.auth.projectClaim, prefix: config.auth.projectPrefix };
  const grants = demoGrants([QUERY_PROJECT, LIST_PROJECT]);
  const tokens = Object.fromEntries(
    await Promise.all(Object.entries(grants).map(async ([label, grant]) => [label, await signDemoToken(keys, label, grant, claim)])),
  ) as Record<string, string>;
  // The viewer's sign-in page offers the demo's reading tokens (`serve` never passes any).
  const gateway = await startGateway(config, { viewerDemoTokens: tokens });
  const basePath = config.server.basePath;
  const base = `${gateway.url}${basePath}`;
  const projectBase = (name: string) => projectBaseUrl(base, basePath, name);
  const dimsePort = gateway.dimsePort;
  const dicom = (tool: string, ae: string) => `${tool} -aet ${ae} -aec ${config.dimse.aeTitle} 127.0.0.1 ${dimsePort}`;
  const listed = [
    ...(projects.shared ? [`      ${projects.shared}   also in ${QUERY_PROJECT}`] : []),
    ...projects.outside.map((uid) => `      ${uid}   not in ${QUERY_PROJECT}${uid === ECHO_STUDY ? ' (the ACUSON echo: its banner blanked)' : ''}`),
  ];

  const out = [
    '',
    'deid-gateway demo',
    `  Orthanc (direct, loopback only): ${orthanc.dicomWebUrl}`,
    `  samples: ${loaded.stored.length} stored, ${loaded.refused.length} refused by Orthanc (from ${dir})`,
    `  gateway DICOMweb:                ${base}`,
    `  OpenAPI:                         ${gateway.url}/openapi.json`,
    `  upload page (uploader token):    ${gateway.url}/upload#token=${tokens['uploader']}`,
    config.viewer.enabled
      ? `  OHIF viewer (pick a role):       ${gateway.url}/viewer/${viewerInstalled(config.viewer.dir) ? '' : '   (not installed: run scripts/setup.sh)'}`
      : '  OHIF viewer:                     off (viewer.enabled: false)',
    '',
    'projects (a researcher sees the studies of a project the token grants, each project under pseudonyms of its own):',
    `  ${QUERY_PROJECT}  every CT study, by a query (ModalitiesInStudy=CT)`,
    `      ${projectBase(QUERY_PROJECT)}`,
    `  ${LIST_PROJECT}  ${listed.length} studies by UID; its own profile also keeps patient characteristics (sex, age, size, weight)`,
    `      ${projectBase(LIST_PROJECT)}`,
    ...listed,
    '',
    `pixels (${DEMO_PIXELS_FILE}; the clinician sees every original):`,
    '  a researcher and an upload get the ACUSON echo cine (US) with its top banner blanked in every frame (rule acuson-us-banner);',
    '  other risky instances are withheld (no rule covers them: the charset samples and other screen captures (SC, OT),',
    '  other ultrasound, Burned In Annotation YES), and SR, PR, KO and encapsulated documents are filtered out;',
    '  a withheld upload is refused with Failure Reason 0x0124',
    '',
    'tokens (valid 12 h; researcher grants both projects, researcher-<project> one):',
    ...Object.entries(tokens).map(([label, token]) => `  ${label.padEnd(20)} ${token}`),
    '',
    'try:',
    `  curl -s -H "Authorization: Bearer ${'$'}CLINICIAN" '${base}/studies?includefield=all' | head -c 600`,
    `  curl -s -H "Authorization: Bearer ${'$'}${envName(`researcher-${QUERY_PROJECT}`)}" '${base}/studies' | head -c 600   # ${QUERY_PROJECT} only, pseudonyms`,
    `  curl -s -H "Authorization: Bearer ${'$'}RESEARCHER" '${projectBase(LIST_PROJECT)}/studies' | head -c 600   # a project by its path`,
    `  curl -s -H "Authorization: Bearer ${'$'}RESEARCHER" '${base}/studies'   # 403 PROJECT_AMBIGUOUS: name the project in the path`,
    `  curl -s -o /dev/null -w '%{http_code}\\n' '${base}/studies'            # 401: no token`,
    `  curl -s -H "Authorization: Bearer ${'$'}UPLOADER" '${base}/studies'     # 403: uploaders only store`,
    `  curl -s -H "Authorization: Bearer ${'$'}STEWARD" '${gateway.url}/projects'   # the steward API (also the /steward page)`,
    `  curl -s -H "Authorization: Bearer ${'$'}STEWARD" -H 'content-type: application/json' -d '{"project":"${LIST_PROJECT}","kind":"uid","pseudonym":"2.25…"}' '${gateway.url}/reidentify'`,
    `  curl -s -H "Authorization: Bearer ${'$'}STEWARD" '${gateway.url}/audit?limit=20'   # the audit trail`,
    ...(dimsePort !== undefined
      ? [
          '',
          `DICOM (DIMSE) on 127.0.0.1:${dimsePort}, called AE ${config.dimse.aeTitle} (dcmtk):`,
          `  ${dicom('findscu -S', DEMO_RESEARCH_AE)} -k QueryRetrieveLevel=STUDY -k PatientName -k StudyInstanceUID -k StudyDate   # ${QUERY_PROJECT}, pseudonyms`,
          `  ${dicom('getscu -S', DEMO_RESEARCH_AE)} -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=<a pseudonym above> -od /tmp   # de-identified instances`,
          `  ${dicom('storescu', DEMO_MODALITY_AE)} some.dcm   # de-identified, then stored in Orthanc by STOW-RS`,
        ]
      : []),
    '',
    ...Object.entries(tokens).map(([label, token]) => `export ${envName(label)}=${token}`),
    '',
    'Ctrl-C stops the gateway and Orthanc and deletes the temporary store.',
    '',
  ];
  process.stdout.write(out.join('\n'));

  const stop = () => {
    void Promise.allSettled([gateway.close(), orthanc.stop()]).then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

/** The demo's DICOM callers, on loopback: a modality that stores, and a research workstation on the query project. */
const DEMO_MODALITY_AE = 'MODALITY';
const DEMO_RESEARCH_AE = 'RESEARCH_WS';

/**
 * The DIMSE listener of the demo: on, on loopback (the config's host is not used), port 11112 unless the
 * config names one, with the demo's two callers beside any the config lists.
 */
function demoDimse(dimse: Record<string, unknown> | undefined): Record<string, unknown> {
  const callers = (dimse?.['callers'] as unknown[] | undefined) ?? [];
  return {
    port: 11112,
    ...dimse,
    enabled: true,
    host: '127.0.0.1',
    callers: [
      ...callers,
      { aeTitle: DEMO_MODALITY_AE, hosts: ['127.0.0.1', '::1'] },
      { aeTitle: DEMO_RESEARCH_AE, hosts: ['127.0.0.1', '::1'], role: 'researcher', project: QUERY_PROJECT },
    ],
  };
}

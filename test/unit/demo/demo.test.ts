// The demo reads its config as `serve` does, so its keys and secret follow DEID_GATEWAY__DATADIR; it
// makes two projects over the samples and signs tokens whose project claims the gateway reads as meant.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import { resolveProjects, resolveRole } from '../../../src/auth/role.ts';
import { readConfigFile, validateConfig } from '../../../src/config/load.ts';
import { compilePixelPolicy, type PixelPolicyConfig } from '../../../src/deid/pixel-policy.ts';
import { DEMO_PIXELS_FILE, readDemoConfig, withDemoPixels } from '../../../src/demo/demo.ts';
import { demoProjects, ECHO_STUDY, LIST_PROJECT, QUERY_PROJECT, type SampleStudy } from '../../../src/demo/demo-projects.ts';
import { tagForKeyword } from '../../../src/dicom/dictionary.ts';
import { demoGrants, demoKeys, envName, signDemoToken } from '../../../src/demo/demo-tokens.ts';
import { projectDefinition } from '../../../src/projects/project.ts';
import type { StoredProfile } from '../../../src/store/project-store.ts';

describe('demo config', () => {
  let dir: string;
  let file: string;
  const root = '/checkout';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'deid-demo-config-'));
    file = join(dir, 'gateway.yaml');
    await writeFile(file, 'server: { port: 8080 }\ndataDir: ./data\n');
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("without an override the keys are in the checkout's data dir", () => {
    const demo = readDemoConfig(root, { DEID_GATEWAY_CONFIG: file });
    assert.equal(demo.dataDir, '/checkout/data');
    assert.equal(demo.keyDir, '/checkout/data/demo-keys');
  });

  test('DEID_GATEWAY__DATADIR moves the data dir and the demo keys and secret with it', () => {
    const demo = readDemoConfig(root, { DEID_GATEWAY_CONFIG: file, DEID_GATEWAY__DATADIR: '/srv/demo-2' });
    assert.equal(demo.dataDir, '/srv/demo-2');
    assert.equal(demo.keyDir, '/srv/demo-2/demo-keys');
    assert.equal(demo.raw['dataDir'], '/srv/demo-2');
  });

  test('a relative DEID_GATEWAY__DATADIR is read from the checkout, like the default', () => {
    const demo = readDemoConfig(root, { DEID_GATEWAY_CONFIG: file, DEID_GATEWAY__DATADIR: 'data-b' });
    assert.equal(demo.keyDir, '/checkout/data-b/demo-keys');
  });

  test('the other environment overrides are already in the config the demo starts from', () => {
    const demo = readDemoConfig(root, { DEID_GATEWAY_CONFIG: file, DEID_GATEWAY__SERVER__PORT: '0' });
    assert.deepEqual(demo.raw['server'], { port: 0 });
  });
});

/** The studies of the shared samples as the demo's Orthanc lists them (StudyInstanceUID, ModalitiesInStudy). */
const SAMPLE_STUDIES: SampleStudy[] = [
  { studyUid: '05fa52f0e599f17b8186ff18fcdf2b5570a52206a75c4d03afebf5c475dc8758', modalities: ['CT'] }, // not a UID: never listed
  { studyUid: '1.2.826.0.1.3680043.2.1125.1.38381854871216336385978062044218957', modalities: ['CT'] },
  { studyUid: '1.2.999.999.99.9.9999.8888', modalities: ['RTDOSE'] },
  { studyUid: '1.3.6.1.4.1.5962.1.2.0.977067310.6001.0', modalities: ['OT'] },
  { studyUid: '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322', modalities: ['CT', 'DOC', 'PR'] },
  { studyUid: '1.3.6.1.4.1.5962.1.2.1.20040826185059.5457', modalities: ['CT'] },
  { studyUid: '1.3.6.1.4.1.5962.1.2.10.1166562673.14401', modalities: ['CT'] },
  { studyUid: '1.3.6.1.4.1.5962.1.2.4.20040826185059.5457', modalities: ['MR'] },
  { studyUid: '1.3.6.1.4.1.5962.1.2.8.20040826185059.5457', modalities: ['NM'] },
  { studyUid: '1.3.46.670589.11.38317.5.0.8636.2014021409005697000', modalities: ['MR'] },
  { studyUid: '1.3.12.2.1107.5.2.32.35131.30000014022817282751500000052', modalities: ['MR'] },
];
const CT1 = '1.3.6.1.4.1.5962.1.2.1.20040826185059.5457';
const MR = '1.3.46.670589.11.38317.5.0.8636.2014021409005697000';
const MR_MOSAIC = '1.3.12.2.1107.5.2.32.35131.30000014022817282751500000052';

describe('the demo projects', () => {
  test('are a query project and an explicit list that shares one study with it and holds two it does not', () => {
    const demo = demoProjects(SAMPLE_STUDIES);
    assert.deepEqual(Object.keys(demo.definitions), [QUERY_PROJECT, LIST_PROJECT]);
    assert.deepEqual(demo.definitions[QUERY_PROJECT]?.membership, { query: { ModalitiesInStudy: 'CT' } });
    assert.deepEqual(demo.definitions[LIST_PROJECT]?.membership, { studies: [CT1, MR, MR_MOSAIC] });
    assert.equal(demo.shared, CT1);
    assert.deepEqual(demo.outside, [MR, MR_MOSAIC]);
    // Each is a valid project definition and a valid `projects:` config section, with its own profile.
    for (const [name, input] of Object.entries(demo.definitions)) assert.doesNotThrow(() => projectDefinition(name, input));
    const { raw } = readDemoConfig(resolve(import.meta.dirname, '../../..'), {});
    const config = validateConfig({ ...raw, projects: { ...(raw['projects'] as object), ...demo.definitions } });
    assert.deepEqual(Object.keys(config.projects), [QUERY_PROJECT, LIST_PROJECT]);
    assert.ok(config.projects[LIST_PROJECT]?.profile?.options.includes('retainPatientCharacteristics'));
  });

  test('with other samples the list takes the first studies in UID order, and without any it starts empty', () => {
    const other = demoProjects([
      { studyUid: '1.2.3.9', modalities: ['MR'] },
      { studyUid: '1.2.3.2', modalities: ['CT', 'SR'] },
      { studyUid: '1.2.3.1', modalities: ['US'] },
      { studyUid: '1.2.3.5', modalities: ['CT'] },
      { studyUid: '1.2.3.7', modalities: ['SR'] },
    ]);
    assert.deepEqual(other.definitions[LIST_PROJECT]?.membership, { studies: ['1.2.3.2', '1.2.3.1', '1.2.3.7'] });
    const none = demoProjects([]);
    assert.equal(none.shared, undefined);
    assert.deepEqual(none.definitions[LIST_PROJECT]?.membership, { studies: [] });
    assert.doesNotThrow(() => projectDefinition(LIST_PROJECT, none.definitions[LIST_PROJECT] ?? {}));
  });
});

describe("the demo's pixel policy", () => {
  const root = resolve(import.meta.dirname, '../../..');
  const pixels = readConfigFile(join(root, DEMO_PIXELS_FILE)) as StoredProfile['pixels'] & Record<string, unknown>;

  test('the echo study joins the list when loaded, and the list project names the demo pixel rule in its own profile', () => {
    const demo = demoProjects([...SAMPLE_STUDIES, { studyUid: ECHO_STUDY, modalities: ['US'] }], pixels);
    assert.deepEqual(demo.definitions[LIST_PROJECT]?.membership, { studies: [CT1, MR, MR_MOSAIC, ECHO_STUDY] });
    assert.deepEqual((demo.definitions[LIST_PROJECT]?.profile as { pixels?: unknown } | undefined)?.pixels, pixels);
    // Without the echo the list is what it was.
    assert.deepEqual(demoProjects(SAMPLE_STUDIES, pixels).definitions[LIST_PROJECT]?.membership, { studies: [CT1, MR, MR_MOSAIC] });
  });

  test('config/demo-pixels.yaml is a valid pixels block: the researcher and uploader get it unless the config names their own, and it compiles to the ACUSON rule', () => {
    const { raw } = readDemoConfig(root, {});
    const profiles = withDemoPixels((raw['deid'] as Record<string, unknown>)['profiles'], pixels);
    const demo = demoProjects([...SAMPLE_STUDIES, { studyUid: ECHO_STUDY, modalities: ['US'] }], pixels);
    const config = validateConfig({ ...raw, deid: { ...(raw['deid'] as object), profiles }, projects: demo.definitions });
    assert.deepEqual(config.deid?.profiles.researcher.pixels?.rules?.map((r) => r.name), ['acuson-us-banner']);
    assert.deepEqual(config.deid?.profiles.uploader.pixels?.rules?.map((r) => r.name), ['acuson-us-banner']);
    const own = withDemoPixels({ researcher: { options: [], pixels: { enabled: false } } }, pixels) as Record<string, { pixels?: unknown }>;
    assert.deepEqual(own['researcher']?.pixels, { enabled: false }, "the config's own pixels block stands");
    // The rule redacts the samples' echo and nothing else: risky instances stay withheld, SR filtered.
    const policy = compilePixelPolicy(pixels as PixelPolicyConfig);
    const reader = (attrs: Record<string, unknown[]>) => (tag: number) => Object.entries(attrs).find(([k]) => tagForKeyword(k) === tag)?.[1];
    const echo = { Modality: ['US'], Manufacturer: ['ACUSON'], Rows: [240], Columns: [320], SamplesPerPixel: [3], BitsAllocated: [8], BitsStored: [8], HighBit: [7], PixelRepresentation: [0], PlanarConfiguration: [0], PhotometricInterpretation: ['RGB'], NumberOfFrames: ['8'] };
    assert.deepEqual(policy.verdict(reader(echo)), { action: 'redact', rule: 'acuson-us-banner', rectangles: [{ x: 0, y: 0, width: 320, height: 40 }] });
    assert.equal(policy.verdict(reader({ ...echo, Manufacturer: ['Philips'] })).action, 'withhold');
    assert.equal(policy.verdict(reader({ Modality: ['OT'], SOPClassUID: ['1.2.840.10008.5.1.4.1.1.7'] })).action, 'withhold');
    const sr = policy.verdict(reader({ Modality: ['SR'] }));
    assert.equal(sr.action === 'withhold' && sr.reason, 'filtered');
  });
});

describe('the demo tokens', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'deid-demo-tokens-'));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a researcher token per project and one for both, each exported under its own name, the steward last', () => {
    const grants = demoGrants([QUERY_PROJECT, LIST_PROJECT]);
    assert.deepEqual(Object.keys(grants), ['clinician', 'researcher', 'researcher-ct-cohort', 'researcher-curated', 'uploader', 'steward']);
    assert.deepEqual(Object.keys(grants).map(envName), ['CLINICIAN', 'RESEARCHER', 'RESEARCHER_CT_COHORT', 'RESEARCHER_CURATED', 'UPLOADER', 'STEWARD']);
  });

  for (const claim of [
    { path: 'project', prefix: '' },
    { path: 'groups', prefix: '/projects/' },
    { path: 'realm_access.groups', prefix: '/projects/' },
    { path: 'roles', prefix: 'project:' },
  ]) {
    test(`carry the projects the gateway reads, with projectClaim ${claim.path} and prefix "${claim.prefix}"`, async () => {
      const keys = await demoKeys(join(dir, 'keys'));
      const options = { projectClaim: claim.path, projectPrefix: claim.prefix };
      const grants = demoGrants([QUERY_PROJECT, LIST_PROJECT]);
      const granted: Record<string, { role: string; projects: string[] }> = {};
      for (const [label, grant] of Object.entries(grants)) {
        const payload = decodeJwt(await signDemoToken(keys, label, grant, claim));
        assert.equal(payload.sub, `demo-${label}`);
        granted[label] = {
          role: resolveRole(payload, { roleClaim: 'roles', roleMap: { clinician: 'clinician', researcher: 'researcher', uploader: 'uploader', steward: 'steward' }, rolePrecedence: ['researcher', 'uploader', 'steward', 'clinician'], ...options }),
          projects: resolveProjects(payload, options),
        };
      }
      assert.deepEqual(granted, {
        clinician: { role: 'clinician', projects: [] },
        researcher: { role: 'researcher', projects: [QUERY_PROJECT, LIST_PROJECT] },
        'researcher-ct-cohort': { role: 'researcher', projects: [QUERY_PROJECT] },
        'researcher-curated': { role: 'researcher', projects: [LIST_PROJECT] },
        uploader: { role: 'uploader', projects: [] },
        steward: { role: 'steward', projects: [] },
      });
    });
  }
});

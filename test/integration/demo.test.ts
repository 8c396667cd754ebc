// Demo hygiene: a demo keeps its keys and secret in its own data dir, and its Orthanc opens no
// port but loopback-guarded HTTP. Its two projects: each project's token sees that project's studies
// only, and the study they share under pseudonyms of each project's own.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { findscu } from '../helpers/findscu.ts';
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLocalJWKSet, decodeJwt, jwtVerify, type JWK } from 'jose';
import { startOrthanc, type OrthancProcess } from '../../src/demo/orthanc-process.ts';
import { samplesDir } from '../../src/demo/samples.ts';

const ROOT = resolve(import.meta.dirname, '../..');
/** A few of the shared samples (MANIFEST.md), enough for both demo projects and quick to load. */
const SAMPLES = [
  'transfer-syntax/CT1_UNC.explicit_little_endian.dcm', // CT, patient 1CT1: in both projects
  'private-tags/CT_small.dcm', // CT, patient 1CT1, another study: ct-cohort only
  'multiframe/CT0012.not_fragmented_bot_rle.dcm', // CT: ct-cohort only
  'private-tags/philips-mr-epi.dcm', // MR: curated only
  'private-tags/siemens-csa-mosaic-mr.dcm', // MR: curated only
  'charset/chrFren.dcm', // OT: neither
];
const CT1 = '1.3.6.1.4.1.5962.1.2.1.20040826185059.5457';
const CT_SMALL = '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322';
const CT0012 = '1.3.6.1.4.1.5962.1.2.10.1166562673.14401';
const MR = '1.3.46.670589.11.38317.5.0.8636.2014021409005697000';
const MR_MOSAIC = '1.3.12.2.1107.5.2.32.35131.30000014022817282751500000052';
const STUDY_UID = '0020000D';
const PATIENT_ID = '00100020';

interface ListeningSocket {
  readonly address: string;
  readonly port: number;
}

/** The TCP sockets a process listens on, from /proc (no tools needed): its socket inodes in /proc/net/tcp{,6}. */
function listeningSockets(pid: number): ListeningSocket[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const out: ListeningSocket[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(table)) continue;
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || cols[3] !== '0A' || !inodes.has(cols[9]!)) continue; // 0A: LISTEN
      const [hex, port] = cols[1]!.split(':') as [string, string];
      out.push({ address: decodeAddress(hex), port: parseInt(port, 16) });
    }
  }
  return out;
}

/** /proc/net/tcp writes addresses as host-order 32-bit words in hex. */
function decodeAddress(hex: string): string {
  const words = hex.match(/.{8}/g)!.map((w) => Buffer.from(w, 'hex').reverse());
  if (words.length === 1) return [...words[0]!].join('.');
  const bytes = Buffer.concat(words);
  if (bytes.subarray(0, 12).equals(Buffer.from('00000000000000000000ffff', 'hex'))) return `::ffff:${[...bytes.subarray(12)].join('.')}`;
  return (bytes.toString('hex').match(/.{4}/g) ?? []).join(':');
}

describe("the demo's Orthanc", () => {
  let orthanc: OrthancProcess;

  before(async () => {
    orthanc = await startOrthanc();
  });
  after(async () => {
    await orthanc?.stop();
  });

  test('listens on its HTTP port only: no DICOM port on any interface', () => {
    const sockets = listeningSockets(orthanc.pid!);
    assert.deepEqual(sockets.map((s) => s.port), [orthanc.httpPort], JSON.stringify(sockets));
  });

  test('is configured with the DICOM server off and HTTP for loopback callers only', () => {
    const config = JSON.parse(readFileSync(join(orthanc.storageDir, 'orthanc.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config['DicomServerEnabled'], false);
    assert.equal(config['RemoteAccessAllowed'], false);
  });
});

describe('the demo with DEID_GATEWAY__DATADIR', () => {
  let dir: string;
  let demo: ChildProcess | undefined;
  let output = '';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'deid-demo-'));
    const samples = join(dir, 'samples');
    await mkdir(samples);
    for (const name of SAMPLES) await copyFile(join(samplesDir(), name), join(samples, basename(name)));
    demo = spawn(process.execPath, [join(ROOT, 'bin/deid-gateway.js'), 'demo'], {
      cwd: ROOT,
      env: {
        ...process.env,
        DEID_GATEWAY__DATADIR: join(dir, 'data'),
        DEID_GATEWAY__SERVER__PORT: '0',
        DEID_GATEWAY__DIMSE__PORT: '0',
        DEID_GATEWAY__LOG__LEVEL: 'warn',
        DEID_GATEWAY_SAMPLES: samples,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    demo.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    demo.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    await new Promise<void>((ready, fail) => {
      const timer = setTimeout(() => fail(new Error(`the demo did not start:\n${output}`)), 60_000);
      const check = (): void => {
        if (/^export STEWARD=/m.test(output)) {
          clearTimeout(timer);
          ready();
        }
      };
      demo!.stdout!.on('data', check);
      demo!.once('exit', (code) => fail(new Error(`the demo exited with ${code}:\n${output}`)));
    });
  });
  after(async () => {
    if (demo && demo.exitCode === null) {
      const gone = new Promise((r) => demo!.once('exit', r));
      demo.kill('SIGTERM');
      await gone;
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('keeps its signing keys and secret under that data dir, and its tokens verify with those keys', async () => {
    const keyDir = join(dir, 'data', 'demo-keys');
    for (const name of ['demo-private.jwk.json', 'demo-public.jwk.json', 'deid.secret']) {
      assert.ok(existsSync(join(keyDir, name)), `${name} in ${keyDir}`);
    }
    const token = /^export CLINICIAN=(\S+)$/m.exec(output)?.[1];
    assert.ok(token);
    const publicJwk = JSON.parse(readFileSync(join(keyDir, 'demo-public.jwk.json'), 'utf8')) as JWK;
    await jwtVerify(token, createLocalJWKSet({ keys: [publicJwk] }));
  });

  test('its gateway accepts those tokens and keeps its pseudonym store in the same data dir', async () => {
    const base = /gateway DICOMweb:\s+(http:\/\/127\.0\.0\.1:\d+\/\S*)/.exec(output)?.[1];
    assert.ok(base, output);
    const token = /^export CLINICIAN=(\S+)$/m.exec(output)![1]!;
    const res = await fetch(`${base}/studies`, { headers: { authorization: `Bearer ${token}` } });
    await res.arrayBuffer();
    assert.ok(res.status === 200 || res.status === 204, String(res.status));
    assert.ok(existsSync(join(dir, 'data', 'pseudonyms.sqlite')));
  });

  const exported = (name: string): string => {
    const token = new RegExp(`^export ${name}=(\\S+)$`, 'm').exec(output)?.[1];
    assert.ok(token, `export ${name}=`);
    return token;
  };
  const dicomweb = (): string => /gateway DICOMweb:\s+(http:\/\/127\.0\.0\.1:\d+\/\S*)/.exec(output)![1]!;
  const origin = (): string => new URL(dicomweb()).origin;

  test('makes two projects and prints a token for each, one for both, and the tokens of the other roles', () => {
    assert.match(output, /^ {2}ct-cohort {2}every CT study, by a query \(ModalitiesInStudy=CT\)$/m);
    assert.match(output, /^ {2}curated {2}3 studies by UID/m);
    assert.ok(output.includes(`${origin()}/projects/ct-cohort/dicom-web`) && output.includes(`${origin()}/projects/curated/dicom-web`));
    assert.match(output, new RegExp(`^ {6}${CT1.replaceAll('.', '\\.')} {3}also in ct-cohort$`, 'm'));
    // The gateway's default claim (config/gateway.yaml: auth.projectClaim project, no prefix).
    const claims = Object.fromEntries(
      ['CLINICIAN', 'RESEARCHER', 'RESEARCHER_CT_COHORT', 'RESEARCHER_CURATED', 'UPLOADER', 'STEWARD'].map((name) => {
        const payload = decodeJwt(exported(name));
        return [name, { roles: payload['roles'], project: payload['project'] }];
      }),
    );
    assert.deepEqual(claims, {
      CLINICIAN: { roles: ['clinician'], project: undefined },
      RESEARCHER: { roles: ['researcher'], project: ['ct-cohort', 'curated'] },
      RESEARCHER_CT_COHORT: { roles: ['researcher'], project: ['ct-cohort'] },
      RESEARCHER_CURATED: { roles: ['researcher'], project: ['curated'] },
      UPLOADER: { roles: ['uploader'], project: undefined },
      STEWARD: { roles: ['steward'], project: undefined },
    });
  });

  test('each project token sees its own studies, and the study they share under different pseudonyms', async () => {
    const search = async (token: string, base = dicomweb()) => {
      const res = await fetch(`${base}/studies?includefield=${PATIENT_ID}`, { headers: { authorization: `Bearer ${token}`, accept: 'application/dicom+json' } });
      assert.equal(res.status, 200, `${base}: ${res.status}`);
      return ((await res.json()) as Array<Record<string, { Value?: string[] }>>).map((d) => ({
        study: d[STUDY_UID]?.Value?.[0] as string,
        patient: d[PATIENT_ID]?.Value?.[0] as string,
      }));
    };
    // The steward maps each project's pseudonyms back, in that project (POST /reidentify names it).
    const originals = async (project: string, pseudonyms: string[]) => {
      const res = await fetch(`${origin()}/reidentify`, {
        method: 'POST',
        headers: { authorization: `Bearer ${exported('STEWARD')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ project, items: pseudonyms.map((pseudonym) => ({ kind: 'uid', pseudonym })) }),
      });
      assert.equal(res.status, 200);
      const { results } = (await res.json()) as { results: Array<{ pseudonym: string; original: string | null }> };
      return new Map(results.map((r) => [r.original, r.pseudonym]));
    };
    const cohort = await search(exported('RESEARCHER_CT_COHORT'));
    const curated = await search(exported('RESEARCHER_CURATED'));
    const cohortOf = await originals('ct-cohort', cohort.map((s) => s.study));
    const curatedOf = await originals('curated', curated.map((s) => s.study));
    assert.deepEqual([...cohortOf.keys()].sort(), [CT_SMALL, CT1, CT0012].sort());
    assert.deepEqual([...curatedOf.keys()].sort(), [CT1, MR, MR_MOSAIC].sort());
    // The shared study: two pseudonyms, and its patient two Patient IDs; no pseudonym is in both views.
    const inCohort = cohort.find((s) => s.study === cohortOf.get(CT1))!;
    const inCurated = curated.find((s) => s.study === curatedOf.get(CT1))!;
    assert.notEqual(inCohort.study, inCurated.study);
    assert.notEqual(inCohort.patient, inCurated.patient);
    assert.deepEqual(
      cohort.filter((a) => curated.some((b) => b.study === a.study || b.patient === a.patient)),
      [],
    );
    // No cross-project access: the other project's pseudonym of the shared study is unknown here (404).
    const cross = await fetch(`${dicomweb()}/studies/${inCurated.study}/metadata`, { headers: { authorization: `Bearer ${exported('RESEARCHER_CT_COHORT')}` } });
    await cross.arrayBuffer();
    assert.equal(cross.status, 404);
    // The token for both projects names one in the path; without it, 403 PROJECT_AMBIGUOUS.
    const both = exported('RESEARCHER');
    const byStudy = (list: Array<{ study: string }>) => list.map((s) => s.study).sort();
    assert.deepEqual(byStudy(await search(both, `${origin()}/projects/curated/dicom-web`)), byStudy(curated));
    const ambiguous = await fetch(`${dicomweb()}/studies`, { headers: { authorization: `Bearer ${both}` } });
    assert.equal(ambiguous.status, 403);
    assert.equal(((await ambiguous.json()) as { error: { code: string } }).error.code, 'PROJECT_AMBIGUOUS');
  });

  test('its DICOM port answers findscu as the research workstation with the ct-cohort view: the same pseudonyms as over DICOMweb', async () => {
    const port = Number(/DICOM \(DIMSE\) on 127\.0\.0\.1:(\d+)/.exec(output)?.[1]);
    assert.ok(port > 0, output);
    const found = await findscu(port, ['QueryRetrieveLevel=STUDY', 'StudyInstanceUID', 'PatientID'], { dir });
    assert.equal(found.final, 0x0000, found.log);
    const res = await fetch(`${dicomweb()}/studies?includefield=${PATIENT_ID}`, { headers: { authorization: `Bearer ${exported('RESEARCHER_CT_COHORT')}`, accept: 'application/dicom+json' } });
    const overHttp = ((await res.json()) as Array<Record<string, { Value?: string[] }>>).map((d) => `${d[STUDY_UID]?.Value?.[0]} ${d[PATIENT_ID]?.Value?.[0]}`).sort();
    const overDimse = found.matches.map((d) => `${d[STUDY_UID]?.Value?.[0]} ${d[PATIENT_ID]?.Value?.[0]}`).sort();
    assert.equal(overDimse.length, 3);
    assert.deepEqual(overDimse, overHttp);
  });
});

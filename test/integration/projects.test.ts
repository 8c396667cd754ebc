// Issue 15: projects. Two projects over one real Orthanc (the samples and the canary study): `alpha`
// an explicit list, `beta` a query (one modality) plus an explicit study (the union), overlapping in
// two studies. A researcher sees only the project's studies, under the project's own pseudonyms and
// date offsets; nothing crosses from one project to the other; the PACS is asked only about member
// studies; uploads are pseudonymised in a scope of their own; a withdrawal of consent written by
// another process (another replica) is in force on the next request.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadIntoOrthanc } from '../../src/demo/orthanc-process.ts';
import { samplesDir } from '../../src/demo/samples.ts';
import { patientDayOffset, shiftDateValue } from '../../src/deid/date-shift.ts';
import { keyedUid, scopedSecret } from '../../src/deid/pseudonym.ts';
import { isUid } from '../../src/dicom/uid.ts';
import { openSqliteStore } from '../../src/store/sqlite-store.ts';
import { describeCanaries, findCanaries, keptByDesign, makeCanaryStudy, type CanaryStudy } from '../helpers/canary-study.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { scanLeaks } from '../helpers/leak-scan.ts';
import { splitMultipart } from '../helpers/multipart.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { startRecordingProxy, type RecordingProxy } from '../helpers/recording-proxy.ts';
import { stowBody } from '../helpers/stow.ts';

type Json = Record<string, { Value?: unknown[] }>;
const value = (d: Json | undefined, tag: string) => (d?.[tag]?.Value?.[0] as string | undefined) ?? '';
const ALL_TS = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const FRAMES_TS = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
const STUDY = '0020000D';
const PATIENT_ID = '00100020';

interface OriginalStudy {
  uid: string;
  patientId: string;
  modalities: string[];
  date: string;
}

describe('projects: each researcher sees only the project, under its own pseudonyms', () => {
  let orthanc: OrthancProcess;
  let proxy: RecordingProxy;
  let gateway: TestGateway;
  let canary: CanaryStudy;
  let secret: Buffer;
  let originals: OriginalStudy[];
  let modality: string;
  const sets: Record<'alpha' | 'beta', Set<string>> = { alpha: new Set(), beta: new Set() };
  let overlap: string[];
  const tokens: Record<string, string> = {};
  const work = mkdtempSync(join(tmpdir(), 'projects-'));
  const canaryDir = join(work, 'canary');

  before(async () => {
    canary = makeCanaryStudy();
    ({ orthanc } = await startTestOrthanc({ loadSamples: true }));
    mkdirSync(canaryDir);
    canary.instances.forEach((bytes, i) => {
      writeFileSync(join(canaryDir, `canary-${i}.dcm`), bytes);
    });
    const loaded = await loadIntoOrthanc(orthanc.httpUrl, canary.instances.map((bytes, i) => ({ name: `canary-${i}`, bytes })));
    assert.equal(loaded.stored.length, 3);
    const direct = (await (await fetch(`${orthanc.dicomWebUrl}/studies?includefield=00080061&includefield=00100020&includefield=00080020`)).json()) as Json[];
    originals = direct.map((d) => ({
      uid: value(d, STUDY),
      patientId: value(d, PATIENT_ID),
      modalities: (d['00080061']?.Value ?? []) as string[],
      date: value(d, '00080020'),
    }));
    // beta's query: a modality some studies have and most do not.
    const counts = new Map<string, number>();
    for (const s of originals) for (const m of new Set(s.modalities)) counts.set(m, (counts.get(m) ?? 0) + 1);
    const chosen = [...counts].filter(([, n]) => n >= 2 && n <= originals.length - 4).sort((a, b) => b[1] - a[1])[0];
    assert.ok(chosen, 'a modality to define beta by');
    modality = chosen[0];
    const byQuery = originals.filter((s) => s.modalities.includes(modality) && s.uid !== canary.studyInstanceUID);
    const others = originals.filter((s) => !s.modalities.includes(modality) && s.uid !== canary.studyInstanceUID && s.patientId !== '' && s.date !== '');
    const shared = byQuery.find((s) => s.patientId !== '' && s.date !== '') as OriginalStudy;
    assert.ok(shared && others.length >= 2);
    sets.alpha = new Set([shared.uid, others[0]?.uid as string, others[1]?.uid as string, canary.studyInstanceUID]);
    sets.beta = new Set([...byQuery.map((s) => s.uid), canary.studyInstanceUID]);
    overlap = [shared.uid, canary.studyInstanceUID];

    proxy = await startRecordingProxy(orthanc.httpUrl);
    gateway = await startTestGateway(proxy.dicomWebUrl, {
      projects: {
        alpha: { description: 'an explicit list', membership: { studies: [...sets.alpha] } },
        // alpha's studies among 520 the PACS does not hold: eleven UID-list chunks.
        wide: { membership: { studies: [...sets.alpha, ...Array.from({ length: 520 }, (_, i) => `1.2.826.0.1.3680043.10.998.${i}`)] } },
        // beta's own profile keeps dates (Retain Longitudinal Temporal Information With Full Dates, E.3.6).
        beta: {
          profile: { options: ['retainLongitudinalTemporalFullDates'] },
          membership: { query: { ModalitiesInStudy: modality }, studies: [canary.studyInstanceUID] },
        },
      },
      reidentify: { rateLimit: { burst: 500, perMinute: 60_000 } },
    });
    secret = readFileSync(gateway.keys.secretFile);
    tokens['alpha'] = await gateway.token('researcher', { project: 'alpha', sub: 'r-alpha' });
    tokens['wide'] = await gateway.token('researcher', { project: 'wide' });
    tokens['beta'] = await gateway.token('researcher', { project: 'beta', sub: 'r-beta' });
    tokens['both'] = await gateway.token('researcher', { project: ['alpha', 'beta'] });
    tokens['none'] = await gateway.token('researcher', { project: undefined });
    tokens['ghost'] = await gateway.token('researcher', { project: 'gamma' });
    tokens['steward'] = await gateway.token('steward', { sub: 'steward-1' });
    tokens['clinician'] = await gateway.token('clinician');
    tokens['uploader'] = await gateway.token('uploader');
  });
  after(async () => {
    await gateway?.close();
    await proxy?.close();
    await orthanc?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const get = (who: string, path: string, accept = 'application/dicom+json', base = gateway.base) =>
    fetch(base + path, { headers: { authorization: `Bearer ${tokens[who]}`, accept } });
  const json = async (who: string, path: string, base?: string): Promise<Json[]> => {
    const res = await get(who, path, 'application/dicom+json', base);
    const text = await res.text();
    assert.equal(res.status, 200, `${who} ${path}: ${text.slice(0, 200)}`);
    return JSON.parse(text) as Json[];
  };
  const errorCode = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;
  /** The original behind a project's pseudonym, through the steward's re-identification. */
  const originalOf = async (project: string, kind: string, pseudonym: string): Promise<string | undefined> => {
    const res = await fetch(`${gateway.url}/reidentify`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens['steward']}`, 'content-type': 'application/json' },
      body: JSON.stringify({ project, kind, pseudonym }),
    });
    if (res.status === 404) return undefined;
    assert.equal(res.status, 200);
    return ((await res.json()) as { original: string }).original;
  };
  /** Study pseudonym → original, for a project, from its own study list. */
  const studyMap = async (project: 'alpha' | 'beta') => {
    const map = new Map<string, string>();
    for (const s of await json(project, '/studies')) map.set(value(s, STUDY), (await originalOf(project, 'uid', value(s, STUDY))) as string);
    return map;
  };

  test('each project lists exactly its member studies: an explicit list, and a query with a listed study (the union)', async () => {
    for (const project of ['alpha', 'beta'] as const) {
      const map = await studyMap(project);
      assert.deepEqual(new Set(map.values()), sets[project], project);
      assert.equal(map.size, sets[project].size, `${project}: each study once`);
    }
    // A series- and instance-level search without a study in the path is checked per result.
    const alphaStudies = new Set((await json('alpha', '/studies')).map((s) => value(s, STUDY)));
    const series = await json('alpha', '/series');
    assert.ok(series.length >= sets.alpha.size);
    assert.ok(series.every((s) => alphaStudies.has(value(s, STUDY))), 'every series belongs to a member study');
    const instances = await json('beta', '/instances?limit=500');
    const betaStudies = new Set((await json('beta', '/studies')).map((s) => value(s, STUDY)));
    assert.ok(instances.length > 0 && instances.every((i) => betaStudies.has(value(i, STUDY))));
  });

  test('the same patient has unlinkable pseudonyms and its own date offset in each project', async () => {
    const byOriginal = async (project: 'alpha' | 'beta') => {
      const out = new Map<string, Json>();
      for (const s of await json(project, '/studies?includefield=00080020')) out.set((await originalOf(project, 'uid', value(s, STUDY))) as string, s);
      return out;
    };
    const [a, b] = [await byOriginal('alpha'), await byOriginal('beta')];
    for (const uid of overlap) {
      const [sa, sb] = [a.get(uid), b.get(uid)];
      assert.ok(sa && sb, `${uid} is in both`);
      for (const tag of [STUDY, PATIENT_ID, '00100010']) assert.notDeepEqual(sa[tag], sb[tag], `${tag} differs between projects`);
      assert.equal(await originalOf('beta', 'uid', value(sa, STUDY)), undefined, "alpha's pseudonym is unknown in beta");
      assert.equal(await originalOf('alpha', 'patientId', value(sb, PATIENT_ID)), undefined);
    }
    // Each project's profile and key: alpha shifts dates by its own per-patient offset (Modified Dates,
    // keyed with the project's scope), beta's profile keeps them (Full Dates).
    const shared = originals.find((o) => o.uid === overlap[0]) as OriginalStudy;
    const days = patientDayOffset(scopedSecret(secret, 'project:alpha'), shared.patientId, { minDays: -365, maxDays: -1 });
    assert.equal(value(a.get(shared.uid), '00080020'), shiftDateValue(shared.date, 'DA', days));
    assert.equal(value(b.get(shared.uid), '00080020'), shared.date);
    for (const [project, shown] of [['alpha', a], ['beta', b]] as const) {
      assert.equal(value(shown.get(shared.uid), STUDY), keyedUid(scopedSecret(secret, `project:${project}`), shared.uid));
    }
  });

  test('nothing crosses projects: by pseudonym, by original, by query or by guessing, all answer as unknown', async () => {
    const alpha = await json('alpha', '/studies');
    const beta = await json('beta', '/studies');
    const alphaOnly = [...(await studyMap('alpha'))].find(([, o]) => !sets.beta.has(o))?.[0] as string;
    const unknown = await get('beta', '/studies/2.25.123456789012345678901234567890/metadata');
    assert.equal(unknown.status, 404);
    const unknownCode = await errorCode(unknown);
    // alpha's pseudonyms, and every original (those that are not PS3.5 UIDs are 400 before any look-up).
    for (const s of [...alpha.map((x) => value(x, STUDY)), ...sets.alpha, ...sets.beta].filter(isUid)) {
      if (beta.some((x) => value(x, STUDY) === s)) continue;
      for (const path of [`/studies/${s}/metadata`, `/studies/${s}/series`, `/studies/${s}`]) {
        const res = await get('beta', path, path.endsWith('series') || path.endsWith('metadata') ? 'application/dicom+json' : ALL_TS);
        assert.equal(res.status, 404, `beta ${path}`);
        assert.equal(await errorCode(res), unknownCode);
      }
      assert.deepEqual(await json('beta', `/studies?StudyInstanceUID=${s}`), []);
    }
    // An instance of a study outside the project, asked under a study of the project.
    const [series] = await json('alpha', `/studies/${alphaOnly}/series`);
    const [instance] = await json('alpha', `/studies/${alphaOnly}/series/${value(series, '0020000E')}/instances`);
    const inBeta = value(beta[0], STUDY);
    for (const path of [
      `/studies/${inBeta}/series/${value(series, '0020000E')}/metadata`,
      `/studies/${inBeta}/series/${value(series, '0020000E')}/instances/${value(instance, '00080018')}`,
      `/studies/${alphaOnly}/series/${value(series, '0020000E')}/instances/${value(instance, '00080018')}/frames/1`,
    ]) {
      const res = await get('beta', path, path.endsWith('frames/1') ? FRAMES_TS : path.endsWith('metadata') ? 'application/dicom+json' : ALL_TS);
      assert.equal(res.status, 404, path);
    }
  });

  test('the project comes from the token and, for several, the path; every refusal has its own code', async () => {
    const both = await get('both', '/studies');
    assert.equal(both.status, 403);
    assert.equal(await errorCode(both), 'PROJECT_AMBIGUOUS');
    const alphaBase = `${gateway.url}/projects/alpha/dicom-web`;
    const viaPath = await json('both', '/studies', alphaBase);
    assert.equal(viaPath.length, sets.alpha.size);
    assert.deepEqual(new Set(viaPath.map((s) => value(s, STUDY))), new Set((await json('alpha', '/studies')).map((s) => value(s, STUDY))));
    assert.ok(viaPath.every((s) => value(s, '00081190').startsWith(`${alphaBase}/studies/`)), 'links stay below the project path');
    const [first] = viaPath;
    assert.equal((await get('both', `/studies/${value(first, STUDY)}/metadata`, 'application/dicom+json', alphaBase)).status, 200);
    const cases: Array<[string, string, number, string]> = [
      ['alpha', `${gateway.url}/projects/beta/dicom-web/studies`, 403, 'PROJECT_NOT_GRANTED'],
      ['none', `${gateway.base}/studies`, 403, 'PROJECT_REQUIRED'],
      ['ghost', `${gateway.base}/studies`, 403, 'PROJECT_UNKNOWN'],
      ['clinician', `${alphaBase}/studies`, 403, 'AUTH_ROLE_FORBIDDEN'],
      ['alpha', `${gateway.url}/projects/Alpha/dicom-web/studies`, 403, 'PROJECT_NOT_GRANTED'],
    ];
    for (const [who, url, status, code] of cases) {
      const res = await fetch(url, { headers: { authorization: `Bearer ${tokens[who]}`, accept: 'application/dicom+json' } });
      assert.equal(res.status, status, `${who} ${url}`);
      assert.equal(await errorCode(res), code, `${who} ${url}`);
    }
    assert.equal((await fetch(`${gateway.url}/projects/alpha%2F..%2Fbeta/dicom-web/studies`, { headers: { authorization: `Bearer ${tokens['both']}` } })).status >= 400, true);
    // The clinician's own access is untouched by projects.
    assert.equal((await get('clinician', '/studies')).status, 200);
  });

  test('a long list is asked in UID-list chunks, the PACS never over other studies, with the same answer at every level', async () => {
    const map = new Map<string, string>();
    for (const s of await json('wide', '/studies')) map.set(value(s, STUDY), (await originalOf('wide', 'uid', value(s, STUDY))) as string);
    assert.deepEqual(new Set(map.values()), sets.alpha);
    const all = [...map.keys()];
    assert.deepEqual((await json('wide', '/studies?limit=2&offset=1')).map((s) => value(s, STUDY)), all.slice(1, 3));
    const wide = new Set([...sets.alpha, ...Array.from({ length: 520 }, (_, i) => `1.2.826.0.1.3680043.10.998.${i}`)]);
    for (const level of ['studies', 'series', 'instances']) {
      const mark = proxy.seen.length;
      const shown = await json('wide', `/${level}?ModalitiesInStudy=${modality}&limit=500`);
      const asked = proxy.since(mark).filter((r) => r.url.startsWith(`/dicom-web/${level}?`));
      const reference = await json('alpha', `/${level}?ModalitiesInStudy=${modality}&limit=500`);
      assert.equal(shown.length, reference.length, level);
      assert.equal(asked.length, Math.ceil(wide.size / 50), `${level}: one query per chunk of 50`);
      for (const r of asked) {
        const uids = new URL(r.url, 'http://x').searchParams.get(STUDY)?.split(',') ?? [];
        assert.ok(uids.length > 0 && uids.every((u) => wide.has(u)), `${level}: ${r.url.slice(0, 120)}`);
      }
    }
  });

  test("limit and offset apply to the project's result", async () => {
    for (const project of ['alpha', 'beta'] as const) {
      const all = (await json(project, '/studies')).map((s) => value(s, STUDY));
      assert.equal(all.length, sets[project].size);
      const page = (await json(project, '/studies?limit=2&offset=1')).map((s) => value(s, STUDY));
      assert.deepEqual(page, all.slice(1, 3), project);
      assert.deepEqual((await json(project, `/studies?offset=${all.length - 1}&limit=5`)).map((s) => value(s, STUDY)), all.slice(-1));
      assert.deepEqual(await json(project, `/studies?offset=${all.length}`), []);
    }
  });

  test('the PACS is asked only about member studies: UID lists for the explicit list, the conditions for the query', async () => {
    const mark = proxy.seen.length;
    const shown = await json('alpha', `/studies?ModalitiesInStudy=${modality}`);
    assert.ok(shown.length >= 1, 'the shared study has the modality');
    const alphaAsked = proxy.since(mark).filter((r) => r.url.startsWith('/dicom-web/studies?'));
    assert.ok(alphaAsked.length > 0);
    for (const r of alphaAsked) {
      const uids = new URL(r.url, 'http://x').searchParams.get(STUDY)?.split(',') ?? [];
      assert.ok(uids.length > 0 && uids.every((u) => sets.alpha.has(u)), `alpha asked about ${r.url}`);
    }
    // beta: its own condition goes upstream; a researcher's key on the same attribute is matched here.
    const mark2 = proxy.seen.length;
    const other = originals.flatMap((o) => o.modalities).find((m) => m !== modality) as string;
    const betaOther = await json('beta', `/studies?ModalitiesInStudy=${other}`);
    for (const s of betaOther) assert.ok(((s['00080061']?.Value ?? []) as string[]).includes(other));
    for (const r of proxy.since(mark2).filter((x) => x.url.startsWith('/dicom-web/studies?'))) {
      const params = new URL(r.url, 'http://x').searchParams;
      const byCondition = params.get('00080061') === modality;
      const byList = (params.get(STUDY)?.split(',') ?? []).every((u) => sets.beta.has(u)) && params.has(STUDY);
      assert.ok(byCondition || byList, `beta asked ${r.url}`);
      assert.notEqual(params.get('00080061'), other, "the researcher's value never goes upstream in place of the project's");
    }
  });

  test("oracles per project: an original of a study outside the project never reaches the PACS as a condition", async () => {
    const outside = originals.find((o) => !sets.alpha.has(o.uid) && isUid(o.uid) && o.patientId !== '') as OriginalStudy;
    for (const project of ['alpha', 'wide'] as const) {
      const mark = proxy.seen.length;
      for (const query of [`StudyInstanceUID=${outside.uid}`, `PatientID=${encodeURIComponent(outside.patientId)}`, `PatientID=${encodeURIComponent(outside.patientId)}&ModalitiesInStudy=${modality}`]) {
        assert.deepEqual(await json(project, `/studies?${query}`), [], `${project} ${query}`);
        assert.deepEqual(await json(project, `/series?${query}`), [], `${project} series ${query}`);
      }
      const sent = proxy.since(mark).map((r) => decodeURIComponent(r.url));
      assert.ok(!sent.some((u) => u.includes(outside.uid) || u.includes(`00100020=${outside.patientId}`)), `${project}: ${sent.join('\n')}`);
    }
  });

  test('per project, no canary of the canary patient and no identity of the samples reaches any researcher route', async () => {
    for (const [project, options] of [
      ['alpha', ['retainLongitudinalTemporalModifiedDates']], // config/schema.ts default
      ['beta', ['retainLongitudinalTemporalFullDates']], // its own profile
    ] as const) {
      const allowed = new Set(canary.canaries.filter((c) => keptByDesign(c, [...options])));
      const answers: Array<{ route: string; bytes: Buffer }> = [];
      const fetchAll = async (route: string, accept: string, expect = 200) => {
        const res = await get(project, route, accept);
        const body = Buffer.from(await res.arrayBuffer());
        assert.equal(res.status, expect, `${project} ${route}: ${body.subarray(0, 200).toString()}`);
        answers.push({ route, bytes: Buffer.concat([Buffer.from([...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n')), body]) });
        return { res, body };
      };
      const list = async (route: string) => JSON.parse((await fetchAll(route, 'application/dicom+json')).body.toString()) as Json[];
      await list('/series?includefield=all');
      await list('/instances?includefield=all');
      for (const s of await list('/studies?includefield=all')) {
        const study = value(s, STUDY);
        await list(`/studies/${study}/metadata`);
        await fetchAll(`/studies/${study}`, ALL_TS);
        // Every instance route of the canary study (the study retrieval above covers the others' instances).
        if ((await originalOf(project, 'uid', study)) !== canary.studyInstanceUID) continue;
        for (const i of await list(`/studies/${study}/instances?includefield=all`)) {
          const path = `/studies/${study}/series/${value(i, '0020000E')}/instances/${value(i, '00080018')}`;
          await list(`${path}/metadata`);
          const { res, body } = await fetchAll(path, ALL_TS);
          assert.equal(splitMultipart(body, res.headers.get('content-type')).length, 1);
          await fetchAll(`${path}/frames/1`, FRAMES_TS);
        }
      }
      const leaks = answers.flatMap((a) => findCanaries(a.bytes, canary.canaries).filter((c) => !allowed.has(c)).map((c) => `${a.route}: ${describeCanaries([c])}`));
      assert.deepEqual(leaks, [], `${project}:\n${leaks.join('\n')}`);
      const out = join(work, `answers-${project}`);
      mkdirSync(out);
      answers.forEach((a, i) => {
        writeFileSync(join(out, `answer-${i}.bin`), a.bytes);
      });
      const samples = await scanLeaks(samplesDir(), out, { options: [...options] });
      assert.ok(samples.clean, `${project}: ${samples.report.slice(-2000)}`);
      const canaryScan = await scanLeaks(canaryDir, out, { options: [...options] });
      const unexpected = canaryScan.hits.filter((h) => !findCanaries(Buffer.from(h.value, 'utf8'), [...allowed]).length);
      assert.deepEqual(unexpected.map((h) => `${h.kind} ${h.value}`), [], `${project}: ${canaryScan.report.slice(-2000)}`);
    }
  });

  test('a withdrawal of consent written by another process is in force on the next request, per project or for all', async () => {
    const shared = originals.find((o) => o.uid === overlap[0]) as OriginalStudy;
    const pseudonymIn = async (project: 'alpha' | 'beta') =>
      [...(await studyMap(project))].find(([, original]) => original === shared.uid)?.[0] as string;
    const [inAlpha, inBeta] = [await pseudonymIn('alpha'), await pseudonymIn('beta')];
    const other = openSqliteStore(join(gateway.keys.dir, 'data', 'pseudonyms.sqlite')); // as another replica would
    try {
      assert.equal(await other.withdraw('alpha', shared.patientId), true);
      assert.equal((await get('alpha', `/studies/${inAlpha}/metadata`)).status, 404);
      assert.deepEqual(await json('alpha', `/studies?StudyInstanceUID=${inAlpha}`), []);
      assert.ok(!(await json('alpha', '/series')).some((s) => value(s, STUDY) === inAlpha));
      assert.equal((await get('beta', `/studies/${inBeta}/metadata`)).status, 200, 'beta is not affected');
      assert.equal(await other.withdraw(undefined, shared.patientId), true);
      assert.equal((await get('beta', `/studies/${inBeta}/metadata`)).status, 404, 'withdrawn from every project');
      assert.ok(!(await json('beta', '/studies')).some((s) => value(s, STUDY) === inBeta));
    } finally {
      await other.close();
    }
  });

  test("uploads land in the uploader's scope: no pseudonym a researcher sees equals the upload's for the same original", async () => {
    const before = new Set((await (await fetch(`${orthanc.httpUrl}/studies`)).json()) as string[]);
    const { body, contentType } = stowBody([...canary.instances]);
    const res = await fetch(`${gateway.base}/studies`, {
      method: 'POST',
      body: new Uint8Array(body),
      headers: { authorization: `Bearer ${tokens['uploader']}`, 'content-type': contentType, accept: 'application/dicom+json' },
    });
    assert.equal(res.status, 200, (await res.text()).slice(0, 300));
    const added = ((await (await fetch(`${orthanc.httpUrl}/studies`)).json()) as string[]).filter((id) => !before.has(id));
    assert.equal(added.length, 1);
    const copy = (await (await fetch(`${orthanc.httpUrl}/studies/${added[0]}`)).json()) as {
      MainDicomTags: { StudyInstanceUID: string };
      PatientMainDicomTags: { PatientID: string; PatientName: string };
    };
    const uploaded = copy.MainDicomTags.StudyInstanceUID;
    assert.equal(uploaded, keyedUid(scopedSecret(secret, 'upload'), canary.studyInstanceUID), 'keyed in the upload scope');
    for (const project of ['alpha', 'beta'] as const) {
      const seen = await json(project, '/studies?includefield=00100010');
      const mine = [...(await studyMap(project))].find(([, o]) => o === canary.studyInstanceUID)?.[0] as string;
      const shown = seen.find((s) => value(s, STUDY) === mine) as Json;
      assert.notEqual(value(shown, STUDY), uploaded);
      assert.notEqual(value(shown, PATIENT_ID), copy.PatientMainDicomTags.PatientID);
      assert.notEqual(JSON.stringify(shown['00100010']), JSON.stringify({ vr: 'PN', Value: [{ Alphabetic: copy.PatientMainDicomTags.PatientName }] }));
      assert.ok(!seen.some((s) => value(s, STUDY) === uploaded) || project === 'beta', 'alpha does not hold the copy');
    }
    // The steward maps the upload's pseudonym back in the uploads' scope, and not in a project's.
    const steward = (body: object) =>
      fetch(`${gateway.url}/reidentify`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokens['steward']}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    assert.equal(((await (await steward({ uploads: true, kind: 'uid', pseudonym: uploaded })).json()) as { original: string }).original, canary.studyInstanceUID);
    assert.equal((await steward({ project: 'alpha', kind: 'uid', pseudonym: uploaded })).status, 404);
  });
});

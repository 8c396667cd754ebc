// Issue 19 part 2: a legacy workstation queries the de-identified view with C-FIND (PS3.4 C.4.1). A real
// Orthanc holds the shared samples, the gateway runs in this process with its DICOM listener, and dcmtk's
// findscu asks as a researcher caller of the project holding every study (RESEARCH_WS) and of an
// explicit-list project (COHORT_WS). Each answer is compared with the same researcher's QIDO-RS; originals
// find nothing, pseudonyms find their study; no original, no canary and nothing scan-leaks.py knows of
// the samples is in any response; the audit trail has every query as `dimse:<AE>`.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { samplesDir } from '../../src/demo/samples.ts';
import { keyedUid } from '../../src/deid/pseudonym.ts';
import type { JsonDataset, JsonElement } from '../../src/dicom/json-model.ts';
import type { AuditRecord } from '../../src/store/audit-trail.ts';
import { dimseBlock } from '../helpers/dimse.ts';
import { findscu, type FindOptions, type FindOutcome } from '../helpers/findscu.ts';
import { scopeKey, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { CANARIES, findCanaries, scanLeaks } from '../helpers/leak-scan.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';

const STUDY = '0020000D';
const SERIES = '0020000E';
const SOP = '00080018';
const PATIENT_NAME = '00100010';
const PATIENT_ID = '00100020';
/** Filled in by the listener in every match (PS3.4 C.4.1.1.3.2): level, character set, Retrieve AE Title. */
const FILLED = ['00080052', '00080005', '00080054'];

/** findscu keys and the DICOM JSON tags they name (PS3.6 keywords; dcmtk's dictionary knows them). */
const STUDY_KEYS: Record<string, string> = {
  StudyInstanceUID: STUDY,
  PatientName: PATIENT_NAME,
  PatientID: PATIENT_ID,
  PatientBirthDate: '00100030',
  PatientSex: '00100040',
  StudyDate: '00080020',
  StudyTime: '00080030',
  AccessionNumber: '00080050',
  StudyID: '00200010',
  StudyDescription: '00081030',
  ReferringPhysicianName: '00080090',
  ModalitiesInStudy: '00080061',
  NumberOfStudyRelatedSeries: '00201206',
  NumberOfStudyRelatedInstances: '00201208',
};
const SERIES_KEYS: Record<string, string> = {
  SeriesInstanceUID: SERIES,
  Modality: '00080060',
  SeriesNumber: '00200011',
  SeriesDescription: '0008103E',
  SeriesDate: '00080021',
  NumberOfSeriesRelatedInstances: '00201209',
};
const IMAGE_KEYS: Record<string, string> = { SOPInstanceUID: SOP, SOPClassUID: '00080016', InstanceNumber: '00200013' };

/** An element's values as comparable text: PN as its groups joined by '=', numbers as numbers, empty as none. */
function values(element: JsonElement | undefined): string[] {
  return (element?.Value ?? [])
    .map((v) => {
      if (v === null) return '';
      if (typeof v === 'object') {
        const pn = v as { Alphabetic?: string; Ideographic?: string; Phonetic?: string };
        return [pn.Alphabetic ?? '', pn.Ideographic ?? '', pn.Phonetic ?? ''].join('=').replace(/=+$/, '');
      }
      return typeof v === 'number' ? String(v) : String(v).trim();
    })
    .filter((v, _i, all) => !(all.length === 1 && v === ''));
}
const first = (d: JsonDataset | undefined, tag: string) => values(d?.[tag])[0] ?? '';

describe('the research face C-FIND: findscu on the de-identified view', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;
  let port: number;
  const tokens: Record<string, string> = {};
  const work = mkdtempSync(join(tmpdir(), 'dimse-research-find-'));
  const responses = join(work, 'responses');
  /** The samples' originals, as Orthanc holds them. */
  let held: JsonDataset[];
  /** The explicit-list project's studies (originals), and one study outside it. */
  let members: string[];
  let outsider: string;

  before(async () => {
    mkdirSync(responses);
    ({ orthanc } = await startTestOrthanc({ loadSamples: true }));
    held = (await (await fetch(`${orthanc.dicomWebUrl}/studies?includefield=00100010&includefield=00100020`)).json()) as JsonDataset[];
    const identified = held.filter((s) => first(s, PATIENT_ID).length >= 5 && first(s, PATIENT_NAME).length >= 5);
    assert.ok(identified.length >= 4, 'the samples hold studies with patient IDs and names');
    members = identified.slice(0, 2).map((s) => first(s, STUDY));
    outsider = first(identified[2], STUDY);
    gateway = await startTestGateway(orthanc.dicomWebUrl, {
      projects: { all: { membership: { all: true } }, cohort: { description: 'an explicit list', membership: { studies: members } } },
      dimse: dimseBlock({
        callers: [
          { aeTitle: 'MODALITY', hosts: ['127.0.0.1'] },
          { aeTitle: 'RESEARCH_WS', hosts: ['127.0.0.1'], role: 'researcher', project: 'all' },
          { aeTitle: 'COHORT_WS', hosts: ['127.0.0.1'], role: 'researcher', project: 'cohort' },
        ],
      }),
    });
    port = gateway.dimsePort as number;
    tokens['all'] = await gateway.token('researcher');
    tokens['cohort'] = await gateway.token('researcher', { project: 'cohort' });
    tokens['steward'] = await gateway.token('steward', { sub: 'steward-1' });
  });
  after(async () => {
    await gateway?.close();
    await orthanc?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const find = (keys: readonly string[], options: Partial<FindOptions> = {}): Promise<FindOutcome> => findscu(port, keys, { dir: responses, ...options });
  /** The same researcher's QIDO-RS over HTTP. */
  const qido = async (path: string, project = 'all'): Promise<JsonDataset[]> => {
    const res = await fetch(gateway.base + path, { headers: { authorization: `Bearer ${tokens[project]}`, accept: 'application/dicom+json' } });
    const text = await res.text();
    assert.equal(res.status, 200, `${path}: ${text.slice(0, 200)}`);
    return JSON.parse(text) as JsonDataset[];
  };
  const includefields = (keys: Record<string, string>) => Object.values(keys).map((t) => `includefield=${t}`).join('&');
  /** The C-FIND matches equal QIDO's results, key by key, and carry the requested keys and the filled ones only. */
  const assertSameAnswers = (out: FindOutcome, http: JsonDataset[], keys: Record<string, string>, uidTag: string, level: string) => {
    assert.equal(out.final, 0x0000, out.log.slice(-2000));
    assert.deepEqual(out.statuses.slice(0, -1), out.matches.map(() => 0xff00));
    assert.equal(out.matches.length, http.length);
    const byUid = new Map(http.map((d) => [first(d, uidTag), d]));
    for (const match of out.matches) {
      assert.deepEqual(Object.keys(match).sort(), [...Object.values(keys), ...FILLED].sort());
      assert.deepEqual([first(match, '00080052'), first(match, '00080005'), first(match, '00080054')], [level, 'ISO_IR 192', 'DEID_GATEWAY']);
      const expected = byUid.get(first(match, uidTag));
      assert.ok(expected, `${first(match, uidTag)} is in the researcher's QIDO-RS answer`);
      for (const tag of Object.values(keys)) assert.deepEqual(values(match[tag]), values(expected[tag]), `${level} ${tag}`);
    }
  };
  let studies: FindOutcome;

  test('STUDY level: every study of the project, with exactly the de-identified values of the researcher QIDO-RS', async () => {
    studies = await find(['QueryRetrieveLevel=STUDY', ...Object.keys(STUDY_KEYS)]);
    const http = await qido(`/studies?${includefields(STUDY_KEYS)}`);
    assert.ok(http.length >= 10);
    assertSameAnswers(studies, http, STUDY_KEYS, STUDY, 'STUDY');
    const originals = new Set(held.flatMap((s) => [first(s, STUDY), first(s, PATIENT_ID), first(s, PATIENT_NAME)]).filter((v) => v !== ''));
    for (const match of studies.matches) {
      assert.match(first(match, STUDY), /^2\.25\.\d+$/);
      for (const tag of [STUDY, PATIENT_ID, PATIENT_NAME]) assert.ok(!originals.has(first(match, tag)), `${tag} is a pseudonym`);
    }
  });

  test('SERIES and IMAGE level, under a study or across the project, give what QIDO-RS gives', async () => {
    const study = first(studies.matches.find((m) => Number(first(m, '00201208')) >= 2), STUDY);
    const series = await find(['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${study}`, ...Object.keys(SERIES_KEYS)]);
    // StudyInstanceUID was a key with a value: returned with it.
    const seriesKeys = { ...SERIES_KEYS, StudyInstanceUID: STUDY };
    assertSameAnswers(series, await qido(`/studies/${study}/series?${includefields(seriesKeys)}`), seriesKeys, SERIES, 'SERIES');
    const seriesUid = first(series.matches[0], SERIES);
    const images = await find(['QueryRetrieveLevel=IMAGE', `StudyInstanceUID=${study}`, `SeriesInstanceUID=${seriesUid}`, ...Object.keys(IMAGE_KEYS)]);
    // StudyInstanceUID and SeriesInstanceUID were keys with a value: returned with theirs.
    const imageKeys = { ...IMAGE_KEYS, StudyInstanceUID: STUDY, SeriesInstanceUID: SERIES };
    assertSameAnswers(images, await qido(`/studies/${study}/series/${seriesUid}/instances?${includefields(imageKeys)}`), imageKeys, SOP, 'IMAGE');
    assert.ok(images.matches.length >= 1);
    const mr = await find(['QueryRetrieveLevel=SERIES', 'Modality=MR', 'StudyInstanceUID', ...Object.keys(SERIES_KEYS).filter((k) => k !== 'Modality')]);
    assertSameAnswers(mr, await qido(`/series?Modality=MR&includefield=${STUDY}&${includefields(SERIES_KEYS)}`), { ...SERIES_KEYS, StudyInstanceUID: STUDY }, SERIES, 'SERIES');
    assert.ok(mr.matches.length >= 2 && mr.matches.every((m) => first(m, '00080060') === 'MR'));
  });

  test('PATIENT level (Patient Root): one match per patient, Patient keys only; Study Root has no PATIENT level (A900)', async () => {
    const patients = await find(['QueryRetrieveLevel=PATIENT', 'PatientID', 'PatientName', 'PatientSex'], { model: 'patient' });
    assert.equal(patients.final, 0x0000);
    const http = await qido('/studies?includefield=00100010&includefield=00100020&includefield=00100040');
    const answers = patients.matches.map((m) => JSON.stringify([PATIENT_ID, PATIENT_NAME, '00100040'].map((t) => values(m[t]))));
    assert.equal(new Set(answers).size, answers.length, 'no patient twice');
    assert.deepEqual(new Set(patients.matches.map((m) => first(m, PATIENT_ID))), new Set(http.map((s) => first(s, PATIENT_ID))));
    assert.ok(patients.matches.length < http.length, 'fewer patients than studies');
    for (const m of patients.matches) assert.deepEqual(Object.keys(m).sort(), [PATIENT_ID, PATIENT_NAME, '00100040', ...FILLED].sort());
    const refused = await find(['QueryRetrieveLevel=PATIENT', 'PatientID']);
    assert.deepEqual(refused.statuses, [0xa900]);
  });

  test('an original Study Instance UID, Patient ID or Patient Name finds nothing; the pseudonyms find their study', async () => {
    for (const original of held.filter((s) => first(s, PATIENT_ID).length >= 5).slice(0, 3)) {
      for (const key of [`StudyInstanceUID=${first(original, STUDY)}`, `PatientID=${first(original, PATIENT_ID)}`, `PatientName=${first(original, PATIENT_NAME)}`]) {
        const out = await find(['QueryRetrieveLevel=STUDY', key, 'StudyDate']);
        assert.deepEqual(out.statuses, [0x0000], `${key.split('=')[0]} of an original`);
      }
    }
    const match = studies.matches.find((m) => first(m, PATIENT_ID) !== '') as JsonDataset;
    const byId = await find(['QueryRetrieveLevel=STUDY', `PatientID=${first(match, PATIENT_ID)}`, 'StudyInstanceUID']);
    assert.ok(byId.matches.some((m) => first(m, STUDY) === first(match, STUDY)));
    const byName = await find(['QueryRetrieveLevel=STUDY', `PatientName=${first(match, PATIENT_NAME)}`, 'StudyInstanceUID']);
    assert.ok(byName.matches.some((m) => first(m, STUDY) === first(match, STUDY)));
    const byUid = await find(['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${first(match, STUDY)}`, 'PatientID']);
    assert.deepEqual(byUid.matches.map((m) => first(m, PATIENT_ID)), [first(match, PATIENT_ID)]);
  });

  test('what cannot be matched is A900 with an Error Comment, never dropped; a private key asked empty is not returned (FF01)', async () => {
    const sequence = await find(['QueryRetrieveLevel=STUDY', 'ProcedureCodeSequence[0].CodeValue=X']);
    assert.deepEqual([sequence.statuses, sequence.errorComment], [[0xa900], '(0008,1032): sequence matching is not supported']);
    const privateKey = await find(['QueryRetrieveLevel=STUDY', '(0009,0010)=GEMS_IDEN_01']);
    assert.deepEqual([privateKey.statuses, privateKey.errorComment], [[0xa900], '(0009,0010) cannot be matched']);
    const badDate = await find(['QueryRetrieveLevel=STUDY', 'StudyDate=2020-01-01']);
    assert.deepEqual([badDate.statuses, badDate.errorComment], [[0xa900], 'QIDO_BAD_VALUE']);
    const study = first(studies.matches[0], STUDY);
    const warned = await find(['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${study}`, '(0009,0010)']);
    assert.deepEqual(warned.statuses, [0xff01, 0x0000]);
    assert.deepEqual(Object.keys(warned.matches[0] ?? {}).sort(), [STUDY, ...FILLED].sort());
  });

  test('an explicit-list project: its member studies only; a non-member is not found by any UID', async () => {
    const cohort = await find(['QueryRetrieveLevel=STUDY', ...Object.keys(STUDY_KEYS)], { callingAe: 'COHORT_WS' });
    assertSameAnswers(cohort, await qido(`/studies?${includefields(STUDY_KEYS)}`, 'cohort'), STUDY_KEYS, STUDY, 'STUDY');
    assert.equal(cohort.matches.length, members.length);
    // Keyed pseudonyms (deid/pseudonym.ts): the members' in this project are what it answers (the control).
    const pseudonym = (project: string, uid: string) => keyedUid(scopeKey(gateway.keys, { project }), uid);
    assert.deepEqual(new Set(cohort.matches.map((m) => first(m, STUDY))), new Set(members.map((uid) => pseudonym('cohort', uid))));
    // The non-member: its pseudonym in the project of every study (which finds it there), its would-be one
    // in this project, and its original.
    const elsewhere = pseudonym('all', outsider);
    assert.ok(studies.matches.some((m) => first(m, STUDY) === elsewhere));
    for (const uid of [elsewhere, pseudonym('cohort', outsider), outsider]) {
      const out = await find(['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${uid}`, 'PatientID'], { callingAe: 'COHORT_WS' });
      assert.deepEqual(out.statuses, [0x0000]);
    }
    const series = await find(['QueryRetrieveLevel=SERIES', 'SeriesInstanceUID', 'StudyInstanceUID'], { callingAe: 'COHORT_WS' });
    assert.deepEqual(new Set(series.matches.map((m) => first(m, STUDY))), new Set(cohort.matches.map((m) => first(m, STUDY))));
  });

  test('an uploader AE has no Query/Retrieve context and an unknown AE is rejected at association', async () => {
    const uploader = await find(['QueryRetrieveLevel=STUDY', 'PatientID'], { callingAe: 'MODALITY' });
    assert.equal(uploader.noContext, true, uploader.log.slice(-1500));
    assert.deepEqual([uploader.statuses, uploader.files], [[], []]);
    assert.notEqual(uploader.code, 0);
    const unknown = await find(['QueryRetrieveLevel=STUDY', 'PatientID'], { callingAe: 'INTRUDER' });
    assert.equal(unknown.rejected, true, unknown.log.slice(-1500));
    assert.deepEqual([unknown.statuses, unknown.files], [[], []]);
  });

  test('no original and no canary of the samples is in any response file; scan-leaks.py is clean; the log has counts, not values', async () => {
    const files: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else files.push(path);
      }
    };
    walk(responses);
    assert.ok(files.length > 50, `${files.length} response files`);
    const everything = Buffer.concat(files.map((f) => readFileSync(f)));
    assert.deepEqual(Object.keys(CANARIES).flatMap((rel) => findCanaries(rel, everything).map((v) => `${rel}: ${v}`)), []);
    const scan = await scanLeaks(samplesDir(), responses);
    assert.ok(scan.clean, scan.report.slice(-3000));

    const logs = gateway.logs();
    const lines = logs.split('\n').filter((l) => l.includes('"msg":"DIMSE C-FIND"'));
    assert.ok(lines.length >= 20);
    assert.ok(lines.some((l) => /"callingAe":"RESEARCH_WS".*"level":"STUDY".*"matches":\d+.*"status":"0000"/.test(l)));
    for (const s of held) for (const v of [first(s, STUDY), first(s, PATIENT_ID), first(s, PATIENT_NAME)].filter((x) => x.length >= 5)) assert.ok(!logs.includes(v), 'no original in the log');
    for (const m of studies.matches) assert.ok(!logs.includes(first(m, PATIENT_ID)) || first(m, PATIENT_ID) === '', 'no pseudonym in the log');
  });

  test('the audit trail has the workstation queries, each as the subject dimse:<calling AE>', async () => {
    const res = await fetch(`${gateway.url}/audit?limit=1000`, { headers: { authorization: `Bearer ${tokens['steward']}` } });
    assert.equal(res.status, 200);
    const events = ((await res.json()) as { events: AuditRecord[] }).events;
    const queries = (user: string) => events.filter((e) => e.userId === user && e.eventId.code === '110112');
    assert.ok(queries('dimse:RESEARCH_WS').length >= 15, `${queries('dimse:RESEARCH_WS').length} queries of RESEARCH_WS`);
    assert.ok(queries('dimse:COHORT_WS').length >= 4);
    assert.equal(events.some((e) => e.userId === 'dimse:MODALITY' || e.userId === 'dimse:INTRUDER'), false);
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { keyedUid, scopedSecret } from '../../../src/deid/pseudonym.ts';
import { patientDayOffset } from '../../../src/deid/date-shift.ts';
import { createPolicy, createSession, deidentifyJson } from '../../../src/deid/deidentify.ts';
import { ProjectDefinitionError } from '../../../src/projects/errors.ts';
import { conditionsOf, isMember, isStudyUid, projectDefinition, projectScope, UPLOAD_SCOPE, type StudyFacts } from '../../../src/projects/project.ts';
import type { JsonDataset } from '../../../src/dicom/json-model.ts';
import type { ProjectRecord } from '../../../src/store/project-store.ts';

const issuesOf = (run: () => unknown): string[] => {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ProjectDefinitionError);
    return [...error.issues];
  }
  assert.fail('expected a ProjectDefinitionError');
};

const project = (over: Partial<ProjectRecord>): ProjectRecord => ({
  name: 'p',
  description: '',
  profile: undefined,
  allStudies: false,
  query: undefined,
  createdAt: '2026-12-01T00:00:00Z',
  ...over,
});
const facts = (patientId: string | undefined, dataset: JsonDataset = {}): StudyFacts => ({ studyUid: '1.2.3', patientId, dataset });

describe('projects', () => {
  test('a definition is checked whole: name, membership, conditions and UIDs, every issue named', () => {
    const issues = issuesOf(() =>
      projectDefinition('Bad Name', {
        membership: { all: true, query: { Nope: 'x', StudyDate: '2020-13-45', StudyInstanceUID: '1.2', ModalitiesInStudy: 'CT' }, studies: ['1.2', '../x'] },
      }),
    );
    assert.ok(issues.some((i) => i.startsWith('name:')));
    assert.ok(issues.some((i) => i.startsWith('membership.all:')));
    assert.ok(issues.includes('membership.query.Nope: not an attribute keyword'));
    assert.ok(issues.some((i) => i.startsWith('membership.query.StudyDate: not a valid DA')));
    assert.ok(issues.some((i) => i.startsWith('membership.query.StudyInstanceUID: a UI attribute cannot be a condition')));
    assert.deepEqual(issues.filter((i) => i.startsWith('membership.studies')), ['membership.studies.1: not a UID']);
    assert.deepEqual(issuesOf(() => projectDefinition('upload', {})), ['name: "upload" is reserved (the audit trail names the uploads\' scope so)']);
    const { project: ok, studies } = projectDefinition('lung-ct_2026', { membership: { query: { ModalitiesInStudy: 'CT' }, studies: ['1.2.3', '1.2.3'] } });
    assert.deepEqual(studies, ['1.2.3']);
    assert.deepEqual(ok.query, { ModalitiesInStudy: 'CT' });
    assert.equal(ok.allStudies, false);
  });

  test('a Study Instance UID a PACS may hold is accepted when it is one plain identifier, never a wild card, list or path', () => {
    for (const uid of ['1.2.840.113619.2.1', '1.2.03.4', '1.2.3a', 'ABC-1_2']) assert.ok(isStudyUid(uid), uid);
    for (const uid of ['', '.', '..', '1.2,3', '1.2\\3', '1.*', '1.2?', '1/2', `1.${'2'.repeat(70)}`]) assert.ok(!isStudyUid(uid), uid);
  });

  test('membership: withdrawal first, then every study, the list, or every condition on the original values', () => {
    const conditions = conditionsOf({ ModalitiesInStudy: 'CT', StudyDate: '20200101-20201231' });
    const ct2020 = facts('P1', { '00080061': { vr: 'CS', Value: ['CT', 'SR'] }, '00080020': { vr: 'DA', Value: ['20200615'] } });
    const mr2020 = facts('P2', { '00080061': { vr: 'CS', Value: ['MR'] }, '00080020': { vr: 'DA', Value: ['20200615'] } });
    const none = new Set<string>();
    const q = project({ query: { ModalitiesInStudy: 'CT', StudyDate: '20200101-20201231' } });
    assert.equal(isMember(q, conditions, ct2020, false, none), true);
    assert.equal(isMember(q, conditions, mr2020, false, none), false);
    assert.equal(isMember(q, conditions, mr2020, true, none), true, 'a list and a query: either admits');
    assert.equal(isMember(q, conditions, ct2020, true, new Set(['P1'])), false, 'a withdrawn patient is never a member');
    assert.equal(isMember(project({ allStudies: true }), [], mr2020, false, none), true);
    assert.equal(isMember(project({ allStudies: true }), [], mr2020, false, new Set(['P2'])), false);
    assert.equal(isMember(project({}), [], mr2020, false, none), false, 'no list entry and no query: nothing');
    assert.equal(isMember(project({ allStudies: true }), [], facts(undefined), false, none), true);
    assert.equal(isMember(project({ allStudies: true }), [], facts(''), false, new Set(['P9'])), true, 'an empty Patient ID is no one withdrawn');
    assert.equal(isMember(project({ allStudies: true }), [], facts(undefined), false, new Set(['P9'])), false, 'with a withdrawal, a Patient ID the PACS did not give is out');
  });

  test("each scope keys its own pseudonyms and date offsets, stable per secret, unlinkable across scopes", () => {
    const secret = Buffer.from('a-secret-of-sixteen-bytes-or-more');
    const scopes = [projectScope('a'), projectScope('b'), UPLOAD_SCOPE];
    const uids = scopes.map((scope) => keyedUid(scopedSecret(secret, scope), '1.2.3.4'));
    assert.equal(new Set(uids).size, 3);
    assert.equal(keyedUid(scopedSecret(secret, projectScope('a')), '1.2.3.4'), uids[0], 'stable');
    assert.notEqual(keyedUid(secret, '1.2.3.4'), uids[0], 'not the unscoped key');
    // Offsets: over many patients, two scopes' offsets are not the same function.
    const range = { minDays: -365, maxDays: -1 };
    const same = Array.from({ length: 50 }, (_, i) => `PAT-${i}`).filter(
      (pid) => patientDayOffset(scopedSecret(secret, scopes[0] as string), pid, range) === patientDayOffset(scopedSecret(secret, scopes[1] as string), pid, range),
    );
    assert.ok(same.length < 5, `${same.length} of 50 offsets equal`);
    // A policy made with a scope pseudonymises with the scope's key.
    const policy = createPolicy({ secret, scope: projectScope('a') });
    const out = deidentifyJson(createSession(policy), { '0020000D': { vr: 'UI', Value: ['1.2.3.4'] }, '00100020': { vr: 'LO', Value: ['PAT-1'] } });
    assert.equal(out['0020000D']?.Value?.[0], uids[0]);
    assert.throws(() => createPolicy({ secret, scope: '' }), /scope/);
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DeidPolicyError } from '../../../src/deid/errors.ts';
import { ProjectDefinitionError, ProjectRequestError } from '../../../src/projects/errors.ts';
import { parseProjectCreation, parseStudyChange, parseStudyPage, parseWithdrawal, type PolicyBuilder } from '../../../src/projects/steward-request.ts';

/** Accepts every profile, and records the scope each was built in. */
const scopes: string[] = [];
const anyProfile: PolicyBuilder = (_profile, scope) => scopes.push(scope);
const issuesOf = (run: () => unknown): readonly string[] => {
  try {
    run();
  } catch (error) {
    if (error instanceof ProjectDefinitionError) return error.issues;
    throw error;
  }
  assert.fail('not refused');
};
const badRequest = (e: unknown) => e instanceof ProjectRequestError && e.code === 'PROJECT_BAD_REQUEST';

describe('the steward’s project requests', () => {
  test('a definition becomes a new project and its studies; its profile is built in the project’s scope', () => {
    const created = parseProjectCreation(
      { name: 'lung-ct', description: 'Lung CT', profile: { options: ['retainSafePrivate', 'retainSafePrivate'] }, membership: { query: { Modality: 'CT' }, studies: ['1.2.3', '1.2.3'] } },
      anyProfile,
    );
    assert.deepEqual(created.project, {
      name: 'lung-ct',
      description: 'Lung CT',
      profile: { options: ['retainSafePrivate'], overrides: {} },
      allStudies: false,
      query: { Modality: 'CT' },
    });
    assert.deepEqual(created.studies, ['1.2.3']);
    assert.equal(scopes.at(-1), 'project:lung-ct');
  });

  test('every issue is named by its key, the profile’s among them, and no value is echoed', () => {
    const rejecting: PolicyBuilder = () => {
      throw new DeidPolicyError(['profile.options.noSuch: not a PS3.15 option']);
    };
    const issues = issuesOf(() =>
      parseProjectCreation({ name: 'Bad Name', profile: { options: ['noSuch'] }, membership: { studies: ['1.2.3', 'x y*'] } }, rejecting),
    );
    assert.deepEqual(issues, [
      'name: lower-case letters, digits, "-" and "_", starting with a letter or digit, at most 63',
      'membership.studies.1: not a UID',
      'profile.options.noSuch: not a PS3.15 option',
    ]);
    // The shape comes first: wrong types and unknown fields, a field name that could be anything not repeated.
    assert.deepEqual(issuesOf(() => parseProjectCreation({ name: 1, membership: [], 'PAT 1234': true, profile: { options: 'x' } }, anyProfile)), [
      '(a field): not a known field',
      'name: a project name',
      'membership: an object { all?, query?, studies? }',
      'profile.options: a list of PS3.15 option names',
    ]);
    assert.ok(issuesOf(() => parseProjectCreation(null, anyProfile)).length === 1);
    // A policy failure that is not the profile's is the gateway's, not the request's.
    const broken: PolicyBuilder = () => {
      throw new DeidPolicyError(['secret: at least 16 bytes']);
    };
    assert.throws(() => parseProjectCreation({ name: 'p', profile: {} }, broken), DeidPolicyError);
  });

  test('a study change names at most 1000 studies, each a StudyInstanceUID, none both added and removed', () => {
    assert.deepEqual(parseStudyChange({ add: ['1.2.3', '1.2.3'], remove: ['1.2.4'] }), { add: ['1.2.3'], remove: ['1.2.4'] });
    for (const body of [undefined, {}, { add: [] }, { add: ['1.2.*'] }, { add: ['1.2'], remove: ['1.2'] }, { put: ['1.2'] }, { add: Array.from({ length: 1001 }, (_, i) => `1.${i}`) }]) {
      assert.throws(() => parseStudyChange(body), badRequest, JSON.stringify(body)?.slice(0, 40));
    }
  });

  test('a withdrawal names one patient: the original PatientID (trimmed, LO) or a pseudonym of a project', () => {
    assert.deepEqual(parseWithdrawal({ patientId: '  PAT-1 ' }, 'lung'), { patientId: 'PAT-1' });
    assert.deepEqual(parseWithdrawal({ pseudonym: 'ABCD' }, 'lung'), { pseudonym: 'ABCD', project: 'lung' });
    assert.deepEqual(parseWithdrawal({ project: 'lung', pseudonym: 'ABCD' }, undefined), { pseudonym: 'ABCD', project: 'lung' });
    const refusals: Array<[unknown, string | undefined]> = [
      [{}, 'lung'],
      [{ patientId: 'P', pseudonym: 'Q' }, 'lung'],
      [{ patientId: 'a\\b' }, 'lung'],
      [{ patientId: 'a\nb' }, 'lung'],
      [{ patientId: '    ' }, 'lung'],
      [{ patientId: 'x'.repeat(65) }, 'lung'],
      [{ project: 'lung', pseudonym: 'Q' }, 'lung'],
      [{ pseudonym: 'Q' }, undefined],
      [{ project: 'lung', patientId: 'P' }, undefined],
      [{ project: 'Bad Name', pseudonym: 'Q' }, undefined],
    ];
    for (const [body, project] of refusals) {
      assert.throws(
        () => parseWithdrawal(body, project),
        (e: unknown) => badRequest(e) && !(e as Error).message.includes('a\\b') && !(e as Error).message.includes('xxxx'),
        JSON.stringify(body),
      );
    }
  });

  test('a study page is limit 1–1000 (default 100) and offset ≥ 0, nothing else', () => {
    assert.deepEqual(parseStudyPage(new URLSearchParams('')), { limit: 100, offset: 0 });
    assert.deepEqual(parseStudyPage(new URLSearchParams('limit=1000&offset=5')), { limit: 1000, offset: 5 });
    for (const q of ['limit=0', 'limit=1001', 'limit=1.5', 'offset=-1', 'limit=1&limit=1', 'order=uid', 'offset=99999999999']) {
      assert.throws(() => parseStudyPage(new URLSearchParams(q)), badRequest, q);
    }
  });
});

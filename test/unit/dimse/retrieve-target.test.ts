import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { QUERY_RETRIEVE } from '../../../src/dimse/research-face.ts';
import { instanceSearches, instancePath, MAX_UNIQUE_KEYS, patientStudiesSearch, retrieveTarget } from '../../../src/dimse/retrieve-target.ts';

const STUDY = QUERY_RETRIEVE.studyRootGet;
const PATIENT = QUERY_RETRIEVE.patientRootMove;
const uid = (n: number) => `2.25.1${String(n).padStart(38, '0')}`;

describe('retrieveTarget: the Identifier of a C-GET or C-MOVE (PS3.4 C.4.2.2, C.4.3.2)', () => {
  test('each level with its unique keys: one value above it, one or a list at it (dcmjs gives a string or a list)', () => {
    assert.deepEqual(retrieveTarget(STUDY, { QueryRetrieveLevel: 'STUDY', StudyInstanceUID: uid(1) }), { level: 'STUDY', studies: [uid(1)] });
    assert.deepEqual(retrieveTarget(STUDY, { QueryRetrieveLevel: 'STUDY ', StudyInstanceUID: [uid(1), uid(2), uid(1)] }), { level: 'STUDY', studies: [uid(1), uid(2)] });
    assert.deepEqual(retrieveTarget(STUDY, { QueryRetrieveLevel: 'STUDY', StudyInstanceUID: `${uid(1)}\\${uid(2)}\0` }), { level: 'STUDY', studies: [uid(1), uid(2)] });
    assert.deepEqual(retrieveTarget(STUDY, { QueryRetrieveLevel: 'SERIES', StudyInstanceUID: uid(1), SeriesInstanceUID: [uid(2), uid(3)] }), { level: 'SERIES', study: uid(1), series: [uid(2), uid(3)] });
    assert.deepEqual(retrieveTarget(STUDY, { QueryRetrieveLevel: 'IMAGE', StudyInstanceUID: uid(1), SeriesInstanceUID: uid(2), SOPInstanceUID: uid(3) }), {
      level: 'IMAGE',
      study: uid(1),
      series: uid(2),
      instances: [uid(3)],
    });
    assert.deepEqual(retrieveTarget(PATIENT, { QueryRetrieveLevel: 'PATIENT', PatientID: 'ANON-1234' }), { level: 'PATIENT', patientId: 'ANON-1234' });
    // Keys of the levels above are not needed: the UIDs below them are unique.
    assert.deepEqual(retrieveTarget(PATIENT, { QueryRetrieveLevel: 'STUDY', PatientID: 'ANON-1234', StudyInstanceUID: uid(1) }), { level: 'STUDY', studies: [uid(1)] });
  });

  test('an Identifier that does not match the model is refused (A900): nothing to look up', () => {
    const refused: [string, Record<string, unknown> | undefined][] = [
      [STUDY, undefined],
      [STUDY, { StudyInstanceUID: uid(1) }],
      [STUDY, { QueryRetrieveLevel: 'FRAME', StudyInstanceUID: uid(1) }],
      [STUDY, { QueryRetrieveLevel: 'PATIENT', PatientID: 'ANON-1234' }],
      [PATIENT, { QueryRetrieveLevel: 'PATIENT', PatientID: 'ANON*' }],
      [PATIENT, { QueryRetrieveLevel: 'PATIENT', PatientID: ['A', 'B'] }],
      [STUDY, { QueryRetrieveLevel: 'STUDY', StudyInstanceUID: '' }],
      [STUDY, { QueryRetrieveLevel: 'STUDY', StudyInstanceUID: '1.2.*' }],
      [STUDY, { QueryRetrieveLevel: 'STUDY', StudyInstanceUID: `${uid(1)}/../x` }],
      [STUDY, { QueryRetrieveLevel: 'STUDY', StudyInstanceUID: Array.from({ length: MAX_UNIQUE_KEYS + 1 }, (_, i) => uid(i)) }],
      [STUDY, { QueryRetrieveLevel: 'SERIES', SeriesInstanceUID: uid(2) }],
      [STUDY, { QueryRetrieveLevel: 'SERIES', StudyInstanceUID: [uid(1), uid(2)], SeriesInstanceUID: uid(3) }],
      [STUDY, { QueryRetrieveLevel: 'IMAGE', StudyInstanceUID: uid(1), SOPInstanceUID: uid(3) }],
    ];
    for (const [model, identifier] of refused) assert.equal(retrieveTarget(model, identifier), undefined, JSON.stringify(identifier)?.slice(0, 120));
  });

  test('the view\'s searches: per study or series, and SOP Instance UIDs in lists the view takes (64 alternatives, 1,024 characters)', () => {
    assert.deepEqual(instanceSearches({ level: 'STUDY', studies: [uid(1)] }), [{ path: `/studies/${uid(1)}/instances`, query: 'includefield=00080016&includefield=0020000E', study: uid(1) }]);
    const instances = Array.from({ length: 100 }, (_, i) => uid(i));
    const searches = instanceSearches({ level: 'IMAGE', study: uid(1), series: uid(2), instances });
    const asked = searches.flatMap((s) => decodeURIComponent(/SOPInstanceUID=([^&]*)/.exec(s.query)?.[1] ?? '').split(','));
    assert.deepEqual(asked, instances);
    for (const s of searches) {
      const value = /SOPInstanceUID=([^&]*)/.exec(s.query)?.[1] ?? '';
      assert.ok(value.length <= 1_024 && value.split(',').length <= 64);
      assert.equal(s.path, `/studies/${uid(1)}/series/${uid(2)}/instances`);
    }
    assert.deepEqual(patientStudiesSearch('ANON 1/2'), { path: '/studies', query: 'PatientID=ANON%201%2F2&includefield=0020000D' });
    assert.equal(instancePath({ study: uid(1), series: uid(2), sopInstanceUid: uid(3) }), `/studies/${uid(1)}/series/${uid(2)}/instances/${uid(3)}`);
  });
});

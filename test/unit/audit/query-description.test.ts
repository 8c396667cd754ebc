import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { QueryRateLimitedError } from '../../../src/audit/errors.ts';
import { describeQuery, MAX_QUERY_KEYS, MAX_QUERY_UIDS, modeOf } from '../../../src/audit/query-description.ts';
import { mapError } from '../../../src/http/error-mapping.ts';

const ISSUED = new Set(['2.25.111', '2.25.222']);
const isIssued = async (uid: string) => ISSUED.has(uid);

describe('the audit description of a QIDO-RS query', () => {
  test('keys become keywords with their PS3.4 C.2.2.2 matching mode; no value the caller typed is kept', async () => {
    const d = await describeQuery(
      'PatientName=Doe*&00100030=19700101&StudyDate=20140101-&AccessionNumber=&ModalitiesInStudy=CT%5CMR&StudyTime=1200-1300&00080021=20140214',
      isIssued,
    );
    assert.deepEqual(d, {
      keys: [
        { keyword: 'PatientName', mode: 'wildcard' },
        { keyword: 'PatientBirthDate', mode: 'single' },
        { keyword: 'StudyDate', mode: 'range' },
        { keyword: 'AccessionNumber', mode: 'universal' },
        { keyword: 'ModalitiesInStudy', mode: 'list' },
        { keyword: 'StudyTime', mode: 'range' },
        { keyword: 'SeriesDate', mode: 'single' },
      ],
    });
    for (const text of ['Doe', '1970', '2014', 'CT', '1200']) assert.ok(!JSON.stringify(d).includes(text), text);
  });

  test('a DT with a negative UTC offset is a single value, a DT range a range; * in a date is not a wild card', () => {
    assert.equal(modeOf('DT', '20140101120000-0500'), 'single');
    assert.equal(modeOf('DT', '20140101-20140201'), 'range');
    assert.equal(modeOf('DT', '-20140201120000'), 'range');
    assert.equal(modeOf('DA', '2014*'), 'single');
    assert.equal(modeOf('UI', '1.2,1.3'), 'list');
    assert.equal(modeOf('LO', 'a,b'), 'single', 'a comma lists UIDs only');
    assert.equal(modeOf(undefined, 'x?'), 'wildcard');
  });

  test('UIDs of the instance hierarchy are kept only if the gateway issued them', async () => {
    const d = await describeQuery('StudyInstanceUID=2.25.111,1.2.840.99,abc&SeriesInstanceUID=2.25.222&SOPInstanceUID=&SOPClassUID=1.2.840.10008.5.1.4.1.1.2', isIssued);
    assert.deepEqual(d.keys, [
      { keyword: 'StudyInstanceUID', mode: 'list', values: ['2.25.111', '(not issued)', '(invalid)'] },
      { keyword: 'SeriesInstanceUID', mode: 'single', values: ['2.25.222'] },
      { keyword: 'SOPInstanceUID', mode: 'universal' },
      { keyword: 'SOPClassUID', mode: 'single' },
    ]);
    // Without a store to ask (a steward's query), no UID is kept at all.
    assert.deepEqual((await describeQuery('StudyInstanceUID=2.25.111')).keys, [{ keyword: 'StudyInstanceUID', mode: 'single' }]);
  });

  test('unknown keys, private tags and broken sequence paths are (invalid), never their text', async () => {
    const d = await describeQuery('PatientsName=x&00091001=x&ZZZZZZZZ=x&ReferencedStudySequence.StudyInstanceUID=&PatientName.PatientID=x&a.b.c.d.e.f.g.h.i=x', isIssued);
    assert.deepEqual(
      d.keys.map((k) => k.keyword),
      ['(invalid)', '(invalid)', '(invalid)', 'ReferencedStudySequence.StudyInstanceUID', '(invalid)', '(invalid)'],
    );
    assert.ok(!JSON.stringify(d).includes('Patients'));
  });

  test('control parameters are kept as numbers, booleans and keywords; bad ones as (invalid)', async () => {
    assert.deepEqual(await describeQuery('limit=10&offset=20&fuzzymatching=true&includefield=00100010,StudyDate&includefield=all'), {
      keys: [],
      limit: 10,
      offset: 20,
      fuzzymatching: true,
      includefield: ['PatientName', 'StudyDate', 'all'],
    });
    assert.deepEqual(await describeQuery('limit=-1&offset=x&fuzzymatching=yes&includefield=Nonsense'), {
      keys: [],
      limit: '(invalid)',
      offset: '(invalid)',
      fuzzymatching: '(invalid)',
      includefield: ['(invalid)'],
    });
  });

  test('a record stays small: keys and UIDs past the caps are counted, not listed', async () => {
    const keys = Array.from({ length: MAX_QUERY_KEYS + 3 }, () => 'PatientID=x').join('&');
    const d = await describeQuery(keys);
    assert.equal(d.keys.length, MAX_QUERY_KEYS);
    assert.equal(d.keysOmitted, 3);
    const uids = Array.from({ length: MAX_QUERY_UIDS + 2 }, (_, i) => `2.25.${i}`).join(',');
    const [study] = (await describeQuery(`StudyInstanceUID=${uids}`, isIssued)).keys;
    assert.equal(study?.values?.length, MAX_QUERY_UIDS);
    assert.equal(study?.valuesOmitted, 2);
  });

  test('a QIDO rate-limit refusal is 429 with Retry-After and its own stable code', () => {
    assert.deepEqual(mapError(new QueryRateLimitedError(7)), {
      status: 429,
      code: 'QIDO_RATE_LIMITED',
      message: 'query rate limit reached; retry later',
      headers: { 'retry-after': '7' },
    });
  });
});

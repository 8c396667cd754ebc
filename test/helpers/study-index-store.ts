import assert from 'node:assert/strict';
import type { StudyIndexStore } from '../../src/store/study-index-store.ts';

/**
 * The StudyIndexStore contract, run against either backend: entries replaced with their keys, prefix
 * and date ranges compared byte-wise (lower case above upper, a non-ASCII letter above both), scopes
 * apart, a clear with the state in one call.
 */
export async function assertStudyIndexContract(store: StudyIndexStore): Promise<void> {
  const NAME = 0x00100010;
  const DATE = 0x00080020;
  const entry = (study: string, name: string, date: string) => ({ study, doc: JSON.stringify({ '00100010': [name], '00080020': [date] }), keys: [[NAME, name], [DATE, date]] as Array<[number, string]> });
  assert.equal(await store.studyIndexState('p'), undefined);
  await store.putStudyIndexEntries('p', [entry('2.25.1', 'ANON^AB', '20200101'), entry('2.25.2', 'ANON^AC', '20210615'), entry('2.25.3', 'ANON^ÉA', '20220101'), entry('2.25.4', 'ANON^ab', '20190101')]);
  await store.putStudyIndexEntries('q', [entry('2.25.1', 'ANON^AB', '20200101')]);
  const sorted = async (p: Promise<readonly string[]>) => [...(await p)].sort();
  assert.deepEqual(await sorted(store.studyIndexMatches('p', [{ tag: NAME, from: 'ANON^A', below: 'ANON^B' }])), ['2.25.1', '2.25.2']);
  assert.deepEqual(await sorted(store.studyIndexMatches('p', [{ tag: NAME, from: 'ANON^É', below: '' }])), ['2.25.3']);
  assert.deepEqual(await sorted(store.studyIndexMatches('p', [{ tag: DATE, from: '2020', below: '20210616' }, { tag: DATE, from: '2019', below: '20190102' }])), ['2.25.1', '2.25.2', '2.25.4']);
  // Replacing an entry replaces its keys.
  await store.putStudyIndexEntries('p', [entry('2.25.1', 'ANON^ZZ', '20200101')]);
  assert.deepEqual(await sorted(store.studyIndexMatches('p', [{ tag: NAME, from: 'ANON^A', below: 'ANON^B' }])), ['2.25.2']);
  assert.deepEqual((await store.studyIndexDocs('p', ['2.25.1', '2.25.9'])).map((d) => JSON.parse(d.doc)['00100010']), [['ANON^ZZ']]);
  assert.equal((await store.studyIndexDocs('p')).length, 4);
  const state = { fingerprint: 'f1', changeSeq: 12, builtAt: '2026-12-02T00:00:00.000Z' };
  await store.setStudyIndexState('p', state);
  assert.deepEqual(await store.studyIndexState('p'), state);
  await store.setStudyIndexState('p', { ...state, changeSeq: null });
  assert.deepEqual(await store.studyIndexState('p'), { ...state, changeSeq: null });
  await store.setStudyIndexState('p', undefined, { clear: true });
  assert.equal(await store.studyIndexState('p'), undefined);
  assert.equal((await store.studyIndexDocs('p')).length, 0);
  assert.deepEqual(await store.studyIndexMatches('p', [{ tag: DATE, from: '1', below: '' }]), []);
  assert.equal((await store.studyIndexDocs('q')).length, 1, 'another scope is left alone');
}

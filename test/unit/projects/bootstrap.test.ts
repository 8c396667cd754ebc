import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bootstrapProjects } from '../../../src/projects/bootstrap.ts';
import { openSqliteStore } from '../../../src/store/sqlite-store.ts';

describe('projects from the config', () => {
  test('created once with their studies; a later config that differs is logged, never applied over the store', async () => {
    const store = openSqliteStore(':memory:');
    const lines: Array<{ level: string; details: object }> = [];
    const log = { info: (details: object) => lines.push({ level: 'info', details }), warn: (details: object) => lines.push({ level: 'warn', details }) };
    await bootstrapProjects(store, { lung: { membership: { query: { ModalitiesInStudy: 'CT' }, studies: ['1.2.3'] } } }, log);
    assert.deepEqual(lines, [{ level: 'info', details: { project: 'lung', studies: 1 } }]);
    await store.removeStudies('lung', ['1.2.3']); // the steward's change
    await bootstrapProjects(store, { lung: { membership: { query: { ModalitiesInStudy: 'MR' }, studies: ['1.2.3'] } } }, log);
    assert.deepEqual(lines[1], { level: 'warn', details: { project: 'lung', differs: ['query'] } });
    assert.deepEqual((await store.project('lung'))?.query, { ModalitiesInStudy: 'CT' }, "the store's definition stays");
    assert.equal(await store.studyCount('lung'), 0, 'a restart does not undo a removal');
    await bootstrapProjects(store, { lung: { membership: { query: { ModalitiesInStudy: 'CT' }, studies: ['1.2.3'] } } }, log);
    assert.equal(lines.length, 2, 'the same definition again: nothing to say');
    await store.close();
  });
});

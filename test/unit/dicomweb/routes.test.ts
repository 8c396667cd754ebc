import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { buildOpenApi, OPENAPI_FILE } from '../../../scripts/generate-openapi.ts';
import { fillPath, invalidParam, isPathIdentifier, ROUTES } from '../../../src/dicomweb/routes.ts';

describe('DICOMweb routes', () => {
  test('the committed OpenAPI document is generated from the route table and still matches it', () => {
    const committed = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as { openapi: string; paths: Record<string, unknown> };
    assert.deepEqual(committed, buildOpenApi(), 'run `npm run generate`');
    assert.equal(committed.openapi, '3.1.0');
    for (const route of ROUTES) {
      const path = `/dicom-web${route.path.replace(/[:*]([a-z]+)/g, '{$1}')}`;
      assert.ok(committed.paths[path], `${route.transaction} ${path} is documented`);
    }
  });

  test('every PS3.18 resource class is present: QIDO at three levels, WADO at three, frames, bulkdata, STOW', () => {
    const transactions = new Set(ROUTES.map((r) => r.transaction));
    for (const name of [
      'SearchForStudies',
      'SearchForSeries',
      'SearchForInstances',
      'RetrieveStudy',
      'RetrieveSeriesMetadata',
      'RetrieveInstanceRendered',
      'RetrieveStudyThumbnail',
      'RetrieveFrames',
      'RetrieveBulkdata',
      'StoreInstances',
    ]) {
      assert.ok(transactions.has(name), name);
    }
  });

  test('UIDs, frame lists and bulkdata paths are validated', () => {
    assert.equal(invalidParam({ study: '1.2.840.10008.1.2' }, 'deidentified'), undefined);
    assert.equal(invalidParam({ study: '1.2.x' }, 'deidentified'), 'study');
    assert.equal(invalidParam({ study: `1.${'2'.repeat(63)}` }, 'deidentified'), 'study');
    assert.equal(invalidParam({ study: '1.2', series: '../etc' }, 'deidentified'), 'series');
    assert.equal(invalidParam({ frames: '1,2,10' }, 'deidentified'), undefined);
    assert.equal(invalidParam({ frames: '0' }, 'deidentified'), 'frames');
    assert.equal(invalidParam({ bulk: ['7fe00010'] }, 'deidentified'), undefined);
    assert.equal(invalidParam({ bulk: ['..', 'x'] }, 'deidentified'), 'bulk');
  });

  test('the clinician’s identifiers are checked for safety, not UID grammar; the researcher’s stay PS3.5 UIDs', () => {
    // Orthanc lists bad_sequence.dcm under SHA-256 hex "UIDs", and answers for them.
    const hash = '05fa52f0e599f17b8186ff18fcdf2b5570a52206a75c4d03afebf5c475dc8758';
    const orthancId = 'c0decc2f-283808fb-6073846e-6cf5af97-aaa97936';
    for (const id of [hash, orthancId, '1.2.abc', `1.${'2'.repeat(63)}`, '1..2', '-1.2', 'a_b~c', 'x'.repeat(128)]) {
      assert.equal(isPathIdentifier(id, 'original'), true, id);
      assert.equal(invalidParam({ study: id, series: id, instance: id }, 'original'), undefined, id);
      if (id !== `1.${'2'.repeat(63)}`) assert.equal(invalidParam({ study: id }, 'deidentified'), 'study', id);
    }
    // Reserved, control, non-ASCII, space, dot segments, empty, too long: refused for every role.
    for (const id of ['..', '.', '', 'a/b', 'a%2Fb', 'a?b', 'a#b', 'a;b', 'a:b', 'a@b', 'a b', '1.2\u0000', '１.２', 'ä', 'x'.repeat(129)]) {
      assert.equal(isPathIdentifier(id, 'original'), false, JSON.stringify(id));
      assert.equal(isPathIdentifier(id, 'deidentified'), false, JSON.stringify(id));
    }
    assert.equal(invalidParam({ study: hash, series: '..' }, 'original'), 'series');
    assert.equal(invalidParam({ study: hash, frames: '0' }, 'original'), 'frames');
  });

  test('a PACS path is rebuilt from the template: a frame list keeps its commas, anything outside pchar is encoded once', () => {
    const frames = ROUTES.find((r) => r.transaction === 'RetrieveFrames') as (typeof ROUTES)[number];
    assert.equal(fillPath(frames, { study: '1.2', series: '3.4', instance: '5.6', frames: '1,2' }), '/studies/1.2/series/3.4/instances/5.6/frames/1,2');
    assert.equal(fillPath(frames, { study: '1.2', series: '3.4', instance: '5.6', frames: '3' }, { below: true }), '/frames/3');
    const study = ROUTES.find((r) => r.transaction === 'RetrieveStudyMetadata') as (typeof ROUTES)[number];
    assert.equal(fillPath(study, { study: 'a b%/?#' }), '/studies/a%20b%25%2F%3F%23/metadata');
  });
});

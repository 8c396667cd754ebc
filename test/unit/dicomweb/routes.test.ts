import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { buildOpenApi, OPENAPI_FILE } from '../../../scripts/generate-openapi.ts';
import { invalidParam, ROUTES } from '../../../src/dicomweb/routes.ts';

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
    assert.equal(invalidParam({ study: '1.2.840.10008.1.2' }), undefined);
    assert.equal(invalidParam({ study: '1.2.x' }), 'study');
    assert.equal(invalidParam({ study: `1.${'2'.repeat(63)}` }), 'study');
    assert.equal(invalidParam({ study: '1.2', series: '../etc' }), 'series');
    assert.equal(invalidParam({ frames: '1,2,10' }), undefined);
    assert.equal(invalidParam({ frames: '0' }), 'frames');
    assert.equal(invalidParam({ bulk: ['7fe00010'] }), undefined);
    assert.equal(invalidParam({ bulk: ['..', 'x'] }), 'bulk');
  });
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AttributeReader, PixelPolicy, PixelVerdict } from '../../../src/deid/pixel-policy.ts';
import type { JsonDataset } from '../../../src/dicom/json-model.ts';
import { Readable } from 'node:stream';
import { CENSUS_MAX_PAGES, CENSUS_PAGE, censusSource, recomputeDerived, studyPixels, type CensusInstance } from '../../../src/dicomweb/pixel-census.ts';
import type { UpstreamResponse } from '../../../src/dicomweb/upstream.ts';

const MODALITY = 0x00080060;
/** Withholds PR, redacts US, keeps the rest. */
const policy: PixelPolicy = {
  active: true,
  attributeTags: [MODALITY],
  ocr: false,
  verdict(read: AttributeReader): PixelVerdict {
    const modality = read(MODALITY)?.[0];
    if (modality === 'PR') return { action: 'withhold', reason: 'filtered', detail: 'filter pr' };
    if (modality === 'US') return { action: 'redact', rule: 'us', rectangles: [{ x: 0, y: 0, width: 1, height: 1 }] };
    return { action: 'keep' };
  },
  describe: () => ({ risky: [], allowed: [], filters: [], rules: [], ocr: false }),
};
const instance = (series: string, sop: string, modality: string): CensusInstance => ({
  series,
  sop,
  read: (tag) => (tag === MODALITY ? [modality] : tag === 0x00080016 ? [`1.2.${modality}`] : undefined),
});

test('a study census gives each instance its verdict and counts only what is shown', () => {
  const pixels = studyPixels(policy, [instance('s1', 'i1', 'CT'), instance('s1', 'i2', 'CT'), instance('s2', 'i3', 'PR'), instance('s3', 'i4', 'US')]);
  assert.equal(pixels.verdictOf('s2', 'i3')?.action, 'withhold');
  assert.equal(pixels.verdictOf('s3', 'i4')?.action, 'redact');
  assert.equal(pixels.verdictOf('s1', 'nope'), undefined);
  assert.deepEqual(
    { shown: pixels.study.shown, withheld: pixels.study.withheld, redacted: pixels.study.redacted, series: pixels.study.seriesShown },
    { shown: 3, withheld: 1, redacted: 1, series: 2 },
  );
  assert.deepEqual(pixels.study.modalities, ['CT', 'US']);
  assert.equal(pixels.seriesSummary('s2')?.shown, 0);
  assert.equal(pixels.study.withheldBy.get('filtered'), 1);
});

test('an instance OCR may redact (issue 18) counts as shown, not withheld, and is listed as an OCR candidate of its series', () => {
  const ocrPolicy: PixelPolicy = {
    ...policy,
    ocr: true,
    verdict: (read) => (read(MODALITY)?.[0] === 'XC' ? { action: 'withhold', reason: 'risky', detail: 'Modality XC', ocr: true } : policy.verdict(read)),
  };
  const pixels = studyPixels(ocrPolicy, [instance('s1', 'i1', 'CT'), instance('s2', 'i2', 'XC'), instance('s2', 'i3', 'PR')]);
  assert.deepEqual(
    { shown: pixels.study.shown, withheld: pixels.study.withheld, ocr: pixels.study.ocrEligible, series: pixels.study.seriesShown },
    { shown: 2, withheld: 1, ocr: 1, series: 2 },
  );
  assert.deepEqual(pixels.study.modalities, ['CT', 'XC']);
  assert.deepEqual(pixels.ocrCandidates().map((i) => i.sop), ['i2']);
  assert.deepEqual(pixels.ocrCandidates('s2').map((i) => i.sop), ['i2']);
  assert.deepEqual(pixels.ocrCandidates('s1'), []);
});

test('derived attributes are recomputed where the result holds them or the caller named them, and nowhere else', () => {
  const pixels = studyPixels(policy, [instance('s1', 'i1', 'CT'), instance('s2', 'i2', 'PR')]);
  const study: JsonDataset = { '00080061': { vr: 'CS', Value: ['CT', 'PR'] }, '00201208': { vr: 'IS', Value: [2] } };
  recomputeDerived(study, pixels, new Set([0x00201206]));
  assert.deepEqual(study['00080061']?.Value, ['CT']);
  assert.deepEqual(study['00201208']?.Value, [1]);
  assert.deepEqual(study['00201206']?.Value, [1], 'named by the caller: added');
  assert.equal(study['00080062'], undefined, 'neither present nor named: not added');
  const series: JsonDataset = { '0020000E': { vr: 'UI', Value: ['s2'] }, '00201209': { vr: 'IS', Value: [1] } };
  recomputeDerived(series, pixels, new Set());
  assert.deepEqual(series['00201209']?.Value, [0]);
});

// --- reading a census from a PACS (censusSource) ---------------------------------------------------

const SERIES = 0x0020000e;
const SOP = 0x00080018;
/** A `send` that answers each census page with `page(offset, limit)` and counts the requests. */
function pacs(page: (offset: number, limit: number) => JsonDataset[]) {
  let requests = 0;
  const send = async (request: { pathAndQuery: string }) => {
    requests++;
    const params = new URL(`http://pacs${request.pathAndQuery}`).searchParams;
    const body = JSON.stringify(page(Number(params.get('offset') ?? 0), Number(params.get('limit'))));
    return { statusCode: 200, headers: {}, body: Readable.from([Buffer.from(body)]) } as unknown as UpstreamResponse;
  };
  return { send, requests: () => requests };
}
const item = (n: number): JsonDataset => ({
  '0020000D': { vr: 'UI', Value: ['1.2.3'] },
  '0020000E': { vr: 'UI', Value: ['1.2.3.1'] },
  '00080018': { vr: 'UI', Value: [`1.2.3.1.${n}`] },
});
const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from) }, (_, i) => item(from + i));

test('a census pages past a PACS that caps its answers below the limit asked, and stops on an empty page', async () => {
  const capped = pacs((offset) => range(offset, Math.min(offset + 100, 250)));
  const instances = await censusSource({ maxJsonDatasetBytes: 1 << 20 }).instancesOf('1.2.3', [], capped.send);
  assert.equal(instances.length, 250);
  assert.equal(capped.requests(), 4, '100 + 100 + 50 + an empty page');
});

test('a census stops on a page that adds nothing new (a PACS ignoring offset), and after CENSUS_MAX_PAGES pages', async () => {
  const repeating = pacs(() => range(0, 3));
  assert.equal((await censusSource({ maxJsonDatasetBytes: 1 << 20 }).instancesOf('1.2.3', [], repeating.send)).length, 3);
  assert.equal(repeating.requests(), 2);
  const endless = pacs((offset, limit) => range(offset, offset + limit));
  const instances = await censusSource({ maxJsonDatasetBytes: 1 << 20 }).instancesOf('1.2.3', [], endless.send);
  assert.equal(endless.requests(), CENSUS_MAX_PAGES);
  assert.equal(instances.length, CENSUS_MAX_PAGES * CENSUS_PAGE, 'cut short: what it does not list is withheld by its callers');
});

test('researchers opening one cold study together share one census (single flight); a fresh one asks again', async () => {
  const slow = pacs((offset) => range(offset, Math.min(offset + 100, 150)));
  const source = censusSource({ maxJsonDatasetBytes: 1 << 20 });
  const all = await Promise.all(Array.from({ length: 8 }, () => source.instancesOf('1.2.3', [], slow.send)));
  assert.ok(all.every((instances) => instances.length === 150));
  assert.equal(slow.requests(), 3, 'one census of 100 + 50 + an empty page, for eight callers');
  await source.instancesOf('1.2.3', [], slow.send);
  assert.equal(slow.requests(), 3, 'cached');
  await source.instancesOf('1.2.3', [], slow.send, { fresh: true });
  assert.equal(slow.requests(), 6, 'fresh: asked again');
});

test("an instance's own attributes come from its metadata, only when they are that instance's; cached", async () => {
  const metadata = (ds: JsonDataset) => {
    let requests = 0;
    const send = async () => {
      requests++;
      return { statusCode: 200, headers: {}, body: Readable.from([Buffer.from(JSON.stringify([ds]))]) } as unknown as UpstreamResponse;
    };
    return { send, requests: () => requests };
  };
  const own = { ...item(7), '00280301': { vr: 'CS', Value: ['YES'] }, '7FE00008': { vr: 'OF', BulkDataURI: 'http://pacs/x' } };
  const source = censusSource({ maxJsonDatasetBytes: 1 << 20 });
  const uids = { study: '1.2.3', series: '1.2.3.1', sop: '1.2.3.1.7' };
  const m = metadata(own);
  const read = await source.instanceAttributes(uids, [0x00280301, 0x7fe00008], m.send);
  assert.deepEqual(read(0x00280301), ['YES']);
  assert.deepEqual(read(0x7fe00008), [], 'Float Pixel Data present as a BulkDataURI counts as present');
  assert.equal(read(SERIES)?.[0], '1.2.3.1');
  await source.instanceAttributes(uids, [0x00280301, 0x7fe00008], m.send);
  assert.equal(m.requests(), 1, 'cached');
  const other = metadata(item(8));
  await assert.rejects(source.instanceAttributes({ ...uids, sop: '1.2.3.1.9' }, [], other.send), { code: 'UPSTREAM_UNUSABLE' });
  assert.equal(read(SOP)?.[0], '1.2.3.1.7');
});

// Issue 16, the researcher's read side, against a real Orthanc holding every shared sample: the pixel
// policy's verdict (keep / redact / withhold) is the same on every route. Risky without a rule (a Philips
// US, Secondary Captures) and filtered series (SR, PR, KO, Encapsulated PDF) are absent from QIDO at every
// level, counts and ModalitiesInStudy included, absent from metadata and study/series retrieval, and 404
// DICOMWEB_INSTANCE_WITHHELD by themselves; the ACUSON US cine, matched by a rule, is blanked inside the
// rule's rectangle on every frame; a CT neither risky nor matched keeps its Pixel Data byte for byte; a
// project with pixels disabled sees everything and costs no census.
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { keyedUid } from '../../src/deid/pseudonym.ts';
import { decodedPhotometricInterpretation } from '../../src/dicom/photometric.ts';
import { blankSampleValues } from '../../src/pixel/native-blank.ts';
import type { FrameGeometry } from '../../src/pixel/geometry.ts';
import { makeKeys, scopeKey, startTestGateway, TEST_PROJECT, type TestGateway, type TestKeys } from '../helpers/gateway.ts';
import { splitMultipart } from '../helpers/multipart.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { startRecordingProxy, type RecordingProxy } from '../helpers/recording-proxy.ts';
import { openSqliteStore } from '../../src/store/sqlite-store.ts';
import { projectScope } from '../../src/projects/project.ts';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

type Element = { vr: string; Value?: unknown[]; BulkDataURI?: string };
type Dataset = Record<string, Element>;

const JSON_TYPE = 'application/dicom+json';
const FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
const INSTANCES = 'multipart/related; type="application/dicom"; transfer-syntax=*';
/** The rule's rectangle (pixels) on the 320x240 ACUSON cine. */
const RECT = { x: 10, y: 5, width: 100, height: 30 };
const OPEN_PROJECT = 'open';

/** Original UIDs of the samples the matrix uses (../shared/dicom-samples MANIFEST.md). */
const CT_SMALL_STUDY = {
  // private-tags/CT_small.dcm, presentation-state/generated-gsps-CT_small.dcm and encapsulated-pdf/…: one study.
  study: '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322',
};
const CINE = {
  study: '1.3.6.1.4.1.25403.166563008443.732.20120418082458.1',
  series: '1.3.6.1.4.1.25403.166563008443.732.20120418082458.2',
  native: '1.3.6.1.4.1.25403.166563008443.732.20120418082458.3',
  jpeg: '1.2.276.0.7230010.3.1.4.0.42316.1465567242.595994',
};
const CINE_GEOMETRY = { rows: 240, columns: 320, samplesPerPixel: 3, frames: 8 };

interface Original {
  study: string;
  series: string;
  instance: string;
  modality: string;
  sopClass: string;
  manufacturer: string;
}

const attr = (ds: Dataset | undefined, key: string) => ds?.[key]?.Value?.[0];
/** The body of the first part of a multipart answer. */
const firstPart = (answer: { body: Buffer; contentType: string }): Buffer => {
  const part = splitMultipart(answer.body, answer.contentType)[0];
  assert.ok(part, 'one part at least');
  return part.body;
};
const codeOf = (body: Buffer) => (JSON.parse(body.toString()) as { error: { code: string } }).error.code;

describe('pixel safety: the researcher sees one verdict per instance on every route', () => {
  let orthanc: OrthancProcess;
  let proxy: RecordingProxy;
  let keys: TestKeys;
  let gateway: TestGateway;
  let researcher: string;
  let openProject: string;
  let clinician: string;
  let originals: Original[];
  /** Requests the first study-level search made upstream, and how many studies the PACS holds. */
  let firstSearch: { upstream: number; census: number; studies: number };

  const get = async (path: string, authorization: string, accept?: string) => {
    const res = await fetch(path.startsWith('http') ? path : gateway.base + path, { headers: { authorization, ...(accept === undefined ? {} : { accept }) } });
    return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: Buffer.from(await res.arrayBuffer()) };
  };
  const json = async (path: string, authorization = researcher) => {
    const answer = await get(path, authorization, JSON_TYPE);
    assert.equal(answer.status, 200, `${path}: ${answer.body.toString().slice(0, 200)}`);
    return JSON.parse(answer.body.toString()) as Dataset[];
  };
  const pseudo = (uid: string, project = TEST_PROJECT) => keyedUid(scopeKey(keys, { project }), uid);
  /** The researcher's path of an original instance (keyed pseudonyms of the test project). */
  const researcherPath = (o: Pick<Original, 'study' | 'series' | 'instance'>) => `/studies/${pseudo(o.study)}/series/${pseudo(o.series)}/instances/${pseudo(o.instance)}`;
  const clinicianPath = (o: Pick<Original, 'study' | 'series' | 'instance'>) => `/studies/${o.study}/series/${o.series}/instances/${o.instance}`;
  const isCensus = (url: string) => /^\/dicom-web\/studies\/[^/?]+\/instances\?.*limit=1000/.test(url);

  before(async () => {
    ({ orthanc } = await startTestOrthanc({ loadSamples: true }));
    proxy = await startRecordingProxy(orthanc.httpUrl);
    keys = await makeKeys();
    const options = ['retainLongitudinalTemporalModifiedDates'];
    gateway = await startTestGateway(
      proxy.dicomWebUrl,
      {
        productPixelDefaults: true,
        deid: {
          researcherRendered: true,
          profiles: {
            researcher: {
              options,
              pixels: { rules: [{ name: 'acuson-us', match: { Modality: 'US', Manufacturer: { containsIgnoreCase: 'acuson' } }, rectangles: [RECT] }] },
            },
          },
        },
        projects: {
          [TEST_PROJECT]: { membership: { all: true } },
          [OPEN_PROJECT]: { membership: { all: true }, profile: { options, pixels: { enabled: false } } },
        },
      },
      keys,
    );
    researcher = `Bearer ${await gateway.token('researcher')}`;
    openProject = `Bearer ${await gateway.token('researcher', { project: OPEN_PROJECT })}`;
    clinician = `Bearer ${await gateway.token('clinician')}`;
    const res = await fetch(`${orthanc.dicomWebUrl}/instances?includefield=0020000D&includefield=0020000E&includefield=00080060&includefield=00080016&includefield=00080070`, {
      headers: { accept: JSON_TYPE },
    });
    originals = ((await res.json()) as Dataset[]).map((ds) => ({
      study: String(attr(ds, '0020000D')),
      series: String(attr(ds, '0020000E')),
      instance: String(attr(ds, '00080018')),
      modality: String(attr(ds, '00080060') ?? ''),
      sopClass: String(attr(ds, '00080016') ?? ''),
      manufacturer: String(attr(ds, '00080070') ?? ''),
    }));
    // The census cost of a search: the very first study-level search (nothing cached yet).
    const mark = proxy.seen.length;
    await json('/studies?includefield=ModalitiesInStudy');
    const seen = proxy.since(mark);
    firstSearch = { upstream: seen.length, census: seen.filter((r) => isCensus(r.url)).length, studies: new Set(originals.map((o) => o.study)).size };
  });
  after(async () => {
    await gateway?.close();
    await proxy?.close();
    await orthanc?.stop();
    if (keys) await rm(keys.dir, { recursive: true, force: true });
  });

  const byFile = () => {
    const find = (pick: (o: Original) => boolean, what: string) => {
      const found = originals.find(pick);
      assert.ok(found, what);
      return found;
    };
    return {
      ct: find((o) => o.study === CT_SMALL_STUDY.study && o.modality === 'CT', 'CT_small'),
      pr: find((o) => o.study === CT_SMALL_STUDY.study && o.modality === 'PR', 'the GSPS'),
      pdf: find((o) => o.study === CT_SMALL_STUDY.study && o.modality === 'DOC', 'the encapsulated PDF'),
      philipsUs: find((o) => o.modality === 'US' && !/acuson/i.test(o.manufacturer), 'a US without a rule'),
      sr: find((o) => o.modality === 'SR', 'an SR'),
    };
  };

  test('a study-level search reads one census per study, and nothing more upstream', (t) => {
    t.diagnostic(`first /studies: ${firstSearch.upstream} upstream requests, ${firstSearch.census} of them censuses, ${firstSearch.studies} studies in the PACS`);
    // A census pages until a page is empty (a PACS may cap a page below the limit asked): two requests a study here.
    assert.ok(firstSearch.census <= 2 * firstSearch.studies, `${firstSearch.census} census pages for ${firstSearch.studies} studies`);
    assert.ok(firstSearch.census >= 1);
    assert.equal(firstSearch.upstream, firstSearch.census + 1, 'the search itself and one census per study');
  });

  test('QIDO: a study whose every instance is withheld is absent; the rest show recomputed counts and modalities', async () => {
    const { philipsUs, sr } = byFile();
    const studies = await json('/studies?includefield=ModalitiesInStudy,NumberOfStudyRelatedSeries,NumberOfStudyRelatedInstances');
    const shown = new Set(studies.map((s) => String(attr(s, '0020000D'))));
    assert.ok(!shown.has(pseudo(philipsUs.study)), 'the Philips US study (risky, no rule) is absent');
    assert.ok(!shown.has(pseudo(sr.study)), 'an SR-only study (filtered) is absent');
    const ct = studies.find((s) => attr(s, '0020000D') === pseudo(CT_SMALL_STUDY.study));
    assert.ok(ct, 'the CT study is shown');
    assert.deepEqual(ct['00080061']?.Value, ['CT'], 'PR and DOC are gone from ModalitiesInStudy');
    assert.equal(Number(attr(ct, '00201206')), 1, 'NumberOfStudyRelatedSeries');
    assert.equal(Number(attr(ct, '00201208')), 1, 'NumberOfStudyRelatedInstances');
    const cine = studies.find((s) => attr(s, '0020000D') === pseudo(CINE.study));
    assert.ok(cine, 'the redacted cine study is shown');
    assert.equal(Number(attr(cine, '00201208')), 2);
    // The clinician's own view of the same study still counts three series.
    const original = (await json(`/studies?StudyInstanceUID=${CT_SMALL_STUDY.study}&includefield=NumberOfStudyRelatedSeries`, clinician))[0];
    assert.equal(Number(attr(original, '00201206')), 3);
  });

  test('QIDO: a key on ModalitiesInStudy matches the recomputed value, never a withheld instance', async () => {
    for (const modality of ['PR', 'DOC', 'SR', 'OT']) {
      assert.deepEqual(await json(`/studies?ModalitiesInStudy=${modality}`), [], modality);
    }
    const us = await json('/studies?ModalitiesInStudy=US');
    assert.deepEqual(
      us.map((s) => attr(s, '0020000D')),
      [pseudo(CINE.study)],
      'only the ACUSON study (redacted), not the withheld US studies',
    );
    const ct = await json('/studies?ModalitiesInStudy=CT');
    assert.ok(ct.some((s) => attr(s, '0020000D') === pseudo(CT_SMALL_STUDY.study)));
  });

  test('QIDO: series and instances of a mixed study show only what is kept, with limit and offset over what remains', async () => {
    const { ct } = byFile();
    const series = await json(`/studies/${pseudo(CT_SMALL_STUDY.study)}/series?includefield=NumberOfSeriesRelatedInstances`);
    assert.deepEqual(series.map((s) => attr(s, '0020000E')), [pseudo(ct.series)]);
    assert.equal(Number(attr(series[0], '00201209')), 1);
    const instances = await json(`/studies/${pseudo(CT_SMALL_STUDY.study)}/instances`);
    assert.deepEqual(instances.map((s) => attr(s, '00080018')), [pseudo(ct.instance)]);
    assert.deepEqual(await json(`/studies/${pseudo(CT_SMALL_STUDY.study)}/instances?offset=1`), []);
    assert.deepEqual(await json('/series?Modality=SR'), [], 'every SR series is filtered');
    assert.deepEqual(await json('/instances?Modality=PR'), []);
    const all = await json('/instances?limit=1000');
    const withheldShown = all.filter((i) => ['SR', 'PR', 'DOC', 'OT', 'KO'].includes(String(attr(i, '00080060'))));
    assert.deepEqual(withheldShown, []);
    const paged = [...(await json('/instances?limit=3')), ...(await json('/instances?limit=3&offset=3'))];
    assert.deepEqual(
      paged.map((i) => attr(i, '00080018')),
      all.slice(0, 6).map((i) => attr(i, '00080018')),
      'limit and offset count only what is shown',
    );
  });

  test('metadata, study and series retrieval leave withheld instances out', async () => {
    const { ct, pr } = byFile();
    const meta = await json(`/studies/${pseudo(CT_SMALL_STUDY.study)}/metadata`);
    assert.deepEqual(meta.map((m) => attr(m, '00080018')), [pseudo(ct.instance)]);
    const study = await get(`/studies/${pseudo(CT_SMALL_STUDY.study)}`, researcher, INSTANCES);
    assert.equal(study.status, 200);
    assert.equal(splitMultipart(study.body, study.contentType).length, 1, 'only the CT instance');
    // A series never shown has a pseudonym never issued: as unknown as any other.
    const prSeries = await get(`/studies/${pseudo(pr.study)}/series/${pseudo(pr.series)}`, researcher, INSTANCES);
    assert.equal(prSeries.status, 404);
    assert.equal(codeOf(prSeries.body), 'DICOMWEB_UNKNOWN_RESOURCE');
  });

  test('a withheld instance by itself is 404 DICOMWEB_INSTANCE_WITHHELD on every route, and the PACS is not asked for it', async () => {
    const { pr, pdf, philipsUs } = byFile();
    for (const o of [pr, pdf, philipsUs]) {
      // Never shown, its pseudonyms were never issued: 404 DICOMWEB_UNKNOWN_RESOURCE, as for any UID.
      const unknown = await get(researcherPath(o), researcher, INSTANCES);
      assert.equal(codeOf(unknown.body), 'DICOMWEB_UNKNOWN_RESOURCE');
    }
    // A researcher who saw them before the policy withheld them (issued by an earlier policy): the store
    // holds their pseudonyms, as that earlier answer saved them.
    const store = openSqliteStore(join(keys.dir, 'data', 'pseudonyms.sqlite'));
    await store.save(
      projectScope(TEST_PROJECT),
      [pr, pdf, philipsUs].flatMap((o) => [o.study, o.series, o.instance].map((original) => ({ kind: 'uid' as const, pseudonym: pseudo(original), original }))),
    );
    await store.close();
    for (const o of [pr, pdf, philipsUs]) {
      for (const [suffix, accept] of [
        ['', INSTANCES],
        ['/metadata', JSON_TYPE],
        ['/frames/1', FRAMES],
        ['/bulk/7FE00010', FRAMES],
        ['/rendered', 'image/jpeg'],
        ['/thumbnail', 'image/jpeg'],
      ] as const) {
        const mark = proxy.seen.length;
        const answer = await get(`${researcherPath(o)}${suffix}`, researcher, accept);
        assert.equal(answer.status, 404, `${o.modality} ${suffix}`);
        assert.equal(codeOf(answer.body), 'DICOMWEB_INSTANCE_WITHHELD', `${o.modality} ${suffix}`);
        const asked = proxy.since(mark).filter((r) => r.url.includes(`/instances/${o.instance}`));
        assert.deepEqual(asked.map((r) => r.url), [], `${o.modality} ${suffix}: nothing of the instance asked upstream`);
      }
    }
  });

  test('the ACUSON cine (a rule matched) is redacted: metadata says so, frames are blank inside the rectangle and unchanged outside', async () => {
    const meta = await json(`/studies/${pseudo(CINE.study)}/series/${pseudo(CINE.series)}/metadata`);
    assert.equal(meta.length, 2);
    const clinicianMeta = await json(`/studies/${CINE.study}/series/${CINE.series}/metadata`, clinician);
    for (const m of meta) {
      assert.equal(attr(m, '00280301'), 'NO', 'BurnedInAnnotation NO');
      const original = clinicianMeta.find((c) => pseudo(String(attr(c, '00080018'))) === attr(m, '00080018'));
      assert.ok(original);
      assert.equal(attr(m, '00280004'), decodedPhotometricInterpretation(String(attr(original, '00280004'))));
      assert.equal(m['7FE00010']?.BulkDataURI, undefined, 'no BulkDataURI for a redacted Pixel Data');
    }
    for (const uid of [CINE.native, CINE.jpeg]) {
      const o = { study: CINE.study, series: CINE.series, instance: uid };
      const frames = await get(`${researcherPath(o)}/frames/1,8`, researcher, FRAMES);
      assert.equal(frames.status, 200, frames.body.toString().slice(0, 200));
      const parts = splitMultipart(frames.body, frames.contentType);
      assert.equal(parts.length, 2);
      const clinicianMetaOf = clinicianMeta.find((c) => attr(c, '00080018') === uid);
      const geometry = geometryOf(clinicianMetaOf as Dataset);
      for (const [i, part] of parts.entries()) {
        assert.match(part.headers['content-type'] ?? '', /^application\/octet-stream; transfer-syntax=1\.2\.840\.10008\.1\.2(\.1)?$/);
        assert.equal(part.body.length, CINE_GEOMETRY.rows * CINE_GEOMETRY.columns * CINE_GEOMETRY.samplesPerPixel);
        assertBlankInside(part.body, { ...geometry, photometricInterpretation: decodedPhotometricInterpretation(geometry.photometricInterpretation) });
        if (uid === CINE.native) {
          const theirs = await get(`${clinicianPath(o)}/frames/${i === 0 ? 1 : 8}`, clinician, FRAMES);
          const original = firstPart(theirs);
          assertSameOutside(part.body, original);
        }
      }
    }
  });

  test('a redacted instance: retrieval is blanked, compressed-only Accept is 406, Pixel Data bulkdata and rendered are refused', async () => {
    const native = { study: CINE.study, series: CINE.series, instance: CINE.native };
    const frameBytes = CINE_GEOMETRY.rows * CINE_GEOMETRY.columns * CINE_GEOMETRY.samplesPerPixel;
    const mine = await get(researcherPath(native), researcher, INSTANCES);
    const theirs = await get(clinicianPath(native), clinician, INSTANCES);
    const myFile = firstPart(mine);
    const theirFile = firstPart(theirs);
    const pixels = (file: Buffer) => file.subarray(file.length - frameBytes * CINE_GEOMETRY.frames);
    for (let f = 0; f < CINE_GEOMETRY.frames; f++) {
      const frame = (file: Buffer) => pixels(file).subarray(f * frameBytes, (f + 1) * frameBytes);
      assertBlankInside(frame(myFile), { ...nativeCineGeometry, photometricInterpretation: 'RGB' });
      assertSameOutside(frame(myFile), frame(theirFile));
    }
    // The JPEG cine leaves native, in Explicit VR Little Endian, every frame blank inside the rectangle.
    const jpeg = await get(researcherPath({ ...native, instance: CINE.jpeg }), researcher, INSTANCES);
    const jpegFile = firstPart(jpeg);
    assert.ok(jpegFile.includes(Buffer.from('1.2.840.10008.1.2.1\0')), 'written in Explicit VR Little Endian');
    for (let f = 0; f < CINE_GEOMETRY.frames; f++) {
      assertBlankInside(pixels(jpegFile).subarray(f * frameBytes, (f + 1) * frameBytes), { ...nativeCineGeometry, photometricInterpretation: 'YBR_FULL' });
    }
    const jpegOnly = await get(`${researcherPath(native)}/frames/1`, researcher, 'multipart/related; type="image/jpeg"');
    assert.equal(jpegOnly.status, 406);
    assert.equal(codeOf(jpegOnly.body), 'DICOMWEB_NOT_ACCEPTABLE');
    const bulk = await get(`${researcherPath(native)}/bulk/7FE00010`, researcher, FRAMES);
    assert.equal(bulk.status, 403);
    assert.equal(codeOf(bulk.body), 'DEID_BULKDATA_REDACTED');
    const rendered = await get(`${researcherPath(native)}/rendered`, researcher, 'image/jpeg');
    assert.equal(rendered.status, 403);
    assert.equal(codeOf(rendered.body), 'DEID_RENDERED_REDACTED');
  });

  test('an instance neither risky nor matched keeps its Pixel Data byte for byte', async () => {
    const { ct } = byFile();
    const mine = await get(`${researcherPath(ct)}/frames/1`, researcher, FRAMES);
    const theirs = await get(`${clinicianPath(ct)}/frames/1`, clinician, FRAMES);
    assert.equal(mine.status, 200);
    assert.ok(firstPart(mine).equals(firstPart(theirs)), 'frame bytes identical');
    const bulk = await get(`${researcherPath(ct)}/bulk/7FE00010`, researcher, FRAMES);
    assert.equal(bulk.status, 200);
  });

  test('a project with pixels disabled sees every instance and asks the PACS for no census', async () => {
    const { philipsUs, pr } = byFile();
    const mark = proxy.seen.length;
    const studies = await json('/studies?includefield=ModalitiesInStudy', openProject);
    const shown = new Set(studies.map((s) => attr(s, '0020000D')));
    assert.ok(shown.has(pseudo(philipsUs.study, OPEN_PROJECT)));
    const mixed = studies.find((s) => attr(s, '0020000D') === pseudo(CT_SMALL_STUDY.study, OPEN_PROJECT));
    assert.deepEqual([...((mixed?.['00080061']?.Value as string[]) ?? [])].sort(), ['CT', 'DOC', 'PR']);
    const series = await json(`/studies/${pseudo(pr.study, OPEN_PROJECT)}/series`, openProject);
    assert.equal(series.length, 3);
    const seen = proxy.since(mark);
    assert.equal(seen.filter((r) => isCensus(r.url)).length, 0, 'no census');
    assert.equal(seen.length, 2, 'one upstream request per search, as before');
  });

  test('metrics count withheld and redacted instances, and the audit trail carries them per response', async () => {
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    assert.match(metrics, /deid_gateway_pixel_instances_total\{role="researcher",resource="search",outcome="withheld",reason="filtered"\} [1-9]/);
    assert.match(metrics, /deid_gateway_pixel_instances_total\{role="researcher",resource="pixels",outcome="redacted",reason="rule"\} [1-9]/);
    assert.match(metrics, /deid_gateway_pixel_instances_total\{role="researcher",resource="instances",outcome="withheld",reason="risky"\} [1-9]/);
    const steward = await gateway.token('steward');
    // The audit records are written once each response closes.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const res = await fetch(`${gateway.url}/audit?limit=1000`, { headers: { authorization: `Bearer ${steward}` } });
    const { events } = (await res.json()) as { events: Array<{ route: string; project?: string; instancesWithheld?: number; instancesRedacted?: number }> };
    const mine = events.filter((e) => e.project === TEST_PROJECT);
    assert.ok(mine.length > 10);
    assert.ok(mine.every((e) => typeof e.instancesWithheld === 'number' && typeof e.instancesRedacted === 'number'));
    const studyMeta = mine.find((e) => e.route === 'GET /studies/:study/metadata' && (e.instancesWithheld ?? 0) >= 2);
    assert.ok(studyMeta, 'the CT study metadata withheld the PR and the PDF');
    assert.ok(mine.some((e) => e.route.endsWith('/frames/:frames') && e.instancesRedacted === 1));
    const openEvents = events.filter((e) => e.project === OPEN_PROJECT);
    assert.ok(openEvents.length > 0 && openEvents.every((e) => e.instancesWithheld === undefined), 'no pixel policy, no counts');
  });
  test('study and series rendered are refused alike under a pixel policy, whatever they hold; an unknown series is 404', async () => {
    const { ct } = byFile();
    for (const path of [`/studies/${pseudo(CT_SMALL_STUDY.study)}`, `/studies/${pseudo(ct.study)}/series/${pseudo(ct.series)}`, `/studies/${pseudo(CINE.study)}`]) {
      const answer = await get(`${path}/rendered`, researcher, 'image/jpeg');
      assert.equal(answer.status, 403, path);
      assert.equal(codeOf(answer.body), 'DEID_RENDERED_UNAVAILABLE', path);
    }
    const unknown = await get(`/studies/${pseudo(CT_SMALL_STUDY.study)}/series/${pseudo('1.2.3.4.5.6.7.8.9')}/rendered`, researcher, 'image/jpeg');
    assert.equal(unknown.status, 404);
  });

  test('a redacted encapsulated instance is labelled as written (Explicit VR Little Endian); a compressed-only Accept is 406 before any byte', async () => {
    const jpeg = { study: CINE.study, series: CINE.series, instance: CINE.jpeg };
    const answer = await get(researcherPath(jpeg), researcher, INSTANCES);
    assert.equal(answer.status, 200);
    assert.match(answer.contentType, /transfer-syntax=1\.2\.840\.10008\.1\.2\.1(;|$)/);
    const [part] = splitMultipart(answer.body, answer.contentType);
    assert.equal(part?.headers['content-type'], 'application/dicom; transfer-syntax=1.2.840.10008.1.2.1');
    const series = await get(`/studies/${pseudo(CINE.study)}/series/${pseudo(CINE.series)}`, researcher, INSTANCES);
    assert.doesNotMatch(series.contentType, /transfer-syntax/, 'a series answer names no single transfer syntax');
    for (const p of splitMultipart(series.body, series.contentType)) assert.match(p.headers['content-type'] ?? '', /^application\/dicom; transfer-syntax=1\.2\.840\.10008\.1\.2(\.1)?$/);
    const jpegOnly = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50';
    for (const path of [researcherPath(jpeg), `/studies/${pseudo(CINE.study)}/series/${pseudo(CINE.series)}`]) {
      const refused = await get(path, researcher, jpegOnly);
      assert.equal(refused.status, 406, path);
      assert.equal(codeOf(refused.body), 'DICOMWEB_NOT_ACCEPTABLE');
    }
  });

  test('QIDO under a pixel policy: a key below the search level is 400; OHIF\'s study keys and series keys still work', async () => {
    for (const path of ['/studies?BurnedInAnnotation=YES', '/studies?ImageType=ORIGINAL', '/studies?Modality=US', '/series?ImageType=ORIGINAL', '/series?SOPClassUID=1.2.840.10008.5.1.4.1.1.7']) {
      const answer = await get(path, researcher, JSON_TYPE);
      assert.equal(answer.status, 400, path);
      assert.equal(codeOf(answer.body), 'QIDO_BAD_KEY', path);
    }
    for (const path of [
      '/studies?PatientName=*&StudyDate=19000101-&AccessionNumber=*&StudyDescription=*&ModalitiesInStudy=CT&limit=101&offset=0&fuzzymatching=false&includefield=00081030%2C00080060',
      '/series?Modality=CT&SeriesDescription=*',
      '/instances?ImageType=ORIGINAL*',
    ]) {
      const answer = await get(path, researcher, JSON_TYPE);
      assert.ok(answer.status === 200 || answer.status === 204, `${path}: ${answer.status} ${answer.body.toString().slice(0, 200)}`);
    }
    // A project without a pixel policy keeps taking them, as before.
    const open = await get('/studies?Modality=CT', openProject, JSON_TYPE);
    assert.equal(open.status, 200);
  });

  describe('a PACS whose search answers differ from its instances (census rewritten by a proxy)', () => {
    let liar: LyingPacs;
    let second: TestGateway;
    let token: string;
    before(async () => {
      const { ct } = byFile();
      // The pseudonyms the researcher holds, issued by the honest gateway's searches (the two share a store).
      await json(`/studies/${pseudo(CINE.study)}/instances`);
      await json(`/studies/${pseudo(CT_SMALL_STUDY.study)}/instances`);
      liar = await startLyingPacs(orthanc.httpUrl, {
        // The cine looks like a CT without Burned In Annotation, Image Type or Manufacturer in the census.
        [CINE.native]: (ds) => {
          ds['00080060'] = { vr: 'CS', Value: ['CT'] };
          for (const key of ['00280301', '00080008', '00080070']) delete ds[key];
          return ds;
        },
        [CINE.jpeg]: () => undefined, // the census does not list it
        [ct.instance]: (ds) => ({ ...ds, '00080060': { vr: 'CS', Value: ['PR'] } }), // the census filters it
      });
      second = await startTestGateway(
        liar.dicomWebUrl,
        {
          productPixelDefaults: true,
          deid: {
            researcherRendered: true,
            profiles: {
              researcher: {
                options: ['retainLongitudinalTemporalModifiedDates'],
                pixels: { rules: [{ name: 'acuson-us', match: { Modality: 'US', Manufacturer: { containsIgnoreCase: 'acuson' } }, rectangles: [RECT] }] },
              },
            },
          },
          projects: { [TEST_PROJECT]: { membership: { all: true } } },
        },
        keys,
      );
      token = `Bearer ${await second.token('researcher')}`;
    });
    after(async () => {
      await second?.close();
      await liar?.close();
    });
    const get2 = async (path: string, accept: string) => {
      const res = await fetch(second.base + path, { headers: { authorization: token, accept } });
      return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: Buffer.from(await res.arrayBuffer()) };
    };

    test('the census says keep, the instance\'s own metadata says redact: frames, retrieval and rendered follow the metadata', async () => {
      const native = { study: CINE.study, series: CINE.series, instance: CINE.native };
      const frames = await get2(`${researcherPath(native)}/frames/1`, FRAMES);
      assert.equal(frames.status, 200, frames.body.toString().slice(0, 200));
      assertBlankInside(firstPart(frames), nativeCineGeometry);
      const theirs = firstPart(await get(`${clinicianPath(native)}/frames/1`, clinician, FRAMES));
      assertSameOutside(firstPart(frames), theirs);
      const file = firstPart(await get2(researcherPath(native), INSTANCES));
      const frameBytes = CINE_GEOMETRY.rows * CINE_GEOMETRY.columns * CINE_GEOMETRY.samplesPerPixel;
      assertBlankInside(file.subarray(file.length - frameBytes * CINE_GEOMETRY.frames).subarray(0, frameBytes), nativeCineGeometry);
      const rendered = await get2(`${researcherPath(native)}/rendered`, 'image/jpeg');
      assert.equal(rendered.status, 403);
      assert.equal(codeOf(rendered.body), 'DEID_RENDERED_REDACTED');
      const bulk = await get2(`${researcherPath(native)}/bulk/7FE00010`, FRAMES);
      assert.equal(bulk.status, 403);
    });

    test('an instance the census withholds or does not list is left out of study and series retrieval and metadata too', async () => {
      const { ct } = byFile();
      const study = await get2(`/studies/${pseudo(CT_SMALL_STUDY.study)}`, INSTANCES);
      assert.equal(study.status, 200);
      assert.equal(splitMultipart(study.body, study.contentType).length, 0, 'the CT the census filters is not served');
      const meta = await get2(`/studies/${pseudo(CT_SMALL_STUDY.study)}/metadata`, JSON_TYPE);
      assert.deepEqual(JSON.parse(meta.body.toString()), []);
      const ctMeta = await get2(`${researcherPath(ct)}/metadata`, JSON_TYPE);
      assert.equal(ctMeta.status, 404);
      assert.equal(codeOf(ctMeta.body), 'DICOMWEB_INSTANCE_WITHHELD');
      const series = await get2(`/studies/${pseudo(CINE.study)}/series/${pseudo(CINE.series)}`, INSTANCES);
      assert.equal(series.status, 200);
      const parts = splitMultipart(series.body, series.contentType);
      assert.equal(parts.length, 1, 'only the instance the census lists');
      assert.ok(!parts[0]?.body.includes(Buffer.from(CINE.jpeg)));
      const seriesMeta = JSON.parse((await get2(`/studies/${pseudo(CINE.study)}/series/${pseudo(CINE.series)}/metadata`, JSON_TYPE)).body.toString()) as Dataset[];
      assert.deepEqual(seriesMeta.map((m) => attr(m, '00080018')), [pseudo(CINE.native)]);
      const unlisted = await get2(`${researcherPath({ ...CINE, instance: CINE.jpeg })}/frames/1`, FRAMES);
      assert.equal(unlisted.status, 404);
    });

    test('a BulkDataURI in a search answer never reaches the researcher', async () => {
      const answer = await get2(`/studies/${pseudo(CINE.study)}/instances?includefield=all`, JSON_TYPE);
      assert.equal(answer.status, 200);
      assert.ok(liar.injectedBulk > 0, 'the proxy gave a BulkDataURI');
      const text = answer.body.toString();
      assert.doesNotMatch(text, /BulkDataURI/);
      assert.ok(!text.includes(CINE.study) && !text.includes(CINE.native), 'no original UID');
    });
  });
});

const nativeCineGeometry: FrameGeometry = {
  rows: 240,
  columns: 320,
  samplesPerPixel: 3,
  bitsAllocated: 8,
  bitsStored: 8,
  pixelRepresentation: 0,
  planarConfiguration: 0,
  photometricInterpretation: 'RGB',
  numberOfFrames: 8,
};

function geometryOf(meta: Dataset): FrameGeometry {
  const n = (key: string, fallback = 0) => Number(attr(meta, key) ?? fallback);
  return {
    rows: n('00280010'),
    columns: n('00280011'),
    samplesPerPixel: n('00280002'),
    bitsAllocated: n('00280100'),
    bitsStored: n('00280101'),
    pixelRepresentation: n('00280103'),
    planarConfiguration: n('00280006'),
    photometricInterpretation: String(attr(meta, '00280004')),
    numberOfFrames: n('00280008', 1),
  };
}

/** Every sample inside RECT is the blank value (8-bit interleaved frames). */
function assertBlankInside(frame: Buffer, g: FrameGeometry): void {
  const blank = blankSampleValues(g);
  for (let y = RECT.y; y < RECT.y + RECT.height; y++) {
    for (let x = RECT.x; x < RECT.x + RECT.width; x++) {
      for (let s = 0; s < g.samplesPerPixel; s++) {
        const at = (y * g.columns + x) * g.samplesPerPixel + s;
        if (frame[at] !== blank[s]) assert.fail(`sample ${s} at (${x},${y}) is ${frame[at]}, not ${blank[s]}`);
      }
    }
  }
}

/** Every byte outside RECT equals the original's (8-bit interleaved 320x240 RGB). */
function assertSameOutside(mine: Buffer, theirs: Buffer): void {
  assert.equal(mine.length, theirs.length);
  const { columns, samplesPerPixel } = nativeCineGeometry;
  for (let at = 0; at < mine.length; at++) {
    const pixel = Math.floor(at / samplesPerPixel);
    const x = pixel % columns;
    const y = Math.floor(pixel / columns);
    const inside = x >= RECT.x && x < RECT.x + RECT.width && y >= RECT.y && y < RECT.y + RECT.height;
    if (!inside && mine[at] !== theirs[at]) assert.fail(`byte ${at} at (${x},${y}) changed outside the rectangle`);
  }
}

type Rewrite = (ds: Dataset) => Dataset | undefined;
interface LyingPacs {
  readonly dicomWebUrl: string;
  /** BulkDataURIs the proxy added to search answers. */
  readonly injectedBulk: number;
  close(): Promise<void>;
}

/**
 * A PACS whose instance-level search answers are not what its instances hold: in front of Orthanc, the
 * census (limit=1000) answers rewritten per SOP Instance UID, and every other instance search given a
 * Pixel Data BulkDataURI naming original UIDs. Everything else passes unchanged.
 */
async function startLyingPacs(orthancHttpUrl: string, rewrites: Record<string, Rewrite>): Promise<LyingPacs> {
  let injectedBulk = 0;
  const server: Server = createServer(async (req, res) => {
    try {
      const url = req.url ?? '/';
      const upstream = await fetch(`${orthancHttpUrl}${url}`, { headers: { accept: String(req.headers.accept ?? '*/*') } });
      let body = Buffer.from(await upstream.arrayBuffer());
      const search = /\/instances\?/.test(url) && upstream.status === 200;
      if (search) {
        let items = JSON.parse(body.toString()) as Dataset[];
        if (/limit=1000/.test(url)) {
          items = items.flatMap((ds) => {
            const rewrite = rewrites[String(attr(ds, '00080018'))];
            const out = rewrite ? rewrite(ds) : ds;
            return out ? [out] : [];
          });
        } else {
          for (const ds of items) {
            ds['7FE00010'] = { vr: 'OW', BulkDataURI: `${orthancHttpUrl}/dicom-web/studies/${attr(ds, '0020000D')}/series/${attr(ds, '0020000E')}/instances/${attr(ds, '00080018')}/bulk/7FE00010` };
            injectedBulk++;
          }
        }
        body = Buffer.from(JSON.stringify(items));
      }
      res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/octet-stream', 'content-length': body.length });
      res.end(body);
    } catch {
      res.destroy();
    }
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    dicomWebUrl: `http://127.0.0.1:${port}/dicom-web`,
    get injectedBulk() {
      return injectedBulk;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

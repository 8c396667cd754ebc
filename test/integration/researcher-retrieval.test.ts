// Issue 14, items 3, 6 and 8, against a real Orthanc holding every shared sample: every BulkDataURI the
// researcher's metadata holds resolves (and nothing the profile removes is advertised); frames of an
// instance without Pixel Data are 404 DICOMWEB_NO_FRAMES; and no researcher route answers 200 in a media
// type the caller's Accept does not allow (RFC 9110 12.5.1, PS3.18 8.7).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { makeKeys, startTestGateway, type TestGateway, type TestKeys } from '../helpers/gateway.ts';
import { splitMultipart } from '../helpers/multipart.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { rm } from 'node:fs/promises';

type Element = { vr: string; Value?: unknown[]; BulkDataURI?: string; InlineBinary?: string };
type Dataset = Record<string, Element>;

const JSON_TYPE = 'application/dicom+json';
const FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
const INSTANCES = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const XML_METADATA = 'multipart/related; type="application/dicom+xml"';
/** The Enhanced CT sample (multiframe/CT0012.*) with Palette Color LUT Data (0028,1201-1203). */
const ENHANCED_CT = {
  study: '1.3.6.1.4.1.5962.1.2.10.1166562673.14401',
  series: '1.3.6.1.4.1.5962.1.3.10.3.1166562673.14401',
  instance: '1.3.6.1.4.1.5962.1.1.10.3.1.1166562673.14401',
};
const PIXEL_DATA_KEYS = ['7FE00010', '7FE00008', '7FE00009'];

/** Every BulkDataURI in a dataset, at any depth, with the tag path of its element. */
function bulkUris(dataset: Dataset, path: string[] = []): { uri: string; tags: string[] }[] {
  return Object.entries(dataset).flatMap(([key, element]) => [
    ...(element.BulkDataURI ? [{ uri: element.BulkDataURI, tags: [...path, key] }] : []),
    ...(element.vr === 'SQ' ? (element.Value ?? []).flatMap((item) => bulkUris(item as Dataset, [...path, key])) : []),
  ]);
}
const uidOf = (dataset: Dataset | undefined, key: string) => String(dataset?.[key]?.Value?.[0]);
const codeOf = (body: Buffer) => (JSON.parse(body.toString()) as { error: { code: string } }).error.code;

describe('researcher retrieval: bulkdata, frames and content negotiation', () => {
  let orthanc: OrthancProcess;
  let keys: TestKeys;
  let gateway: TestGateway;
  let researcher: string;
  let clinician: string;
  /** The researcher's metadata of every instance of every study. */
  const metadata: Dataset[] = [];

  const get = async (path: string, authorization: string, accept?: string) => {
    const res = await fetch(path.startsWith('http') ? path : gateway.base + path, { headers: { authorization, ...(accept === undefined ? {} : { accept }) } });
    return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: Buffer.from(await res.arrayBuffer()) };
  };
  const instancePath = (ds: Dataset) => `/studies/${uidOf(ds, '0020000D')}/series/${uidOf(ds, '0020000E')}/instances/${uidOf(ds, '00080018')}`;

  before(async () => {
    ({ orthanc } = await startTestOrthanc({ loadSamples: true }));
    keys = await makeKeys();
    gateway = await startTestGateway(orthanc.dicomWebUrl, { deid: { researcherRendered: true } }, keys);
    researcher = `Bearer ${await gateway.token('researcher')}`;
    clinician = `Bearer ${await gateway.token('clinician')}`;
    const studies = JSON.parse((await get('/studies', researcher, JSON_TYPE)).body.toString()) as Dataset[];
    for (const study of studies) {
      const answer = await get(`/studies/${uidOf(study, '0020000D')}/metadata`, researcher, JSON_TYPE);
      assert.equal(answer.status, 200);
      metadata.push(...(JSON.parse(answer.body.toString()) as Dataset[]));
    }
    assert.ok(metadata.length >= 40, `${metadata.length} instances`);
  });
  after(async () => {
    await gateway?.close();
    await orthanc?.stop();
    if (keys) await rm(keys.dir, { recursive: true, force: true });
  });

  test('every BulkDataURI of every sample’s researcher metadata answers 200 with the value, and a Palette Color LUT is the clinician’s bytes', async () => {
    const all = metadata.flatMap((ds) => bulkUris(ds).map((b) => ({ ...b, ds })));
    assert.ok(all.length >= 20, `${all.length} BulkDataURIs`);
    const failures: string[] = [];
    for (const { uri, tags, ds } of all) {
      // The URI points at the gateway and names the instance by its pseudonyms only.
      assert.ok(uri.startsWith(`${gateway.base}${instancePath(ds)}/bulk/`), uri);
      const answer = await get(uri, researcher, FRAMES);
      if (answer.status !== 200) {
        failures.push(`${tags.join('>')}: ${answer.status} ${answer.body.subarray(0, 120).toString()}`);
        continue;
      }
      const parts = splitMultipart(answer.body, answer.contentType);
      assert.equal(parts.length, 1, uri);
      assert.match(parts[0]?.headers['content-type'] ?? '', /^application\/octet-stream/);
    }
    assert.deepEqual(failures, [], 'every advertised BulkDataURI resolves');
    const advertised = new Set(all.map((b) => b.tags.join('>')));
    // Nested bulkdata the profile keeps at every level is advertised and served too (Waveform Data).
    assert.ok(advertised.has('54000100>54001010'), [...advertised].join(' '));
    // Nothing the profile removes is advertised: Encapsulated Document, Overlay Data, an icon's pixels,
    // private attributes.
    for (const removed of ['00420011', '60003000', '00880200>7FE00010', '00880200>00281201']) assert.ok(!advertised.has(removed), removed);
    assert.ok(![...advertised].some((path) => path.split('>').some((tag) => Number.parseInt(tag.slice(3, 4), 16) % 2 === 1)), 'no private tag');

    // The LUT of the Enhanced CT: the researcher's bytes are the clinician's.
    const ct = metadata.find((ds) => uidOf(ds, '00080016') === '1.2.840.10008.5.1.4.1.1.2.1' && ds['00281201']?.BulkDataURI);
    assert.ok(ct, 'the Enhanced CT sample advertises its Palette Color LUT Data');
    for (const tag of ['00281201', '00281202', '00281203']) {
      const ours = await get(ct[tag]?.BulkDataURI as string, researcher, FRAMES);
      const theirs = await get(`/studies/${ENHANCED_CT.study}/series/${ENHANCED_CT.series}/instances/${ENHANCED_CT.instance}/bulk/${tag}`, clinician, FRAMES);
      assert.equal(ours.status, 200);
      assert.equal(theirs.status, 200);
      const a = splitMultipart(ours.body, ours.contentType)[0]?.body;
      const b = splitMultipart(theirs.body, theirs.contentType)[0]?.body;
      assert.ok(a && b && a.length > 0 && a.equals(b), `${tag}: the same bytes`);
    }
  });

  test('bulkdata the profile removes is 404 even when asked for by its tag', async () => {
    const pdf = metadata.find((ds) => uidOf(ds, '00080016') === '1.2.840.10008.5.1.4.1.1.104.1');
    assert.ok(pdf, 'the encapsulated PDF sample');
    assert.equal(pdf['00420011']?.BulkDataURI, undefined, 'the Encapsulated Document is not advertised');
    for (const tag of ['00420011', '00100010', '00880200/1/7FE00010', '00291010']) {
      const answer = await get(`${instancePath(pdf)}/bulk/${tag}`, researcher, FRAMES);
      assert.equal(answer.status, 404, tag);
      assert.equal(codeOf(answer.body), 'DICOMWEB_UNKNOWN_RESOURCE');
    }
  });

  test('frames of an SR, a PDF, an RTSTRUCT, a PR (every instance without Pixel Data) are 404 DICOMWEB_NO_FRAMES', async () => {
    // No Pixel Data and no Rows: not an image (Orthanc leaves out a Pixel Data encoded as UN, and serves its frames).
    const withoutPixels = metadata.filter((ds) => ![...PIXEL_DATA_KEYS, '00280010'].some((key) => key in ds));
    const classes = new Set(withoutPixels.map((ds) => uidOf(ds, '00080016')));
    for (const sopClass of ['1.2.840.10008.5.1.4.1.1.88.33', '1.2.840.10008.5.1.4.1.1.104.1', '1.2.840.10008.5.1.4.1.1.481.3', '1.2.840.10008.5.1.4.1.1.11.1']) {
      assert.ok(classes.has(sopClass), `a sample of SOP Class ${sopClass}`);
    }
    for (const ds of withoutPixels) {
      const answer = await get(`${instancePath(ds)}/frames/1`, researcher, FRAMES);
      assert.equal(answer.status, 404, `${uidOf(ds, '00080016')}: ${answer.status}`);
      assert.equal(codeOf(answer.body), 'DICOMWEB_NO_FRAMES');
    }
    // An instance with Pixel Data keeps the PACS's own answer: frame 1 of a CT is served, its frame 99
    // (Orthanc: 400) is not made a 404 DICOMWEB_NO_FRAMES.
    const ct = metadata.find((ds) => uidOf(ds, '00080016') === '1.2.840.10008.5.1.4.1.1.2' && '7FE00010' in ds) as Dataset;
    assert.equal((await get(`${instancePath(ct)}/frames/1`, researcher, FRAMES)).status, 200);
    const beyond = await get(`${instancePath(ct)}/frames/99`, researcher, FRAMES);
    assert.notEqual(beyond.status, 200);
    assert.equal(codeOf(beyond.body), 'UPSTREAM_STATUS');
    // The clinician is relayed as the PACS answers (never stricter than the PACS): Orthanc's 500.
    const sr = await get(
      '/studies/1.2.276.0.7230010.3.1.4.2139363186.7819.982086466.2/series/1.2.276.0.7230010.3.1.4.2139363186.7819.982086466.3/instances/1.2.276.0.7230010.3.1.4.2139363186.7819.982086466.4/frames/1',
      clinician,
      FRAMES,
    );
    assert.equal(sr.status, 500);
  });

  test('metadata as XML is 406 for the researcher (the clinician gets Orthanc’s XML); JSON follows the Accept with q-values and wildcards', async () => {
    const path = `${instancePath(metadata[0] as Dataset)}/metadata`;
    for (const accept of [XML_METADATA, `${XML_METADATA}, application/dicom+json;q=0`, 'text/html', 'application/dicom', INSTANCES, 'application/*;q=0']) {
      const answer = await get(path, researcher, accept);
      assert.equal(answer.status, 406, accept);
      assert.equal(codeOf(answer.body), 'DICOMWEB_NOT_ACCEPTABLE');
    }
    const xml = await get(`/studies/${ENHANCED_CT.study}/metadata`, clinician, XML_METADATA);
    assert.equal(xml.status, 200);
    assert.match(xml.contentType, /^multipart\/related;\s*type="application\/dicom\+xml"/);
    for (const [accept, type] of [
      [undefined, JSON_TYPE],
      ['*/*', JSON_TYPE],
      [JSON_TYPE, JSON_TYPE],
      [`${XML_METADATA}, application/dicom+json;q=0.5`, JSON_TYPE],
      ['application/json', 'application/json'],
      ['application/dicom+json;q=0, */*', 'application/json'],
      ['application/json;q=0.4, application/dicom+json;q=0.9', JSON_TYPE],
      ['application/json, application/dicom+json;q=0.9', 'application/json'],
      ['application/*', JSON_TYPE],
    ] as const) {
      const answer = await get(path, researcher, accept);
      assert.equal(answer.status, 200, String(accept));
      assert.equal(answer.contentType, type, String(accept));
      assert.ok(Array.isArray(JSON.parse(answer.body.toString())));
    }
  });

  test('QIDO is DICOM JSON only: XML or anything else is 406, JSON 200', async () => {
    for (const accept of [XML_METADATA, 'application/dicom+xml', 'text/plain', '*/*;q=0']) {
      const answer = await get('/studies?limit=1', researcher, accept);
      assert.equal(answer.status, 406, accept);
      assert.equal(codeOf(answer.body), 'DICOMWEB_NOT_ACCEPTABLE');
    }
    for (const [accept, type] of [[JSON_TYPE, JSON_TYPE], ['application/json', 'application/json'], ['*/*', JSON_TYPE], ['application/*;q=0.1', JSON_TYPE]] as const) {
      const answer = await get('/studies?limit=1', researcher, accept);
      assert.equal(answer.status, 200, accept);
      assert.equal(answer.contentType, type);
    }
  });

  test('instances, frames, bulkdata and rendered answer 200 only in a media type the Accept allows', async () => {
    const ct = metadata.find((ds) => uidOf(ds, '00080016') === '1.2.840.10008.5.1.4.1.1.2' && '7FE00010' in ds) as Dataset;
    const path = instancePath(ct);
    const refused: [string, string][] = [
      [path, 'application/dicom'],
      [path, JSON_TYPE],
      [path, 'multipart/related; type="application/dicom+xml"'],
      [path, 'multipart/related; type="application/dicom";q=0, */*'],
      [path, 'multipart/related; type="application/octet-stream"'],
      [`${path}/frames/1`, INSTANCES],
      [`${path}/frames/1`, JSON_TYPE],
      [`${path}/frames/1`, 'multipart/related; type="application/octet-stream";q=0'],
      [`${path}/bulk/7FE00010`, JSON_TYPE],
      [`${path}/bulk/7FE00010`, 'application/octet-stream'],
      [`${path}/rendered`, 'text/html'],
      [`${path}/rendered`, JSON_TYPE],
    ];
    for (const [route, accept] of refused) {
      const answer = await get(route, researcher, accept);
      assert.equal(answer.status, 406, `${route.slice(path.length) || '(instance)'} with ${accept}`);
      assert.equal(codeOf(answer.body), 'DICOMWEB_NOT_ACCEPTABLE');
    }
    const served: [string, string | undefined, RegExp][] = [
      [path, INSTANCES, /^multipart\/related;\s*type="application\/dicom"/],
      [path, 'multipart/related; type="application/dicom"', /^multipart\/related;\s*type="application\/dicom"/],
      [path, undefined, /^multipart\/related;\s*type="application\/dicom"/],
      [`${path}/frames/1`, FRAMES, /^multipart\/related;\s*type="(application\/octet-stream|image\/)/],
      [`${path}/frames/1`, 'multipart/related; type="application/octet-stream"', /^multipart\/related;\s*type="application\/octet-stream/],
      [`${path}/frames/1`, '*/*', /^multipart\/related/],
      [`${path}/bulk/7FE00010`, 'multipart/related; type="application/octet-stream"', /^multipart\/related;\s*type="application\/octet-stream/],
      [`${path}/rendered`, 'image/png', /^image\/png/],
      [`${path}/rendered`, 'image/jpeg', /^image\/jpeg/],
    ];
    for (const [route, accept, type] of served) {
      const answer = await get(route, researcher, accept);
      assert.equal(answer.status, 200, `${route.slice(path.length) || '(instance)'} with ${accept}: ${answer.body.subarray(0, 120).toString()}`);
      assert.match(answer.contentType, type, `${route.slice(path.length) || '(instance)'} with ${accept}`);
    }
  });

  test('frames asked for in one compressed type are never answered in another', async () => {
    const images = metadata.filter((ds) => '7FE00010' in ds);
    for (const accept of ['multipart/related; type="image/jpeg"', 'multipart/related; type="application/octet-stream"', 'multipart/related; type="image/jp2"']) {
      const wanted = /type="([^"]+)"/.exec(accept)?.[1] as string;
      for (const ds of images) {
        const answer = await get(`${instancePath(ds)}/frames/1`, researcher, accept);
        if (answer.status !== 200) continue; // the PACS could not transcode: an error, never another type
        assert.match(answer.contentType, new RegExp(`^multipart/related;\\s*type="${wanted.replace('/', '\\/')}[;"]`), `${uidOf(ds, '00080016')} ${accept}`);
        for (const part of splitMultipart(answer.body, answer.contentType)) assert.ok(part.headers['content-type']?.startsWith(wanted), part.headers['content-type']);
      }
    }
  });
});

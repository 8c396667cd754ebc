// Issue 14, "stream lifetime in one helper" (src/dicomweb/stream-lifetime.ts): for each transaction, a
// caller who leaves mid-way makes the gateway let go of the PACS at once. Watched from the PACS side: a
// recording proxy in front of a real Orthanc slows the answers down and reports whether each exchange
// was answered whole or closed by the gateway first, and which requests came after.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadIntoOrthanc } from '../../src/demo/orthanc-process.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { startRecordingProxy, type Pacing, type RecordedRequest, type RecordingProxy } from '../helpers/recording-proxy.ts';
import { sample } from '../helpers/sample.ts';
import { stowBody } from '../helpers/stow.ts';
import { syntheticInstance } from '../helpers/synthetic-instance.ts';

const ROOT = '1.2.826.0.1.3680043.10.543.14';
const STUDY = `${ROOT}.1`;
const SERIES = `${ROOT}.2`;
const CINE = 'multiframe/IM00001.implicit_little_endian.dcm';
const CINE_STUDY = '1.3.6.1.4.1.25403.166563008443.732.20120418082458.1';
/** More instances than three upstream QIDO pages of 200 (src/dicomweb/qido.ts UPSTREAM_PAGE). */
const MANY = 450;
/** How soon after the caller leaves the PACS side must be let go (two shared cores, Orthanc and the gateway on them). */
const PROMPTLY_MS = 1_500;

/** A small Secondary Capture instance without pixels, in the one synthetic study. */
function instance(n: number, root = ROOT, study = STUDY, series = SERIES): Buffer {
  return syntheticInstance(`${root}.3.${n}`, [
    [0x00080060, 'CS', 'OT'],
    [0x00081030, 'LO', `Lifetime study, instance ${n} of many, with some text to make its metadata longer`],
    [0x00100010, 'PN', 'Lifetime^Patient'],
    [0x00100020, 'LO', 'LIFETIME-14'],
    [0x0020000d, 'UI', study],
    [0x0020000e, 'UI', series],
    [0x00200013, 'IS', String(n)],
  ]);
}

describe('a caller who leaves mid-way: the gateway lets go of the PACS', () => {
  let orthanc: OrthancProcess;
  let proxy: RecordingProxy;
  let gateway: TestGateway;
  let researcher: string;
  let clinician: string;
  let uploader: string;
  let manyStudy = '';
  let cineStudy = '';

  before(async () => {
    ({ orthanc } = await startTestOrthanc());
    const files = [{ name: 'cine', bytes: sample(CINE) }, ...Array.from({ length: MANY }, (_, i) => ({ name: `i${i}`, bytes: instance(i + 1) }))];
    const loaded = await loadIntoOrthanc(orthanc.httpUrl, files);
    assert.equal(loaded.stored.length, MANY + 1);
    proxy = await startRecordingProxy(orthanc.httpUrl);
    gateway = await startTestGateway(proxy.dicomWebUrl);
    researcher = `Bearer ${await gateway.token('researcher')}`;
    clinician = `Bearer ${await gateway.token('clinician')}`;
    uploader = `Bearer ${await gateway.token('uploader')}`;
    const studies = (await (await fetch(`${gateway.base}/studies?includefield=00201208`, { headers: { authorization: researcher } })).json()) as Record<string, { Value?: unknown[] }>[];
    for (const s of studies) {
      const uid = String(s['0020000D']?.Value?.[0]);
      if (s['00201208']?.Value?.[0] === MANY) manyStudy = uid;
      else cineStudy = uid;
    }
    assert.match(manyStudy, /^2\.25\./);
    assert.match(cineStudy, /^2\.25\./);
  });
  after(async () => {
    await gateway?.close();
    await proxy?.close();
    await orthanc?.stop();
  });

  interface Leaving {
    /** Which PACS answers the proxy slows down, and how. */
    readonly pace: (r: RecordedRequest) => Pacing | undefined;
    /** The gateway URL the caller asks. */
    readonly url: string;
    readonly init: { authorization: string; accept?: string; method?: string; body?: Uint8Array; contentType?: string };
    /** The PACS-side request to watch. */
    readonly upstream: (r: RecordedRequest) => boolean;
    /** Leave once the first body bytes arrived (else while the gateway waits on the PACS). */
    readonly readFirst: boolean;
    /** How long to watch for further PACS requests after the caller left. */
    readonly quietMs: number;
  }

  /**
   * A caller asks, the PACS is slowed down, and the caller leaves mid-way: the PACS-side exchange must be
   * closed by the gateway within PROMPTLY_MS, and nothing more asked of the PACS for `quietMs`.
   */
  async function leaveAndWatch(what: string, c: Leaving): Promise<RecordedRequest> {
    proxy.pace(c.pace);
    try {
      const mark = proxy.seen.length;
      const controller = new AbortController();
      const headers: Record<string, string> = { authorization: c.init.authorization };
      if (c.init.accept) headers['accept'] = c.init.accept;
      if (c.init.contentType) headers['content-type'] = c.init.contentType;
      const body = c.init.body && new Uint8Array(c.init.body);
      const answer = fetch(c.url, { method: c.init.method ?? 'GET', headers, body, signal: controller.signal });
      answer.catch(() => undefined);
      const upstreamRequest = await proxy.next(mark, c.upstream);
      if (c.readFirst) {
        const res = await answer;
        assert.equal(res.status, 200, what);
        const first = await (res.body as ReadableStream<Uint8Array>).getReader().read();
        assert.ok(!first.done && first.value.length > 0, `${what}: some body came through`);
      } else {
        await sleep(200); // the gateway is waiting on the PACS
      }
      const leftAt = Date.now();
      controller.abort();
      const markAfter = proxy.seen.length;
      const end = await Promise.race([upstreamRequest.ended, sleep(5_000).then(() => undefined)]);
      assert.ok(end, `${what}: the PACS-side exchange never ended`);
      assert.equal(end.outcome, 'aborted', `${what}: the gateway read the PACS's answer to the end after the caller had gone`);
      assert.ok(end.at - leftAt < PROMPTLY_MS, `${what}: let go ${end.at - leftAt} ms after the caller left`);
      await sleep(c.quietMs);
      assert.deepEqual(proxy.since(markAfter).map((r) => `${r.method} ${r.url}`), [], `${what}: nothing more is asked of the PACS`);
      return upstreamRequest;
    } finally {
      proxy.pace(undefined);
    }
  }

  const RETRIEVE = 'multipart/related; type="application/dicom"; transfer-syntax=*';
  const cineRetrieval = (r: RecordedRequest) => r.url === `/dicom-web/studies/${CINE_STUDY}`;
  const streamed = (match: (r: RecordedRequest) => boolean, chunkBytes: number) => (r: RecordedRequest) => (match(r) ? { chunkBytes, chunkMs: 60 } : undefined);
  const held = (match: (r: RecordedRequest) => boolean, headMs: number) => (r: RecordedRequest) => (match(r) ? { headMs } : undefined);
  const isPost = (r: RecordedRequest) => r.method === 'POST';
  /** Two new instances in a study of their own, so that a store is never a duplicate. */
  const twoInstances = () => {
    const root = `${ROOT}.${randomBytes(3).readUIntBE(0, 3)}`;
    return [1, 2].map((n) => instance(n, root, `${root}.1`, `${root}.2`));
  };

  test('researcher QIDO filtered gateway-side over many instances: the page in flight is aborted, no next page is asked', async () => {
    // PatientName is pseudonymous for the researcher: matched by the gateway, page by page (200 a page).
    // A gateway still paging would ask for offset=200 within a page's 700 ms: watched for 2 s.
    const isPage = (r: RecordedRequest) => r.url.includes('/instances?');
    const page = await leaveAndWatch('QIDO', {
      pace: held(isPage, 700),
      url: `${gateway.base}/instances?PatientName=NOBODY*`,
      init: { authorization: researcher },
      upstream: isPage,
      readFirst: false,
      quietMs: 2_000,
    });
    assert.match(page.url, /offset=0/);
  });

  test('the same QIDO, when the caller stays, pages through every instance (the control)', async () => {
    const mark = proxy.seen.length;
    const res = await fetch(`${gateway.base}/instances?PatientName=NOBODY*`, { headers: { authorization: researcher } });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), []);
    const pages = proxy.since(mark).filter((r) => r.url.includes('/instances?'));
    assert.ok(pages.length >= Math.ceil(MANY / 200), `${pages.length} pages`);
    for (const page of pages) assert.equal((await page.ended).outcome, 'complete');
  });

  test('researcher metadata: the PACS answer being read is aborted', async () => {
    const isMetadata = (r: RecordedRequest) => r.url.endsWith('/metadata');
    await leaveAndWatch('metadata', {
      pace: streamed(isMetadata, 8_192),
      url: `${gateway.base}/studies/${manyStudy}/metadata`,
      init: { authorization: researcher, accept: 'application/dicom+json' },
      upstream: isMetadata,
      readFirst: true,
      quietMs: 500,
    });
  });

  test('researcher study retrieval: the PACS answer being streamed is aborted', async () => {
    await leaveAndWatch('study retrieval', {
      pace: streamed(cineRetrieval, 32_768),
      url: `${gateway.base}/studies/${cineStudy}`,
      init: { authorization: researcher, accept: RETRIEVE },
      upstream: cineRetrieval,
      readFirst: true,
      quietMs: 500,
    });
  });

  test('clinician relay: the relayed PACS answer is aborted', async () => {
    await leaveAndWatch('relay', {
      pace: streamed(cineRetrieval, 32_768),
      url: `${gateway.base}/studies/${CINE_STUDY}`,
      init: { authorization: clinician, accept: RETRIEVE },
      upstream: cineRetrieval,
      readFirst: true,
      quietMs: 500,
    });
  });

  test('STOW: the store in flight is aborted and the next part never goes upstream', async () => {
    const { body, contentType } = stowBody(twoInstances());
    await leaveAndWatch('STOW', {
      pace: held(isPost, 3_000),
      url: `${gateway.base}/studies`,
      init: { authorization: uploader, method: 'POST', body, contentType, accept: 'application/dicom+json' },
      upstream: isPost,
      readFirst: false,
      quietMs: 1_000,
    });
  });

  test('the upload page: the store in flight is aborted and the next file never goes upstream', async () => {
    const form = new FormData();
    twoInstances().forEach((file, i) => {
      form.append('files', new Blob([new Uint8Array(file)]), `f${i}.dcm`);
    });
    const encoded = new Request('http://127.0.0.1/upload', { method: 'POST', body: form });
    await leaveAndWatch('upload page', {
      pace: held(isPost, 3_000),
      url: `${gateway.url}/upload`,
      init: { authorization: uploader, method: 'POST', body: new Uint8Array(await encoded.arrayBuffer()), contentType: encoded.headers.get('content-type') as string },
      upstream: isPost,
      readFirst: false,
      quietMs: 1_000,
    });
  });

  test('a caller leaving is not logged as a PACS failure, and the gateway stays healthy', async () => {
    await sleep(200);
    const logs = gateway.logs();
    assert.ok(!logs.includes('UPSTREAM_UNUSABLE'), 'no UPSTREAM_UNUSABLE');
    assert.ok(!/"level":50[^\n]*CLIENT_GONE/.test(logs), 'a caller leaving is not an error');
    const res = await fetch(`${gateway.url}/healthz`);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });
});

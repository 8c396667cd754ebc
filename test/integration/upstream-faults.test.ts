import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { keyedUid } from '../../src/deid/pseudonym.ts';
import { startTestGateway, type TestGateway, scopeKey } from '../helpers/gateway.ts';
import { assertHealthy, closeServer, readBody } from '../helpers/http.ts';
import { CINE_SOP_INSTANCE_UID, listInstances, startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';

/** A deliberately broken upstream on loopback: it injects faults a real PACS shows only by chance. */
async function faultyUpstream(behaviour: (res: import('node:http').ServerResponse) => void): Promise<Server> {
  const server = createServer((_req, res) => behaviour(res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}
const urlOf = (s: Server) => `http://127.0.0.1:${(s.address() as AddressInfo).port}/dicom-web`;

describe('upstream faults', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;
  let clinician: string;
  let researcher: string;

  before(async () => {
    ({ orthanc } = await startTestOrthanc({ loadSamples: true }));
    gateway = await startTestGateway(orthanc.dicomWebUrl);
    clinician = `Bearer ${await gateway.token('clinician')}`;
    researcher = `Bearer ${await gateway.token('researcher')}`;
  });
  after(async () => {
    await gateway?.close();
    await orthanc?.stop();
  });

  test('with Orthanc stopped the gateway answers 502, stays healthy, and recovers when Orthanc returns', async () => {
    await orthanc.kill();
    const res = await fetch(`${gateway.base}/studies`, { headers: { authorization: clinician } });
    assert.equal(res.status, 502);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'UPSTREAM_UNREACHABLE');
    const restricted = await fetch(`${gateway.base}/studies?PatientName=*`, { headers: { authorization: researcher } });
    assert.equal(restricted.status, 502, 'the researcher too');
    assert.equal(((await restricted.json()) as { error: { code: string } }).error.code, 'UPSTREAM_UNREACHABLE');
    const ready = await fetch(`${gateway.url}/readyz`);
    assert.equal(ready.status, 503);
    await ready.arrayBuffer();
    const alive = await fetch(`${gateway.url}/healthz`);
    assert.equal(alive.status, 200);
    await alive.arrayBuffer();

    await orthanc.restart();
    const back = await fetch(`${gateway.base}/studies`, { headers: { authorization: clinician } });
    assert.equal(back.status, 200);
    assert.ok(((await back.json()) as unknown[]).length > 0);
    const researcherBack = await fetch(`${gateway.base}/studies`, { headers: { authorization: researcher } });
    assert.equal(researcherBack.status, 200, 'the researcher recovers too');
    assert.ok(((await researcherBack.json()) as unknown[]).length > 0);
  });

  test('Orthanc killed while a researcher retrieves a large study: aborted, never a close delimiter on a partial body', async () => {
    // The researcher addresses studies by pseudonym: learn one through QIDO (the US multi-frame samples).
    const qido = await fetch(`${gateway.base}/instances?SOPClassUID=1.2.840.10008.5.1.4.1.1.3.1&includefield=0020000D`, {
      headers: { authorization: researcher },
    });
    const [hit] = (await qido.json()) as Record<string, { Value?: string[] }>[];
    const study = hit?.['0020000D']?.Value?.[0];
    assert.match(String(study), /^2\.25\./, 'a pseudonymous study UID');
    const res = await fetch(`${gateway.base}/studies/${study}`, {
      headers: { authorization: researcher, accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
    });
    assert.equal(res.status, 200);
    const closeDelimiter = `--${/boundary=([^;]+)/.exec(res.headers.get('content-type') ?? '')?.[1]}--`;
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const chunks: Buffer[] = [];
    const first = await reader.read();
    if (first.value) chunks.push(Buffer.from(first.value));
    await orthanc.kill();
    const outcome = await (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return 'complete';
          chunks.push(Buffer.from(value));
        }
      } catch {
        return 'aborted';
      }
    })();
    await orthanc.restart();
    const body = Buffer.concat(chunks).toString('latin1');
    // Either Orthanc had already handed over every byte (then the body ends with its close delimiter),
    // or the researcher sees an abort and no close delimiter: a cut body never looks complete.
    if (outcome === 'complete') assert.ok(body.trimEnd().endsWith(closeDelimiter) && body.length > 1_000_000);
    else assert.ok(!body.includes(closeDelimiter), 'an aborted body carries no close delimiter');
    await assertHealthy(gateway.url);
  });

  test('Orthanc killed while a large study streams gives the client an aborted response', async () => {
    const cine = (await listInstances(orthanc.dicomWebUrl)).find((i) => i.instance === CINE_SOP_INSTANCE_UID);
    assert.ok(cine, 'the cine sample is loaded');
    // The whole stored content, read slowly, so Orthanc is still sending when it dies.
    const res = await fetch(`${gateway.base}/studies/${cine.study}`, {
      headers: { authorization: clinician, accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
    });
    assert.equal(res.status, 200);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    await orthanc.kill();
    let received = 0;
    const outcome = await (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return 'complete';
          received += value.byteLength;
        }
      } catch {
        return 'aborted';
      }
    })();
    await orthanc.restart();
    // Either Orthanc had already handed over every byte (then the body is whole and verified by
    // its closing delimiter), or the client sees an abort. Never a clean end on a partial body.
    if (outcome === 'complete') assert.ok(received > 1_000_000);
    else assert.equal(outcome, 'aborted');
  });

  test('an upstream that dies mid-body gives an aborted response, never a short body that looks complete', async () => {
    const upstream = await faultyUpstream((res) => {
      res.writeHead(200, { 'content-type': 'multipart/related; type="application/dicom"; boundary=b', 'content-length': '100000' });
      res.write(Buffer.alloc(10_000, 0x41));
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const gw = await startTestGateway(urlOf(upstream));
    try {
      const res = await fetch(`${gw.base}/studies/1.2.3`, { headers: { authorization: `Bearer ${await gw.token('clinician')}` } });
      assert.equal(res.status, 200);
      await assert.rejects(res.arrayBuffer(), 'the body must fail, not end');
      const health = await fetch(`${gw.url}/healthz`);
      assert.equal(health.status, 200);
      await health.arrayBuffer();
    } finally {
      await gw.close();
      await closeServer(upstream);
    }
  });

  test('an upstream that hangs past the timeout gives 504; one that answers 500 is relayed', async () => {
    const hanging = await faultyUpstream(() => undefined);
    const failing = await faultyUpstream((res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('boom');
    });
    const slow = await startTestGateway(urlOf(hanging), { upstream: { headersTimeoutMs: 300 } });
    const broken = await startTestGateway(urlOf(failing));
    try {
      const t0 = Date.now();
      const res = await fetch(`${slow.base}/studies`, { headers: { authorization: `Bearer ${await slow.token('clinician')}` } });
      assert.equal(res.status, 504);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'UPSTREAM_TIMEOUT');
      assert.ok(Date.now() - t0 < 5_000);
      const res500 = await fetch(`${broken.base}/studies`, { headers: { authorization: `Bearer ${await broken.token('clinician')}` } });
      assert.equal(res500.status, 500);
      await res500.arrayBuffer();
    } finally {
      await slow.close();
      await broken.close();
      await closeServer(hanging);
      await closeServer(failing);
    }
  });
});

/**
 * A scripted PACS for the researcher's faults: `/instances` QIDO always answers (how the researcher
 * learns a pseudonym to retrieve), every other request gets the current `fault`.
 */
describe('upstream faults seen by a researcher (and the clinician beside)', () => {
  const ORIGINAL = { study: '1.2.826.0.1.3680043.2.1125.7.1', series: '1.2.826.0.1.3680043.2.1125.7.2', instance: '1.2.826.0.1.3680043.2.1125.7.3' };
  const SECRET = 'CANARY^UPSTREAM^ERROR-BODY';
  let fault: (res: import('node:http').ServerResponse) => void = () => undefined;
  let upstream: Server;
  let gateway: TestGateway;
  let researcher: string;
  let clinician: string;
  let studyPath = '';

  before(async () => {
    upstream = await faultyUpstream((res) => {
      const url = (res.req as { url?: string }).url ?? '';
      if (url.startsWith('/dicom-web/instances')) {
        res.writeHead(200, { 'content-type': 'application/dicom+json' });
        res.end(JSON.stringify([{ '0020000D': { vr: 'UI', Value: [ORIGINAL.study] }, '0020000E': { vr: 'UI', Value: [ORIGINAL.series] }, '00080018': { vr: 'UI', Value: [ORIGINAL.instance] } }]));
        return;
      }
      fault(res);
    });
    gateway = await startTestGateway(urlOf(upstream), { upstream: { headersTimeoutMs: 400, bodyTimeoutMs: 400 } });
    researcher = `Bearer ${await gateway.token('researcher')}`;
    clinician = `Bearer ${await gateway.token('clinician')}`;
    const qido = await fetch(`${gateway.base}/instances`, { headers: { authorization: researcher } });
    const [item] = (await qido.json()) as Record<string, { Value: string[] }>[];
    studyPath = `/studies/${item?.['0020000D']?.Value[0]}`;
    assert.match(studyPath, /^\/studies\/2\.25\./);
  });
  after(async () => {
    await gateway?.close();
    if (upstream) await closeServer(upstream);
  });

  /** What a client accepts for the resource (PS3.18 8.7.3): frames and bulkdata, instances, or DICOM JSON. */
  const acceptFor = (path: string) =>
    /\/(frames|bulk)\//.test(path)
      ? 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
      : path.startsWith('/studies/') && !path.endsWith('/metadata')
        ? 'multipart/related; type="application/dicom"; transfer-syntax=*'
        : 'application/dicom+json';
  const get = async (path: string, authorization: string) => {
    const res = await fetch(gateway.base + path, { headers: { authorization, accept: acceptFor(path) } });
    const { outcome, body } = await readBody(res);
    return { status: res.status, outcome, body: body.toString('latin1'), contentType: res.headers.get('content-type') };
  };
  /** The keyed pseudonym of an original UID, as the gateway issues it (its QIDO above saved them). */
  const pseudo = (uid: string) => keyedUid(scopeKey(gateway.keys), uid);
  const errorCode = (body: string) => (JSON.parse(body) as { error: { code: string } }).error.code;
  const healthy = () => assertHealthy(gateway.url);

  test('an upstream 500 is 502 with a JSON body for the researcher, nothing of its body echoed; the clinician gets it relayed', async () => {
    fault = (res) => {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ HttpError: 'Internal Server Error', Details: `PatientName=${SECRET}` }));
    };
    for (const path of ['/studies?PatientName=*', studyPath, `${studyPath}/metadata`]) {
      const r = await get(path, researcher);
      assert.equal(r.status, 502, path);
      assert.match(r.contentType ?? '', /^application\/json/);
      assert.equal(errorCode(r.body), 'UPSTREAM_STATUS', path);
      assert.ok(!r.body.includes(SECRET), `${path}: the upstream body is not echoed`);
    }
    assert.ok(!gateway.logs().includes(SECRET), 'nor logged');
    // The clinician's view is the original, status and body (src/dicomweb/relay.ts).
    const c = await get('/studies', clinician);
    assert.equal(c.status, 500);
    assert.ok(c.body.includes(SECRET));
    await healthy();
  });

  test('an upstream 503 stays 503 (retry later), and a 404 stays 404, both without the upstream body', async () => {
    for (const status of [503, 404]) {
      fault = (res) => {
        res.writeHead(status, { 'content-type': 'text/plain' });
        res.end(SECRET);
      };
      const r = await get(studyPath, researcher);
      assert.equal(r.status, status);
      assert.ok(!r.body.includes(SECRET));
    }
    await healthy();
  });

  test('garbage instead of JSON or multipart gives the researcher 502, never the bytes', async () => {
    const garbage = Buffer.concat([Buffer.from(`${SECRET}\r\n`), Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 37) & 0xff))]);
    for (const [contentType, path] of [
      ['application/dicom+json', '/studies'],
      ['application/dicom+json', `${studyPath}/metadata`],
      ['multipart/related; type="application/dicom"; boundary=xyz', studyPath],
      ['application/octet-stream', studyPath],
    ] as const) {
      fault = (res) => {
        res.writeHead(200, { 'content-type': contentType, 'content-length': String(garbage.length) });
        res.end(garbage);
      };
      const r = await get(path, researcher);
      // Each is refused before a byte is written: the first dataset or part header is already unreadable.
      assert.equal(r.status, 502, `${path} (${contentType})`);
      assert.match(errorCode(r.body), /^UPSTREAM_/);
      assert.ok(!r.body.includes(SECRET), `${path}: no upstream byte reaches the researcher`);
    }
    await healthy();
  });

  test('an upstream that hangs gives the researcher 504; one that stalls mid-body aborts the answer', async () => {
    fault = () => undefined;
    for (const path of ['/studies', studyPath, `${studyPath}/metadata`]) {
      const t0 = Date.now();
      const r = await get(path, researcher);
      assert.equal(r.status, 504, path);
      assert.equal(errorCode(r.body), 'UPSTREAM_TIMEOUT');
      assert.ok(Date.now() - t0 < 3_000, `${path}: answered after ${Date.now() - t0} ms`);
    }
    fault = (res) => {
      res.writeHead(200, { 'content-type': 'application/dicom+json' });
      res.write('[{"0020000D":{"vr":"UI","Value":["1.2.3"]}},');
    };
    const stalled = await get('/studies', researcher);
    assert.ok(stalled.status === 504 || (stalled.status === 200 && stalled.outcome === 'aborted'), `${stalled.status} ${stalled.outcome}`);
    if (stalled.status === 200) assert.doesNotMatch(stalled.body, /\]\s*$/, 'a cut JSON array is never closed');
    await healthy();
  });

  test('a frame or bulkdata answer that holds a whole instance (or DICOM JSON) is refused, never passed through', async () => {
    const instancePath = `${studyPath}/series/${pseudo(ORIGINAL.series)}/instances/${pseudo(ORIGINAL.instance)}`;
    for (const partType of ['application/dicom', 'application/dicom+json', 'text/plain']) {
      fault = (res) => {
        res.writeHead(200, { 'content-type': 'multipart/related; type="application/octet-stream"; boundary=xyz' });
        res.end(`--xyz\r\nContent-Type: ${partType}\r\n\r\n${SECRET}\r\n--xyz--\r\n`);
      };
      for (const path of [`${instancePath}/frames/1`, `${instancePath}/bulk/7FE00010`]) {
        const r = await get(path, researcher);
        assert.equal(r.status, 502, `${path} (${partType})`);
        assert.ok(!r.body.includes(SECRET), `${path}: a ${partType} part is not passed through`);
      }
    }
    await healthy();
  });

  test('once the upstream answers again, the same requests succeed', async () => {
    fault = (res) => {
      res.writeHead(200, { 'content-type': 'application/dicom+json' });
      res.end('[]');
    };
    const r = await get('/studies', researcher);
    assert.equal(r.status, 200);
    assert.equal(r.body, '[]');
    const c = await get('/studies', clinician);
    assert.equal(c.status, 200);
  });
});

import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { CINE_SOP_INSTANCE_UID, listInstances, startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';

/** A deliberately broken upstream on loopback: it injects faults a real PACS shows only by chance. */
async function faultyUpstream(behaviour: (res: import('node:http').ServerResponse) => void): Promise<Server> {
  const server = createServer((_req, res) => behaviour(res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}
const urlOf = (s: Server) => `http://127.0.0.1:${(s.address() as AddressInfo).port}/dicom-web`;
const closeServer = (s: Server) =>
  new Promise<void>((r) => {
    s.closeAllConnections();
    s.close(() => r());
  });

describe('upstream faults', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;
  let clinician: string;

  before(async () => {
    ({ orthanc } = await startTestOrthanc({ loadSamples: true }));
    gateway = await startTestGateway(orthanc.dicomWebUrl);
    clinician = `Bearer ${await gateway.token('clinician')}`;
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

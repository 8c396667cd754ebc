import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { makeKeys, memoryOf, signToken, spawnGateway } from '../helpers/gateway.ts';
import { boundaryOf } from '../helpers/multipart.ts';
import { CINE_SOP_INSTANCE_UID, listInstances, startTestOrthanc, type InstanceRef, type OrthancProcess } from '../helpers/orthanc.ts';

const ALL_TS = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const MB = 1024 * 1024;

/** Reads a response to the end without keeping it: the client must not be the one that buffers. */
async function drain(res: Response): Promise<number> {
  let n = 0;
  for await (const chunk of res.body as ReadableStream<Uint8Array>) n += chunk.byteLength;
  return n;
}

describe('streaming holds', () => {
  let orthanc: OrthancProcess;
  let gateway: Awaited<ReturnType<typeof spawnGateway>>;
  let cine: InstanceRef;
  let authorization: string;

  before(async () => {
    ({ orthanc } = await startTestOrthanc({ loadSamples: true }));
    const keys = await makeKeys();
    gateway = await spawnGateway(orthanc.dicomWebUrl, keys);
    authorization = `Bearer ${await signToken(keys, { roles: ['clinician'] })}`;
    cine = (await listInstances(orthanc.dicomWebUrl)).find((i) => i.instance === CINE_SOP_INSTANCE_UID) as InstanceRef;
  });
  after(async () => {
    await gateway?.stop();
    await orthanc?.stop();
  });

  test('retrieving the 1.8 MB cine 200 times concurrently keeps gateway RSS growth small', async (t) => {
    const url = `${gateway.base}/studies/${cine.study}/series/${cine.series}/instances/${cine.instance}`;
    await drain(await fetch(url, { headers: { authorization, accept: ALL_TS } })); // warm-up
    const before = await memoryOf(gateway.pid);
    const sizes = await Promise.all(
      Array.from({ length: 200 }, async () => {
        const res = await fetch(url, { headers: { authorization, accept: ALL_TS } });
        assert.equal(res.status, 200);
        return drain(res);
      }),
    );
    const afterRun = await memoryOf(gateway.pid);
    const total = sizes.reduce((a, b) => a + b, 0);
    assert.ok(sizes.every((s) => s > 1.8 * 1e6), 'each response carries the whole instance');
    const growth = afterRun.peak - before.rss;
    t.diagnostic(
      `streamed ${(total / MB).toFixed(0)} MiB; gateway RSS ${(before.rss / MB).toFixed(1)} MiB before, peak ${(afterRun.peak / MB).toFixed(1)} MiB, growth ${(growth / MB).toFixed(1)} MiB`,
    );
    // 200 × 1.8 MB = 360 MB in flight: buffering would show as hundreds of MB.
    assert.ok(growth < 80 * MB, `RSS grew by ${(growth / MB).toFixed(1)} MiB`);
  });

  // Throughput against Orthanc direct is a timing: `npm run bench` reports it (clinician/direct, medians of
  // interleaved rounds). Here only what holds without a clock: the bytes, and (above) the memory.
  test('clinician study retrieval through the gateway is byte for byte what Orthanc sends', async () => {
    const path = `/studies/${cine.study}`;
    const direct = await fetch(orthanc.dicomWebUrl + path, { headers: { accept: ALL_TS } });
    const viaGateway = await fetch(gateway.base + path, { headers: { authorization, accept: ALL_TS } });
    assert.equal(direct.status, 200);
    assert.equal(viaGateway.status, 200);
    // Orthanc draws a new multipart boundary for every response: the one thing two retrievals differ in.
    const normalized = async (res: Response): Promise<Buffer> => {
      const boundary = boundaryOf(res.headers.get('content-type'));
      return Buffer.from(Buffer.from(await res.arrayBuffer()).toString('latin1').replaceAll(boundary, 'BOUNDARY'), 'latin1');
    };
    const [d, g] = await Promise.all([normalized(direct), normalized(viaGateway)]);
    assert.ok(d.length > 1.8 * 1e6, 'the cine study carries the whole instance');
    assert.equal(
      viaGateway.headers.get('content-type')?.replace(boundaryOf(viaGateway.headers.get('content-type')), 'BOUNDARY'),
      direct.headers.get('content-type')?.replace(boundaryOf(direct.headers.get('content-type')), 'BOUNDARY'),
    );
    assert.ok(g.equals(d), `gateway ${g.length} bytes, direct ${d.length} bytes`);
  });
});

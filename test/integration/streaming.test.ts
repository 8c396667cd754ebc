import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { makeKeys, memoryOf, signToken, spawnGateway } from '../helpers/gateway.ts';
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

  test('clinician study retrieval through the gateway keeps pace with Orthanc direct (ratio measured in one run)', async (t) => {
    const path = `/studies/${cine.study}`;
    const time = async (base: string, headers: Record<string, string>) => {
      const t0 = process.hrtime.bigint();
      const n = await drain(await fetch(base + path, { headers: { ...headers, accept: ALL_TS } }));
      return { n, s: Number(process.hrtime.bigint() - t0) / 1e9 };
    };
    const direct: number[] = [];
    const viaGateway: number[] = [];
    for (let i = 0; i < 15; i++) {
      // Interleaved, so both see the same machine noise.
      const d = await time(orthanc.dicomWebUrl, {});
      const g = await time(gateway.base, { authorization });
      assert.equal(g.n > 0 && d.n > 0, true);
      direct.push(d.n / d.s);
      viaGateway.push(g.n / g.s);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
    const ratio = median(viaGateway) / median(direct);
    t.diagnostic(
      `median throughput: direct ${(median(direct) / MB).toFixed(0)} MiB/s, gateway ${(median(viaGateway) / MB).toFixed(0)} MiB/s, ratio ${ratio.toFixed(2)}`,
    );
    assert.ok(ratio > 0.5, `gateway/direct throughput ratio ${ratio.toFixed(2)}`);
  });
});

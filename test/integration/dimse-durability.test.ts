// The DIMSE spool under stress: a full quota answers A700 and recovers; a 200-instance study whose
// gateway is killed (SIGKILL) while it receives and forwards resumes on restart with nothing lost,
// nothing duplicated and no original left; a study that cannot be forwarded is quarantined. Real Orthanc behind
// (through a recording proxy that counts the stores), real storescu in front.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../../src/demo/orthanc-process.ts';
import { storescu } from '../helpers/dcmtk.ts';
import { dimseBlock, dimseStatus, forwarded, orthancCount, orthancStudies, spawnDimseGateway, spoolContents, writeSyntheticStudy } from '../helpers/dimse.ts';
import { makeKeys, startTestGateway } from '../helpers/gateway.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { startRecordingProxy, type RecordingProxy } from '../helpers/recording-proxy.ts';

const SUCCESS = 0x0000;
const OUT_OF_RESOURCES = 0xa700;

describe('the DIMSE spool: quota, crash and volume', () => {
  let orthanc: OrthancProcess;
  let proxy: RecordingProxy;
  const work = mkdtempSync(join(tmpdir(), 'dimse-durability-'));

  before(async () => {
    ({ orthanc } = await startTestOrthanc());
    proxy = await startRecordingProxy(orthanc.httpUrl);
  });
  after(async () => {
    await proxy?.close();
    await orthanc?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('a full spool answers A700 and keeps what it acknowledged; once forwarded, the refused instances are accepted', async () => {
    // About four instances of 8.5 kB fit; forwarding starts only when the association ends.
    const gateway = await startTestGateway(orthanc.dicomWebUrl, { dimse: dimseBlock({ spool: { quotaBytes: 40_000, idleTimeoutMs: 30_000 } }) });
    try {
      const dir = mkdtempSync(join(work, 'quota-'));
      const files = writeSyntheticStudy(dir, '1.2.826.0.1.3680043.10.3001', 8, { padding: 8_000 });
      const first = await storescu(gateway.dimsePort as number, files);
      const statuses = first.outcomes.map((o) => o.status);
      assert.ok(statuses.includes(SUCCESS) && statuses.includes(OUT_OF_RESOURCES), JSON.stringify(statuses));
      assert.ok(statuses.every((s) => s === SUCCESS || s === OUT_OF_RESOURCES));
      const accepted = first.outcomes.filter((o) => o.status === SUCCESS).map((o) => o.file);
      const refused = first.outcomes.filter((o) => o.status === OUT_OF_RESOURCES).map((o) => o.file);
      await forwarded(gateway.url);
      assert.equal(await orthancCount(orthanc, 'instances'), accepted.length, 'everything acknowledged was forwarded');
      assert.ok((await dimseStatus(gateway.url)).spoolBytes < 2_000, 'the spool drained');
      const second = await storescu(gateway.dimsePort as number, refused);
      assert.deepEqual(second.outcomes.map((o) => o.status), refused.map(() => SUCCESS));
      await forwarded(gateway.url);
      assert.equal(await orthancCount(orthanc, 'instances'), files.length);
      assert.equal(await orthancCount(orthanc, 'studies'), 1);
      assert.deepEqual(spoolContents(join(gateway.keys.dir, 'data')).originals, []);
    } finally {
      await gateway.close();
    }
  });

  test('a 200-instance study, the gateway SIGKILLed while it receives and forwards, restarted, the rest sent again: one whole study, nothing sent twice but what was in flight, no original left', async () => {
    const keys = await makeKeys();
    const dataDir = join(keys.dir, 'data');
    // 200 keeps CI short; `npm run bench` sends 1,000 (and more with --dimse-instances).
    const count = 200;
    const concurrency = 4;
    const overrides = { dimse: dimseBlock({ forward: { concurrency } }) };
    const stows = () => proxy.seen.filter((r) => r.method === 'POST' && r.url.startsWith('/dicom-web/studies')).length;
    const instancesBefore = await orthancCount(orthanc, 'instances');
    const stowsBefore = stows();
    try {
      const first = await spawnDimseGateway(proxy.dicomWebUrl, keys, overrides);
      const dir = mkdtempSync(join(work, 'crash-'));
      const files = writeSyntheticStudy(dir, '1.2.826.0.1.3680043.10.4001', count, { patient: 'CANARY^DURABLE' });
      const started = Date.now();
      // Large studies are forwarded in batches while they arrive: kill the process in the middle of both.
      const sending = storescu(first.dimsePort, [dir]);
      const deadline = Date.now() + 60_000;
      while (stows() - stowsBefore < 60 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      await first.kill('SIGKILL');
      const atKill = stows() - stowsBefore;
      const acknowledged = new Set((await sending).outcomes.filter((o) => o.status === SUCCESS).map((o) => o.file));
      assert.ok(atKill >= 60 && acknowledged.size < count, `killed after ${atKill} stores and ${acknowledged.size} acknowledged instances`);
      // An original leaves the spool only once the PACS confirmed it: every acknowledged one not stored yet is there.
      assert.ok(spoolContents(dataDir).originals.length >= acknowledged.size - atKill, 'an acknowledged original was lost');

      const second = await spawnDimseGateway(proxy.dicomWebUrl, keys, overrides);
      try {
        // The sender sends again what was never acknowledged, as a modality retries after a broken association.
        const rest = files.filter((f) => !acknowledged.has(f));
        const resent = await storescu(second.dimsePort, rest);
        assert.deepEqual(resent.outcomes.map((o) => o.status), rest.map(() => SUCCESS));
        await forwarded(second.url, 120_000);
      } finally {
        await second.kill('SIGTERM');
      }
      assert.equal(await orthancCount(orthanc, 'instances'), instancesBefore + count, 'nothing lost, nothing duplicated');
      const landed = (await orthancStudies(orthanc)).filter((s) => s.instances === count);
      assert.equal(landed.length, 1, 'one study');
      assert.ok(!String(landed[0]?.patient['PatientName']).includes('CANARY'));
      // Exactly once, but for the stores in flight when the process died (their answers were lost with it)
      // and the one instance spooled whose C-STORE response was lost with it (its sender sent it again).
      const sent = stows() - stowsBefore;
      assert.ok(sent >= count && sent <= count + concurrency + 1, `${sent} stores for ${count} instances`);
      assert.deepEqual(spoolContents(dataDir), { originals: [], partial: [], quarantined: [] });
      process.stderr.write(`# ${count} instances: killed after ${atKill} stores and ${acknowledged.size} acknowledged, all forwarded by ${Date.now() - started} ms\n`);
    } finally {
      rmSync(keys.dir, { recursive: true, force: true });
    }
  });

  test('a study that cannot be forwarded (the PACS unreachable) is retried with backoff, then quarantined with its reason, visible in status and metrics', async () => {
    // An upstream nobody listens on: every store fails with UPSTREAM_UNREACHABLE, a failure that may pass.
    const closed = await freePort();
    const tokenFile = join(work, 'metrics.token');
    writeFileSync(tokenFile, 'operator-token-0123456789');
    const gateway = await startTestGateway(`http://127.0.0.1:${closed}/dicom-web`, {
      metrics: { auth: { type: 'bearer', token: { file: tokenFile } } },
      dimse: dimseBlock({ forward: { maxAttempts: 3, backoffMs: 50, maxBackoffMs: 100 } }),
    });
    try {
      const dir = mkdtempSync(join(work, 'refused-'));
      const files = writeSyntheticStudy(dir, '1.2.826.0.1.3680043.10.6001', 3);
      const run = await storescu(gateway.dimsePort as number, files);
      assert.deepEqual(run.outcomes.map((o) => o.status), [SUCCESS, SUCCESS, SUCCESS], 'accepted: the failure comes after the response');
      const status = async () => {
        const res = await fetch(`${gateway.url}/dimse/status`, { headers: { authorization: 'Bearer operator-token-0123456789' } });
        assert.equal(res.status, 200);
        return (await res.json()) as { quarantined: number; queued: number; inFlight: number; instancesPending: number };
      };
      const deadline = Date.now() + 15_000;
      // The study is counted quarantined a moment before its forwarder lets go of it: wait for both.
      const settled = (s: { quarantined: number; inFlight: number }) => s.quarantined > 0 && s.inFlight === 0;
      while (!settled(await status()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const { quarantined, queued, inFlight, instancesPending } = await status();
      assert.deepEqual({ quarantined, queued, inFlight, instancesPending }, { quarantined: 1, queued: 0, inFlight: 0, instancesPending: 0 });
      // The status is guarded as /metrics is: with a token configured, none or another is refused.
      assert.equal((await fetch(`${gateway.url}/dimse/status`)).status, 401);
      assert.equal((await fetch(`${gateway.url}/dimse/status`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
      const spool = spoolContents(join(gateway.keys.dir, 'data'));
      assert.equal(spool.originals.length, 0);
      assert.equal(spool.quarantined.length, 3, 'the originals wait in quarantine for an operator');
      const folder = join(gateway.keys.dir, 'data', 'spool', 'quarantine', readdirSync(join(gateway.keys.dir, 'data', 'spool', 'quarantine'))[0] as string);
      const reason = JSON.parse(readFileSync(join(folder, 'reason.json'), 'utf8')) as { code: string; cause: string; attempts: number; instances: number };
      assert.deepEqual({ code: reason.code, cause: reason.cause, attempts: reason.attempts, instances: reason.instances }, { code: 'DIMSE_FORWARD_FAILED', cause: 'UPSTREAM_UNREACHABLE', attempts: 3, instances: 3 });
      const metrics = await (await fetch(`${gateway.url}/metrics`, { headers: { authorization: 'Bearer operator-token-0123456789' } })).text();
      assert.match(metrics, /deid_gateway_dimse_studies_quarantined 1/);
      assert.match(metrics, /deid_gateway_dimse_study_batches_total\{outcome="retrying"\} 2/);
      const logs = gateway.logs();
      assert.ok(!logs.includes('1.2.826.0.1.3680043.10.6001'), 'the log names no original UID');
    } finally {
      await gateway.close();
    }
  });

});

// The DIMSE ingress with real DICOM clients (dcmtk's echoscu and storescu, a real Orthanc pushing) and
// a real PACS behind (Orthanc): what a hospital sends by C-STORE reaches the PACS de-identified, one
// study per original study, and nothing is left in the spool.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { asciiValue } from '../../src/dicom/dataset.ts';
import { readPart10Buffer } from '../../src/dicom/part10-reader.ts';
import { TAG } from '../../src/dicom/tags.ts';
import { echoscu, proposeOption, storescu } from '../helpers/dcmtk.ts';
import { dimseBlock, dimseStatus, dumpOrthanc, forwarded, orthancCount, orthancStudies, spoolContents, writeSyntheticStudy } from '../helpers/dimse.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { findCanaries, scanLeaks } from '../helpers/leak-scan.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { rawInstance } from '../helpers/raw-dicom.ts';
import { listSamples, SAMPLES_DIR } from '../helpers/sample.ts';

const SUCCESS = 0x0000;

describe('C-STORE ingress: storescu and an Orthanc push reach the PACS de-identified', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;
  let port: number;
  const work = mkdtempSync(join(tmpdir(), 'dimse-ingress-'));

  before(async () => {
    ({ orthanc } = await startTestOrthanc());
    gateway = await startTestGateway(orthanc.dicomWebUrl, {
      audit: { file: 'audit.jsonl' },
      dimse: dimseBlock({
        callers: [
          { aeTitle: 'MODALITY', hosts: ['127.0.0.1'] },
          { aeTitle: 'FRESHMOD', hosts: ['127.0.0.0/8'], pseudonyms: 'fresh' },
          // Fresh pseudonyms: its study (sent before by storescu) lands again, unlinkable to the first copy.
          { aeTitle: 'PACSSRC', hosts: ['127.0.0.1'], pseudonyms: 'fresh' },
          // Listed, but only from an address the tests never come from.
          { aeTitle: 'REMOTE', hosts: ['192.0.2.7'] },
        ],
      }),
    });
    port = gateway.dimsePort as number;
  });
  after(async () => {
    await gateway?.close();
    await orthanc?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('C-ECHO succeeds for a listed caller; an unknown AE, a listed AE from another address and a wrong called AE are rejected at association', async () => {
    assert.equal((await echoscu(port, 'MODALITY')).code, 0);
    for (const [calling, called] of [['INTRUDER', 'DEID_GATEWAY'], ['REMOTE', 'DEID_GATEWAY'], ['MODALITY', 'OTHER_AE']] as const) {
      const refused = await echoscu(port, calling, called);
      assert.notEqual(refused.code, 0, `${calling} → ${called} was accepted`);
      assert.match(refused.stderr, /Association Rejected/);
      assert.match(refused.stderr, called === 'DEID_GATEWAY' ? /Calling AE Title Not Recognized/ : /Called AE Title Not Recognized/);
    }
    const rejected = gateway.logs().split('\n').filter((l) => l.includes('DIMSE association rejected'));
    assert.equal(rejected.length, 3);
    assert.ok(rejected.some((l) => l.includes('"callingAe":"INTRUDER"') && l.includes('calling-ae-not-recognized')));
  });

  test('storescu sends every sample it can read: Orthanc holds only de-identified instances, one study per original study, and the spool is empty', async () => {
    // Each transfer syntax in its own association, proposed as the file holds it (storescu sends no other).
    const groups = new Map<string, { option: string | undefined; files: string[] }>();
    const originals = new Map<string, { study: string; patient: string }>();
    for (const rel of listSamples()) {
      const path = join(SAMPLES_DIR, rel);
      let parsed: Awaited<ReturnType<typeof readPart10Buffer>>;
      try {
        parsed = await readPart10Buffer(readFileSync(path));
      } catch {
        continue; // not readable at all: storescu could not send it either
      }
      const option = proposeOption(parsed.header.transferSyntaxUID);
      // storescu needs File Meta, and cannot propose HTJ2K or Deflated Image Frame Compression.
      if (!parsed.header.meta || option === null || parsed.header.transferSyntaxInferred) continue;
      const ds = parsed.header.dataset;
      originals.set(path, { study: asciiValue(ds, TAG.StudyInstanceUID) ?? '', patient: asciiValue(ds, TAG.PatientID) ?? '' });
      const key = parsed.header.transferSyntaxUID;
      const group = groups.get(key) ?? { option, files: [] };
      group.files.push(path);
      groups.set(key, group);
    }
    const outcomes = [];
    for (const group of groups.values()) {
      const run = await storescu(port, group.files, { propose: group.option });
      // Every file is answered, but those storescu itself cannot send (no SOP Class or Instance UID it reads).
      assert.equal(run.outcomes.length + run.ignored.length, group.files.length, `${group.option}: ${run.stderr.slice(-2000)}`);
      outcomes.push(...run.outcomes);
    }
    const stored = outcomes.filter((o) => o.status === SUCCESS);
    const refused = outcomes.filter((o) => o.status !== SUCCESS);
    assert.ok(stored.length >= 40, `${stored.length} stored of ${outcomes.length}`);
    // Refused only with a failure status of PS3.4 B.2.3: no StudyInstanceUID (A900) or not understood (C000).
    assert.ok(refused.every((o) => o.status === 0xa900 || o.status === 0xc000), JSON.stringify(refused));
    assert.ok(refused.every((o) => !originals.get(o.file)?.study || /edge-cases|chrSQ/.test(o.file)), JSON.stringify(refused));

    const settled = await forwarded(gateway.url);
    assert.equal(settled.quarantined, 0);
    const spool = spoolContents(join(gateway.keys.dir, 'data'));
    assert.deepEqual(spool, { originals: [], partial: [], quarantined: [] }, 'no original is left behind');

    // One study per original study (Orthanc keys a study by PatientID and StudyInstanceUID).
    const studies = new Set(stored.map((o) => JSON.stringify(originals.get(o.file))));
    assert.equal(await orthancCount(orthanc, 'studies'), studies.size);
    const sopInstances = new Set<string>();
    for (const o of stored) sopInstances.add(asciiValue((await readPart10Buffer(readFileSync(o.file))).header.dataset, TAG.SOPInstanceUID) ?? '');
    assert.equal(await orthancCount(orthanc, 'instances'), sopInstances.size);

    const out = join(work, 'stored');
    await dumpOrthanc(orthanc, out);
    const bytes = Buffer.concat((await import('node:fs')).readdirSync(out).map((f) => readFileSync(join(out, f))));
    for (const o of stored) {
      const rel = o.file.slice(SAMPLES_DIR.length + 1);
      assert.deepEqual(findCanaries(rel, bytes), [], `canaries of ${rel} reached the PACS`);
    }
    for (const uid of originals.values()) if (uid.study) assert.ok(!bytes.includes(Buffer.from(uid.study)), 'an original StudyInstanceUID reached the PACS');
    const scan = await scanLeaks(SAMPLES_DIR, out);
    assert.ok(scan.clean, scan.report.slice(-3000));
  });

  test('a study split over two associations lands as one study, keyed and fresh', async () => {
    for (const [caller, study] of [['MODALITY', '1.2.826.0.1.3680043.10.1001'], ['FRESHMOD', '1.2.826.0.1.3680043.10.1002']] as const) {
      const dir = mkdtempSync(join(work, 'split-'));
      const files = writeSyntheticStudy(dir, study, 10);
      const before = await orthancCount(orthanc, 'studies');
      const first = await storescu(port, files.slice(0, 5), { callingAe: caller });
      const second = await storescu(port, files.slice(5), { callingAe: caller });
      assert.deepEqual([...first.outcomes, ...second.outcomes].map((o) => o.status), Array(10).fill(SUCCESS));
      await forwarded(gateway.url);
      assert.equal(await orthancCount(orthanc, 'studies'), before + 1, `${caller}: one study`);
      const landed = (await orthancStudies(orthanc)).filter((s) => s.patient['PatientName'] !== undefined && s.instances === 10);
      assert.ok(landed.length >= 1, `${caller}: the study holds all ten instances`);
      assert.ok(landed.every((s) => s.tags['StudyInstanceUID'] !== study && !String(s.patient['PatientName']).includes('CANARY')));
    }
  });

  test('a malformed instance gets a C-STORE failure status and is never forwarded; the good one beside it is', async () => {
    const dir = mkdtempSync(join(work, 'bad-'));
    const bad = join(dir, 'bad.dcm');
    // Rows (US, VM 1) 32 bytes long, swallowing text: the engine refuses it, dcmtk sends it as it is.
    writeFileSync(bad, rawInstance({ study: '1.2.826.0.1.3680043.10.2001', series: '1.2.826.0.1.3680043.10.2001.1', instance: '1.2.826.0.1.3680043.10.2001.1.1' }, [[0x28, 0x10, 'US', 'CANARY^SECRET^PATIENT^19700101..']]));
    const good = writeSyntheticStudy(dir, '1.2.826.0.1.3680043.10.2002', 1);
    const before = await orthancCount(orthanc, 'instances');
    const run = await storescu(port, [bad, ...good]);
    assert.deepEqual(
      run.outcomes.map((o) => [o.file, o.status]),
      [[bad, 0xc000], [good[0], SUCCESS]],
    );
    await forwarded(gateway.url);
    assert.equal(await orthancCount(orthanc, 'instances'), before + 1);
    const out = join(work, 'after-bad');
    await dumpOrthanc(orthanc, out);
    const bytes = Buffer.concat((await import('node:fs')).readdirSync(out).map((f) => readFileSync(join(out, f))));
    assert.ok(!bytes.includes(Buffer.from('CANARY^SECRET')), 'the refused instance reached the PACS');
    assert.deepEqual(spoolContents(join(gateway.keys.dir, 'data')).partial, []);
  });

  test('Orthanc configured with the gateway as a DICOM modality pushes a study (POST /modalities/{gw}/store)', async () => {
    const { orthanc: source } = await startTestOrthanc({
      extraConfig: { DicomAet: 'PACSSRC', DicomModalities: { gw: ['DEID_GATEWAY', '127.0.0.1', port] } },
    });
    try {
      const files = ['private-tags/CT_small.dcm', 'presentation-state/generated-gsps-CT_small.dcm', 'encapsulated-pdf/generated-encapsulated-pdf.dcm'];
      for (const rel of files) {
        const res = await fetch(`${source.httpUrl}/instances`, { method: 'POST', body: new Uint8Array(readFileSync(join(SAMPLES_DIR, rel))) });
        assert.equal(res.status, 200);
      }
      const [studyId] = (await (await fetch(`${source.httpUrl}/studies`)).json()) as string[];
      const beforeInstances = await orthancCount(orthanc, 'instances');
      const push = await fetch(`${source.httpUrl}/modalities/gw/store`, { method: 'POST', body: JSON.stringify({ Resources: [studyId], Synchronous: true }) });
      assert.equal(push.status, 200, await push.text());
      await forwarded(gateway.url);
      assert.equal(await orthancCount(orthanc, 'instances'), beforeInstances + files.length);
      assert.ok(gateway.logs().includes('"callingAe":"PACSSRC"'), 'the push came by its own association');
      const out = join(work, 'pushed');
      await dumpOrthanc(orthanc, out);
      const bytes = Buffer.concat((await import('node:fs')).readdirSync(out).map((f) => readFileSync(join(out, f))));
      for (const rel of files) assert.deepEqual(findCanaries(rel, bytes), [], rel);
    } finally {
      await source.stop();
    }
  });

  test('the status endpoint, the metrics and the audit trail account for what was received and forwarded', async () => {
    const status = await dimseStatus(gateway.url);
    assert.deepEqual({ queued: status.queued, inFlight: status.inFlight, quarantined: status.quarantined }, { queued: 0, inFlight: 0, quarantined: 0 });
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    assert.match(metrics, /deid_gateway_dimse_cstore_total\{status="0000"\} [1-9]/);
    assert.match(metrics, /deid_gateway_dimse_cstore_total\{status="C000"\} [1-9]/);
    assert.match(metrics, /deid_gateway_dimse_associations_total\{outcome="rejected"\} 3/);
    assert.match(metrics, /deid_gateway_dimse_studies_queued 0/);
    const trail = readFileSync(join(gateway.keys.dir, 'data', 'audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { eventId: { code: string }; userId: string; route: string; eventOutcomeIndicator: number; participantObjectId?: string; requestId: string });
    const transfers = trail.filter((e) => e.eventId.code === '110104');
    assert.ok(transfers.some((e) => e.userId === 'MODALITY') && transfers.some((e) => e.userId === 'FRESHMOD') && transfers.some((e) => e.userId === 'PACSSRC'));
    assert.ok(transfers.every((e) => e.route === 'DIMSE C-STORE → STOW-RS POST /studies' && e.eventOutcomeIndicator === 0));
    assert.ok(transfers.every((e) => /^2\.25\./.test(e.participantObjectId ?? '')), 'the trail names pseudonymous studies only');
    // The log line with the same request id gives the instance count.
    const logged = gateway.logs().split('\n').filter((l) => l.includes('DIMSE study forwarded'));
    for (const e of transfers) assert.ok(logged.some((l) => l.includes(e.requestId) && /"instances":[1-9]/.test(l)));
    // No metrics token configured: loopback callers may read it (a token is checked in dimse-durability.test.ts).
    const res = await fetch(`${gateway.url}/dimse/status`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
  });
});

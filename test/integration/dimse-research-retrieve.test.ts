// Issue 19 part 2: a legacy workstation retrieves the de-identified view with C-GET (PS3.4 C.4.3), a
// research PACS receives it by C-MOVE (PS3.4 C.4.2). A real Orthanc holds the shared samples, the gateway
// runs in this process with its DICOM listener, dcmtk's getscu and movescu ask as the researcher caller
// RESEARCH_WS of the project holding every study, and dcmtk's storescp is the allow-listed destination.
// What arrives is compared, byte for byte, with the same researcher's WADO-RS; originals and unknown UIDs
// retrieve nothing; an unknown destination is refused before the view is asked; no original, no canary
// and nothing scan-leaks.py knows of the samples is in any file received; what the pixel policy withholds
// is never sent.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { samplesDir } from '../../src/demo/samples.ts';
import { asciiValue } from '../../src/dicom/dataset.ts';
import { readPart10Buffer } from '../../src/dicom/part10-reader.ts';
import { TAG } from '../../src/dicom/tags.ts';
import { keyedUid } from '../../src/deid/pseudonym.ts';
import { dimseBlock } from '../helpers/dimse.ts';
import { getscu, movescu, part10Dataset, startStoreScp, type RetrieveOutcome, type StoreScp } from '../helpers/dimse-retrieve.ts';
import { makeKeys, scopeKey, startTestGateway, type TestGateway, type TestKeys } from '../helpers/gateway.ts';
import { CANARIES, findCanaries, scanLeaks } from '../helpers/leak-scan.ts';
import { splitMultipart } from '../helpers/multipart.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { listSamples, sample } from '../helpers/sample.ts';
import { monochromeImageFile } from '../helpers/synthetic-instance.ts';

const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7';
const IMPLICIT_LE = '1.2.840.10008.1.2';
/** PS3.4 Tables C.4-2 and C.4-3. */
const SUCCESS = 0x0000;
const SOME_FAILED = 0xb000;
const ALL_FAILED = 0xa702;
const CANCEL = 0xfe00;
const PENDING = 0xff00;
const DESTINATION_UNKNOWN = 0xa801;
const IDENTIFIER_MISMATCH = 0xa900;

type Json = Record<string, { Value?: unknown[] }>;
const first = (item: Json | undefined, tag: string) => String(item?.[tag]?.Value?.[0] ?? '');

interface Instance {
  readonly study: string;
  readonly series: string;
  readonly sop: string;
  readonly modality: string;
}

/** The final response's counts, absent ones as 0 (dcmtk prints "none"). */
function counts(outcome: RetrieveOutcome): { completed: number; failed: number; warning: number; remaining: number } {
  const f = outcome.final;
  return { completed: f?.completed ?? 0, failed: f?.failed ?? 0, warning: f?.warning ?? 0, remaining: f?.remaining ?? 0 };
}

/** The instances each file holds, by SOP Instance UID, with their dataset bytes (File Meta dropped). */
function received(files: readonly string[], syntax = EXPLICIT_LE): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const file of files) {
    const { sopInstanceUid, transferSyntaxUid, dataset } = part10Dataset(readFileSync(file));
    assert.equal(transferSyntaxUid, syntax, `${basename(file)} came in the one transfer syntax its context accepted`);
    out.set(sopInstanceUid, dataset);
  }
  return out;
}

describe('the research face retrieves the de-identified view: C-GET and C-MOVE (issue 19 part 2)', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;
  let keys: TestKeys;
  let destination: StoreScp;
  /** A destination that takes Implicit VR Little Endian only. */
  let implicitDestination: StoreScp;
  let port: number;
  let token: string;
  const work = mkdtempSync(join(tmpdir(), 'dimse-retrieve-'));
  /** Every instance the researcher's QIDO-RS lists. */
  let instances: Instance[] = [];
  /** The researcher's WADO-RS of each instance in Explicit VR Little Endian: its dataset bytes, or its HTTP status. */
  const wado = new Map<string, Buffer | number>();
  /** Every file received by getscu or the destination, for the leak scans. */
  const retrieved: string[] = [];
  /** The study of CT_small with its presentation state and encapsulated PDF (CT, PR, DOC). */
  let ctStudy: string;

  const qido = async (path: string): Promise<Json[]> => {
    const res = await fetch(`${gateway.base}${path}`, { headers: { authorization: `Bearer ${token}`, accept: 'application/dicom+json' } });
    assert.equal(res.status, 200, path);
    return (await res.json()) as Json[];
  };

  /** The researcher's WADO-RS of one instance in `syntax`: its dataset bytes, or its HTTP status. */
  const retrieveInstance = async (i: Instance, syntax: string): Promise<Buffer | number> => {
    const res = await fetch(`${gateway.base}/studies/${i.study}/series/${i.series}/instances/${i.sop}`, {
      headers: { authorization: `Bearer ${token}`, accept: `multipart/related; type="application/dicom"; transfer-syntax=${syntax}` },
    });
    const body = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200) return res.status;
    const { transferSyntaxUid, dataset } = part10Dataset((splitMultipart(body, res.headers.get('content-type'))[0] as { body: Buffer }).body);
    assert.equal(transferSyntaxUid, syntax);
    return dataset;
  };

  before(async () => {
    ({ orthanc } = await startTestOrthanc({ loadSamples: true }));
    destination = await startStoreScp('RESEARCH_PACS', work);
    implicitDestination = await startStoreScp('IMPLICIT_PACS', work, ['+xi']);
    const dimse = dimseBlock({
      callers: [
        { aeTitle: 'RESEARCH_WS', hosts: ['127.0.0.1'], role: 'researcher', project: 'all', moveDestinations: ['RESEARCH_PACS', 'IMPLICIT_PACS', 'OFFLINE_PACS'] },
        // The same project, but no C-MOVE destination of its own (the default).
        { aeTitle: 'OTHER_WS', hosts: ['127.0.0.1'], role: 'researcher', project: 'all' },
      ],
      moveDestinations: [
        { aeTitle: 'RESEARCH_PACS', host: '127.0.0.1', port: destination.port },
        { aeTitle: 'IMPLICIT_PACS', host: '127.0.0.1', port: implicitDestination.port },
        // Allow-listed but down: the association to it cannot be had.
        { aeTitle: 'OFFLINE_PACS', host: '127.0.0.1', port: 1 },
      ],
    });
    // Keys of its own, kept when the gateway closes: the last test restarts it on the same store.
    keys = await makeKeys();
    gateway = await startTestGateway(orthanc.dicomWebUrl, { dimse }, keys);
    port = gateway.dimsePort as number;
    token = await gateway.token('researcher');
    for (const study of await qido('/studies?limit=1000')) {
      const s = first(study, '0020000D');
      for (const i of await qido(`/studies/${s}/instances?includefield=0020000E&includefield=00080060`)) {
        instances.push({ study: s, series: first(i, '0020000E'), sop: first(i, '00080018'), modality: first(i, '00080060') });
      }
    }
    instances = instances.sort((a, b) => a.sop.localeCompare(b.sop));
    for (const i of instances) wado.set(i.sop, await retrieveInstance(i, EXPLICIT_LE));
    const modalities = (s: string) => [...new Set(instances.filter((i) => i.study === s).map((i) => i.modality))].sort().join(',');
    ctStudy = [...new Set(instances.map((i) => i.study))].find((s) => modalities(s) === 'CT,DOC,PR') as string;
    assert.ok(ctStudy, 'the CT_small study with its PR and PDF is in the view');
  });

  after(async () => {
    await gateway?.close();
    await destination?.stop();
    await implicitDestination?.stop();
    await orthanc?.stop();
    rmSync(work, { recursive: true, force: true });
    if (keys) rmSync(keys.dir, { recursive: true, force: true });
  });

  test('getscu of every study writes exactly the instances the researcher WADO-RS gives, byte for byte, with pending responses counting down', async () => {
    const studies = [...new Set(instances.map((i) => i.study))];
    const get = await getscu(port, ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${studies.join('\\')}`], { dir: work });
    retrieved.push(...get.files);
    const files = received(get.files);
    const given = instances.filter((i) => Buffer.isBuffer(wado.get(i.sop)));
    const refused = instances.filter((i) => !Buffer.isBuffer(wado.get(i.sop)));
    assert.ok(given.length >= 30, `${given.length} instances in Explicit VR Little Endian`);
    assert.deepEqual([...files.keys()].sort(), given.map((i) => i.sop).sort(), 'the same SOP Instance UIDs');
    for (const i of given) assert.ok((files.get(i.sop) as Buffer).equals(wado.get(i.sop) as Buffer), `${i.modality} ${i.sop}: the same dataset, header and pixels`);
    // What the view cannot give in a transfer syntax getscu accepted is a failed sub-operation, never sent otherwise.
    assert.deepEqual(counts(get), { completed: given.length, failed: refused.length, warning: 0, remaining: 0 });
    assert.equal(get.final?.status, refused.length > 0 ? SOME_FAILED : SUCCESS);
    assert.equal(get.final?.dataset, refused.length > 0, 'the Failed SOP Instance UID List rides on the final response');
    const pending = get.responses.slice(0, -1);
    assert.equal(pending.length, instances.length - 1, 'a pending response after each sub-operation but the last');
    assert.ok(pending.every((r, n) => r.status === PENDING && r.remaining === instances.length - 1 - n));
  });

  test('getscu of a series, and of a series\' instances by their UIDs, writes exactly those', async () => {
    const ct = instances.filter((i) => i.study === ctStudy);
    const pr = ct.find((i) => i.modality === 'PR') as Instance;
    const series = await getscu(port, ['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${ctStudy}`, `SeriesInstanceUID=${pr.series}`], { dir: work });
    assert.equal(series.final?.status, SUCCESS);
    assert.deepEqual([...received(series.files).keys()], ct.filter((i) => i.series === pr.series).map((i) => i.sop));
    const mr = instances.filter((i) => i.modality === 'MR' && Buffer.isBuffer(wado.get(i.sop)));
    const series2 = mr.filter((i) => i.series === (mr[0] as Instance).series);
    const image = await getscu(port, ['QueryRetrieveLevel=IMAGE', `StudyInstanceUID=${series2[0]?.study}`, `SeriesInstanceUID=${series2[0]?.series}`, `SOPInstanceUID=${series2.map((i) => i.sop).join('\\')}`], { dir: work });
    assert.equal(image.final?.status, SUCCESS);
    assert.deepEqual(counts(image), { completed: series2.length, failed: 0, warning: 0, remaining: 0 });
    const files = received(image.files);
    assert.deepEqual([...files.keys()].sort(), series2.map((i) => i.sop).sort());
    for (const i of series2) assert.ok((files.get(i.sop) as Buffer).equals(wado.get(i.sop) as Buffer));
    retrieved.push(...series.files, ...image.files);
  });

  test('an original, an unknown or another project\'s UID retrieves nothing and answers as an empty match; a malformed Identifier is A900', async () => {
    const originals = (await (await fetch(`${orthanc.dicomWebUrl}/studies`, { headers: { accept: 'application/dicom+json' } })).json()) as Json[];
    const original = first(originals[0], '0020000D');
    const outcomes = await Promise.all(
      [original, '2.25.1234567890123456789', keyedUid(scopeKey(gateway.keys, { project: 'elsewhere' }), original)].map((uid) =>
        getscu(port, ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${uid}`], { dir: work }),
      ),
    );
    for (const o of outcomes) {
      assert.deepEqual(o.files, []);
      assert.equal(o.responses.length, 1);
      assert.equal(o.final?.status, SUCCESS);
      assert.deepEqual(counts(o), { completed: 0, failed: 0, warning: 0, remaining: 0 });
    }
    const noLevel = await getscu(port, [`StudyInstanceUID=${ctStudy}`], { dir: work });
    assert.equal(noLevel.final?.status, IDENTIFIER_MISMATCH);
    assert.deepEqual(noLevel.files, []);
  });

  test('movescu to the allow-listed destination delivers the same instances, each naming its move originator', async () => {
    const move = await movescu(port, ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${ctStudy}`], { destination: 'RESEARCH_PACS' });
    assert.equal(move.final?.status, SUCCESS);
    const ct = instances.filter((i) => i.study === ctStudy);
    assert.deepEqual(counts(move), { completed: ct.length, failed: 0, warning: 0, remaining: 0 });
    const files = received(destination.files());
    assert.deepEqual([...files.keys()].sort(), ct.map((i) => i.sop).sort());
    for (const i of ct) assert.ok((files.get(i.sop) as Buffer).equals(wado.get(i.sop) as Buffer), `${i.modality}: the same dataset as WADO-RS`);
    // PS3.7 9.3.1.1: each C-STORE-RQ of a C-MOVE names the requester and its request.
    assert.equal([...destination.log().matchAll(/Move Originator AE Title\s*:\s*RESEARCH_WS/g)].length, ct.length);
    retrieved.push(...destination.files());
    // A destination that accepts Implicit VR Little Endian only gets the view's instances in that syntax.
    const mr = instances.filter((i) => i.modality === 'MR');
    const study = (mr[0] as Instance).study;
    const wanted = instances.filter((i) => i.study === study);
    const implicit = await movescu(port, ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${study}`], { destination: 'IMPLICIT_PACS' });
    assert.equal(implicit.final?.status, SUCCESS);
    const got = received(implicitDestination.files(), IMPLICIT_LE);
    assert.deepEqual([...got.keys()].sort(), wanted.map((i) => i.sop).sort());
    for (const i of wanted) assert.ok((got.get(i.sop) as Buffer).equals((await retrieveInstance(i, IMPLICIT_LE)) as Buffer), 'the same dataset as WADO-RS in Implicit VR Little Endian');
    retrieved.push(...implicitDestination.files());
  });

  test('an unknown destination, or one the caller may not name, is refused with A801 before the view is asked; one that is down fails every sub-operation (A702)', async () => {
    const requests = () => gateway.logs().split('\n').filter((l) => l.includes('"msg":"request"')).length;
    const before = { requests: requests(), files: destination.files().length };
    const unknown = await movescu(port, ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${ctStudy}`], { destination: 'ELSEWHERE' });
    assert.equal(unknown.final?.status, DESTINATION_UNKNOWN);
    assert.equal(unknown.responses.length, 1);
    // RESEARCH_PACS is in dimse.moveDestinations, but not in OTHER_WS's own list: the same answer.
    const notOurs = await movescu(port, ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${ctStudy}`], { destination: 'RESEARCH_PACS', callingAe: 'OTHER_WS' });
    assert.equal(notOurs.final?.status, DESTINATION_UNKNOWN);
    assert.equal(notOurs.responses.length, 1);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(requests(), before.requests, 'no request to the view');
    assert.equal(destination.files().length, before.files);
    const down = await movescu(port, ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${ctStudy}`], { destination: 'OFFLINE_PACS' });
    assert.equal(down.final?.status, ALL_FAILED);
    assert.deepEqual(counts(down), { completed: 0, failed: 3, warning: 0, remaining: 0 });
  });

  test('a C-CANCEL stops a C-MOVE between sub-operations: FE00 with the counts and the rest not initiated', async () => {
    const studies = [...new Set(instances.map((i) => i.study))];
    const before = destination.files().length;
    const move = await movescu(port, ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${studies.join('\\')}`], { destination: 'RESEARCH_PACS', cancelAfter: 1 });
    assert.equal(move.final?.status, CANCEL, `final ${move.final?.status.toString(16)}`);
    const c = counts(move);
    assert.ok(c.remaining > 0, 'some were not initiated');
    assert.equal(c.completed + c.failed + c.warning + c.remaining, instances.length);
    assert.ok(destination.files().length - before <= c.completed, 'nothing sent after the cancel');
  });


  test('scan-leaks.py is clean over every file retrieved, and no canary of the manifest is in any', async () => {
    // One file per distinct dataset (the same instance came by C-GET and by C-MOVE), so the scan reads each once.
    const byDataset = new Map<string, string>();
    for (const file of new Set([...retrieved, ...destination.files()])) byDataset.set(createHash('sha256').update(part10Dataset(readFileSync(file)).dataset).digest('hex'), file);
    const files = [...byDataset.values()];
    assert.ok(files.length >= 35, `${files.length} distinct instances`);
    const out = join(work, 'scan');
    mkdirSync(out);
    files.forEach((file, n) => {
      writeFileSync(join(out, `${n}.dcm`), readFileSync(file));
    });
    const all = Buffer.concat(files.map((f) => readFileSync(f)));
    // Each file is paired with the samples it comes from (by the pseudonym of their SOP Instance UID) and
    // searched for every canary of theirs; a canary with a letter in it is searched in every file. (A
    // number alone, such as 11111111, is also a run of pixel values in an uncompressed image.)
    const samplesOf = new Map<string, string[]>();
    for (const rel of listSamples()) {
      const sop = await readPart10Buffer(sample(rel))
        .then((p) => asciiValue(p.header.dataset, TAG.SOPInstanceUID))
        .catch(() => undefined);
      if (sop) samplesOf.set(keyedUid(scopeKey(keys), sop), [...(samplesOf.get(keyedUid(scopeKey(keys), sop)) ?? []), rel]);
    }
    for (const file of files) {
      const bytes = readFileSync(file);
      const rels = samplesOf.get(part10Dataset(bytes).sopInstanceUid);
      assert.ok(rels, `${basename(file)} comes from a sample`);
      for (const rel of rels) assert.deepEqual(findCanaries(rel, bytes), [], rel);
    }
    for (const [rel, canary] of Object.entries(CANARIES)) {
      for (const value of canary.values.filter((v) => /\p{L}/u.test(v))) assert.ok(!all.includes(Buffer.from(value, 'utf8')) && !all.includes(Buffer.from(value, 'latin1')), `${rel}: ${value}`);
    }
    const originals = (await (await fetch(`${orthanc.dicomWebUrl}/instances?includefield=0020000D&includefield=0020000E`, { headers: { accept: 'application/dicom+json' } })).json()) as Json[];
    const text = all.toString('latin1');
    for (const o of originals) for (const tag of ['0020000D', '0020000E', '00080018']) assert.ok(!text.includes(first(o, tag)), `no original ${tag}`);
    const scan = await scanLeaks(samplesDir(), out);
    assert.ok(scan.clean, scan.report.slice(-3000));
  });

  test('the audit trail has each retrieval as the subject dimse:RESEARCH_WS, and one 110104 record per C-GET and C-MOVE naming where the instances went; the log names no UID', async () => {
    const steward = await gateway.token('steward');
    type Event = { userId: string; roleId: string; eventId: { code: string }; route: string; eventOutcomeIndicator: number; participantObjectId?: string; project?: string; numberOfInstances?: number; requestId?: string };
    const events: Event[] = [];
    for (let after = ''; ; ) {
      const res = await fetch(`${gateway.url}/audit?limit=1000${after ? `&after=${after}` : ''}`, { headers: { authorization: `Bearer ${steward}` } });
      assert.equal(res.status, 200);
      const page = (await res.json()) as { events: Event[]; next?: string };
      events.push(...page.events);
      if (!page.next) break;
      after = page.next;
    }
    assert.ok(events.filter((e) => e.userId === 'dimse:RESEARCH_WS').length >= instances.length);
    const retrievals = events.filter((e) => e.eventId.code === '110104' && e.route.startsWith('DIMSE C-'));
    const moves = retrievals.filter((e) => e.route === 'DIMSE C-MOVE → WADO-RS');
    const gets = retrievals.filter((e) => e.route === 'DIMSE C-GET → WADO-RS');
    const ct = instances.filter((i) => i.study === ctStudy).length;
    assert.ok(moves.some((e) => e.userId === 'dimse:RESEARCH_WS' && e.participantObjectId === 'RESEARCH_PACS' && e.project === 'all' && e.eventOutcomeIndicator === 0 && e.numberOfInstances === ct), 'the C-MOVE to RESEARCH_PACS');
    assert.ok(moves.some((e) => e.participantObjectId === 'ELSEWHERE' && e.eventOutcomeIndicator === 4 && e.numberOfInstances === 0), 'the refused destination');
    assert.ok(moves.some((e) => e.userId === 'dimse:OTHER_WS' && e.participantObjectId === 'RESEARCH_PACS' && e.eventOutcomeIndicator === 4), 'a destination not the caller\'s');
    assert.ok(moves.some((e) => e.participantObjectId === 'OFFLINE_PACS' && e.eventOutcomeIndicator === 8 && e.numberOfInstances === 0), 'the destination down');
    assert.ok(gets.length >= 4 && gets.every((e) => e.userId === 'dimse:RESEARCH_WS' && e.participantObjectId === 'RESEARCH_WS' && e.roleId === 'researcher'));
    const logs = gateway.logs().split('\n').filter((l) => l.includes('"msg":"DIMSE C-'));
    assert.ok(logs.some((l) => /"msg":"DIMSE C-GET done"/.test(l)) && logs.some((l) => /"msg":"DIMSE C-MOVE done"/.test(l)));
    // Each record joins its log line, which has every count and names the destination.
    const moved = moves.find((e) => e.participantObjectId === 'RESEARCH_PACS' && e.userId === 'dimse:RESEARCH_WS');
    assert.ok(logs.some((l) => l.includes(`"requestId":"${moved?.requestId}"`) && l.includes('"destination":"RESEARCH_PACS"') && l.includes('"msg":"DIMSE C-MOVE done"')));
    for (const i of instances) assert.ok(!logs.some((l) => l.includes(i.sop) || l.includes(i.study)), 'no UID in the DIMSE log lines');
  });

  test('the view failing mid-instance aborts the association: the workstation never gets part of an instance', async () => {
    // A 52 MB instance, so the PACS is stopped while its Pixel Data streams (once getscu has begun writing it).
    const sop = '1.2.826.0.1.3680043.10.1.1';
    const frames = 100;
    const file = monochromeImageFile({
      sopClass: SECONDARY_CAPTURE,
      sopInstance: sop,
      modality: 'OT',
      patientName: 'LARGE^CANARY',
      patientId: 'LARGE-1',
      study: '1.2.826.0.1.3680043.10.1.2',
      series: '1.2.826.0.1.3680043.10.1.3',
      frames,
      rows: 512,
      columns: 512,
      bitsAllocated: 16,
      pixels: Buffer.alloc(512 * 512 * 2 * frames, 0x11),
    });
    assert.equal((await fetch(`${orthanc.httpUrl}/instances`, { method: 'POST', body: file })).status, 200);
    const study = (await qido('/studies?PatientID=*')).map((s) => first(s, '0020000D')).find((s) => !instances.some((i) => i.study === s)) as string;
    assert.ok(study, 'the large study is in the view');
    const parent = mkdtempSync(join(work, 'broken-'));
    const get = getscu(port, ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${study}`], { dir: parent });
    const deadline = Date.now() + 20_000;
    const writing = () => readdirSync(parent).some((d) => readdirSync(join(parent, d)).length > 0);
    while (!writing() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(writing(), 'getscu began receiving the instance');
    await orthanc.kill();
    const outcome = await get;
    await orthanc.restart();
    assert.notEqual(outcome.code, 0);
    assert.equal(outcome.final, undefined, 'no final response: the association was aborted');
    assert.deepEqual(outcome.files, [], 'nothing kept of the instance');
    assert.ok(gateway.logs().includes('"err":"DIMSE_STORE_INCOMPLETE"'));
  });

  test('after the project takes the product pixel policy, what it withholds is never sent, asked by study or by its own UID', async () => {
    // The same keys and store: the researcher saw every instance before (pixels off); now the policy withholds some.
    await gateway.close();
    gateway = await startTestGateway(orthanc.dicomWebUrl, { productPixelDefaults: true, dimse: dimseBlock({ callers: [{ aeTitle: 'RESEARCH_WS', hosts: ['127.0.0.1'], role: 'researcher', project: 'all' }] }) }, keys);
    const dimsePort = gateway.dimsePort as number;
    const ct = instances.filter((i) => i.study === ctStudy);
    const get = await getscu(dimsePort, ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${ctStudy}`], { dir: work });
    assert.equal(get.final?.status, SUCCESS);
    assert.deepEqual([...received(get.files).keys()], ct.filter((i) => i.modality === 'CT').map((i) => i.sop), 'the CT only: its PR and PDF are withheld');
    for (const withheld of ct.filter((i) => i.modality !== 'CT')) {
      const one = await getscu(dimsePort, ['QueryRetrieveLevel=IMAGE', `StudyInstanceUID=${ctStudy}`, `SeriesInstanceUID=${withheld.series}`, `SOPInstanceUID=${withheld.sop}`], { dir: work });
      assert.deepEqual(one.files, [], withheld.modality);
      assert.equal(one.final?.status, SUCCESS);
      assert.deepEqual(counts(one), { completed: 0, failed: 0, warning: 0, remaining: 0 });
    }
  });
});

// Multipart abuse in both directions (issue 8; PS3.18 8.7.1, RFC 2046 5.1.1): bad boundaries, a missing
// close delimiter, a part without Content-Type, a nested multipart, 0-byte parts, and a boundary string
// inside DICOM data (only CRLF--boundary delimits). (a) STOW bodies from an uploader get a clear 4xx or a
// PS3.18 Annex I failure body and nothing raw reaches the PACS; (b) a broken upstream in front of a
// researcher gives a 502 or an aborted response, never raw bytes and never a short body that looks
// complete (no close delimiter once aborted).
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { asciiValue } from '../../src/dicom/dataset.ts';
import { readPart10Buffer } from '../../src/dicom/part10-reader.ts';
import { findCanaries, keptByDesign, makeCanaryStudy, type CanaryEntry } from '../helpers/canary-study.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { readBody } from '../helpers/http.ts';
import { splitMultipart } from '../helpers/multipart.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { parseStowAnswer } from '../helpers/stow.ts';
import { syntheticInstance } from '../helpers/synthetic-instance.ts';

const BOUNDARY = 'abuse-7d1f0c';
const ALL_TS = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const study = makeCanaryStudy();
const CANARY_DICOM = study.instances[0] as Buffer;
// The gateway's default profile (Modified Dates) keeps times of day (E.3.6); every other canary must go.
const IDENTITY = study.canaries.filter((c) => !keptByDesign(c, ['retainLongitudinalTemporalModifiedDates']));

/** A small valid Part 10 file of `studyUid` whose PatientComments (LT, removed by the profile) holds `comment`. */
function dicomWithComment(comment: string, studyUid = study.studyInstanceUID): Buffer {
  return syntheticInstance('1.2.826.0.1.3680043.10.543.99001', [
    [0x00100010, 'PN', 'CANARY99002^Boundary'],
    [0x00100020, 'LO', 'CANARY99003'],
    [0x00104000, 'LT', comment],
    [0x0020000d, 'UI', studyUid],
    [0x0020000e, 'UI', '1.2.826.0.1.3680043.10.543.99005'],
  ]);
}
const BOUNDARY_INSIDE = dicomWithComment(`see --${BOUNDARY} and \n--${BOUNDARY}\r\nContent-Type: text/plain and --${BOUNDARY}-- here`);
const INSIDE_CANARIES = ['CANARY99002', 'CANARY99003', '1.2.826.0.1.3680043.10.543.99001', study.studyInstanceUID, `--${BOUNDARY}`];
/** An instance of another study than the one the researcher asked for. */
const OTHER_STUDY = dicomWithComment('elsewhere', '1.2.826.0.1.3680043.10.543.99004');

const part = (body: Buffer, headers = 'Content-Type: application/dicom\r\n') => Buffer.concat([Buffer.from(`--${BOUNDARY}\r\n${headers}\r\n`), body, Buffer.from('\r\n')]);
const close = Buffer.from(`--${BOUNDARY}--\r\n`);
const related = (boundary = BOUNDARY) => `multipart/related; type="application/dicom"; boundary=${boundary}`;

/** Identity canaries of the canary study, plus the boundary-inside file's, found in `bytes`. */
function leaked(bytes: Buffer, extra: readonly CanaryEntry[] = []): string[] {
  const text = bytes.toString('latin1');
  return [...findCanaries(bytes, [...IDENTITY, ...extra]).map((c) => `${c.id} ${c.path}`), ...INSIDE_CANARIES.filter((c) => text.includes(c))];
}

describe('multipart abuse: STOW bodies from an uploader', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;
  let token: string;
  const stored = async () => ((await (await fetch(`${orthanc.httpUrl}/instances`)).json()) as string[]).length;

  before(async () => {
    ({ orthanc } = await startTestOrthanc());
    gateway = await startTestGateway(orthanc.dicomWebUrl);
    token = await gateway.token('uploader');
  });
  after(async () => {
    await gateway?.close();
    await orthanc?.stop();
  });

  const stow = async (body: Buffer, contentType: string) => {
    const res = await fetch(`${gateway.base}/studies`, {
      method: 'POST',
      body: new Uint8Array(body),
      headers: { authorization: `Bearer ${token}`, 'content-type': contentType, accept: 'application/dicom+json' },
    });
    const text = Buffer.from(await res.arrayBuffer());
    assert.deepEqual(leaked(text), [], 'the answer quotes nothing of the upload');
    return { status: res.status, json: JSON.parse(text.toString()) as Record<string, unknown> };
  };
  const errorCode = (json: Record<string, unknown>) => (json['error'] as { code?: string } | undefined)?.code;

  test('malformed bodies get a 400 with a stable code and store nothing', async () => {
    const before = await stored();
    const cases: { name: string; body: Buffer; type: string; code: string }[] = [
      { name: 'a boundary that is not in the body', body: Buffer.concat([part(CANARY_DICOM), close]), type: related('not-the-boundary'), code: 'STOW_BAD_MULTIPART' },
      { name: 'no boundary parameter', body: Buffer.concat([part(CANARY_DICOM), close]), type: 'multipart/related; type="application/dicom"', code: 'STOW_NO_BOUNDARY' },
      { name: 'a boundary over the 200-character cap', body: Buffer.concat([part(CANARY_DICOM), close]), type: related('b'.repeat(201)), code: 'STOW_BOUNDARY_TOO_LONG' },
      { name: 'a missing close delimiter', body: part(CANARY_DICOM), type: related(), code: 'STOW_BAD_MULTIPART' },
      { name: 'a body cut inside the part', body: part(CANARY_DICOM).subarray(0, 3000), type: related(), code: 'STOW_BAD_MULTIPART' },
      { name: 'a delimiter without CRLF after it', body: Buffer.concat([Buffer.from(`--${BOUNDARY}Content-Type: application/dicom\r\n\r\n`), CANARY_DICOM, Buffer.from('\r\n'), close]), type: related(), code: 'STOW_BAD_MULTIPART' },
      { name: 'only a close delimiter', body: close, type: related(), code: 'STOW_NO_PARTS' },
    ];
    for (const c of cases) {
      const { status, json } = await stow(c.body, c.type);
      assert.equal(status, 400, c.name);
      assert.equal(errorCode(json), c.code, c.name);
    }
    assert.equal(await stored(), before, 'nothing reached the PACS');
  });

  test('a nested multipart part and a 0-byte part are failed parts (PS3.18 Annex I), not stored', async () => {
    const before = await stored();
    const inner = Buffer.concat([Buffer.from('--inner\r\nContent-Type: application/dicom\r\n\r\n'), CANARY_DICOM, Buffer.from('\r\n--inner--\r\n')]);
    const nested = await stow(Buffer.concat([part(inner, 'Content-Type: multipart/related; type="application/dicom"; boundary=inner\r\n'), close]), related());
    assert.equal(nested.status, 409);
    assert.deepEqual(parseStowAnswer(nested.status, nested.json as never).failed.map((f) => f.reason), [0x0122]);
    const empty = await stow(Buffer.concat([part(Buffer.alloc(0)), close]), related());
    assert.equal(empty.status, 409);
    assert.deepEqual(parseStowAnswer(empty.status, empty.json as never).failed.map((f) => f.reason), [0xc000]);
    assert.equal(await stored(), before);
  });

  test('a part without Content-Type, and DICOM data holding the boundary string, are stored de-identified', async () => {
    const before = new Set((await (await fetch(`${orthanc.httpUrl}/instances`)).json()) as string[]);
    const { status, json } = await stow(Buffer.concat([part(CANARY_DICOM, ''), part(BOUNDARY_INSIDE), close]), related());
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(parseStowAnswer(status, json as never).stored.length, 2, `the boundary string inside the data did not split the part: ${JSON.stringify(json)}`);
    const added = ((await (await fetch(`${orthanc.httpUrl}/instances`)).json()) as string[]).filter((id) => !before.has(id));
    assert.equal(added.length, 2);
    for (const id of added) {
      const file = Buffer.from(await (await fetch(`${orthanc.httpUrl}/instances/${id}/file`)).arrayBuffer());
      assert.deepEqual(findCanaries(file, IDENTITY).map((c) => c.path), []);
      assert.deepEqual(INSIDE_CANARIES.filter((c) => file.toString('latin1').includes(c)), []);
    }
  });
});

// --- (b) a broken upstream in front of a researcher ----------------------------------------------------

type Variant = (res: ServerResponse) => void;

describe('multipart abuse: a broken upstream answering a researcher', () => {
  let upstream: Server;
  let gateway: TestGateway;
  let token: string;
  let variant: Variant = () => undefined;
  let studyPath = '';
  let framesPath = '';
  const uids = { study: '', series: '', instance: '' };
  /** The study the QIDO answers place the instance in (a PACS that does not check the hierarchy may say another). */
  let placedIn = () => uids.study;

  const send = (body: Buffer, contentType = related(), opts: { destroy?: boolean } = {}): Variant => (res) => {
    res.writeHead(200, { 'content-type': contentType, ...(opts.destroy ? {} : { 'content-length': String(body.length) }) });
    if (opts.destroy) {
      res.write(body);
      setTimeout(() => res.socket?.destroy(), 30);
    } else res.end(body);
  };

  before(async () => {
    const parsed = await readPart10Buffer(CANARY_DICOM);
    uids.study = asciiValue(parsed.header.dataset, 0x0020000d) as string;
    uids.series = asciiValue(parsed.header.dataset, 0x0020000e) as string;
    uids.instance = asciiValue(parsed.header.dataset, 0x00080018) as string;
    upstream = createServer((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      if (req.url?.startsWith('/dicom-web/instances') || /\/(series|instances)\?/.test(req.url ?? '')) {
        // QIDO: how the researcher learns the pseudonyms of the (original) canary UIDs, and how the
        // gateway locates an instance below its study before it relays frames.
        res.writeHead(200, { 'content-type': 'application/dicom+json' });
        res.end(JSON.stringify([{ '0020000D': { vr: 'UI', Value: [placedIn()] }, '0020000E': { vr: 'UI', Value: [uids.series] }, '00080018': { vr: 'UI', Value: [uids.instance] } }]));
        return;
      }
      variant(res);
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    gateway = await startTestGateway(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}/dicom-web`);
    token = await gateway.token('researcher');
    const res = await fetch(`${gateway.base}/instances`, { headers: { authorization: `Bearer ${token}` } });
    const [item] = (await res.json()) as Record<string, { Value: string[] }>[];
    const ps = (tag: string) => item?.[tag]?.Value[0] as string;
    assert.match(ps('0020000D'), /^2\.25\./);
    studyPath = `/studies/${ps('0020000D')}`;
    framesPath = `${studyPath}/series/${ps('0020000E')}/instances/${ps('00080018')}/frames/1`;
  });
  after(async () => {
    await gateway?.close();
    upstream?.closeAllConnections();
    await new Promise<void>((r) => upstream?.close(() => r()));
  });

  /** Reads the researcher's answer to the end or to its abort. */
  const retrieve = async (path: string, accept = ALL_TS) => {
    const res = await fetch(gateway.base + path, { headers: { authorization: `Bearer ${token}`, accept } });
    const { outcome, body } = await readBody(res);
    assert.deepEqual(leaked(body), [], 'no raw canary byte reaches the researcher');
    return { status: res.status, outcome, body, contentType: res.headers.get('content-type') };
  };
  const closeDelimiterOf = (contentType: string | null) => `--${/boundary=([^;]+)/.exec(contentType ?? '')?.[1]}--`;

  test('bad boundaries, a nested multipart, a 0-byte part and a non-DICOM part give 502', async () => {
    const cases: { name: string; v: Variant }[] = [
      { name: 'the boundary is not in the body', v: send(Buffer.concat([part(CANARY_DICOM), close]), related('other')) },
      { name: 'no boundary parameter', v: send(Buffer.concat([part(CANARY_DICOM), close]), 'multipart/related; type="application/dicom"') },
      { name: 'a nested multipart', v: send(Buffer.concat([part(Buffer.concat([Buffer.from('--in\r\n\r\n'), CANARY_DICOM, Buffer.from('\r\n--in--')]), 'Content-Type: multipart/related; boundary=in\r\n'), close])) },
      { name: 'a 0-byte part', v: send(Buffer.concat([part(Buffer.alloc(0)), close])) },
      { name: 'raw text instead of DICOM', v: send(Buffer.concat([part(Buffer.from(`PatientName=${study.canaries[0]?.id}`)), close])) },
      { name: 'not multipart at all', v: send(CANARY_DICOM, 'application/dicom') },
      // A PACS that does not check the hierarchy: an instance of another study under this study's path.
      { name: 'an instance of another study', v: send(Buffer.concat([part(OTHER_STUDY), close])) },
    ];
    for (const c of cases) {
      variant = c.v;
      const r = await retrieve(studyPath);
      assert.equal(r.status, 502, c.name);
      assert.equal(r.outcome, 'complete', c.name);
      assert.equal((JSON.parse(r.body.toString()) as { error: { code: string } }).error.code.startsWith('UPSTREAM_'), true, c.name);
    }
  });

  test('frames of an instance the PACS places in another study are unknown, never relayed', async () => {
    // The instance's series is listed once under a second study S (as a PACS that keeps a series in two
    // studies, or lost track, might say); a second gateway on the same store, with nothing cached, is
    // then asked for its frames under S while the PACS places it in its own study: 404, nothing relayed.
    placedIn = () => '1.2.826.0.1.3680043.10.543.77';
    const listed = (await (await fetch(`${gateway.base}/instances`, { headers: { authorization: `Bearer ${token}` } })).json()) as Record<string, { Value: string[] }>[];
    placedIn = () => uids.study;
    const ps = (tag: string) => listed[0]?.[tag]?.Value[0] as string;
    const second = await startTestGateway(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}/dicom-web`, {}, gateway.keys);
    try {
      const t = await second.token('researcher');
      const frames = (study: string) =>
        fetch(`${second.base}/studies/${study}/series/${ps('0020000E')}/instances/${ps('00080018')}/frames/1`, {
          headers: { authorization: `Bearer ${t}`, accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' },
        });
      variant = send(Buffer.concat([part(Buffer.alloc(64, 1), 'Content-Type: application/octet-stream\r\n'), close]), `multipart/related; type="application/octet-stream"; boundary=${BOUNDARY}`);
      const elsewhere = await frames(ps('0020000D'));
      assert.equal(elsewhere.status, 404);
      assert.equal(((await elsewhere.json()) as { error: { code: string } }).error.code, 'DICOMWEB_UNKNOWN_RESOURCE');
      const own = await frames(studyPath.slice('/studies/'.length));
      assert.equal(own.status, 200, 'under its own study the frames are served');
      await own.arrayBuffer();
    } finally {
      await second.close();
    }
  });

  test('a missing close delimiter, a cut body or a dropped connection abort the answer, without its close delimiter', async () => {
    const cases: { name: string; v: Variant; path: string; accept?: string }[] = [
      { name: 'no close delimiter', v: send(part(CANARY_DICOM)), path: studyPath },
      { name: 'cut inside Pixel Data', v: send(part(CANARY_DICOM).subarray(0, CANARY_DICOM.length - 100)), path: studyPath },
      { name: 'connection dropped after the header', v: send(part(CANARY_DICOM).subarray(0, CANARY_DICOM.length - 100), related(), { destroy: true }), path: studyPath },
      { name: 'frames without a close delimiter', v: send(part(Buffer.alloc(512, 7), 'Content-Type: application/octet-stream\r\n'), `multipart/related; type="application/octet-stream"; boundary=${BOUNDARY}`), path: framesPath, accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' },
    ];
    for (const c of cases) {
      variant = c.v;
      const r = await retrieve(c.path, c.accept);
      if (r.status === 200) {
        assert.equal(r.outcome, 'aborted', c.name);
        assert.ok(!r.body.toString('latin1').includes(closeDelimiterOf(r.contentType)), `${c.name}: an aborted body carries no close delimiter`);
      } else assert.equal(r.status, 502, c.name);
    }
  });

  test('a part without Content-Type and DICOM data holding the boundary string are rewritten whole', async () => {
    for (const [name, dicom, headers] of [
      ['no Content-Type', CANARY_DICOM, ''],
      ['the boundary inside the data', BOUNDARY_INSIDE, 'Content-Type: application/dicom\r\n'],
    ] as const) {
      variant = send(Buffer.concat([part(dicom, headers), close]));
      const r = await retrieve(studyPath);
      assert.equal(r.status, 200, name);
      assert.equal(r.outcome, 'complete', name);
      const parts = splitMultipart(r.body, r.contentType);
      assert.equal(parts.length, 1, name);
      const parsed = await readPart10Buffer(parts[0]?.body as Buffer);
      assert.equal(asciiValue(parsed.header.dataset, 0x00120062), 'YES', name);
    }
  });
});

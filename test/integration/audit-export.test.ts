// Issue 21 §3: the audit trail exported as it is written, to receivers this test starts on loopback: RFC
// 5424 syslog over UDP (RFC 5426), TCP (RFC 6587 octet counting) and TLS (RFC 5425, mutual
// authentication), and as JSON lines in a file. Each frame is parsed field by field; its record is the
// one the store keeps. A receiver that is down, or a file that cannot be written, never blocks or fails
// a request: the store's trail stays the source of truth.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { AuditRecord } from '../../src/store/audit-trail.ts';
import { freePort } from '../../src/demo/orthanc-process.ts';
import { makeKeys, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

const HOSTNAME = 'gw-1.deid.test';
const BOM = '\u00ef\u00bb\u00bf'; // the UTF-8 BOM, as latin1 code points

/** One RFC 5424 SYSLOG-MSG, parsed strictly (6.1 ABNF): header, structured data, then the BOM and the JSON record. */
interface Frame {
  pri: number;
  version: number;
  timestamp: string;
  hostname: string;
  appName: string;
  procId: string;
  msgId: string;
  sd: Record<string, Record<string, string>>;
  record: AuditRecord & { participantObjectQueryOmitted?: boolean };
}

function parseFrame(bytes: Buffer): Frame {
  const text = bytes.toString('latin1');
  const m = /^<(\d{1,3})>([1-9]\d{0,2}) (\S+) (\S{1,255}) (\S{1,48}) (\S{1,128}) (\S{1,32}) (-|(?:\[[^\]]*\])+) ([\s\S]*)$/.exec(text);
  assert.ok(m, `not an RFC 5424 message: ${text.slice(0, 200)}`);
  const [, pri, version, timestamp, hostname, appName, procId, msgId, sdText, msg] = m as unknown as string[];
  // RFC 5424 6.2.3: a full-date "T" full-time with a zone (RFC 3339), no leap second, at most 6 fraction digits.
  assert.match(timestamp as string, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/);
  const sd: Frame['sd'] = {};
  for (const element of (sdText as string).matchAll(/\[([^ \]=]+)((?: [^ =\]]+="(?:[^"\\\]]|\\.)*")*)\]/g)) {
    sd[element[1] as string] = Object.fromEntries([...(element[2] as string).matchAll(/ ([^ =]+)="((?:[^"\\]|\\.)*)"/g)].map((p) => [p[1], p[2]]));
  }
  assert.ok((msg as string).startsWith(BOM), 'MSG is UTF-8 with a BOM (RFC 5424 6.4)');
  const record = JSON.parse(Buffer.from((msg as string).slice(BOM.length), 'latin1').toString('utf8')) as Frame['record'];
  return { pri: Number(pri), version: Number(version), timestamp: timestamp as string, hostname: hostname as string, appName: appName as string, procId: procId as string, msgId: msgId as string, sd, record };
}

/** RFC 6587 3.4.1: MSG-LEN SP SYSLOG-MSG, frames split across and joined within reads. */
function octetCountingReader(onFrame: (frame: Buffer) => void): (chunk: Buffer) => void {
  let pending = Buffer.alloc(0);
  return (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    for (;;) {
      const space = pending.indexOf(0x20);
      if (space < 0) return;
      const length = Number(pending.subarray(0, space).toString('ascii'));
      assert.ok(Number.isInteger(length) && length > 0 && /^[1-9]\d*$/.test(pending.subarray(0, space).toString('ascii')), 'MSG-LEN is a non-zero number');
      if (pending.length < space + 1 + length) return;
      onFrame(pending.subarray(space + 1, space + 1 + length));
      pending = pending.subarray(space + 1 + length);
    }
  };
}

/** A stream receiver (TCP, or TLS with `tls` options) on `port`; frames collected; connections closable. */
async function streamReceiver(port: number, tls?: Parameters<typeof createTlsServer>[0]) {
  const frames: Buffer[] = [];
  const sockets = new Set<Socket>();
  const peers: Array<{ authorized: boolean; subject?: string }> = [];
  const onSocket = (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.on('data', octetCountingReader((f) => frames.push(Buffer.from(f))));
  };
  const server: Server = tls
    ? createTlsServer(tls, (s: TLSSocket) => {
        const cn = s.getPeerCertificate()?.subject?.CN;
        peers.push({ authorized: s.authorized, subject: Array.isArray(cn) ? cn.join(',') : cn });
        onSocket(s);
      })
    : createTcpServer(onSocket);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    frames,
    peers,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const until = async (check: () => boolean, what: string, ms = 10_000) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
};

/** A gateway whose PACS is not there: every record here is made by steward and researcher calls alone. */
async function gatewayWith(audit: Record<string, unknown>, keys?: Awaited<ReturnType<typeof makeKeys>>) {
  const closedPort = await freePort();
  return startTestGateway(`http://127.0.0.1:${closedPort}/dicom-web`, { audit: { file: 'audit.jsonl', ...audit } }, keys);
}

/** Some traffic: a trail read (0), an unknown pseudonym (4), a researcher query the PACS cannot answer (8). */
async function traffic(gateway: TestGateway): Promise<void> {
  const steward = { authorization: `Bearer ${await gateway.token('steward', { sub: 'steward-x' })}` };
  const researcher = { authorization: `Bearer ${await gateway.token('researcher', { sub: 'researcher-x' })}` };
  assert.equal((await fetch(`${gateway.url}/audit?limit=1`, { headers: steward })).status, 200);
  const reid = await fetch(`${gateway.url}/reidentify`, {
    method: 'POST',
    headers: { ...steward, 'content-type': 'application/json' },
    body: JSON.stringify({ project: 'all', kind: 'patientId', pseudonym: 'NOSUCHPSEUDONYM1' }),
  });
  assert.equal(reid.status, 404);
  const qido = await fetch(`${gateway.base}/studies?PatientName=DOE*&StudyDate=20200101-20201231`, { headers: researcher });
  assert.equal(qido.status, 502);
  await qido.arrayBuffer();
}

const fileRecords = (gateway: TestGateway) =>
  readFileSync(join(gateway.keys.dir, 'data', 'audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AuditRecord);

/** Each frame's fields checked against the record the store keeps (same order: the file's). */
function checkFrames(frames: Buffer[], records: AuditRecord[]): Frame[] {
  const parsed = frames.map(parseFrame);
  assert.equal(parsed.length, records.length);
  parsed.forEach((f, i) => {
    const record = records[i] as AuditRecord;
    assert.equal(f.version, 1);
    assert.equal(f.pri, 10 * 8 + (record.eventOutcomeIndicator === 0 ? 5 : 4), 'facility 10 (authpriv); notice, or warning for a failure');
    assert.equal(f.timestamp, record.eventDateTime as unknown as string);
    assert.deepEqual([f.hostname, f.appName, f.procId], [HOSTNAME, 'deid-gateway', String(process.pid)]);
    assert.equal(f.msgId, record.eventTypeCode?.code ?? record.eventId.code);
    assert.equal(f.sd['meta']?.['sequenceId'], String(Number(parsed[0]?.sd['meta']?.['sequenceId']) + i), 'sequenceId counts up by one');
    assert.deepEqual(f.record, record);
  });
  return parsed;
}

describe('the audit trail exported as syslog and as JSON lines, to receivers on loopback', () => {
  let keysDir: string | undefined;
  before(async () => {
    keysDir = (await makeKeys()).dir;
  });
  after(() => {
    if (keysDir) execFileSync('rm', ['-rf', keysDir]);
  });

  test('UDP (RFC 5426): one RFC 5424 message a datagram, each the record the store and the file hold', async () => {
    const receiver = createSocket('udp4');
    const datagrams: Buffer[] = [];
    receiver.on('message', (m) => datagrams.push(m));
    await new Promise<void>((resolve) => receiver.bind(0, '127.0.0.1', resolve));
    const gateway = await gatewayWith({ syslog: { transport: 'udp', host: '127.0.0.1', port: receiver.address().port, hostname: HOSTNAME } });
    try {
      await traffic(gateway);
      await until(() => datagrams.length >= fileRecords(gateway).length && datagrams.length >= 3, 'three datagrams');
      const frames = checkFrames(datagrams, fileRecords(gateway));
      const outcomes = frames.map((f) => [f.msgId, f.record.eventOutcomeIndicator]);
      assert.deepEqual(outcomes, [['110101', 0], ['REIDENTIFY', 4], ['110112', 8]]);
      // The query is described, never copied: keys and matching modes, no value the researcher sent.
      assert.deepEqual(frames[2]?.record.participantObjectQuery?.keys.map((k) => [k.keyword, k.mode]), [['PatientName', 'wildcard'], ['StudyDate', 'range']]);
      assert.ok(!datagrams.some((d) => d.includes('DOE')), 'no value a caller sent');
      // And the store's own copy is the same record (with its id).
      const steward = { authorization: `Bearer ${await gateway.token('steward', { sub: 'steward-x' })}` };
      const stored = ((await (await fetch(`${gateway.url}/audit?limit=3`, { headers: steward })).json()) as { events: AuditRecord[] }).events;
      assert.deepEqual(stored.map(({ id: _id, ...rest }) => rest), frames.map((f) => f.record));
    } finally {
      await gateway.close();
      receiver.close();
    }
  });

  test('TCP (RFC 6587 octet counting): a receiver down at first costs requests nothing; the queued records arrive once it is up, in order', async () => {
    const port = await freePort();
    const gateway = await gatewayWith({ syslog: { transport: 'tcp', host: '127.0.0.1', port, hostname: HOSTNAME } });
    let receiver: Awaited<ReturnType<typeof streamReceiver>> | undefined;
    try {
      const started = performance.now();
      await traffic(gateway);
      assert.ok(performance.now() - started < 3_000, 'requests are not held up by the missing receiver');
      receiver = await streamReceiver(port);
      await until(() => (receiver?.frames.length ?? 0) >= 3, 'the queued records after reconnection');
      checkFrames(receiver.frames, fileRecords(gateway));
      // The receiver goes away mid-run: requests still answer at once; it comes back and gets the rest.
      await receiver.close();
      await until(() => /audit syslog: connection closed; reconnecting/.test(gateway.logs()), 'the gateway to see the connection gone');
      const before = receiver.frames.length;
      await traffic(gateway);
      receiver = await streamReceiver(port);
      await until(() => (receiver?.frames.length ?? 0) >= 3, 'the records made while it was away');
      const all = fileRecords(gateway);
      checkFrames(receiver.frames, all.slice(before));
      // Metrics: exported by sink and outcome.
      const text = await (await fetch(`${gateway.url}/metrics`)).text();
      assert.match(text, /^deid_gateway_audit_export_total\{sink="syslog",outcome="sent"\} [1-9]\d*$/m);
      assert.match(text, /^deid_gateway_audit_export_total\{sink="file",outcome="sent"\} [1-9]\d*$/m);
      assert.match(gateway.logs(), /audit syslog: connection failed; retrying/);
    } finally {
      await gateway.close();
      await receiver?.close();
    }
  });

  test('TLS (RFC 5425, ATNA): the receiver checks the gateway’s certificate and the gateway the receiver’s; an unknown receiver gets nothing', async () => {
    const pki = join(keysDir as string, 'pki');
    mkdirSync(pki);
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: pki, stdio: 'pipe' });
    const leaf = (name: string, ca: string, extra: string[] = []) => {
      ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
      writeFileSync(join(pki, `${name}.ext`), `subjectAltName=${name === 'receiver' ? 'DNS:localhost,IP:127.0.0.1' : `DNS:${name}`}\n`);
      ssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '2', '-out', `${name}.pem`, '-extfile', `${name}.ext`, ...extra);
    };
    for (const ca of ['ca', 'other-ca']) ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=${ca}`);
    leaf('receiver', 'ca');
    leaf('gateway', 'ca');
    const file = (name: string) => readFileSync(join(pki, name));
    const port = await freePort();
    const receiver = await streamReceiver(port, { key: file('receiver.key'), cert: file('receiver.pem'), ca: file('ca.pem'), requestCert: true, rejectUnauthorized: true });
    const tls = { ca: join(pki, 'ca.pem'), cert: join(pki, 'gateway.pem'), key: { file: join(pki, 'gateway.key') } };
    const gateway = await gatewayWith({ syslog: { transport: 'tls', host: '127.0.0.1', port, hostname: HOSTNAME, tls } });
    try {
      await traffic(gateway);
      await until(() => receiver.frames.length >= 3, 'three records over TLS');
      checkFrames(receiver.frames, fileRecords(gateway));
      assert.deepEqual(receiver.peers[0], { authorized: true, subject: 'gateway' }, 'mutual authentication');
    } finally {
      await gateway.close();
      await receiver.close();
    }
    // A receiver whose certificate another CA signed: the gateway does not send to it; requests go on.
    const impostorPort = await freePort();
    leaf('impostor', 'other-ca');
    const impostor = await streamReceiver(impostorPort, { key: file('impostor.key'), cert: file('impostor.pem') });
    const wary = await gatewayWith({ syslog: { transport: 'tls', host: '127.0.0.1', port: impostorPort, hostname: HOSTNAME, tls } });
    try {
      await traffic(wary);
      await until(() => /audit syslog: connection failed; retrying/.test(wary.logs()), 'the refused handshake logged');
      assert.equal(impostor.frames.length, 0);
      assert.match(wary.logs(), /"code":"(UNABLE_TO_VERIFY_LEAF_SIGNATURE|ERR_TLS_CERT_ALTNAME_INVALID|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)"/);
    } finally {
      await wary.close();
      await impostor.close();
    }
  });

  test('a record too large for maxMessageBytes goes without its query description, flagged; an unwritable audit file fails no request', async () => {
    const receiver = createSocket('udp4');
    const datagrams: Buffer[] = [];
    receiver.on('message', (m) => datagrams.push(m));
    await new Promise<void>((resolve) => receiver.bind(0, '127.0.0.1', resolve));
    const keys = await makeKeys();
    // The file's folder cannot be made: a plain file stands where it would be.
    mkdirSync(join(keys.dir, 'data'), { recursive: true });
    writeFileSync(join(keys.dir, 'data', 'blocked'), 'not a folder');
    const closedPort = await freePort();
    const gateway = await startTestGateway(
      `http://127.0.0.1:${closedPort}/dicom-web`,
      { audit: { file: 'blocked/audit.jsonl', syslog: { transport: 'udp', host: '127.0.0.1', port: receiver.address().port, hostname: HOSTNAME, maxMessageBytes: 600 } } },
      keys,
    );
    try {
      const researcher = { authorization: `Bearer ${await gateway.token('researcher', { sub: 'researcher-x' })}` };
      const keysAsked = ['AccessionNumber', 'ModalitiesInStudy', 'ReferringPhysicianName', 'StudyDescription', 'StudyID', 'PatientID', 'PatientBirthDate', 'PatientSex', 'StudyTime', 'InstitutionName', 'StudyDate', 'PatientAge']
        .map((k) => `${k}=`) // universal matching: a key, no value
        .join('&');
      const qido = await fetch(`${gateway.base}/studies?${keysAsked}&PatientName=DOE*`, { headers: researcher });
      assert.equal(qido.status, 502, 'answered, though the file cannot take the record');
      await qido.arrayBuffer();
      await until(() => datagrams.length >= 1, 'the datagram');
      const frame = parseFrame(datagrams[0] as Buffer);
      assert.equal(datagrams[0]?.length !== undefined && datagrams[0].length <= 600, true);
      assert.equal(frame.record.participantObjectQuery, undefined);
      assert.equal(frame.record.participantObjectQueryOmitted, true);
      assert.equal(frame.record.route, 'GET /studies');
      // The store has it whole.
      const steward = { authorization: `Bearer ${await gateway.token('steward', { sub: 'steward-x' })}` };
      const stored = ((await (await fetch(`${gateway.url}/audit?event=110112`, { headers: steward })).json()) as { events: AuditRecord[] }).events;
      assert.ok((stored[0]?.participantObjectQuery?.keys.length ?? 0) >= 12);
      assert.match(gateway.logs(), /"key":"audit.file".*audit file: a record could not be written/);
      const text = await (await fetch(`${gateway.url}/metrics`)).text();
      assert.match(text, /^deid_gateway_audit_export_total\{sink="file",outcome="failed"\} [1-9]\d*$/m);
    } finally {
      await gateway.close();
      receiver.close();
      execFileSync('rm', ['-rf', keys.dir]);
    }
  });
});

import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { assertHealthy as healthz, closeServer } from '../helpers/http.ts';

// Hostile HTTP against the gateway. The upstream is a loopback server that records every request it
// gets, because "never forwarded" is only provable where the forwarded requests can be counted.
// It sits at the root of its origin (no /dicom-web), the layout where a target that smuggled an
// authority into the upstream URL would reach another host.

const HEADERS_TIMEOUT_MS = 1_000;
const REQUEST_TIMEOUT_MS = 2_000;

interface Recorded {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

async function recordingServer(): Promise<{ server: Server; seen: Recorded[]; url: string }> {
  const seen: Recorded[] = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    req.resume();
    req.once('end', () => {
      res.writeHead(200, { 'content-type': 'application/dicom+json' });
      res.end('[]');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, seen, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

interface RawAnswer {
  /** The status line's code, or 0 when the connection closed without one. */
  status: number;
  head: string;
  body: string;
  /** Milliseconds from connecting to the close (or to `waitMs`). */
  ms: number;
  /** Milliseconds from connecting to the first byte of the answer (-1: none). */
  firstByteMs: number;
  closed: boolean;
}

/**
 * Writes `chunks` to a fresh TCP connection (each after `gapMs`), reads until the server closes it or
 * `waitMs` passes. A raw socket, because fetch normalises dot segments and refuses malformed requests.
 */
function raw(port: number, chunks: (string | Buffer)[], options: { gapMs?: number; waitMs?: number } = {}): Promise<RawAnswer> {
  const { gapMs = 0, waitMs = 3_000 } = options;
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    let firstByteMs = -1;
    let timer: NodeJS.Timeout | undefined;
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      clearTimeout(give);
      socket.destroy();
      const text = received.toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      const head = split >= 0 ? text.slice(0, split) : text;
      resolve({
        status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0),
        head,
        body: split >= 0 ? text.slice(split + 4) : '',
        ms: Date.now() - started,
        firstByteMs,
        closed,
      });
    };
    socket.on('data', (d) => {
      if (firstByteMs < 0) firstByteMs = Date.now() - started;
      received = Buffer.concat([received, d]);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => finish(true));
    const give = setTimeout(() => finish(false), waitMs);
    let i = 0;
    const next = () => {
      if (socket.destroyed || i >= chunks.length) return;
      socket.write(chunks[i++] as string | Buffer);
      timer = setTimeout(next, gapMs);
    };
    socket.once('connect', next);
  });
}

describe('HTTP abuse', () => {
  let upstream: Awaited<ReturnType<typeof recordingServer>>;
  let elsewhere: Awaited<ReturnType<typeof recordingServer>>;
  let gateway: TestGateway;
  let port: number;
  const bearer: Record<string, string> = {};

  before(async () => {
    upstream = await recordingServer();
    elsewhere = await recordingServer();
    gateway = await startTestGateway(upstream.url, {
      server: { headersTimeoutMs: HEADERS_TIMEOUT_MS, requestTimeoutMs: REQUEST_TIMEOUT_MS },
      stow: { maxBodyBytes: 1024 ** 3 },
    });
    port = Number(new URL(gateway.url).port);
    for (const role of ['clinician', 'researcher', 'uploader']) bearer[role] = `Bearer ${await gateway.token(role)}`;
  });
  after(async () => {
    await gateway?.close();
    if (upstream) await closeServer(upstream.server);
    if (elsewhere) await closeServer(elsewhere.server);
  });

  const get = (target: string, role: string, extra = '') =>
    raw(port, [`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: ${bearer[role]}\r\n${extra}Connection: close\r\n\r\n`]);

  const assertHealthy = () => healthz(gateway.url);

  test('path traversal in a UID or bulkdata path is refused (400/404) and never forwarded upstream', async () => {
    const targets = [
      '/dicom-web/studies/..%2F..%2Fetc%2Fpasswd',
      '/dicom-web/studies/1.2/../../passwd',
      '/dicom-web/studies/%2e%2e/metadata',
      '/dicom-web/studies/%2E%2E%2F%2E%2E%2Fpasswd/series',
      '/dicom-web/studies/1.2.3/series/..%5C..%5Cpasswd',
      '/dicom-web/studies/1.2.3/series/4.5/instances/6.7/bulk/../../../../passwd',
      '/dicom-web/studies/1.2.3/series/4.5/instances/6.7/bulk/..%2F..%2Fpasswd',
      '/dicom-web/studies/1.2.3/series/4.5/instances/6.7/bulkdata/%2e%2e/%2e%2e/passwd',
      '/dicom-web/studies/1.2.3/series/4.5/instances/6.7/frames/1%2F..%2F..%2Fpasswd',
      '/dicom-web/studies/1.2.3%00passwd/metadata',
      '/dicom-web/studies/%zzpasswd',
      '/dicom-web/../passwd',
      '/dicom-web/%2e%2e/passwd',
      '/dicom-web/studies/1.2.3/metadata/../../../passwd',
    ];
    for (const role of ['clinician', 'researcher']) {
      for (const target of targets) {
        const before = upstream.seen.length;
        const r = await get(target, role);
        assert.ok(r.status === 400 || r.status === 404, `${role} ${target}: ${r.status}`);
        assert.match(r.body, /^\{"error":\{"code":"[A-Z_]+"/, `${role} ${target}: a JSON error body`);
        assert.ok(!r.body.includes('passwd'), `${role} ${target}: the path is not echoed`);
        assert.equal(upstream.seen.length, before, `${role} ${target}: nothing was forwarded`);
      }
    }
    assert.ok(!gateway.logs().includes('passwd'), 'no request path reaches the log');
    await assertHealthy();
  });

  test('an absolute-form target is relayed as its path only: its authority never reaches the upstream URL', async () => {
    // RFC 9112 3.2.2 obliges a server to accept the absolute-form. Before the fix, originalUrl.slice()
    // turned `http://xyz@host:port/…` into `@host:port/…`, and the upstream URL pointed at that host.
    const evil = new URL(elsewhere.url);
    const before = upstream.seen.length;
    const r = await get(`http://xyz@${evil.host}/dicom-web/studies?PatientName=x`, 'clinician');
    assert.equal(r.status, 200);
    assert.equal(elsewhere.seen.length, 0, 'the authority in the target is not contacted');
    assert.deepEqual(upstream.seen.slice(before).map((s) => s.url), ['/studies?PatientName=x']);
    for (const target of ['*', 'example.com:443', 'ftp://x/dicom-web/studies']) {
      const bad = await get(target, 'clinician');
      assert.equal(bad.status, 400, target);
    }
    assert.equal(upstream.seen.length, before + 1);
    await assertHealthy();
  });

  test('a UID of 65 characters or with letters is 400 for the researcher and not forwarded; for the clinician only an unsafe segment is', async () => {
    const uid64 = `1.${'2'.repeat(62)}`;
    const uid65 = `1.${'2'.repeat(63)}`;
    assert.equal(uid64.length, 64);
    // Not PS3.5 9.1 UIDs, but safe path segments (RFC 3986 unreserved, at most 128): the clinician's
    // pass-through is no stricter than the PACS (issue 14: Orthanc lists hex "UIDs" and answers for them).
    const notUids = [uid65, '1.2.abc', '1.2.840.10008.5.1.4.1.1.2e5', '1..2', '.1.2', '1.2.', '-1.2'];
    const unsafe = ['1.2 3', '１.２', `1.${'2'.repeat(127)}`];
    for (const role of ['clinician', 'researcher']) {
      for (const uid of [...notUids, ...unsafe]) {
        const before = upstream.seen.length;
        const res = await fetch(`${gateway.base}/studies/${encodeURIComponent(uid)}/metadata`, { headers: { authorization: bearer[role] as string } });
        if (role === 'clinician' && notUids.includes(uid)) {
          assert.equal(res.status, 200, `${role} ${uid}`);
          await res.arrayBuffer();
          assert.deepEqual(upstream.seen.slice(before).map((s) => s.url), [`/studies/${uid}/metadata`], `${role} ${uid}: relayed once, as listed`);
          continue;
        }
        assert.equal(res.status, 400, `${role} ${uid}`);
        assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'DICOMWEB_BAD_PARAMETER');
        assert.equal(upstream.seen.length, before, `${role} ${uid}: nothing was forwarded`);
      }
    }
    const before = upstream.seen.length;
    const ok = await fetch(`${gateway.base}/studies/${uid64}/metadata`, { headers: { authorization: bearer['clinician'] as string } });
    assert.equal(ok.status, 200, 'a 64-character UID is valid (PS3.5 9.1)');
    await ok.arrayBuffer();
    assert.equal(upstream.seen.length, before + 1);
    await assertHealthy();
  });

  test('CR LF in a query value or a header never becomes a header upstream or towards the client', async () => {
    for (const role of ['clinician', 'researcher']) {
      const before = upstream.seen.length;
      const r = await get('/dicom-web/studies?PatientName=a%0d%0aX-Injected:1&StudyDate=%0aX-Injected2:%201', role, 'X-Injected: direct\r\n');
      // The clinician's query is relayed (re-encoded); for the researcher a control character makes the
      // value malformed for its VR (PS3.5 6.2): 400, and nothing goes upstream.
      assert.equal(r.status, role === 'researcher' ? 400 : 200, role);
      if (role === 'researcher') assert.equal(upstream.seen.length, before, 'researcher: nothing upstream');
      assert.doesNotMatch(r.head, /x-injected/i, `${role}: no injected header towards the client`);
      for (const s of upstream.seen.slice(before)) {
        assert.ok(!Object.keys(s.headers).some((h) => h.startsWith('x-injected')), `${role}: no injected header upstream`);
        assert.doesNotMatch(s.url, /[\r\n]/, `${role}: the upstream target holds no raw CR/LF`);
      }
    }
    // Raw CR, LF or NUL in the request line or a header value is a parse error (RFC 9112 2.2, 5): 400.
    for (const request of [
      `GET /dicom-web/studies?PatientName=a\rX-Injected:1 HTTP/1.1\r\nHost: x\r\n\r\n`,
      `GET /dicom-web/studies HTTP/1.1\r\nHost: x\r\nAccept: application/dicom+json\rX-Injected: 1\r\n\r\n`,
      `GET /dicom-web/studies HTTP/1.1\r\nHost: x\r\nAccept: a\x00b\r\n\r\n`,
    ]) {
      const before = upstream.seen.length;
      const r = await raw(port, [request]);
      assert.equal(r.status, 400, JSON.stringify(request));
      assert.equal(upstream.seen.length, before);
    }
    await assertHealthy();
  });

  test('slowloris: trickled headers get 408 soon after headersTimeout, a trickled body is cut after requestTimeout', async () => {
    const slowHead = (i: number) => [`GET /dicom-web/studies HTTP/1.1\r\nHost: x\r\n`, ...Array.from({ length: 60 }, (_, j) => `X-Slow-${i}-${j}: 1\r\n`)];
    // Twenty at once, each adding a header line every 250 ms: none may outlive the timeout by much.
    const heads = await Promise.all(Array.from({ length: 20 }, (_, i) => raw(port, slowHead(i), { gapMs: 250, waitMs: 10_000 })));
    for (const r of heads) {
      assert.ok(r.closed, 'the server closed the connection');
      assert.equal(r.status, 408);
      assert.ok(r.ms < HEADERS_TIMEOUT_MS + 1_500, `closed after ${r.ms} ms`);
    }
    await assertHealthy();

    const stow = (role: string) => [
      `POST /dicom-web/studies HTTP/1.1\r\nHost: x\r\nAuthorization: ${bearer[role]}\r\n` +
        `Content-Type: multipart/related; type="application/dicom"; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n`,
      ...Array.from({ length: 100 }, () => 'x'),
    ];
    // One body byte every 200 ms: the uploader's STOW (de-identified, read here) and the clinician's (relayed).
    for (const role of ['uploader', 'clinician']) {
      const before = upstream.seen.length;
      const r = await raw(port, stow(role), { gapMs: 200, waitMs: 10_000 });
      assert.ok(r.closed, `${role}: the server closed the connection`);
      assert.equal(r.status, 408, role);
      assert.ok(r.ms >= REQUEST_TIMEOUT_MS - 100 && r.ms < REQUEST_TIMEOUT_MS + 1_500, `${role}: closed after ${r.ms} ms`);
      if (role === 'uploader') assert.equal(upstream.seen.length, before, 'a partial upload is never stored');
    }
    await assertHealthy();
    // Ordinary requests still go through.
    const res = await fetch(`${gateway.base}/studies`, { headers: { authorization: bearer['clinician'] as string } });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });

  test('a STOW declaring Content-Length 10 GiB is refused with 413 at once, without reading the body', async () => {
    const before = upstream.seen.length;
    const r = await raw(
      port,
      [
        `POST /dicom-web/studies HTTP/1.1\r\nHost: x\r\nAuthorization: ${bearer['uploader']}\r\n` +
          `Content-Type: multipart/related; type="application/dicom"; boundary=b\r\nContent-Length: 10737418240\r\n\r\n--b\r\n`,
      ],
      { waitMs: 5_000 },
    );
    assert.equal(r.status, 413);
    assert.match(r.body, /"code":"STOW_TOO_LARGE"/);
    assert.ok(r.firstByteMs >= 0 && r.firstByteMs < 1_500, `answered after ${r.firstByteMs} ms`);
    // The connection closes too, well before requestTimeout: kept alive, Node would drain the 10 GiB.
    assert.ok(r.closed && r.ms < 1_500, `closed after ${r.ms} ms`);
    assert.match(r.head, /^connection: close$/im);
    assert.equal(upstream.seen.length, before, 'nothing was forwarded');
    await assertHealthy();
  });

  test('malformed request lines and smuggling attempts get 400 and the process stays healthy', async () => {
    const requests = [
      'GARBAGE\r\n\r\n',
      'GET\r\n\r\n',
      'GET /dicom-web/studies HTTP/9.9\r\nHost: x\r\n\r\n',
      'GET /dicom-web/studies HTTP/1.1 extra\r\nHost: x\r\n\r\n',
      'GET /dicom web/studies HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /dicom-web/studies HTTP/1.1\r\nHost x\r\n\r\n',
      'GET /dicom-web/studies HTTP/1.1\r\nHost: x\r\n folded: header\r\n\r\n',
      // RFC 9112 6.3: Content-Length with Transfer-Encoding, or two different lengths, is refused.
      'POST /dicom-web/studies HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'POST /dicom-web/studies HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd',
      'POST /dicom-web/studies HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked, identity\r\n\r\n0\r\n\r\n',
      Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03]), // a TLS ClientHello
    ];
    const before = upstream.seen.length;
    for (const request of requests) {
      const r = await raw(port, [request]);
      assert.equal(r.status, 400, JSON.stringify(request.toString()));
      assert.ok(r.closed, 'the connection is closed after the 400');
    }
    assert.equal(upstream.seen.length, before);
    await assertHealthy();
  });
});

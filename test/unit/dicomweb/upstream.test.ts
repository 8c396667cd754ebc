// The PACS client (src/dicomweb/upstream.ts) against scripted loopback servers that do at will what a
// PACS does by chance: close the connection while the gateway holds a body unread, reset a kept-alive
// connection, stall before or within a body. The first case is nodejs/undici#5360's reproduction: with
// undici 7 as the client it killed the process (`assert(!this.paused)` from the socket's 'end' handler).
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { UpstreamTimeoutError, UpstreamUnreachableError } from '../../../src/dicomweb/errors.ts';
import { createUpstream, type Upstream } from '../../../src/dicomweb/upstream.ts';

const servers: Server[] = [];
const upstreams: Upstream[] = [];
after(async () => {
  await Promise.all(upstreams.map((u) => u.close()));
  for (const s of servers) s.close();
});

/** A raw TCP server: `answer` gets each connection and the bytes of its first request. */
async function rawServer(answer: (socket: Socket, request: string) => void): Promise<string> {
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.once('data', (data) => answer(socket, data.toString('latin1')));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/dicom-web`;
}

function client(url: string, timeouts: Partial<{ headersTimeoutMs: number; bodyTimeoutMs: number }> = {}): Upstream {
  const upstream = createUpstream({ url, connectTimeoutMs: 1_000, headersTimeoutMs: 2_000, bodyTimeoutMs: 2_000, ...timeouts });
  upstreams.push(upstream);
  return upstream;
}

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const BODY = Buffer.alloc(4 << 20, 0x61);
for (let i = 0; i < BODY.length; i += 997) BODY[i] = i & 0xff;

describe('the PACS closes the connection while the body is held unread', () => {
  for (const size of [64 << 10, 256 << 10, BODY.length]) {
    test(`a body of ${size >> 10} KiB with Content-Length, then FIN, read only later: whole, and the process lives`, async () => {
      const body = BODY.subarray(0, size);
      const url = await rawServer((socket) => {
        socket.write(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${size}\r\nConnection: close\r\n\r\n`);
        socket.end(body);
      });
      const res = await client(url).send({ method: 'GET', pathAndQuery: '/studies/1.2.3', headers: {} });
      await sleep(300); // the body is not read; the server has sent everything and closed
      assert.equal(res.statusCode, 200);
      assert.ok((await readAll(res.body)).equals(body));
    });
  }

  test('a body delimited by the end of the connection (as Orthanc streams a study), read slowly: whole', async () => {
    const url = await rawServer((socket) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Type: multipart/related; boundary=x\r\nConnection: close\r\n\r\n');
      socket.end(BODY);
    });
    const res = await client(url).send({ method: 'GET', pathAndQuery: '/studies/1.2.3', headers: {} });
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const chunk of res.body) {
      chunks.push(chunk as Buffer);
      if (++n % 8 === 0) await sleep(5);
    }
    assert.ok(Buffer.concat(chunks).equals(BODY));
  });

  test('a Content-Length body cut short by the close is an error, never a short body that looks complete', async () => {
    const url = await rawServer((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\nConnection: close\r\n\r\n`);
      socket.end(BODY.subarray(0, BODY.length / 2));
    });
    const res = await client(url).send({ method: 'GET', pathAndQuery: '/x', headers: {} });
    await sleep(100);
    await assert.rejects(readAll(res.body));
  });
});

describe('timeouts and failures', () => {
  test('no response headers in time: UpstreamTimeoutError', async () => {
    const url = await rawServer(() => undefined);
    const t0 = Date.now();
    await assert.rejects(client(url, { headersTimeoutMs: 200 }).send({ method: 'GET', pathAndQuery: '/x', headers: {} }), UpstreamTimeoutError);
    assert.ok(Date.now() - t0 < 1_500);
  });

  test('a body that stalls while the gateway waits for it: destroyed with UpstreamTimeoutError', async () => {
    const url = await rawServer((socket) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nabc');
    });
    const res = await client(url, { bodyTimeoutMs: 200 }).send({ method: 'GET', pathAndQuery: '/x', headers: {} });
    const t0 = Date.now();
    await assert.rejects(readAll(res.body), UpstreamTimeoutError);
    assert.ok(Date.now() - t0 < 1_500);
  });

  test('a body the gateway holds back longer than the body timeout is not timed out (the PACS is not stalling)', async () => {
    const url = await rawServer((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\n\r\n`);
      socket.write(BODY);
    });
    const res = await client(url, { bodyTimeoutMs: 150 }).send({ method: 'GET', pathAndQuery: '/x', headers: {} });
    await sleep(600);
    assert.ok((await readAll(res.body)).equals(BODY));
  });

  test('nobody listening: UpstreamUnreachableError', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    server.close();
    await assert.rejects(client(`http://127.0.0.1:${port}/dicom-web`).send({ method: 'GET', pathAndQuery: '/x', headers: {} }), UpstreamUnreachableError);
  });

  test('an abort reason reaches the request, and a body already answered', async () => {
    const url = await rawServer((socket) => socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab`));
    const controller = new AbortController();
    const res = await client(url).send({ method: 'GET', pathAndQuery: '/x', headers: {}, signal: controller.signal });
    const reason = new Error('caller gone');
    controller.abort(reason);
    await assert.rejects(readAll(res.body), (error) => error === reason);
    const hanging = await rawServer(() => undefined);
    const second = new AbortController();
    const pending = client(hanging).send({ method: 'GET', pathAndQuery: '/x', headers: {}, signal: second.signal });
    second.abort(reason);
    await assert.rejects(pending, (error) => error === reason);
  });
});

describe('the request', () => {
  test('path below the root, the configured authorization unless one is given, a streamed POST body', async () => {
    const seen: { url?: string; auth?: string; body: string }[] = [];
    const server = createHttpServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += String(d)));
      req.on('end', () => {
        seen.push({ url: req.url, auth: req.headers.authorization, body });
        res.end('ok');
      });
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/dicom-web/`;
    const upstream = createUpstream({ url, authorization: 'Basic cGFjczpwYWNz', connectTimeoutMs: 1_000, headersTimeoutMs: 1_000, bodyTimeoutMs: 1_000 });
    upstreams.push(upstream);
    const a = await upstream.send({ method: 'GET', pathAndQuery: '/studies?limit=1', headers: {} });
    assert.equal((await readAll(a.body)).toString(), 'ok');
    const b = await upstream.send({ method: 'POST', pathAndQuery: '/studies', headers: { authorization: 'Bearer given' }, body: Readable.from([Buffer.from('one,'), Buffer.from('two')]) });
    await readAll(b.body);
    assert.deepEqual(seen, [
      { url: '/dicom-web/studies?limit=1', auth: 'Basic cGFjczpwYWNz', body: '' },
      { url: '/dicom-web/studies', auth: 'Bearer given', body: 'one,two' },
    ]);
  });

  test('a GET on a kept-alive connection the PACS closes as the request arrives is sent again on a fresh one', async () => {
    let connections = 0;
    const server = createServer((socket) => {
      connections++;
      let requests = 0;
      socket.on('error', () => undefined);
      socket.on('data', () => {
        // The first request on a connection is answered and the connection kept; a second one finds it
        // gone (as when a PACS's idle timeout and the next request cross on the wire).
        if (++requests === 1) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok');
        else socket.destroy();
      });
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/dicom-web`;
    const upstream = client(url);
    for (let i = 0; i < 3; i++) {
      const res = await upstream.send({ method: 'GET', pathAndQuery: '/x', headers: {} });
      assert.equal((await readAll(res.body)).toString(), 'ok');
    }
    assert.equal(connections, 3, 'each later GET met a closed connection and was sent once more');
    await assert.rejects(
      upstream.send({ method: 'POST', pathAndQuery: '/x', headers: {}, body: Readable.from([Buffer.from('x')]) }),
      UpstreamUnreachableError,
      'a POST is not sent twice',
    );
  });

  test('a connection whose answer was read after the PACS keep-alive ran out is not handed to a waiting request (Keep-Alive: timeout=1, as Orthanc)', async () => {
    // Small enough to sit whole in the socket buffers: sent at once, read by the gateway only later.
    const SMALL = BODY.subarray(0, 256 << 10);
    let connections = 0;
    let toClosed = 0;
    // The PACS's close and the next request cross on the wire: a request that comes more than a second
    // after an answer was sent finds the connection gone (its end not yet seen by the gateway).
    const server = createServer((socket) => {
      connections++;
      let sentAt = Number.POSITIVE_INFINITY;
      socket.on('error', () => undefined);
      socket.on('data', () => {
        if (Date.now() - sentAt > 1_000) {
          toClosed++;
          socket.destroy();
          return;
        }
        socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${SMALL.length}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=1\r\n\r\n`);
        socket.write(SMALL, () => (sentAt = Date.now()));
      });
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const upstream = client(`http://127.0.0.1:${(server.address() as AddressInfo).port}/dicom-web`);
    // One more request than the pool has connections (64): the last waits for a connection to come free,
    // which Node hands over at once, however long ago the PACS sent its answer.
    const answers = await Promise.all(
      Array.from({ length: 65 }, async () => {
        const res = await upstream.send({ method: 'GET', pathAndQuery: '/x', headers: {} });
        await sleep(1_100); // the caller reads slowly: past the PACS's keep-alive
        return readAll(res.body);
      }),
    );
    assert.ok(answers.every((a) => a.equals(SMALL)));
    assert.equal(toClosed, 0, 'no request went to a connection the PACS had closed');
    assert.equal(connections, 65);
  });
});

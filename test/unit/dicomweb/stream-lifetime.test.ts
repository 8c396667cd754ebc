import assert from 'node:assert/strict';
import { createServer, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { ClientGoneError } from '../../../src/dicomweb/errors.ts';
import { streamLifetime, withStreamLifetime } from '../../../src/dicomweb/stream-lifetime.ts';
import type { Upstream, UpstreamRequest } from '../../../src/dicomweb/upstream.ts';
import { closeServer } from '../../helpers/http.ts';

/** An upstream that records what it was asked and answers with a body that never ends. */
function recordingUpstream() {
  const asked: UpstreamRequest[] = [];
  const upstream: Upstream = {
    async send(req) {
      asked.push(req);
      req.signal?.throwIfAborted();
      return { statusCode: 200, headers: {}, body: new Readable({ read() {} }) };
    },
    close: async () => undefined,
  };
  return { upstream, asked };
}

describe('stream lifetime: one per response, shared by every upstream request made for it', () => {
  let server: Server;
  let port = 0;
  let handle: (res: ServerResponse) => void = () => undefined;

  before(async () => {
    server = createServer((_req, res) => handle(res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => closeServer(server));

  /** Sends a request and hands the server side's response to `onResponse`; `leave` closes the client. */
  function exchange(onResponse: (res: ServerResponse, leave: () => void) => void): Promise<void> {
    return new Promise((resolve) => {
      const client = request({ host: '127.0.0.1', port, path: '/' });
      client.on('error', () => resolve());
      client.on('close', () => resolve());
      handle = (res) => onResponse(res, () => client.destroy());
      client.end();
    });
  }

  test('the caller leaving aborts the signal with a ClientGoneError, and nothing more is sent upstream', async () => {
    const { upstream, asked } = recordingUpstream();
    let signal: AbortSignal | undefined;
    let later: unknown;
    await exchange((res, leave) => {
      const lifetime = streamLifetime(res);
      assert.equal(streamLifetime(res), lifetime, 'one lifetime per response');
      void lifetime.send(upstream, { method: 'GET', pathAndQuery: '/studies', headers: {} }).then(() => {
        signal = asked[0]?.signal;
        res.once('close', () => {
          lifetime.send(upstream, { method: 'GET', pathAndQuery: '/studies?offset=200', headers: {} }).catch((error: unknown) => (later = error));
        });
        leave();
      });
    });
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(signal?.aborted);
    assert.ok(signal?.reason instanceof ClientGoneError);
    assert.ok(later instanceof ClientGoneError, 'a request after the caller left is refused');
    assert.equal(asked.length, 1, 'and never reaches the upstream');
  });

  test('a failure while the caller waits aborts what is open upstream with the error, which stays the error', async () => {
    const { upstream, asked } = recordingUpstream();
    const failure = new Error('the PACS sent garbage');
    let thrown: unknown;
    await exchange((res) => {
      withStreamLifetime(res, async (lifetime) => {
        await lifetime.send(upstream, { method: 'GET', pathAndQuery: '/studies', headers: {} });
        throw failure;
      })
        .catch((error: unknown) => {
          thrown = error;
          res.destroy(); // as the error handler does once a body has started: not the caller leaving
        })
        .finally(() => undefined);
    });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(thrown, failure);
    assert.equal(asked[0]?.signal?.reason, failure, 'the upstream request is destroyed with the cause');
  });

  test('an error after the caller left becomes a ClientGoneError with the original as its cause', async () => {
    let thrown: unknown;
    const original = new Error('premature close');
    await exchange((res, leave) => {
      withStreamLifetime(res, async () => {
        leave();
        await new Promise((r) => res.once('close', r));
        throw original;
      }).catch((error: unknown) => (thrown = error));
    });
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(thrown instanceof ClientGoneError);
    assert.equal((thrown as ClientGoneError).cause, original);
  });

  test('a response that completes leaves the signal alone', async () => {
    let signal: AbortSignal | undefined;
    await exchange((res) => {
      signal = streamLifetime(res).signal;
      res.end('done');
    });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(signal?.aborted, false);
  });
});

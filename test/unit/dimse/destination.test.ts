// The forwarding destination's client (src/dimse/destination.ts) against real HTTP servers on loopback:
// a token endpoint that answers as each test asks and a DICOMweb endpoint that records what it was sent.
// The clock is passed in, so the token cache's expiry is checked without waiting.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../../../src/demo/orthanc-process.ts';
import { clientCredentials, createDestination } from '../../../src/dimse/destination.ts';
import { DestinationAuthError } from '../../../src/dimse/errors.ts';

interface Seen {
  readonly authorization: string | undefined;
  readonly body: string;
}

interface Answer {
  readonly status: number;
  readonly body: unknown;
}

/** An HTTP server on loopback that records each request and answers with `answer(n)` (n from 0). */
async function recordingServer(answer: (n: number, req: IncomingMessage) => Answer): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const n = seen.length;
    seen.push({ authorization: req.headers.authorization, body: Buffer.concat(chunks).toString('utf8') });
    const { status, body } = answer(n, req);
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A log that keeps every entry as JSON text, to check that nothing secret was written. */
function memoryLog(): { log: { info(e: object, m: string): void; warn(e: object, m: string): void; error(e: object, m: string): void }; text(): string } {
  const lines: string[] = [];
  const write = (entry: object, message: string) => lines.push(JSON.stringify({ ...entry, message }));
  return { log: { info: write, warn: write, error: write }, text: () => lines.join('\n') };
}

const TIMEOUTS = { connectTimeoutMs: 2_000, headersTimeoutMs: 2_000, bodyTimeoutMs: 2_000 };
const SECRET = 'a secret:with+form%chars/0123';

describe('the destination client: OAuth 2.0 client credentials (RFC 6749 4.4) and its own Authorization on every request', () => {
  let tokens: Awaited<ReturnType<typeof recordingServer>>;
  let answers: (n: number) => Answer;

  before(async () => {
    tokens = await recordingServer((n) => answers(n));
  });
  after(async () => {
    await tokens.close();
  });

  test('the client authenticates with HTTP Basic, each part form-urlencoded (RFC 6749 2.3.1); the form asks for client_credentials with the scope, the audience and the RFC 8707 resource', async () => {
    answers = (n) => ({ status: 200, body: { access_token: `token-${n}`, token_type: 'Bearer', expires_in: 300 } });
    const mark = tokens.seen.length;
    const { log } = memoryLog();
    const auth = clientCredentials({ tokenUrl: `${tokens.url}/token`, clientId: 'dimse gw', clientSecret: SECRET, scope: 'dicomweb store', audience: 'https://platform.test/dicom-web', ...TIMEOUTS, log });
    try {
      assert.equal(await auth.authorization(), `Bearer token-${mark}`);
      const [seen] = tokens.seen.slice(mark);
      assert.equal(seen?.authorization, `Basic ${Buffer.from('dimse+gw:a+secret%3Awith%2Bform%25chars%2F0123').toString('base64')}`);
      const form = new URLSearchParams(seen?.body);
      assert.deepEqual(Object.fromEntries(form), { grant_type: 'client_credentials', scope: 'dicomweb store', audience: 'https://platform.test/dicom-web', resource: 'https://platform.test/dicom-web' });
      assert.ok(!seen?.body.includes('secret'), 'the secret is not in the form body');
    } finally {
      await auth.close();
    }
  });

  test('one token is fetched for concurrent callers, kept until shortly before expires_in, then renewed; a 401 drops it', async () => {
    answers = (n) => ({ status: 200, body: { access_token: `token-${n}`, token_type: 'bearer', expires_in: 100 } });
    let clock = 1_000_000;
    const mark = tokens.seen.length;
    const { log } = memoryLog();
    const auth = clientCredentials({ tokenUrl: `${tokens.url}/token`, clientId: 'gw', clientSecret: SECRET, ...TIMEOUTS, log, now: () => clock });
    try {
      const first = await Promise.all([auth.authorization(), auth.authorization(), auth.authorization()]);
      assert.deepEqual(new Set(first).size, 1);
      assert.equal(tokens.seen.length - mark, 1, 'one fetch for three callers');
      clock += 69_000; // renewed 30 s before the 100 s run out
      assert.equal(await auth.authorization(), first[0]);
      assert.equal(tokens.seen.length - mark, 1);
      clock += 2_000;
      const second = await auth.authorization();
      assert.notEqual(second, first[0]);
      assert.equal(tokens.seen.length - mark, 2, 'renewed once past 70 s');
      // The destination refused it (401): dropped, and the next caller gets a new one; an older token's 401 changes nothing.
      assert.equal(auth.rejected(first[0] as string), true);
      assert.equal(await auth.authorization(), second);
      auth.rejected(second as string);
      const third = await auth.authorization();
      assert.notEqual(third, second);
      assert.equal(tokens.seen.length - mark, 3);
    } finally {
      await auth.close();
    }
  });

  test('a short or missing expires_in: renewed at half its life (a missing one counts as 60 s)', async () => {
    let clock = 0;
    const { log } = memoryLog();
    for (const [expiresIn, keptMs] of [[10, 5_000], [undefined, 30_000], ['40', 20_000]] as const) {
      answers = (n) => ({ status: 200, body: { access_token: `t${n}`, token_type: 'Bearer', ...(expiresIn === undefined ? {} : { expires_in: expiresIn }) } });
      const auth = clientCredentials({ tokenUrl: `${tokens.url}/token`, clientId: 'gw', clientSecret: SECRET, ...TIMEOUTS, log, now: () => clock });
      try {
        const token = await auth.authorization();
        clock += keptMs - 1;
        assert.equal(await auth.authorization(), token, `${expiresIn}: kept`);
        clock += 2;
        assert.notEqual(await auth.authorization(), token, `${expiresIn}: renewed`);
      } finally {
        await auth.close();
      }
    }
  });

  test('a refusal (invalid_client), a server failure, an answer that is not a bearer token and an unreachable endpoint are DestinationAuthErrors; nothing secret is logged', async () => {
    const { log, text } = memoryLog();
    const cases: [Answer, string, object][] = [
      [{ status: 401, body: { error: 'invalid_client', error_description: `bad secret ${SECRET}` } }, 'DIMSE_DESTINATION_TOKEN_REFUSED', { status: 401, oauthError: 'invalid_client' }],
      [{ status: 400, body: { error: 'made_up_error' } }, 'DIMSE_DESTINATION_TOKEN_REFUSED', { status: 400 }],
      [{ status: 503, body: 'down' }, 'DIMSE_DESTINATION_TOKEN_UNAVAILABLE', { status: 503 }],
      [{ status: 200, body: { access_token: 'abc', token_type: 'mac' } }, 'DIMSE_DESTINATION_TOKEN_UNAVAILABLE', { status: 200, network: 'MALFORMED_TOKEN_ANSWER' }],
      [{ status: 200, body: { access_token: 'not a\r\nheader', token_type: 'Bearer' } }, 'DIMSE_DESTINATION_TOKEN_UNAVAILABLE', { status: 200, network: 'MALFORMED_TOKEN_ANSWER' }],
    ];
    for (const [answer, code, detail] of cases) {
      answers = () => answer;
      const auth = clientCredentials({ tokenUrl: `${tokens.url}/token`, clientId: 'gw', clientSecret: SECRET, ...TIMEOUTS, log });
      try {
        await assert.rejects(auth.authorization(), (error: unknown) => {
          assert.ok(error instanceof DestinationAuthError);
          assert.equal(error.code, code);
          assert.deepEqual(error.detail, detail);
          assert.ok(!error.message.includes(SECRET));
          return true;
        });
      } finally {
        await auth.close();
      }
    }
    const closed = await freePort();
    const auth = clientCredentials({ tokenUrl: `http://127.0.0.1:${closed}/token`, clientId: 'gw', clientSecret: SECRET, ...TIMEOUTS, log });
    try {
      await assert.rejects(auth.authorization(), (error: unknown) => error instanceof DestinationAuthError && error.code === 'DIMSE_DESTINATION_TOKEN_UNAVAILABLE' && error.detail.network === 'ECONNREFUSED');
    } finally {
      await auth.close();
    }
    assert.ok(!text().includes(SECRET) && !text().includes('a secret'), 'the secret reached the log');
    assert.match(text(), /DIMSE_DESTINATION_TOKEN_REFUSED/);
  });

  test('the destination client sends its own token, never the one a request carried, and drops it when answered 401', async () => {
    answers = (n) => ({ status: 200, body: { access_token: `dest-token-${n}`, token_type: 'Bearer', expires_in: 3600 } });
    const platform = await recordingServer((n) => ({ status: n === 1 ? 401 : 200, body: {} }));
    const { log, text } = memoryLog();
    const destination = createDestination(
      { url: `${platform.url}/dicom-web`, auth: { type: 'oauth2', tokenUrl: `${tokens.url}/token`, clientId: 'gw' } },
      { destinationAuthorization: undefined, destinationClientSecret: SECRET },
      { ...TIMEOUTS, log },
    );
    try {
      assert.equal(destination.renewsAuthorization, true);
      const send = () =>
        destination.upstream.send({ method: 'POST', pathAndQuery: '/studies', headers: { Authorization: 'Bearer the-callers-token', 'content-type': 'application/dicom' }, body: Readable.from([Buffer.from('x')]) });
      const statuses = [];
      for (let i = 0; i < 3; i++) {
        const res = await send();
        await res.body.resume();
        statuses.push(res.statusCode);
      }
      assert.deepEqual(statuses, [200, 401, 200]);
      const used = platform.seen.map((s) => s.authorization);
      assert.ok(used.every((a) => a?.startsWith('Bearer dest-token-')), JSON.stringify(used));
      assert.equal(used[0], used[1]);
      assert.notEqual(used[1], used[2], 'a new token after the 401');
      assert.ok(!text().includes('dest-token-'), 'a token reached the log');
    } finally {
      await destination.upstream.close();
      await platform.close();
    }
  });

  test('a static bearer destination sends its token; one without a resolved secret is not built (fail closed)', async () => {
    const platform = await recordingServer(() => ({ status: 200, body: {} }));
    const { log } = memoryLog();
    const destination = createDestination({ url: platform.url, auth: { type: 'bearer' } }, { destinationAuthorization: 'Bearer static-token', destinationClientSecret: undefined }, { ...TIMEOUTS, log });
    try {
      assert.equal(destination.renewsAuthorization, false);
      const res = await destination.upstream.send({ method: 'GET', pathAndQuery: '/studies', headers: { authorization: 'Bearer other' } });
      await res.body.resume();
      assert.equal(platform.seen[0]?.authorization, 'Bearer static-token');
    } finally {
      await destination.upstream.close();
      await platform.close();
    }
    assert.throws(() => createDestination({ url: platform.url, auth: { type: 'bearer' } }, { destinationAuthorization: undefined, destinationClientSecret: undefined }, { ...TIMEOUTS, log }));
    assert.throws(() =>
      createDestination({ url: platform.url, auth: { type: 'oauth2', tokenUrl: `${tokens.url}/token`, clientId: 'gw' } }, { destinationAuthorization: undefined, destinationClientSecret: undefined }, { ...TIMEOUTS, log }),
    );
  });
});

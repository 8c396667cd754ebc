// The DIMSE ingress forwarding to a separate destination (`dimse.forward.destination`) with its own
// credentials, and the operator's retry of quarantined studies. Every part is real and on loopback:
// storescu in front; behind, a second gateway (the "platform") in front of a second Orthanc, whose
// uploader role verifies real JWTs, issued by a real OAuth 2.0 server (oidc-provider, client credentials,
// RFC 8707 resource indicators) and checked through its JWKS URL; the first gateway's own upstream is a
// third Orthanc, which must receive nothing.
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { storescu } from '../helpers/dcmtk.ts';
import { dimseBlock, dumpOrthanc, forwarded, orthancCount, orthancStudies, spoolContents, writeSyntheticStudy } from '../helpers/dimse.ts';
import { makeKeys, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startOAuth2Server, type OAuth2Server } from '../helpers/oauth2-server.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';

const SUCCESS = 0x0000;
/** The platform's resource indicator (RFC 8707): the tokens' `aud`, one of the audiences it accepts. */
const PLATFORM = 'https://platform.test/dicom-web';
const OPERATOR_TOKEN = 'operator-token-0123456789abcdef';

interface AuditLine {
  eventId: { code: string };
  userId: string;
  roleId: string;
  route: string;
  eventOutcomeIndicator: number;
  httpStatus: number;
  participantObjectId?: string;
  numberOfInstances?: number;
  requestId?: string;
}

function auditTrail(gateway: TestGateway): AuditLine[] {
  return readFileSync(join(gateway.keys.dir, 'data', 'audit.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as AuditLine);
}

/** Waits until the gateway's ingress holds `count` quarantined studies and nothing queued, in flight or pending. */
async function quarantined(gateway: TestGateway, count: number, headers: Record<string, string> = {}): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const res = await fetch(`${gateway.url}/dimse/status`, { headers });
    const s = (await res.json()) as { quarantined: number; inFlight: number; queued: number; instancesPending: number };
    if (s.quarantined === count && s.inFlight === 0 && s.queued === 0 && s.instancesPending === 0) return;
    if (Date.now() > deadline) throw new Error(`not quarantined: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A pass-through to the platform that answers 401 (RFC 6750 3.1 invalid_token) to the first STOW-RS
 * request, as a platform does for a token it revoked; it records each request's Authorization.
 */
async function startRevokingProxy(target: string): Promise<{ url: string; authorizations: string[]; close(): Promise<void> }> {
  const base = new URL(target);
  const authorizations: string[] = [];
  let refused = false;
  const server: Server = createServer((req, res) => {
    authorizations.push(String(req.headers.authorization ?? ''));
    if (!refused && req.method === 'POST') {
      refused = true;
      req.resume();
      req.on('end', () => {
        res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"', 'content-type': 'application/json' });
        res.end('{"error":{"code":"AUTH_TOKEN_INVALID"}}');
      });
      return;
    }
    const upstream = request({ host: base.hostname, port: base.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${base.pathname}`;
  return {
    url,
    authorizations,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

describe('DIMSE forwarding to a separate DICOMweb destination with its own credentials', () => {
  let upstream: OrthancProcess;
  let platformPacs: OrthancProcess;
  let oauth: OAuth2Server;
  let platform: TestGateway;
  const work = mkdtempSync(join(tmpdir(), 'dimse-destination-'));
  const secretFile = join(work, 'client.secret');
  const wrongSecretFile = join(work, 'wrong.secret');
  const operatorTokenFile = join(work, 'operator.token');
  let nextStudy = 7001;
  /** A new synthetic study of `count` instances (patient `CANARY^DEST<n>`), written under `work`. */
  const newStudy = (count: number): { uid: string; patient: string; files: string[] } => {
    const n = nextStudy++;
    const uid = `1.2.826.0.1.3680043.10.${n}`;
    const patient = `CANARY^DEST${n}`;
    const dir = mkdtempSync(join(work, `study-${n}-`));
    return { uid, patient, files: writeSyntheticStudy(dir, uid, count, { patient }) };
  };
  const oauth2 = (clientSecretFile: string) => ({ type: 'oauth2', tokenUrl: oauth.tokenUrl, clientId: oauth.clientId, clientSecret: { file: clientSecretFile }, scope: 'dicomweb', audience: PLATFORM });

  before(async () => {
    [{ orthanc: upstream }, { orthanc: platformPacs }] = await Promise.all([startTestOrthanc(), startTestOrthanc()]);
    // Another client of the same IdP, whose tokens carry a role without STOW (the bearer test's refusal).
    oauth = await startOAuth2Server({ resource: PLATFORM, claims: { roles: ['uploader'] }, otherClients: { 'viewer-app': { roles: ['researcher'], project: 'all' } } });
    // The platform: its roles come from the OAuth server's tokens, checked through its JWKS URL.
    platform = await startTestGateway(platformPacs.dicomWebUrl, { auth: { issuer: oauth.issuer, audience: PLATFORM, jwksUrl: oauth.jwksUrl, publicKeyFiles: [] } });
    writeFileSync(secretFile, oauth.clientSecret);
    writeFileSync(wrongSecretFile, 'not the client secret 0123456789');
    writeFileSync(operatorTokenFile, OPERATOR_TOKEN);
  });
  after(async () => {
    await platform?.close();
    await oauth?.close();
    await Promise.all([upstream?.stop(), platformPacs?.stop()]);
    rmSync(work, { recursive: true, force: true });
  });

  /** Nothing a test sends reaches the first gateway's own upstream PACS. */
  const assertUpstreamUntouched = async () => assert.equal(await orthancCount(upstream, 'instances'), 0, 'the upstream PACS received an instance');

  test('OAuth 2.0 client credentials: three studies by storescu reach the platform de-identified (twice over), none reaches the upstream PACS, one token serves them all, and no secret or token is logged', async () => {
    const gateway = await startTestGateway(upstream.dicomWebUrl, {
      audit: { file: 'audit.jsonl' },
      dimse: dimseBlock({ forward: { backoffMs: 200, maxBackoffMs: 1_000, destination: { url: platform.base, auth: oauth2(secretFile) } } }),
    });
    try {
      const tokensBefore = oauth.tokenRequests();
      const studiesBefore = await orthancCount(platformPacs, 'studies');
      const sent = [newStudy(3), newStudy(2), newStudy(4)];
      for (const study of sent) {
        const run = await storescu(gateway.dimsePort as number, study.files);
        assert.deepEqual(run.outcomes.map((o) => o.status), study.files.map(() => SUCCESS));
        await forwarded(gateway.url);
      }
      assert.equal(oauth.tokenRequests() - tokensBefore, 1, 'the token is cached across studies');
      assert.equal(await orthancCount(platformPacs, 'studies'), studiesBefore + sent.length);
      const landed = await orthancStudies(platformPacs);
      for (const study of sent) assert.ok(landed.some((s) => s.instances === study.files.length), `a study of ${study.files.length} instances arrived`);
      assert.ok(landed.every((s) => !String(s.patient['PatientName']).includes('CANARY')));
      await assertUpstreamUntouched();

      const out = join(work, 'platform-oauth');
      await dumpOrthanc(platformPacs, out);
      const bytes = Buffer.concat(readdirSync(out).map((f) => readFileSync(join(out, f))));
      for (const study of sent) {
        for (const value of [study.patient, study.uid, `PID-${study.uid.slice(-6)}`]) assert.ok(!bytes.includes(Buffer.from(value)), `${value} reached the platform`);
      }
      assert.deepEqual(spoolContents(join(gateway.keys.dir, 'data')), { originals: [], partial: [], quarantined: [] });

      const transfers = auditTrail(gateway).filter((e) => e.eventId.code === '110104');
      assert.equal(transfers.length, sent.length);
      assert.ok(transfers.every((e) => e.route === 'DIMSE C-STORE → destination STOW-RS POST /studies' && e.eventOutcomeIndicator === 0 && e.userId === 'MODALITY'));
      for (const logs of [gateway.logs(), platform.logs()]) {
        assert.ok(!logs.includes(oauth.clientSecret), 'the client secret was logged');
        for (const token of oauth.issued()) assert.ok(!logs.includes(token) && !logs.includes(token.split('.')[2] as string), 'an access token was logged');
      }
      assert.ok(gateway.logs().includes('DIMSE destination token obtained'));
    } finally {
      await gateway.close();
    }
  });

  test('a destination that answers 401 to a token (revoked) gets the instance again at once with a new token: nothing is quarantined', async () => {
    const proxy = await startRevokingProxy(platform.base);
    const gateway = await startTestGateway(upstream.dicomWebUrl, {
      dimse: dimseBlock({ forward: { backoffMs: 60_000, maxBackoffMs: 60_000, concurrency: 1, destination: { url: proxy.url, auth: oauth2(secretFile) } } }),
    });
    try {
      const tokensBefore = oauth.tokenRequests();
      const instancesBefore = await orthancCount(platformPacs, 'instances');
      const study = newStudy(2);
      const run = await storescu(gateway.dimsePort as number, study.files);
      assert.deepEqual(run.outcomes.map((o) => o.status), [SUCCESS, SUCCESS]);
      // The instance is sent again at once, not after the study's 60 s backoff.
      const settled = await forwarded(gateway.url, 30_000);
      assert.equal(settled.quarantined, 0);
      assert.equal(oauth.tokenRequests() - tokensBefore, 2, 'one token, refused; then one new token');
      assert.equal(await orthancCount(platformPacs, 'instances'), instancesBefore + 2);
      const posts = proxy.authorizations;
      assert.equal(posts.length, 3, 'two instances, one sent twice');
      assert.ok(posts.every((a) => /^Bearer [A-Za-z0-9._-]+$/.test(a)));
      assert.notEqual(posts[0], posts[1], 'the refused token was not used again');
      assert.equal(posts[1], posts[2]);
      await assertUpstreamUntouched();
    } finally {
      await gateway.close();
      await proxy.close();
    }
  });

  test('a static bearer destination: a token the platform accepts delivers; one it refuses (403, a role without STOW) is retried, then quarantined naming the refusal', async () => {
    const goodFile = join(work, 'bearer.token');
    // Static tokens the platform's IdP issued, as an operator would paste them into a secret file.
    writeFileSync(goodFile, await oauth.tokenFor(oauth.clientId));
    const refusedFile = join(work, 'researcher.token');
    writeFileSync(refusedFile, await oauth.tokenFor('viewer-app'));
    const good = await startTestGateway(upstream.dicomWebUrl, {
      dimse: dimseBlock({ forward: { backoffMs: 100, maxBackoffMs: 200, destination: { url: platform.base, auth: { type: 'bearer', token: { file: goodFile } } } } }),
    });
    try {
      const before = await orthancCount(platformPacs, 'instances');
      const study = newStudy(3);
      const run = await storescu(good.dimsePort as number, study.files);
      assert.deepEqual(run.outcomes.map((o) => o.status), [SUCCESS, SUCCESS, SUCCESS]);
      const settled = await forwarded(good.url);
      assert.equal(settled.quarantined, 0);
      assert.equal(await orthancCount(platformPacs, 'instances'), before + 3);
    } finally {
      await good.close();
    }
    const refused = await startTestGateway(upstream.dicomWebUrl, {
      dimse: dimseBlock({ forward: { maxAttempts: 2, backoffMs: 100, maxBackoffMs: 200, destination: { url: platform.base, auth: { type: 'bearer', token: { file: refusedFile } } } } }),
    });
    try {
      const started = Date.now();
      const study = newStudy(1);
      await storescu(refused.dimsePort as number, study.files);
      await quarantined(refused, 1);
      assert.ok(Date.now() - started >= 100, 'retried after the backoff, not in a loop');
      const dir = join(refused.keys.dir, 'data', 'spool', 'quarantine');
      const reason = JSON.parse(readFileSync(join(dir, readdirSync(dir)[0] as string, 'reason.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual({ code: reason['code'], cause: reason['cause'], attempts: reason['attempts'] }, { code: 'DIMSE_FORWARD_FAILED', cause: 'DIMSE_DESTINATION_FORBIDDEN', attempts: 2 });
      assert.ok(!refused.logs().includes(readFileSync(refusedFile, 'utf8')), 'the bearer token was logged');
    } finally {
      await refused.close();
    }
    await assertUpstreamUntouched();
  });

  test('a wrong client secret quarantines the study naming the token refusal, logs no secret; fixed and restarted, an operator lists the quarantine and retries it: the study arrives once, audited, and quarantine and spool are empty', async () => {
    const keys = await makeKeys();
    const overrides = (clientSecretFile: string) => ({
      audit: { file: 'audit.jsonl' },
      metrics: { auth: { type: 'bearer', token: { file: operatorTokenFile } } },
      dimse: dimseBlock({ forward: { maxAttempts: 2, backoffMs: 100, maxBackoffMs: 200, destination: { url: platform.base, auth: oauth2(clientSecretFile) } } }),
    });
    const operator = { authorization: `Bearer ${OPERATOR_TOKEN}` };
    const study = newStudy(3);
    try {
      // 1. The wrong secret: the token endpoint refuses it (invalid_client), the study waits in quarantine.
      const wrong = await startTestGateway(upstream.dicomWebUrl, overrides(wrongSecretFile), keys);
      let id: string;
      try {
        const run = await storescu(wrong.dimsePort as number, study.files);
        assert.deepEqual(run.outcomes.map((o) => o.status), [SUCCESS, SUCCESS, SUCCESS]);
        await quarantined(wrong, 1, operator);
        const listed = await fetch(`${wrong.url}/dimse/quarantine`, { headers: operator });
        assert.equal(listed.status, 200);
        const { quarantine } = (await listed.json()) as { quarantine: { id: string; instances: number; quarantinedAt: string; reason: Record<string, unknown> }[] };
        assert.equal(quarantine.length, 1);
        const [held] = quarantine as [(typeof quarantine)[0]];
        id = held.id;
        assert.equal(held.instances, 3);
        assert.match(held.quarantinedAt, /^\d{4}-\d\d-\d\dT/);
        assert.deepEqual(held.reason, {
          code: 'DIMSE_FORWARD_FAILED',
          cause: 'DIMSE_DESTINATION_TOKEN_REFUSED',
          causeDetail: { status: 401, oauthError: 'invalid_client' },
          attempts: 2,
        });
        const logs = wrong.logs();
        assert.ok(!logs.includes(readFileSync(wrongSecretFile, 'utf8')) && !logs.includes(oauth.clientSecret), 'a client secret was logged');
        assert.ok(!logs.includes(study.uid) && !logs.includes(study.patient), 'the log names an original');
        // The listing is guarded as /dimse/status is.
        assert.equal((await fetch(`${wrong.url}/dimse/quarantine`)).status, 401);
      } finally {
        await wrong.close();
      }
      assert.equal(await orthancStudies(platformPacs).then((s) => s.filter((x) => x.instances === 3 && x.tags['StudyInstanceUID'] === study.uid).length), 0);

      // 2. The operator fixes the secret and restarts; the quarantine is still there, and is retried.
      const fixed = await startTestGateway(upstream.dicomWebUrl, overrides(secretFile), keys);
      try {
        assert.equal((await fetch(`${fixed.url}/dimse/status`)).status, 401, 'the status needs the operator token');
        await quarantined(fixed, 1, operator);
        const retry = (headers: Record<string, string>) => fetch(`${fixed.url}/dimse/quarantine/${id}/retry`, { method: 'POST', headers });
        assert.equal((await retry({})).status, 401);
        assert.equal((await retry({ authorization: 'Bearer wrong' })).status, 401);
        // A JWT of another role than steward: 403 (a steward's is taken, test/unit/http/dimse-status.test.ts).
        assert.equal((await retry({ authorization: `Bearer ${await fixed.token('researcher')}` })).status, 403);
        assert.equal((await fetch(`${fixed.url}/dimse/quarantine/not-an-id/retry`, { method: 'POST', headers: operator })).status, 404);
        const before = await orthancCount(platformPacs, 'instances');
        // Two retries at once: one moves the study back, the other finds it gone (404) or under way (409).
        const [first, second] = await Promise.all([retry(operator), retry(operator)]);
        const answers = [first, second].sort((a, b) => a.status - b.status);
        assert.equal(answers[0]?.status, 202);
        assert.ok([404, 409].includes(answers[1]?.status as number), `second retry answered ${answers[1]?.status}`);
        const accepted = (await answers[0]?.json()) as { id: string; instances: number; status: string };
        assert.deepEqual(accepted, { id, instances: 3, status: 'queued' });
        await quarantined(fixed, 0, operator);
        assert.equal(await orthancCount(platformPacs, 'instances'), before + 3, 'each original forwarded once');
        const after = (await (await fetch(`${fixed.url}/dimse/quarantine`, { headers: operator })).json()) as { quarantine: unknown[] };
        assert.deepEqual(after.quarantine, []);
        assert.deepEqual(spoolContents(join(keys.dir, 'data')), { originals: [], partial: [], quarantined: [] });
        // The audit trail: who asked, when, for which folder, the outcome; then the batch it forwarded.
        const trail = auditTrail(fixed);
        const retries = trail.filter((e) => e.eventId.code === 'DIMSE_QUARANTINE_RETRY');
        assert.ok(retries.some((e) => e.eventOutcomeIndicator === 0 && e.httpStatus === 202 && e.userId === 'metrics.auth bearer token' && e.participantObjectId === id && e.numberOfInstances === 3));
        const transfers = trail.filter((e) => e.eventId.code === '110104');
        assert.ok(transfers.some((e) => e.eventOutcomeIndicator === 8 && e.numberOfInstances === 0), 'the quarantined batch');
        assert.ok(transfers.some((e) => e.eventOutcomeIndicator === 0 && e.numberOfInstances === 3), 'the batch sent again');
        const forwardedLines = fixed.logs().split('\n').filter((l) => l.includes('DIMSE study forwarded'));
        assert.equal(forwardedLines.length, 1);
        assert.match(forwardedLines[0] as string, /"instances":3/);
      } finally {
        await fixed.close();
      }
      await assertUpstreamUntouched();
    } finally {
      rmSync(keys.dir, { recursive: true, force: true });
    }
  });
});

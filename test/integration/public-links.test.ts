// Issue 14, item 5: links (RetrieveURL, BulkDataURI) and the RFC 7239 `Forwarded` header the gateway
// sends the PACS start with one public base: `server.publicUrl` when set, else what a *trusted* proxy
// says (`Forwarded`, `X-Forwarded-Host`/`-Proto`), else the request's Host. The Python dicomweb-client
// sends `Host: 127.0.0.1` without the port; behind an ingress the scheme is https. Real Orthanc behind a
// recording proxy (which shows the `Forwarded` header the PACS got); clients on 127.0.0.1 and 127.0.0.2
// (the trusted proxy's address), both loopback.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadIntoOrthanc } from '../../src/demo/orthanc-process.ts';
import { samplesDir } from '../../src/demo/samples.ts';
import { makeKeys, startTestGateway, type TestGateway, type TestKeys } from '../helpers/gateway.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { startRecordingProxy, type RecordingProxy } from '../helpers/recording-proxy.ts';

const PUBLIC = 'https://pacs.example.org/dicom-web';
const MR_STUDY = '1.3.6.1.4.1.5962.1.2.4.20040826185059.5457';
const MR_SERIES = '1.3.6.1.4.1.5962.1.3.4.1.20040826185059.5457';

interface Answer {
  status: number;
  json: unknown;
}

/** GET with exactly these headers (Host included) from `localAddress`; fetch would always send Host with the port. */
function get(gateway: TestGateway, path: string, headers: Record<string, string>, localAddress = '127.0.0.1'): Promise<Answer> {
  const url = new URL(gateway.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path, localAddress, headers: { accept: 'application/dicom+json', ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: body ? (JSON.parse(body) as unknown) : undefined }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Every RetrieveURL (0008,1190) and BulkDataURI in a DICOM JSON answer, at any depth. */
function links(json: unknown): string[] {
  const out: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (key === 'BulkDataURI' && typeof value === 'string') out.push(value);
        else if (key === '00081190') out.push(...(((value as { Value?: string[] }).Value ?? []) as string[]));
        else walk(value);
      }
    }
  };
  walk(json);
  return out;
}

function assertLinks(json: unknown, base: string, what: string, atLeast = 1): void {
  const found = links(json);
  assert.ok(found.length >= atLeast, `${what}: ${found.length} links`);
  for (const link of found) assert.ok(link.startsWith(`${base}/studies/`), `${what}: ${link} starts with ${base}`);
}

describe('links point at the public base', () => {
  let orthanc: OrthancProcess;
  let proxy: RecordingProxy;
  let keys: TestKeys;
  let configured: TestGateway;
  let proxied: TestGateway;
  const bearer: Record<string, string> = {};

  before(async () => {
    ({ orthanc } = await startTestOrthanc());
    await loadIntoOrthanc(orthanc.httpUrl, [{ name: 'MR_small.dcm', bytes: readFileSync(join(samplesDir(), 'transfer-syntax/MR_small.dcm')) }]);
    proxy = await startRecordingProxy(orthanc.httpUrl);
    keys = await makeKeys();
    configured = await startTestGateway(proxy.dicomWebUrl, { server: { publicUrl: `${PUBLIC}/` } }, keys);
    proxied = await startTestGateway(proxy.dicomWebUrl, { server: { trustedProxies: ['127.0.0.2'] } }, keys);
    for (const role of ['clinician', 'researcher']) bearer[role] = `Bearer ${await configured.token(role)}`;
  });
  after(async () => {
    await configured?.close();
    await proxied?.close();
    await proxy?.close();
    await orthanc?.stop();
  });

  test('with server.publicUrl (https), a client sending Host 127.0.0.1 without the port gets links on the public base', async () => {
    const headers = (role: string) => ({ host: '127.0.0.1', authorization: bearer[role] as string });
    // Researcher: the gateway builds the links (pseudonymous UIDs).
    const studies = await get(configured, '/dicom-web/studies?includefield=all', headers('researcher'));
    assert.equal(studies.status, 200);
    assertLinks(studies.json, PUBLIC, 'researcher QIDO');
    const pseudonym = ((studies.json as Array<Record<string, { Value: string[] }>>)[0]?.['0020000D']?.Value[0]) as string;
    const metadata = await get(configured, `/dicom-web/studies/${pseudonym}/metadata`, headers('researcher'));
    assert.equal(metadata.status, 200);
    assertLinks(metadata.json, PUBLIC, 'researcher metadata BulkDataURIs');
    // Clinician: Orthanc builds them, from the Forwarded header the gateway sends.
    const mark = proxy.seen.length;
    const clinicianStudies = await get(configured, '/dicom-web/studies', headers('clinician'));
    assert.equal(clinicianStudies.status, 200);
    assertLinks(clinicianStudies.json, PUBLIC, 'clinician QIDO (Orthanc)');
    const clinicianMetadata = await get(configured, `/dicom-web/studies/${MR_STUDY}/series/${MR_SERIES}/metadata`, headers('clinician'));
    assert.equal(clinicianMetadata.status, 200);
    assertLinks(clinicianMetadata.json, PUBLIC, 'clinician metadata BulkDataURIs (Orthanc)');
    assert.deepEqual(
      [...new Set(proxy.since(mark).map((r) => r.headers['forwarded']))],
      ['host=pacs.example.org;proto=https'],
      'RFC 7239 Forwarded names the public host and scheme',
    );
  });

  test('forwarding headers from a peer that is not a trusted proxy do not move the links', async () => {
    const res = await get(configured, '/dicom-web/studies', {
      host: '127.0.0.1',
      authorization: bearer['researcher'] as string,
      'x-forwarded-host': 'evil.example',
      'x-forwarded-proto': 'http',
      forwarded: 'host=evil.example;proto=http',
    });
    assertLinks(res.json, PUBLIC, 'publicUrl wins');
  });

  test('X-Forwarded-Host/-Proto and Forwarded from a trusted proxy are honoured, from an untrusted peer ignored', async () => {
    const direct = new URL(proxied.url).host;
    const xForwarded = { host: direct, 'x-forwarded-host': 'pacs.example.org', 'x-forwarded-proto': 'https' };
    const cases: Array<{ from: string; headers: Record<string, string>; base: string }> = [
      { from: '127.0.0.2', headers: xForwarded, base: PUBLIC },
      { from: '127.0.0.1', headers: xForwarded, base: `http://${direct}/dicom-web` },
      { from: '127.0.0.2', headers: { host: direct, forwarded: 'for=198.51.100.7;host="ingress.example:8443";proto=https' }, base: 'https://ingress.example:8443/dicom-web' },
      { from: '127.0.0.1', headers: { host: direct, forwarded: 'for=198.51.100.7;host="ingress.example:8443";proto=https' }, base: `http://${direct}/dicom-web` },
      // A chain: the client forged the first element; the trusted proxy's own element is believed.
      { from: '127.0.0.2', headers: { host: direct, forwarded: 'host=evil.example, for=198.51.100.7;host=pacs.example.org;proto=https' }, base: PUBLIC },
    ];
    for (const { from, headers, base } of cases) {
      const what = `${from} ${JSON.stringify(headers)}`;
      const researcher = await get(proxied, '/dicom-web/studies', { ...headers, authorization: bearer['researcher'] as string }, from);
      assert.equal(researcher.status, 200, what);
      assertLinks(researcher.json, base, `researcher ${what}`);
      const mark = proxy.seen.length;
      const clinician = await get(proxied, '/dicom-web/studies', { ...headers, authorization: bearer['clinician'] as string }, from);
      assert.equal(clinician.status, 200, what);
      assertLinks(clinician.json, base, `clinician ${what}`);
      const { host, protocol } = new URL(base);
      assert.deepEqual(proxy.since(mark).map((r) => r.headers['forwarded']), [`host=${host};proto=${protocol.slice(0, -1)}`], what);
    }
  });
});

// GET /metrics (Prometheus text format) and GET /conformance, against a real Orthanc; the metrics'
// protection (bearer token, separate listener) and the de-identification error counter.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadIntoOrthanc } from '../../src/demo/orthanc-process.ts';
import { sample } from '../helpers/sample.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { parseStowAnswer, stowBody } from '../helpers/stow.ts';

const MR_SMALL_STUDY = '1.3.6.1.4.1.5962.1.2.4.20040826185059.5457';

/**
 * Parses the Prometheus text exposition format (0.0.4) strictly: every line is a HELP, a TYPE or a
 * sample of a family whose TYPE came first. Returns `name{labels sorted}` → value.
 */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const typed = new Map<string, string>();
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
  const sampleLine = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*)?,?\\})? ((?:[Nn][Aa][Nn])|[+-][Ii][Nn][Ff]|[-+]?[0-9]+(?:\\.[0-9]+)?(?:e[-+]?[0-9]+)?)(?: -?[0-9]+)?$`);
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue;
    const comment = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (comment) {
      if (comment[1] === 'TYPE') {
        assert.match(comment[3] as string, /^(counter|gauge|histogram|summary|untyped)$/);
        typed.set(comment[2] as string, comment[3] as string);
      }
      continue;
    }
    const m = sampleLine.exec(line);
    assert.ok(m, `not a valid sample line: ${line}`);
    const name = m[1] as string;
    const family = typed.has(name) ? name : name.replace(/_(bucket|sum|count|total)$/, '');
    assert.ok(typed.has(family) || typed.has(name), `${name} has no TYPE before it`);
    const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => `${l[1]}=${l[2]}`).sort();
    samples.set(`${name}{${labels.join(',')}}`, Number(m[3]));
  }
  return samples;
}

const key = (name: string, labels: Record<string, string>) =>
  `${name}{${Object.entries(labels).map(([k, v]) => `${k}=${v}`).sort().join(',')}}`;

async function scrape(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${url}/metrics`, { headers });
  const text = await res.text();
  return { res, text, samples: res.status === 200 ? parseExposition(text) : new Map<string, number>() };
}

describe('metrics', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;

  before(async () => {
    ({ orthanc } = await startTestOrthanc());
    await loadIntoOrthanc(orthanc.httpUrl, [
      { name: 'mr', bytes: sample('transfer-syntax/MR_small.dcm') },
      { name: 'ct', bytes: sample('private-tags/CT_small.dcm') },
    ]);
    gateway = await startTestGateway(orthanc.dicomWebUrl);
  });
  after(async () => {
    await gateway?.close();
    await orthanc?.stop();
  });

  test('GET /metrics is valid Prometheus text with the default process metrics and our families', async () => {
    const { res, text, samples } = await scrape(gateway.url);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    assert.ok([...samples.keys()].some((k) => k.startsWith('process_resident_memory_bytes')), 'default process metrics');
    for (const family of [
      'deid_gateway_http_requests_total',
      'deid_gateway_http_request_duration_seconds',
      'deid_gateway_response_bytes_total',
      'deid_gateway_deid_errors_total',
      'deid_gateway_upstream_duration_seconds',
      'deid_gateway_store_duration_seconds',
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${family} `, 'm'), family);
    }
  });

  test('counters move with requests, by route pattern, role and status; bytes by role; never a UID or token', async () => {
    const researcher = await gateway.token('researcher');
    const clinician = await gateway.token('clinician');
    const before = (await scrape(gateway.url)).samples;
    const get = (labels: Record<string, string>, s: Map<string, number>, name = 'deid_gateway_http_requests_total') => s.get(key(name, labels)) ?? 0;

    let researcherBytes = 0;
    let pseudonym = '';
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${gateway.base}/studies?includefield=all`, { headers: { authorization: `Bearer ${researcher}` } });
      assert.equal(res.status, 200);
      const body = Buffer.from(await res.arrayBuffer());
      researcherBytes += body.length;
      const studies = JSON.parse(body.toString('utf8')) as Record<string, { Value?: string[] }>[];
      pseudonym = studies.map((s) => s['0020000D']?.Value?.[0] ?? '').find((u) => u.startsWith('2.25.')) ?? pseudonym;
    }
    assert.ok(pseudonym, 'a pseudonymous study UID');
    const meta = await fetch(`${gateway.base}/studies/${pseudonym}/metadata`, { headers: { authorization: `Bearer ${researcher}` } });
    assert.equal(meta.status, 200);
    researcherBytes += (await meta.arrayBuffer()).byteLength;
    let clinicianBytes = 0;
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${gateway.base}/studies/${MR_SMALL_STUDY}/metadata`, { headers: { authorization: `Bearer ${clinician}` } });
      assert.equal(res.status, 200);
      clinicianBytes += (await res.arrayBuffer()).byteLength;
    }
    const anonymous = await fetch(`${gateway.base}/studies`);
    assert.equal(anonymous.status, 401);
    await anonymous.arrayBuffer();

    const { text, samples: afterScrape } = await scrape(gateway.url);
    const delta = (labels: Record<string, string>, name?: string) => get(labels, afterScrape, name) - get(labels, before, name);
    assert.equal(delta({ method: 'GET', route: '/studies', role: 'researcher', status: '200' }), 3);
    assert.equal(delta({ method: 'GET', route: '/studies/:study/metadata', role: 'researcher', status: '200' }), 1);
    assert.equal(delta({ method: 'GET', route: '/studies/:study/metadata', role: 'clinician', status: '200' }), 2);
    assert.equal(delta({ method: 'GET', route: 'unmatched', role: 'none', status: '401' }), 1);
    assert.equal(delta({ role: 'researcher' }, 'deid_gateway_response_bytes_total'), researcherBytes);
    // Relayed bodies are counted where the relay writes them; express's own (the 401) by their Content-Length.
    assert.equal(delta({ role: 'clinician' }, 'deid_gateway_response_bytes_total'), clinicianBytes);
    assert.ok(delta({ role: 'none' }, 'deid_gateway_response_bytes_total') > 0, 'the 401 body');
    assert.ok(delta({ method: 'GET', route: '/studies', role: 'researcher' }, 'deid_gateway_http_request_duration_seconds_count') === 3);
    // 3 QIDO + 1 metadata (researcher) + 2 metadata (clinician) went to the PACS.
    assert.ok(delta({ method: 'GET', outcome: '200' }, 'deid_gateway_upstream_duration_seconds_count') >= 6);
    // The researcher's pseudonyms were saved and looked up through the timed store.
    assert.ok(get({ operation: 'save', outcome: 'ok' }, afterScrape, 'deid_gateway_store_duration_seconds_count') > 0);
    assert.ok(delta({ operation: 'originalOf', outcome: 'ok' }, 'deid_gateway_store_duration_seconds_count') >= 1);
    for (const secret of [pseudonym, MR_SMALL_STUDY, researcher, clinician, '1.3.6.1.4.1.5962']) {
      assert.ok(!text.includes(secret), 'no UID or token in the metrics');
    }
  });

  test('a STOW part the engine refuses (inside a 202, never through the error handler) is counted by its code', async () => {
    const errors = (s: Map<string, number>) =>
      new Map([...s].filter(([k]) => k.startsWith('deid_gateway_deid_errors_total{')));
    const before = errors((await scrape(gateway.url)).samples);
    const { body, contentType } = stowBody([sample('private-tags/CT_small.dcm'), sample('edge-cases/MR_truncated.dcm')]);
    const res = await fetch(`${gateway.base}/studies`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await gateway.token('uploader')}`, 'content-type': contentType },
      body,
    });
    assert.equal(res.status, 202, 'one stored, one refused');
    const answer = parseStowAnswer(res.status, (await res.json()) as Record<string, { Value?: unknown[] }>);
    assert.deepEqual(answer.failed.map((f) => f.reason), [0xc000]);
    const afterStow = errors((await scrape(gateway.url)).samples);
    const moved = [...afterStow].filter(([k, v]) => v !== (before.get(k) ?? 0)).map(([k, v]) => [k, v - (before.get(k) ?? 0)]);
    // Exactly one series moved, by one: the truncated Pixel Data (the stored part counts nothing).
    assert.deepEqual(moved, [[key('deid_gateway_deid_errors_total', { code: 'DICOM_TRUNCATED', aborted: 'false' }), 1]]);
  });

  describe('protection and the de-identification error counter', () => {
    let faulty: Server;
    const servers: TestGateway[] = [];
    after(async () => {
      for (const s of servers) await s.close();
      await new Promise<void>((r) => {
        faulty?.closeAllConnections();
        faulty?.close(() => r());
      });
    });

    test('with auth bearer and a port of its own, /metrics is only there, and only with the token', async () => {
      const tokenFile = join(gateway.keys.dir, 'metrics.token');
      writeFileSync(tokenFile, 'scrape-token-0123456789\n');
      const gw = await startTestGateway(orthanc.dicomWebUrl, { metrics: { auth: { type: 'bearer', token: { file: tokenFile } }, port: 0 } });
      servers.push(gw);
      assert.ok(gw.metricsUrl && gw.metricsUrl !== gw.url);
      const main = await fetch(`${gw.url}/metrics`);
      assert.equal(main.status, 404, 'not on the main listener');
      await main.arrayBuffer();
      const none = await scrape(gw.metricsUrl);
      assert.equal(none.res.status, 401);
      assert.match(none.res.headers.get('www-authenticate') ?? '', /^Bearer/);
      assert.equal((JSON.parse(none.text) as { error: { code: string } }).error.code, 'AUTH_TOKEN_MISSING');
      const wrong = await scrape(gw.metricsUrl, { authorization: 'Bearer scrape-token-0123456788' });
      assert.equal(wrong.res.status, 401);
      assert.equal((JSON.parse(wrong.text) as { error: { code: string } }).error.code, 'AUTH_TOKEN_INVALID');
      // A gateway JWT is not the metrics token either.
      const jwt = await scrape(gw.metricsUrl, { authorization: `Bearer ${await gw.token('clinician')}` });
      assert.equal(jwt.res.status, 401);
      const ok = await scrape(gw.metricsUrl, { authorization: 'Bearer scrape-token-0123456789' });
      assert.equal(ok.res.status, 200);
      assert.ok(ok.samples.size > 10);
      assert.ok(!gw.logs().includes('scrape-token-0123456789'), 'the token is never logged');
    });

    test('metrics.enabled false: no /metrics', async () => {
      const gw = await startTestGateway(orthanc.dicomWebUrl, { metrics: { enabled: false } });
      servers.push(gw);
      const res = await fetch(`${gw.url}/metrics`);
      assert.equal(res.status, 404);
      await res.arrayBuffer();
    });

    test('a dataset the engine refuses is counted by the engine error code, before and after the first byte', async () => {
      // A PACS fault a real one shows only by chance: a UID value that is a number (PS3.18 F.2.3 says string).
      faulty = createServer((req, res) => {
        const bad = { '0020000D': { vr: 'UI', Value: [123] } };
        const good = { '0020000D': { vr: 'UI', Value: ['1.2.3'] } };
        res.writeHead(200, { 'content-type': 'application/dicom+json' });
        res.end(JSON.stringify(req.url?.startsWith('/dicom-web/studies') ? [good, bad] : [bad]));
      });
      await new Promise<void>((r) => faulty.listen(0, '127.0.0.1', r));
      const gw = await startTestGateway(`http://127.0.0.1:${(faulty.address() as AddressInfo).port}/dicom-web`);
      servers.push(gw);
      const researcher = `Bearer ${await gw.token('researcher')}`;
      const series = await fetch(`${gw.base}/series`, { headers: { authorization: researcher } });
      assert.equal(series.status, 502);
      assert.equal(((await series.json()) as { error: { code: string } }).error.code, 'UPSTREAM_UNUSABLE');
      const studies = await fetch(`${gw.base}/studies`, { headers: { authorization: researcher } });
      assert.equal(studies.status, 200);
      await assert.rejects(studies.arrayBuffer(), 'aborted after the first dataset');
      const { samples } = await scrape(gw.url);
      assert.equal(samples.get(key('deid_gateway_deid_errors_total', { code: 'DEID_UNSUPPORTED_VALUE', aborted: 'false' })), 1);
      assert.equal(samples.get(key('deid_gateway_deid_errors_total', { code: 'DEID_UNSUPPORTED_VALUE', aborted: 'true' })), 1);
      assert.equal(samples.get(key('deid_gateway_http_responses_aborted_total', { route: '/studies', role: 'researcher' })), 1);
    });
  });
});

describe('GET /conformance', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;
  let plain: TestGateway;
  before(async () => {
    ({ orthanc } = await startTestOrthanc());
    gateway = await startTestGateway(orthanc.dicomWebUrl, {
      deid: { profiles: { researcher: { options: ['retainSafePrivate'], overrides: { PatientSex: 'remove' } } }, uploadPseudonyms: 'fresh' },
    });
    plain = await startTestGateway(orthanc.dicomWebUrl, { deid: null });
  });
  after(async () => {
    await gateway?.close();
    await plain?.close();
    await orthanc?.stop();
  });

  test('states the configured profile per role, as JSON and markdown, without a token', async () => {
    const res = await fetch(`${gateway.url}/conformance?role=researcher&format=json`);
    assert.equal(res.status, 200);
    const s = (await res.json()) as {
      role: string;
      options: { name: string; enabled: boolean }[];
      overrides: { keyword: string; override: string }[];
      attributes: { keyword: string; category: string }[];
      pseudonyms: { mode: string };
      renderedOffered: boolean;
    };
    assert.equal(s.role, 'researcher');
    assert.deepEqual(s.options.filter((o) => o.enabled).map((o) => o.name), ['retainSafePrivate']);
    assert.deepEqual(s.overrides, [{ tag: '(0010,0040)', keyword: 'PatientSex', override: 'remove' }]);
    assert.equal(s.attributes.find((a) => a.keyword === 'PatientSex')?.category, 'removed');
    assert.equal(s.pseudonyms.mode, 'keyed');
    assert.equal(s.renderedOffered, false);

    const up = (await (await fetch(`${gateway.url}/conformance?role=uploader`)).json()) as { role: string; pseudonyms: { mode: string }; options: { name: string; enabled: boolean }[] };
    assert.equal(up.role, 'uploader');
    assert.equal(up.pseudonyms.mode, 'fresh');
    assert.deepEqual(up.options.filter((o) => o.enabled).map((o) => o.name), ['retainLongitudinalTemporalModifiedDates']);

    const md = await fetch(`${gateway.url}/conformance?role=researcher&format=markdown`);
    assert.equal(md.status, 200);
    assert.match(md.headers.get('content-type') ?? '', /^text\/markdown/);
    const text = await md.text();
    assert.match(text, /^# De-identification conformance statement: researcher/);
    assert.match(text, /\| \(0010,0040\) \| PatientSex \| CS \| Z \| override \| remove \|/);
  });

  test('a bad role or format is 400; without a deid section the statement is 501, like the routes', async () => {
    for (const q of ['role=clinician', 'format=pdf']) {
      const res = await fetch(`${gateway.url}/conformance?${q}`);
      assert.equal(res.status, 400);
      assert.match(((await res.json()) as { error: { code: string } }).error.code, /^CONFORMANCE_BAD_/);
    }
    const res = await fetch(`${plain.url}/conformance?role=researcher`);
    assert.equal(res.status, 501);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'DEID_UNAVAILABLE');
  });
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DeidUnsupportedValueError } from '../../../src/deid/errors.ts';
import { DicomTruncatedError } from '../../../src/dicom/errors.ts';
import { UpstreamTimeoutError, UpstreamUnusableError } from '../../../src/dicomweb/errors.ts';
import { unusable } from '../../../src/dicomweb/deidentified-view.ts';
import { mapError } from '../../../src/http/error-mapping.ts';
import { createMetrics } from '../../../src/http/metrics.ts';

const errorsOf = async (m: ReturnType<typeof createMetrics>) =>
  (await m.registry.getSingleMetric('deid_gateway_deid_errors_total')!.get()).values.map((v) => `${v.labels['code']}/${v.labels['aborted']}=${v.value}`).sort();

test('de-identification failures are counted by the engine code found in the cause chain', async () => {
  const m = createMetrics();
  const observe = (error: unknown, aborted: boolean) => m.observeError(error, mapError(error), aborted);
  observe(unusable(new DicomTruncatedError('the header ends early', { tag: 0x00100010 })), true);
  observe(unusable(new DeidUnsupportedValueError('(0020,000D)', 'UID value is not a string')), false);
  observe(new UpstreamUnusableError('not multipart/related'), false);
  assert.deepEqual(await errorsOf(m), ['DEID_UNSUPPORTED_VALUE/false=1', 'DICOM_TRUNCATED/true=1', 'UPSTREAM_UNUSABLE/false=1']);
});

test('a caller that left, a PACS timeout or an auth failure is not a de-identification error', async () => {
  const m = createMetrics();
  const observe = (error: unknown) => m.observeError(error, mapError(error), true);
  observe(unusable(Object.assign(new Error('the caller went away'), { code: 'CLIENT_GONE' })));
  observe(new UpstreamTimeoutError());
  observe(new Error('anything else'));
  assert.deepEqual(await errorsOf(m), []);
});

test('upstream outcomes are a status or a code, anything else is folded into ERROR; each registry is its own', async () => {
  const a = createMetrics();
  const b = createMetrics();
  a.observeUpstream('GET', '200', 0.01);
  a.observeUpstream('GET', 'UPSTREAM_TIMEOUT', 30);
  a.observeUpstream('GET', 'http://pacs/studies/1.2.3', 0.1);
  const counts = (await a.registry.getSingleMetric('deid_gateway_upstream_duration_seconds')!.get()).values
    .filter((v) => (v as { metricName?: string }).metricName === 'deid_gateway_upstream_duration_seconds_count')
    .map((v) => `${v.labels['outcome']}=${v.value}`)
    .sort();
  assert.deepEqual(counts, ['200=1', 'ERROR=1', 'UPSTREAM_TIMEOUT=1']);
  assert.ok(!(await b.registry.metrics()).includes('outcome="200"'));
});

test('without a token, /metrics answers only a loopback peer (403 otherwise); with one, the token decides', async () => {
  const { metricsRoute } = await import('../../../src/http/metrics.ts');
  const call = async (token: string | undefined, remoteAddress: string, authorization?: string) => {
    let error: unknown;
    let sent = false;
    const req = { socket: { remoteAddress }, headers: authorization ? { authorization } : {} };
    const res = { locals: {}, setHeader() {}, type() { return this; }, send() { sent = true; } };
    await metricsRoute(createMetrics(), token)(req as never, res as never, (e?: unknown) => (error = e));
    return sent ? 'sent' : mapError(error).code;
  };
  assert.equal(await call(undefined, '127.0.0.1'), 'sent');
  assert.equal(await call(undefined, '::ffff:127.0.0.1'), 'sent');
  assert.equal(await call(undefined, '::1'), 'sent');
  assert.equal(await call(undefined, '10.1.2.3'), 'AUTH_LOOPBACK_ONLY');
  assert.equal(await call(undefined, '::ffff:192.168.0.9'), 'AUTH_LOOPBACK_ONLY');
  assert.equal(await call('scrape-token', '10.1.2.3', 'Bearer scrape-token'), 'sent');
  assert.equal(await call('scrape-token', '10.1.2.3'), 'AUTH_TOKEN_MISSING');
});

test('researcher queries are counted per subject and study; past the series cap, new pairs count under (other)', async () => {
  const m = createMetrics({ querySeriesCap: 3 });
  m.observeQuery('r-1', ['2.25.1']);
  m.observeQuery('r-1', ['2.25.1', '2.25.2', '2.25.2']);
  m.observeQuery('r-1', []);
  m.observeQuery('r-2', ['2.25.1']);
  m.observeQuery('r-2', ['2.25.3']);
  m.observeQuery('r-1', ['2.25.1']);
  for (const s of ['s-1', 's-2', 's-3', 's-4']) m.observeQueryRateLimited(s);
  const values = async (name: string) =>
    (await m.registry.getSingleMetric(name)!.get()).values.map((v) => `${Object.values(v.labels).join('/')}=${v.value}`).sort();
  assert.deepEqual(await values('deid_gateway_queries_per_study_total'), [
    'r-1/(none)=1',
    'r-1/2.25.1=3',
    'r-1/2.25.2=1',
    'r-2/(other)=2',
  ]);
  assert.deepEqual(await values('deid_gateway_queries_rate_limited_total'), ['(other)=1', 's-1=1', 's-2=1', 's-3=1']);
});

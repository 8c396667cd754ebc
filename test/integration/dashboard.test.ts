// Issue 21 §3: the Grafana dashboard (config/grafana/deid-gateway.json) and the Prometheus scrape example
// (config/prometheus.yml) name only series a real gateway exports. Every PromQL expression of the
// dashboard is parsed for its metric names; a gateway (DIMSE on, pixel policy on, audit file, QIDO rate
// limit) in front of a real Orthanc serves a few requests of each kind; its /metrics is parsed; each
// name must be a family there (histograms by _bucket, _sum, _count), and the core ones must have samples.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { loadIntoOrthanc } from '../../src/demo/orthanc-process.ts';
import { echoscu } from '../helpers/dcmtk.ts';
import { dimseBlock } from '../helpers/dimse.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { sample } from '../helpers/sample.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const DASHBOARD = resolve(ROOT, 'config/grafana/deid-gateway.json');

/** PromQL words that are not metric names: functions, aggregations, keywords. */
const NOT_METRICS = new Set([
  'sum', 'avg', 'min', 'max', 'count', 'topk', 'bottomk', 'quantile', 'stddev', 'stdvar', 'group', 'count_values',
  'rate', 'irate', 'increase', 'delta', 'idelta', 'deriv', 'histogram_quantile', 'clamp_min', 'clamp_max', 'abs', 'vector', 'scalar',
  'sort', 'sort_desc', 'time', 'avg_over_time', 'max_over_time', 'min_over_time', 'sum_over_time', 'label_replace', 'absent',
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'e', 'inf', 'nan',
]);

/** The metric names a PromQL expression reads: strings, label matchers, ranges, label lists and Grafana variables removed first. */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^{}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{[^}]*\}|\$[A-Za-z_]\w*/g, ' ');
  return [...stripped.matchAll(/(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*/g)].map((m) => m[0]).filter((t) => !NOT_METRICS.has(t.toLowerCase()));
}

/** Every expression in the dashboard: panel targets (rows' nested panels too) and query variables. */
function dashboardExpressions(dashboard: { panels?: unknown[]; templating?: { list?: unknown[] } }): string[] {
  const exprs: string[] = [];
  const visit = (panel: { targets?: Array<{ expr?: string }>; panels?: unknown[] }) => {
    for (const t of panel.targets ?? []) if (t.expr) exprs.push(t.expr);
    for (const p of panel.panels ?? []) visit(p as typeof panel);
  };
  for (const p of dashboard.panels ?? []) visit(p as Parameters<typeof visit>[0]);
  for (const v of (dashboard.templating?.list ?? []) as Array<{ type?: string; query?: string | { query?: string } }>) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query?.query ?? '';
    const m = /^label_values\(\s*([^,)]+)\s*(?:,[^)]*)?\)$/.exec(q.trim());
    exprs.push(m ? (m[1] as string) : q);
  }
  return exprs;
}

/** The exposition's families (`# TYPE name type`) and the names that have samples. */
function parseExposition(text: string): { types: Map<string, string>; sampled: Set<string> } {
  const types = new Map<string, string>();
  const sampled = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1] as string, type[2] as string);
    else if (line !== '' && !line.startsWith('#')) sampled.add(/^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0] as string);
  }
  return { types, sampled };
}

/** The family a sample name belongs to: itself, or a histogram's (summary's) _bucket/_sum/_count. */
function familyOf(name: string, types: Map<string, string>): string | undefined {
  if (types.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return base !== name && ['histogram', 'summary'].includes(types.get(base) ?? '') && !(name.endsWith('_bucket') && types.get(base) === 'summary') ? base : undefined;
}

describe('the Grafana dashboard over the gateway’s own /metrics', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;

  before(async () => {
    ({ orthanc } = await startTestOrthanc());
    await loadIntoOrthanc(orthanc.httpUrl, [
      { name: 'ct', bytes: sample('private-tags/CT_small.dcm') },
      // A Secondary Capture: the product's pixel policy withholds it from researchers.
      { name: 'sc', bytes: sample('transfer-syntax/image_dfl.dcm') },
    ]);
    gateway = await startTestGateway(orthanc.dicomWebUrl, {
      productPixelDefaults: true,
      qido: { rateLimit: { burst: 3, perMinute: 1 } },
      audit: { file: 'audit.jsonl' },
      dimse: dimseBlock(),
    });
  });
  after(async () => {
    await gateway?.close();
    await orthanc?.stop();
  });

  test('the dashboard is valid Grafana JSON: unique panel ids, every panel with a title and a Prometheus query', () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { uid: string; title: string; schemaVersion: number; panels: Array<{ id: number; type: string; title: string; targets?: unknown[] }> };
    assert.equal(dashboard.uid, 'deid-gateway');
    assert.ok(dashboard.schemaVersion >= 36);
    const ids = dashboard.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
    for (const p of dashboard.panels) {
      assert.ok(p.title, `panel ${p.id} has a title`);
      if (p.type !== 'row') assert.ok((p.targets?.length ?? 0) > 0, `${p.title} has a query`);
    }
    // The scrape example is YAML Prometheus reads: a job scraping /metrics with a bearer token from a file.
    const prometheus = parseYaml(readFileSync(resolve(ROOT, 'config/prometheus.yml'), 'utf8')) as { scrape_configs: Array<Record<string, unknown>> };
    const job = prometheus.scrape_configs.find((j) => j['job_name'] === 'deid-gateway');
    assert.ok(job);
    assert.equal(job['metrics_path'], '/metrics');
    assert.equal((job['authorization'] as { type: string }).type, 'Bearer');
  });

  test('every metric the dashboard’s queries name is exported by a real gateway’s /metrics; the core ones have series', async () => {
    const researcher = { authorization: `Bearer ${await gateway.token('researcher', { sub: 'researcher-dash' })}` };
    const clinician = { authorization: `Bearer ${await gateway.token('clinician', { sub: 'clinician-dash' })}` };
    const steward = { authorization: `Bearer ${await gateway.token('steward', { sub: 'steward-dash' })}` };
    const get = async (path: string, headers: Record<string, string>) => {
      const res = await fetch(gateway.base + path, { headers });
      await res.arrayBuffer();
      return res.status;
    };
    // Researcher: a search per study (the SC is withheld by the pixel policy), then past the rate limit.
    assert.equal(await get('/studies?includefield=all', researcher), 200);
    assert.equal(await get('/instances?includefield=all', researcher), 200);
    assert.equal(await get('/series', researcher), 200);
    assert.equal(await get('/studies', researcher), 429);
    assert.equal(await get('/studies', clinician), 200);
    assert.equal(await get('/studies/1.2.3/metadata', clinician), 404);
    assert.equal((await fetch(`${gateway.url}/audit?limit=1`, { headers: steward })).status, 200);
    const echo = await echoscu(gateway.dimsePort as number, 'MODALITY');
    assert.equal(echo.code, 0, echo.stderr);

    const res = await fetch(`${gateway.url}/metrics`);
    assert.equal(res.status, 200);
    const { types, sampled } = parseExposition(await res.text());
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Parameters<typeof dashboardExpressions>[0];
    const exprs = dashboardExpressions(dashboard);
    assert.ok(exprs.length >= 30, `${exprs.length} expressions`);
    const names = new Set(exprs.flatMap(metricNames));
    const missing = [...names].filter((n) => familyOf(n, types) === undefined);
    assert.deepEqual(missing, [], 'every metric the dashboard reads is exported');
    // The core panels show data after this traffic: their series exist.
    const core = [
      'deid_gateway_http_requests_total',
      'deid_gateway_http_request_duration_seconds_bucket',
      'deid_gateway_response_bytes_total',
      'deid_gateway_upstream_duration_seconds_bucket',
      'deid_gateway_store_duration_seconds_bucket',
      'deid_gateway_pixel_instances_total',
      'deid_gateway_queries_per_study_total',
      'deid_gateway_queries_rate_limited_total',
      'deid_gateway_dimse_studies_queued',
      'deid_gateway_dimse_spool_bytes',
      'deid_gateway_dimse_associations_total',
      'deid_gateway_audit_export_total',
      'process_resident_memory_bytes',
    ];
    for (const name of core) {
      assert.ok(names.has(name), `the dashboard reads ${name}`);
      assert.ok(sampled.has(name), `${name} has a series after the traffic`);
    }
    // And the parser is not fooled: label names, functions and variables are not metric names.
    assert.deepEqual(metricNames('histogram_quantile(0.95, sum by (le, route) (rate(x_bucket{instance=~"$instance", route!="a b"}[$__rate_interval])))'), ['x_bucket']);
    assert.deepEqual(metricNames('sum(a{s=~"5.."}) / clamp_min(sum(b), 1e-9)'), ['a', 'b']);
  });
});

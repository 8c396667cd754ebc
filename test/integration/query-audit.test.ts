// Issue 13, finding 8: query oracles must be visible to the steward. Each researcher QIDO-RS request is
// on the audit trail with its keys (as keywords), their matching modes and the pseudonymous study or
// series it targets, never a value the caller sent (but issued pseudonyms) and never an original; it
// is counted per token subject and study in /metrics; an optional per-subject rate limit answers 429.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AuditRecord, QueryDescription } from '../../src/store/audit-trail.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { listInstances, startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';

type Json = Record<string, { Value?: unknown[] }>;
const firstValue = (d: Json | undefined, tag: string) => d?.[tag]?.Value?.[0] as string | undefined;
const nameOf = (d: Json | undefined, tag: string) => (d?.[tag]?.Value?.[0] as { Alphabetic?: string } | undefined)?.Alphabetic;

const BURST = 20;

describe('researcher queries on the audit trail and in the metrics, and the per-subject QIDO rate limit', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;
  const tokens: Record<string, string> = {};
  /** Every identifying value Orthanc holds (UIDs, names, IDs, dates, accession numbers), at least 6 characters. */
  const originals = new Set<string>();
  let originalName = '';
  let originalStudy = '';

  before(async () => {
    ({ orthanc } = await startTestOrthanc({ loadSamples: true }));
    // One token back a minute: within a test, refill cannot rescue a request past the burst.
    gateway = await startTestGateway(orthanc.dicomWebUrl, { qido: { rateLimit: { burst: BURST, perMinute: 1 } } });
    for (const sub of ['oracle-1', 'limited-1', 'other-1']) tokens[sub] = await gateway.token('researcher', { sub });
    tokens['clinician'] = await gateway.token('clinician', { sub: 'clinician-1' });
    tokens['steward'] = await gateway.token('steward', { sub: 'steward-1' });

    const held = (await (await fetch(`${orthanc.dicomWebUrl}/studies?includefield=all`)).json()) as Json[];
    for (const study of held) {
      for (const tag of ['0020000D', '00100020', '00080020', '00080050', '00100030', '00080030']) {
        const v = firstValue(study, tag);
        if (v && v.length >= 6) originals.add(v);
      }
      const name = nameOf(study, '00100010');
      if (name && name.length >= 6) originals.add(name);
      if (name && name.length >= 6 && !originalName) originalName = name;
    }
    for (const i of await listInstances(orthanc.dicomWebUrl)) for (const uid of [i.study, i.series, i.instance]) originals.add(uid);
    originalStudy = firstValue(held[0], '0020000D') as string;
    assert.ok(originals.size > 20 && originalName && originalStudy, 'Orthanc holds the shared samples');
  });
  after(async () => {
    await gateway?.close();
    await orthanc?.stop();
  });

  const get = (who: string, path: string) => fetch(gateway.base + path, { headers: { authorization: `Bearer ${tokens[who]}` } });
  const readAudit = async () => {
    const res = await fetch(`${gateway.url}/audit?limit=1000`, { headers: { authorization: `Bearer ${tokens['steward']}` } });
    assert.equal(res.status, 200);
    return ((await res.json()) as { events: AuditRecord[] }).events;
  };
  /** The hook writes once the response is over: poll until `n` query records of `sub` are there. */
  const queriesOf = async (sub: string, n: number) => {
    for (let i = 0; i < 100; i++) {
      const found = (await readAudit()).filter((e) => e.userId === sub && e.eventId.code === '110112');
      if (found.length >= n) return found;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail(`${n} query records of ${sub} expected`);
  };
  const metricLines = async () => (await (await fetch(`${gateway.url}/metrics`)).text()).split('\n');
  const sample = (lines: string[], name: string, labels: string) => {
    const line = lines.find((l) => l.startsWith(`${name}{${labels}} `));
    return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
  };

  test('a burst of oracle queries is on the trail with keys, modes and the pseudonymous target, and counted per subject and study', async () => {
    const counted = new Map<string, number>();
    const count = (study: string) => counted.set(study, (counted.get(study) ?? 0) + 1);
    const oracle = async (path: string, study: string) => {
      const res = await get('oracle-1', path);
      await res.arrayBuffer();
      count(study);
      return res.status;
    };

    const first = await get('oracle-1', '/studies?includefield=all');
    assert.equal(first.status, 200);
    count('(none)');
    const studies = (await first.json()) as Json[];
    const study = firstValue(studies.find((s) => firstValue(s, '00080020')), '0020000D') as string;
    assert.match(study, /^2\.25\./);
    const seriesRes = await get('oracle-1', `/studies/${study}/series`);
    assert.equal(seriesRes.status, 200);
    count(study);
    const series = firstValue(((await seriesRes.json()) as Json[])[0], '0020000E') as string;
    assert.match(series, /^2\.25\./);

    // The date oracle of finding 2, the name guesses of finding 3, an original named outright.
    for (const date of ['20140101-', '20140102-', '-20131231']) await oracle(`/studies?StudyInstanceUID=${study}&StudyDate=${date}`, study);
    await oracle('/studies?PatientName=A*', '(none)');
    await oracle(`/studies?00100010=${encodeURIComponent(originalName)}&StudyInstanceUID=${study}`, study);
    await oracle(`/studies/${study}/series?SeriesDate=20140101-20141231&limit=5&offset=0&includefield=00080060,PatientName&fuzzymatching=true`, study);
    await oracle(`/studies?StudyInstanceUID=${originalStudy}`, '(not issued)');
    await oracle(`/studies?StudyInstanceUID=${study}%5C${originalStudy}&PatientBirthDate=19700101`, study);
    await oracle(`/series?SeriesInstanceUID=${series}&Modality=CT`, '(none)');
    assert.equal(await oracle('/studies?SecretKeyText=SecretValueText', '(none)'), 400);
    const sent = [...counted.values()].reduce((a, b) => a + b, 0);

    const records = await queriesOf('oracle-1', sent);
    assert.equal(records.length, sent);
    const described = (q: QueryDescription | undefined) => q?.keys.map((k) => `${k.keyword}:${k.mode}${k.values ? `=${k.values.join('|')}` : ''}`).join(' ');
    const summaries = records.map((r) => [r.participantObjectId, r.seriesInstanceUid, described(r.participantObjectQuery), r.httpStatus]);
    const dateOracle = records.filter((r) => described(r.participantObjectQuery) === `StudyInstanceUID:single=${study} StudyDate:range`);
    assert.equal(dateOracle.length, 3, 'the date oracle, told apart from a plain search');
    for (const r of dateOracle) assert.deepEqual([r.participantObjectId, r.participantObjectIdTypeCode], [study, 'StudyInstanceUID']);
    assert.ok(summaries.some((s) => s[2] === 'PatientName:wildcard' && s[0] === undefined));
    assert.ok(summaries.some((s) => s[2] === `PatientName:single StudyInstanceUID:single=${study}` && s[0] === study), 'a tag key is recorded as its keyword');
    assert.ok(summaries.some((s) => s[2] === 'StudyInstanceUID:single=(not issued)' && s[0] === '(not issued)'), 'an original UID is never written');
    assert.ok(summaries.some((s) => s[2] === `StudyInstanceUID:list=${study}|(not issued) PatientBirthDate:single` && s[0] === study));
    assert.ok(summaries.some((s) => s[2] === `SeriesInstanceUID:single=${series} Modality:single` && s[1] === series && s[0] === undefined));
    assert.ok(summaries.some((s) => s[2] === '(invalid):single' && s[3] === 400), 'an unknown key is (invalid), refused and recorded');
    const paged = records.find((r) => r.route === 'GET /studies/:study/series' && r.participantObjectQuery?.limit === 5);
    assert.deepEqual(paged?.participantObjectQuery, {
      keys: [{ keyword: 'SeriesDate', mode: 'range' }],
      limit: 5,
      offset: 0,
      fuzzymatching: true,
      includefield: ['Modality', 'PatientName'],
    });
    assert.equal(paged?.participantObjectId, study);
    assert.equal(paged?.participantObjectIdTypeCode, 'StudyInstanceUID');
    for (const r of records) assert.deepEqual([r.roleId, r.eventId.code, r.eventActionCode], ['researcher', '110112', 'E']);

    // Nothing the caller typed but issued pseudonyms, and no original Orthanc holds.
    const trail = JSON.stringify(records);
    for (const text of ['SecretKeyText', 'SecretValueText', 'A*', '20140101', '20131231', '19700101', ...originals]) {
      assert.ok(!trail.includes(text), `the trail holds ${text}`);
    }

    // The metric: every query of this subject under the study it targets.
    let lines: string[] = [];
    for (let i = 0; i < 100; i++) {
      lines = await metricLines();
      if (sample(lines, 'deid_gateway_queries_per_study_total', `subject="oracle-1",study="${study}"`) >= (counted.get(study) ?? 0)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const [label, n] of counted) {
      assert.equal(sample(lines, 'deid_gateway_queries_per_study_total', `subject="oracle-1",study="${label}"`), n, label);
    }
    const ours = lines.filter((l) => l.startsWith('deid_gateway_queries_')).join('\n');
    for (const text of [...originals, 'SecretKeyText']) assert.ok(!ours.includes(text), `the query count holds ${text}`);
    // Elsewhere (process metrics are numbers too), no original UID or name and no token.
    const exposition = lines.join('\n');
    for (const text of [...originals].filter((o) => /[.^A-Za-z]/.test(o)).concat(tokens['oracle-1'] as string)) {
      assert.ok(!exposition.includes(text), `the metrics hold ${text}`);
    }
  });

  test('past the burst a researcher is refused 429 with Retry-After, recorded and counted; others and the clinician are not limited', async () => {
    for (let i = 0; i < BURST; i++) {
      const res = await get('limited-1', `/studies?limit=${i + 1}`);
      assert.equal(res.status, 200, `query ${i + 1}`);
      await res.arrayBuffer();
    }
    const limited = await get('limited-1', '/studies?StudyDate=20140101-');
    assert.equal(limited.status, 429);
    const retryAfter = Number(limited.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    assert.equal(((await limited.json()) as { error: { code: string } }).error.code, 'QIDO_RATE_LIMITED');

    const other = await get('other-1', '/studies');
    assert.equal(other.status, 200, 'another researcher has a bucket of its own');
    await other.arrayBuffer();
    for (let i = 0; i < BURST + 5; i++) {
      const res = await get('clinician', '/studies?limit=1');
      assert.equal(res.status, 200, `clinician query ${i + 1}`);
      await res.arrayBuffer();
    }
    // Retrieval is not a query: not limited.
    const [first] = (await (await get('other-1', '/studies')).json()) as Json[];
    const metadata = await get('limited-1', `/studies/${firstValue(first, '0020000D')}/metadata`);
    assert.equal(metadata.status, 200);
    await metadata.arrayBuffer();

    const records = await queriesOf('limited-1', BURST + 1);
    const refused = records.filter((r) => r.httpStatus === 429);
    assert.equal(refused.length, 1);
    assert.equal(refused[0]?.eventOutcomeIndicator, 4);
    assert.deepEqual(refused[0]?.participantObjectQuery, { keys: [{ keyword: 'StudyDate', mode: 'range' }] });
    const lines = await metricLines();
    assert.equal(sample(lines, 'deid_gateway_queries_rate_limited_total', 'subject="limited-1"'), 1);
    assert.equal(sample(lines, 'deid_gateway_queries_rate_limited_total', 'subject="other-1"'), 0);
    assert.equal(sample(lines, 'deid_gateway_http_requests_total', 'method="GET",route="/studies",role="researcher",status="429"'), 1);
    assert.equal(sample(lines, 'deid_gateway_http_requests_total', 'method="GET",route="/studies",role="clinician",status="429"'), 0);
  });
});

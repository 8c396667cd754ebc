// `npm run soak` (SOAK_SECONDS or --seconds, default 60): a load and soak run on loopback. Its own Orthanc
// with the shared samples, the gateway as a process of its own (`deid-gateway serve`), and autocannon
// (50 connections, from this process) mixing QIDO, metadata and instance retrieval as researcher and
// clinician. Every response body is checked against the role that asked for it. Fails (exit 1) on any
// 5xx, any wrong-role response, any connection error or timeout, or gateway RSS after the run above
// 1.2 x RSS after the warm-up. Prints a markdown table; writes JSON to bench/results/.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon, { type AutocannonRequest, type AutocannonResult } from 'autocannon';
import { keyedUid } from '../src/deid/pseudonym.ts';
import { loadIntoOrthanc, startOrthanc } from '../src/demo/orthanc-process.ts';
import { readDicomFiles, samplesDir } from '../src/demo/samples.ts';
import { makeKeys, memoryOf, signToken, spawnGateway } from '../test/helpers/gateway.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: process.env['SOAK_SECONDS'] ?? '60' },
    warmup: { type: 'string', default: process.env['SOAK_WARMUP_SECONDS'] },
    connections: { type: 'string', default: process.env['SOAK_CONNECTIONS'] ?? '50' },
  },
});
const SECONDS = Number(values.seconds);
// 30 s by default: the heap settles under 50 connections in about that (a 10 s warm-up read 1.49 × later).
const WARMUP = Number(values.warmup ?? Math.min(30, Math.max(3, Math.round(SECONDS / 2))));
const CONNECTIONS = Number(values.connections);
if (![SECONDS, WARMUP, CONNECTIONS].every((n) => Number.isInteger(n) && n > 0 && n <= 3600)) {
  process.stderr.write('soak: --seconds, --warmup and --connections take positive integers\n');
  process.exit(2);
}
const MAX_RSS_GROWTH = 1.2;
const TARGETS = 8; // studies and instances in the mix
const MAX_INSTANCE_BYTES = 600 * 1024;
const ALL_TS = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const MB = 1024 * 1024;

type Role = 'researcher' | 'clinician';
type Kind = 'qido' | 'metadata' | 'instance';
interface Tally {
  responses: number;
  statuses: Record<string, number>;
  wrongRole: number;
  bytes: number;
  reasons: Record<string, number>;
}
const tallies = new Map<string, Tally>();
const tally = (role: Role, kind: Kind): Tally => {
  const k = `${role} ${kind}`;
  let t = tallies.get(k);
  if (!t) {
    t = { responses: 0, statuses: {}, wrongRole: 0, bytes: 0, reasons: {} };
    tallies.set(k, t);
  }
  return t;
};

const UID_IN_TEXT = /[0-9]+(?:\.[0-9]+){3,}/g;
const PSEUDONYM_NAME = /^ANON\^[A-Z2-7]{12}$/;
const PSEUDONYM_ID = /^[A-Z2-7]{16}$/;

async function main(): Promise<number> {
  const started = new Date();
  const orthanc = await startOrthanc();
  const keys = await makeKeys();
  let gateway: Awaited<ReturnType<typeof spawnGateway>> | undefined;
  try {
    const loaded = await loadIntoOrthanc(orthanc.httpUrl, readDicomFiles(samplesDir()));
    gateway = await spawnGateway(orthanc.dicomWebUrl, keys, { productPixelDefaults: true });
    const auth = {
      researcher: `Bearer ${await signToken(keys, { roles: ['researcher'] }, { expiresIn: '2h' })}`,
      clinician: `Bearer ${await signToken(keys, { roles: ['clinician'] }, { expiresIn: '2h' })}`,
    };

    // 1. The originals, read from the PACS directly: the canaries a researcher must never see.
    const rows = (await (
      await fetch(`${orthanc.dicomWebUrl}/instances?includefield=0020000D&includefield=0020000E&includefield=00100010&includefield=00100020`, {
        headers: { accept: 'application/dicom+json' },
      })
    ).json()) as Record<string, { Value?: unknown[] }>[];
    const str = (row: Record<string, { Value?: unknown[] }>, tag: string): string => {
      const v = row[tag]?.Value?.[0];
      return typeof v === 'string' ? v : typeof v === 'object' && v !== null ? String((v as { Alphabetic?: unknown }).Alphabetic ?? '') : '';
    };
    const instances = rows.map((r) => ({ study: str(r, '0020000D'), series: str(r, '0020000E'), instance: str(r, '00080018') }));
    const originalUids = new Set(instances.flatMap((i) => [i.study, i.series, i.instance]).filter(Boolean));
    // Names with a component separator and IDs of 5+ characters, printable ASCII: long enough not to
    // turn up by chance in pixel data or in a pseudonym.
    const canaryText = [
      ...new Set([
        ...rows.map((r) => str(r, '00100010')).filter((n) => n.includes('^') && n.replace(/\^/g, '').length >= 5),
        ...rows.map((r) => str(r, '00100020')).filter((id) => id.length >= 5 && !/^[0-9]+$/.test(id)),
      ]),
    ].filter((t) => /^[\x20-\x7e]+$/.test(t));

    // 2. The pseudonyms the researcher will use: keyed, so computable with the run's secret. The
    // gateway only resolves those it has issued, so the researcher lists first (QIDO, then metadata).
    const secret = Buffer.from(readFileSync(keys.secretFile, 'utf8').trim(), 'utf8');
    const pseudo = (uid: string) => keyedUid(secret, uid);
    const fetchBody = async (path: string, role: Role, accept?: string) => {
      try {
        const res = await fetch(`${gateway!.base}${path}`, { headers: { authorization: auth[role], ...(accept ? { accept } : {}) } });
        return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
      } catch {
        return { status: 0, body: Buffer.alloc(0) }; // aborted: the engine refused this object mid-body
      }
    };
    await fetchBody('/studies?includefield=all', 'researcher');
    const studies: string[] = [];
    for (const study of [...new Set(instances.map((i) => i.study))].sort()) {
      const r = await fetchBody(`/studies/${pseudo(study)}/metadata`, 'researcher');
      const c = await fetchBody(`/studies/${study}/metadata`, 'clinician');
      if (r.status === 200 && c.status === 200) studies.push(study);
    }
    const served: (typeof instances)[number][] = [];
    let excluded = 0;
    for (const i of instances.filter((x) => studies.includes(x.study)).sort((a, b) => (a.instance < b.instance ? -1 : 1))) {
      const path = (x: typeof i, p: (u: string) => string) => `/studies/${p(x.study)}/series/${p(x.series)}/instances/${p(x.instance)}`;
      const r = await fetchBody(path(i, pseudo), 'researcher', ALL_TS);
      const c = await fetchBody(path(i, (u) => u), 'clinician', ALL_TS);
      if (r.status === 200 && c.status === 200 && c.body.length <= MAX_INSTANCE_BYTES) served.push(i);
      else excluded++;
    }
    if (studies.length === 0 || served.length === 0) throw new Error('no study or instance both roles can retrieve');

    // 3. The mix: every request carries its own role, target and check.
    const wrong = (t: Tally, reason: string) => {
      t.wrongRole++;
      t.reasons[reason] = (t.reasons[reason] ?? 0) + 1;
    };
    const request = (role: Role, kind: Kind, path: string, expect: string | undefined, accept?: string): AutocannonRequest => ({
      method: 'GET',
      path: `/dicom-web${path}`,
      headers: { authorization: auth[role], ...(accept ? { accept } : {}) },
      onResponse(status, body) {
        const t = tally(role, kind);
        t.responses++;
        t.statuses[status] = (t.statuses[status] ?? 0) + 1;
        t.bytes += body.length; // characters of the decoded body: about its bytes
        if (status !== 200) return;
        if (expect !== undefined && !body.includes(expect)) return wrong(t, `${role} ${kind} lacks the ${role === 'researcher' ? 'pseudonym' : 'original'} it asked for`);
        if (role === 'clinician') {
          if (kind === 'qido' && ![...body.matchAll(UID_IN_TEXT)].some((m) => originalUids.has(m[0]))) wrong(t, 'clinician QIDO without an original UID');
          return;
        }
        for (const m of body.matchAll(UID_IN_TEXT)) {
          if (originalUids.has(m[0])) return wrong(t, 'researcher response holds an original UID');
        }
        for (const text of canaryText) if (body.includes(text)) return wrong(t, 'researcher response holds an original patient name or ID');
        if (kind === 'qido') {
          let items: Record<string, { Value?: unknown[] }>[];
          try {
            items = JSON.parse(body) as typeof items;
          } catch {
            return wrong(t, 'researcher QIDO is not JSON');
          }
          if (items.length === 0) return wrong(t, 'researcher QIDO is empty');
          for (const item of items) {
            const name = str(item, '00100010');
            const id = str(item, '00100020');
            if (name !== '' && !PSEUDONYM_NAME.test(name)) return wrong(t, 'researcher QIDO PatientName is not a pseudonym');
            if (id !== '' && !PSEUDONYM_ID.test(id)) return wrong(t, 'researcher QIDO PatientID is not a pseudonym');
          }
        }
      },
    });
    const mix: AutocannonRequest[] = [];
    for (let n = 0; n < TARGETS; n++) {
      const s = studies[n % studies.length] as string;
      const i = served[n % served.length] as (typeof served)[number];
      const ipath = (p: (u: string) => string) => `/studies/${p(i.study)}/series/${p(i.series)}/instances/${p(i.instance)}`;
      mix.push(
        request('researcher', 'qido', '/studies?includefield=00100010&includefield=00100020&includefield=00081030', undefined),
        request('clinician', 'qido', '/studies?includefield=00100010&includefield=00100020&includefield=00081030', undefined),
        request('researcher', 'metadata', `/studies/${pseudo(s)}/metadata`, pseudo(s)),
        request('clinician', 'metadata', `/studies/${s}/metadata`, s),
        request('researcher', 'instance', ipath(pseudo), pseudo(i.instance), ALL_TS),
        request('clinician', 'instance', ipath((u) => u), i.instance, ALL_TS),
      );
    }

    // The checks can fail: each role's check, fed the other role's answer to the same request, must flag it.
    const s0 = studies[0] as string;
    const crossed = [
      [mix[2], await fetchBody(`/studies/${s0}/metadata`, 'clinician')],
      [mix[3], await fetchBody(`/studies/${pseudo(s0)}/metadata`, 'researcher')],
      [mix[0], await fetchBody('/studies?includefield=00100010&includefield=00100020&includefield=00081030', 'clinician')],
    ] as const;
    const flagged = () => [...tallies.values()].reduce((n, t) => n + t.wrongRole, 0);
    const selfCheck = crossed.every(([req, answer]) => {
      const before = flagged();
      req?.onResponse?.(200, answer.body.toString('latin1'), {}, {});
      return flagged() > before;
    });
    tallies.clear();
    if (!selfCheck) throw new Error('the wrong-role check did not flag a crossed answer');

    // 4. Warm-up, RSS, the soak, RSS.
    const run = (duration: number) =>
      autocannon({ url: gateway!.url, connections: CONNECTIONS, duration, timeout: 30, requests: mix });
    process.stderr.write(`soak: ${loaded.stored.length} samples in Orthanc; ${studies.length} studies and ${served.length} instances in the mix (${excluded} instances left out); warm-up ${WARMUP} s\n`);
    const warm = await run(WARMUP);
    await new Promise((r) => setTimeout(r, 2_000));
    const rssWarm = (await memoryOf(gateway.pid)).rss;
    const warmTallies = structuredClone(Object.fromEntries(tallies));
    tallies.clear();
    process.stderr.write(`soak: ${CONNECTIONS} connections for ${SECONDS} s\n`);
    // RSS every 5 s: a leak keeps climbing through the second half; heap growth settles.
    const timeline: number[] = [];
    const sampler = setInterval(() => void memoryOf(gateway!.pid).then((m) => timeline.push(Math.round(m.rss / MB))), 5_000);
    let soak: AutocannonResult;
    try {
      soak = await run(SECONDS);
    } finally {
      clearInterval(sampler);
    }
    await new Promise((r) => setTimeout(r, 2_000));
    const { rss: rssAfter, peak } = await memoryOf(gateway.pid);
    const metricsText = await (await fetch(`${gateway.url}/metrics`)).text();
    const metric = (line: RegExp) => [...metricsText.matchAll(line)].reduce((sum, m) => sum + Number(m[1]), 0);
    const deidErrors = metric(/^deid_gateway_deid_errors_total\{[^}]*\} (\S+)$/gm);

    // 5. Checks and the report.
    const all = [...tallies.values(), ...Object.values(warmTallies)];
    const tallied5xx = all.reduce((n, t) => n + Object.entries(t.statuses).filter(([s]) => s.startsWith('5')).reduce((a, [, c]) => a + c, 0), 0);
    const wrongRole = all.reduce((n, t) => n + t.wrongRole, 0);
    const errors = soak.errors + soak.timeouts + warm.errors + warm.timeouts;
    const checks = {
      'zero 5xx': soak['5xx'] + warm['5xx'] + tallied5xx === 0,
      'zero wrong-role responses': wrongRole === 0,
      'zero connection errors or timeouts': errors === 0,
      [`RSS after the run ≤ ${MAX_RSS_GROWTH} × after warm-up`]: rssAfter <= MAX_RSS_GROWTH * rssWarm,
    };
    const lines = [
      `| soak: ${CONNECTIONS} connections, ${SECONDS} s (after ${WARMUP} s warm-up) | value |`,
      '|---|---|',
      `| requests (soak) | ${soak.requests.total} (${soak.requests.average.toFixed(0)}/s; 2xx ${soak['2xx']}, 4xx ${soak['4xx']}, 5xx ${soak['5xx']}) |`,
      `| latency p50 / p99 / max | ${soak.latency.p50} / ${soak.latency.p99} / ${soak.latency.max} ms |`,
      `| throughput | ${(soak.throughput.average / MB).toFixed(1)} MB/s |`,
      `| errors / timeouts | ${soak.errors} / ${soak.timeouts} (warm-up ${warm.errors} / ${warm.timeouts}) |`,
      ...[...tallies.entries()].sort().map(([k, t]) => `| ${k} | ${t.responses} responses, ${JSON.stringify(t.statuses)}, ${(t.bytes / MB).toFixed(0)} MB, wrong-role ${t.wrongRole} |`),
      `| self-check: each role's check flags the other role's answer to the same request | ${crossed.length} of ${crossed.length} flagged |`,
      `| wrong-role responses (warm-up + soak) | ${wrongRole}${wrongRole ? ` ${JSON.stringify(Object.assign({}, ...all.map((t) => t.reasons)))}` : ''} |`,
      `| gateway RSS after warm-up / after run / peak | ${(rssWarm / MB).toFixed(0)} / ${(rssAfter / MB).toFixed(0)} / ${(peak / MB).toFixed(0)} MB (ratio ${(rssAfter / rssWarm).toFixed(2)}) |`,
      `| gateway RSS every 5 s during the run | ${timeline.join(', ')} MB |`,
      `| de-identification errors (gateway /metrics, whole run incl. set-up probes) | ${deidErrors} |`,
      ...Object.entries(checks).map(([name, ok]) => `| check: ${name} | ${ok ? 'pass' : '**FAIL**'} |`),
    ];
    process.stdout.write(`\n${lines.join('\n')}\n`);
    const dir = resolve(import.meta.dirname, 'results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `soak-${started.toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(
      file,
      JSON.stringify(
        {
          started,
          seconds: SECONDS,
          warmupSeconds: WARMUP,
          connections: CONNECTIONS,
          samplesLoaded: loaded.stored.length,
          mix: { studies: studies.length, instances: served.length, instancesLeftOut: excluded, requests: mix.length },
          soak: { requests: soak.requests, latency: soak.latency, throughput: soak.throughput, errors: soak.errors, timeouts: soak.timeouts, statusClasses: { '2xx': soak['2xx'], '4xx': soak['4xx'], '5xx': soak['5xx'] } },
          warmup: { requests: warm.requests.total, errors: warm.errors, timeouts: warm.timeouts, '5xx': warm['5xx'] },
          byRoleAndKind: Object.fromEntries(tallies),
          warmupByRoleAndKind: warmTallies,
          rss: { afterWarmup: rssWarm, afterRun: rssAfter, peak, ratio: rssAfter / rssWarm, timelineMB: timeline },
          deidErrors,
          checks,
        },
        null,
        2,
      ),
    );
    process.stderr.write(`soak: results in ${file}\n`);
    return Object.values(checks).every(Boolean) ? 0 : 1;
  } finally {
    await gateway?.stop();
    await orthanc.stop();
    rmSync(keys.dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();

// `npm run bench` (after bench/engine.ts): gateway figures measured side by side in one run, reported
// as medians and ratios (these machines are noisy: compare within a run, never across runs). Writes a
// markdown table to stdout and the same figures as JSON to bench/results/ (git-ignored).
//
//   node --import tsx bench/run.ts [--study-mb 1024] [--rounds 3] [--memory-factor 4] [--latency-requests 60] [--dimse-instances 1000] [--dimse-rounds 2] [--cine-copies 16] [--only S,S] [--cpu-prof]
//
// 1. WADO-RS study retrieval, Orthanc direct / nginx in front of the same Orthanc (the anchor, bench/nginx.ts:
//    installed when missing) / gateway as clinician / gateway as researcher, 1 and 8 clients, rounds
//    interleaved; and each proxy's CPU seconds per GB served (nginx master + worker, the gateway process),
//    with Orthanc's own beside them, from /proc/<pid>/stat before and after each measured retrieval.
// 2. Series metadata and QIDO latency, p50/p99, and the gateway's overhead over direct.
// 3. Peak gateway RSS while streaming the study at 1x and at `memory-factor`x size, to one researcher
//    and to eight at once (a fresh gateway process for each, so each peak is its own).
// 4. A user's alternative: Orthanc's own /studies/{id}/anonymize, then retrieval of the anonymized
//    copy, against the researcher's on-the-fly retrieval of the same study (time to the last byte).
// 5. Projects: a researcher in a project of 10,000 explicit member studies against one in a project
//    holding every study (no membership filter), on the same gateway: QIDO, metadata, retrieval.
// 6. DIMSE ingress: storescu of `dimse-instances` CT instances to Orthanc's own C-STORE SCP, and to the
//    gateway's listener until all are forwarded (de-identified, by STOW-RS) to the same Orthanc; and
//    the gateway's RSS sampled during the ingest.
// 7. Pixel safety (issue 16), two gateways side by side on one Orthanc, one with the product's pixel
//    policy (and a redaction rule for the ACUSON echo), one with `pixels: { enabled: false }`:
//    (a) researcher retrieval of the CT study, which no rule or criterion touches (goal: within 5 %);
//    (b) the US cine (native and JPEG Baseline, `--cine-copies` copies each) redacted on the fly against
//        the same instances kept as they are: MB/s and ms per frame;
//    (c) per-codec decode + blank cost per frame (bench/pixel-codecs.ts; frames are written native, never
//        re-encoded), and native blanking's MB/s against a plain copy.
// 8. OCR text regions (issue 18, bench/ocr.ts): recall of identity strings, false-blank area and ms per
//    frame on `--ocr-frames` generated frames (seed `--ocr-seed`), a pool of 1 and of 2 workers.
// 9. QIDO at PACS scale (issue 20, bench/qido-scale.ts): `--qido-scale` sizes of tiny studies in a fresh
//    Orthanc each; direct, a researcher gateway paging (up to `--qido-paging-max` studies) and one with
//    the de-identified study index, per query.
// --only NAME[,NAME] runs only those sections (retrieval, latency, anonymize, projects, dimse, memory,
// pixels, ocr, qido-scale): e.g. `--only pixels --study-mb 128`.
// --cpu-prof writes a V8 CPU profile of the gateway process to bench/results/.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { setElement } from '../src/dicom/dataset.ts';
import { Part10Reader, type Part10Event } from '../src/dicom/part10-reader.ts';
import { collect, writePart10 } from '../src/dicom/part10-writer.ts';
import { TAG } from '../src/dicom/tags.ts';
import { padValue } from '../src/dicom/vr.ts';
import { freePort, loadIntoOrthanc, startOrthanc, type OrthancProcess } from '../src/demo/orthanc-process.ts';
import { samplesDir } from '../src/demo/samples.ts';
import { storescu } from '../test/helpers/dcmtk.ts';
import { dimseBlock, forwarded, spawnDimseGateway } from '../test/helpers/dimse.ts';
import { makeKeys, memoryOf, signToken, spawnGateway, TEST_PROJECT, type TestKeys } from '../test/helpers/gateway.ts';
import { cpuSeconds, type NginxProcess, startNginx } from './nginx.ts';
import { benchOcr, ocrRows } from './ocr.ts';
import { benchQidoScale, qidoScaleRows } from './qido-scale.ts';
import { benchNativeBlanking, benchPixelCodecs } from './pixel-codecs.ts';
import { CT_INSTANCE_BYTES, syntheticCtStudy, syntheticSeriesUid, syntheticStudyUid } from './synthetic.ts';
import { median, quantile } from './stats.ts';

/** The bench measures the product as shipped: the default pixel policy on (tests turn it off unless asked). */
const PRODUCT = { productPixelDefaults: true } as const;

const { values } = parseArgs({
  options: {
    'study-mb': { type: 'string', default: '1024' },
    rounds: { type: 'string', default: '3' },
    'memory-factor': { type: 'string', default: '4' },
    'latency-requests': { type: 'string', default: '60' },
    'cpu-prof': { type: 'boolean', default: false },
    'dimse-instances': { type: 'string', default: '1000' },
    'dimse-rounds': { type: 'string', default: '2' },
    'cine-copies': { type: 'string', default: '16' },
    'ocr-seed': { type: 'string', default: '2026' },
    'ocr-frames': { type: 'string', default: '200' },
    'qido-scale': { type: 'string', default: '4000,20000' },
    'qido-paging-max': { type: 'string', default: '4000' },
    only: { type: 'string' },
  },
});
const SECTIONS = ['retrieval', 'latency', 'anonymize', 'projects', 'dimse', 'memory', 'pixels', 'ocr', 'qido-scale'] as const;
const only = values.only === undefined ? undefined : new Set(values.only.split(',').map((x) => x.trim()));
for (const name of only ?? []) if (!(SECTIONS as readonly string[]).includes(name)) throw new Error(`--only: not a section: ${name} (${SECTIONS.join(', ')})`);
const runs = (section: (typeof SECTIONS)[number]) => only === undefined || only.has(section);
const MB = 1024 * 1024;
const ROUNDS = Number(values.rounds);
const RESULTS = resolve(import.meta.dirname, 'results');
const results: Record<string, unknown> = {};
const rows: string[] = [];

/** Study numbers of the synthetic studies (bench/synthetic.ts makes their UIDs). */
const STUDY = { main: 2, latency: 3, large: 4 } as const;
const ACCEPT = { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' };

if (values['cpu-prof']) {
  mkdirSync(RESULTS, { recursive: true });
  process.env['DEID_GATEWAY_NODE_ARGS'] = `--cpu-prof --cpu-prof-dir=${RESULTS}`;
}

async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** Reads a response to its end; an aborted one throws (and is counted by the caller, never hidden). */
async function drain(url: string, headers: Record<string, string>): Promise<number> {
  const res = await fetch(url, { headers });
  if (res.status !== 200) throw new Error(`${res.status} from ${new URL(url).pathname.split('/').slice(0, 3).join('/')}`);
  let n = 0;
  for await (const chunk of res.body as ReadableStream<Uint8Array>) n += chunk.byteLength;
  return n;
}

async function load(orthanc: OrthancProcess, study: number, instances: number): Promise<void> {
  const { refused } = await loadIntoOrthanc(
    orthanc.httpUrl,
    (function* () {
      let i = 0;
      for (const bytes of syntheticCtStudy(instances, study)) yield { name: `ct-${study}-${i++}`, bytes };
    })(),
  );
  if (refused.length > 0) throw new Error(`Orthanc refused ${refused.length} synthetic instances`);
}

interface Clients {
  readonly base: string;
  readonly clinician: Record<string, string>;
  readonly researcher: Record<string, string>;
}

async function clientsFor(keys: TestKeys, base: string): Promise<Clients> {
  return {
    base,
    clinician: { authorization: `Bearer ${await signToken(keys, { roles: ['clinician'] })}` },
    researcher: { authorization: `Bearer ${await signToken(keys, { roles: ['researcher'], project: TEST_PROJECT })}` },
  };
}

/**
 * The researcher navigates by pseudonym, found by QIDO as a client would: each synthetic study has its
 * own instance count (Number of Study Related Instances, which the profile keeps).
 */
async function pseudonymOf(c: Clients, level: 'studies' | 'series', study: number): Promise<{ study: string; series?: string }> {
  type Json = Record<string, { Value?: unknown[] }>[];
  const get = async (path: string) => (await (await fetch(`${c.base}${path}`, { headers: c.researcher })).json()) as Json;
  const found = (await get('/studies?includefield=00201208&limit=1000')).find((s) => s['00201208']?.Value?.[0] === instancesOf[study]);
  const uid = found?.['0020000D']?.Value?.[0];
  if (typeof uid !== 'string') throw new Error(`no pseudonymous study found for synthetic study ${study}`);
  if (level === 'studies') return { study: uid };
  const series = (await get(`/studies/${uid}/series`))[0]?.['0020000E']?.Value?.[0];
  if (typeof series !== 'string') throw new Error(`no series in synthetic study ${study}`);
  return { study: uid, series };
}
const instancesOf: Record<number, number> = {};

// --- 1. retrieval throughput ----------------------------------------------------------------------

/**
 * The gateway of sections 1-2-4, replaced by a fresh process (same keys and secret, so the same pseudonyms)
 * if one dies under the retrieval rounds (as undici 7's `assert(!this.paused)`, nodejs/undici#5360, did
 * before the PACS client moved to node:http). Each crash is counted and reported; the rounds it broke are
 * left out.
 */
interface GatewayHandle {
  c: Clients;
  pid: number;
  crashes: number;
  /** Replaces the process if it has exited; true if it did. */
  revive(): Promise<boolean>;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function retrieval(orthanc: OrthancProcess, gw: GatewayHandle, instances: number, nginx: NginxProcess | Error): Promise<void> {
  const pseudonym = (await pseudonymOf(gw.c, 'studies', STUDY.main)).study;
  const original = syntheticStudyUid(STUDY.main);
  let rssBefore = (await memoryOf(gw.pid)).rss;
  const aborted: Record<string, number> = {};
  const anchor = nginx instanceof Error ? undefined : nginx;
  if (nginx instanceof Error) rows.push(`| nginx anchor | not measured: ${nginx.message.replace(/\s+/g, ' ').slice(0, 200)} | |`);
  type Target = readonly [name: string, url: () => string, headers: () => Record<string, string>, proxyPids: (() => number[]) | undefined];
  const targets: Target[] = [
    ['direct', () => `${orthanc.dicomWebUrl}/studies/${original}`, () => ACCEPT, undefined],
    ...(anchor ? [['nginx', () => `${anchor.url}/dicom-web/studies/${original}`, () => ACCEPT, () => anchor.pids()] as const] : []),
    ['clinician', () => `${gw.c.base}/studies/${original}`, () => ({ ...ACCEPT, ...gw.c.clinician }), () => [gw.pid]],
    ['researcher', () => `${gw.c.base}/studies/${pseudonym}`, () => ({ ...ACCEPT, ...gw.c.researcher }), () => [gw.pid]],
  ];
  const orthancPid = orthanc.pid;
  for (const concurrency of [1, 8]) {
    const rates: Record<string, number[]> = Object.fromEntries(targets.map(([name]) => [name, []]));
    // CPU seconds and bytes of each measured retrieval: the proxy's (nginx master + worker, or the gateway
    // process) and Orthanc's, from /proc/<pid>/stat before and after.
    const cpu: Record<string, { proxy: number[]; orthanc: number[]; bytes: number[] }> = Object.fromEntries(targets.map(([name]) => [name, { proxy: [], orthanc: [], bytes: [] }]));
    // Round -1 (1 client only) warms every path up (connections, lazy code, Orthanc's caches) and is not counted.
    for (let r = concurrency === 1 ? -1 : 0; r < ROUNDS; r++) {
      for (const [name, urlOf, headersOf, proxyPids] of targets) {
        if (await gw.revive()) rssBefore = (await memoryOf(gw.pid)).rss;
        const url = urlOf();
        const headers = headersOf();
        let bytes = 0;
        let failed = 0;
        const pids = proxyPids?.() ?? [];
        const proxyBefore = cpuSeconds(pids);
        const orthancBefore = orthancPid === undefined ? 0 : cpuSeconds([orthancPid]);
        const s = await seconds(async () => {
          const sizes = await Promise.all(
            Array.from({ length: concurrency }, () =>
              drain(url, headers).catch((error: unknown) => {
                failed++;
                process.stderr.write(`${name} (${concurrency}): ${String((error as { cause?: unknown }).cause ?? error)}\n`);
                return 0;
              }),
            ),
          );
          bytes = sizes.reduce((a, b) => a + b, 0);
        });
        const proxyCpu = cpuSeconds(pids) - proxyBefore;
        const orthancCpu = orthancPid === undefined ? Number.NaN : cpuSeconds([orthancPid]) - orthancBefore;
        if (r < 0) continue;
        aborted[name] = (aborted[name] ?? 0) + failed;
        if (failed > 0) continue;
        rates[name]?.push(bytes / MB / s);
        cpu[name]?.proxy.push(proxyCpu);
        cpu[name]?.orthanc.push(orthancCpu);
        cpu[name]?.bytes.push(bytes);
      }
    }
    const m = (k: string) => median(rates[k] as number[]);
    // CPU per GB over all measured rounds together (one /proc tick is 10 ms: a sum is steadier than per-round figures).
    const perGB = (k: string, of: 'proxy' | 'orthanc') => {
      const x = cpu[k];
      if (!x || x.bytes.length === 0) return Number.NaN;
      return x[of].reduce((a, b) => a + b, 0) / (x.bytes.reduce((a, b) => a + b, 0) / (MB * 1024));
    };
    const counts = Object.values(rates).map((x) => x.length);
    const n = counts.every((k) => k === counts[0]) ? `${counts[0]} rounds` : `rounds ${counts.join(' / ')}`;
    const clients = `${concurrency} client${concurrency > 1 ? 's' : ''}`;
    const ratios = {
      researcherOverClinician: m('researcher') / m('clinician'),
      clinicianOverDirect: m('clinician') / m('direct'),
      ...(anchor ? { clinicianOverNginx: m('clinician') / m('nginx'), nginxOverDirect: m('nginx') / m('direct') } : {}),
    };
    const cpuPerGB = Object.fromEntries(targets.map(([name]) => [name, { proxy: name === 'direct' ? 0 : perGB(name, 'proxy'), orthanc: perGB(name, 'orthanc') }]));
    results[`retrieval-${concurrency}`] = { instances, rounds: ROUNDS, rates, ...ratios, cpuSecondsPerGB: cpuPerGB, cpu };
    const names = targets.map(([name]) => name);
    rows.push(
      `| WADO-RS study (${instances} CT, ${clients}, ${n}): MB/s ${names.join(' / ')} | ${names.map((k) => m(k).toFixed(0)).join(' / ')} | ${
        anchor ? `clinician/nginx **${(m('clinician') / m('nginx')).toFixed(2)}** (goal ≥ 1.0), nginx/direct **${(m('nginx') / m('direct')).toFixed(2)}**, ` : ''
      }researcher/clinician **${(m('researcher') / m('clinician')).toFixed(2)}** (goal ≥ 0.9), clinician/direct ${(m('clinician') / m('direct')).toFixed(2)} |`,
    );
    const proxies = names.filter((k) => k !== 'direct');
    const g = (k: string, of: 'proxy' | 'orthanc') => (cpuPerGB[k]?.[of] ?? Number.NaN).toFixed(2);
    rows.push(
      `| proxy CPU s per GB served (${clients}): ${proxies.join(' · ')} (Orthanc's own: direct · ${proxies.join(' · ')}) | ${proxies.map((k) => g(k, 'proxy')).join(' · ')} (${names.map((k) => g(k, 'orthanc')).join(' · ')}) | ${
        anchor ? `clinician/nginx **${(perGB('clinician', 'proxy') / perGB('nginx', 'proxy')).toFixed(2)}** (goal ≤ 1.2), ` : ''
      }researcher/clinician **${(perGB('researcher', 'proxy') / perGB('clinician', 'proxy')).toFixed(2)}** (goal ≤ 1.3) |`,
    );
    if (await gw.revive()) rssBefore = (await memoryOf(gw.pid)).rss;
    const peak = (await memoryOf(gw.pid)).peak; // VmHWM only grows: after the 1-client rounds it is theirs
    results[`memory-retrieval-${concurrency}`] = { rssBeforeMB: rssBefore / MB, peakMB: peak / MB };
    rows.push(`| gateway peak RSS, up to ${concurrency} concurrent researcher stream${concurrency > 1 ? 's' : ''} | ${(rssBefore / MB).toFixed(0)} MB before, ${(peak / MB).toFixed(0)} MB peak | growth ${((peak - rssBefore) / MB).toFixed(0)} MB |`);
  }
  if (anchor) {
    results['nginx'] = { version: anchor.version, responsesBufferedToTempFile: anchor.bufferedToTempFile() };
    rows.push(`| nginx ${anchor.version} (1 worker, keepalive upstream, default buffering): responses it buffered to a temp file | ${anchor.bufferedToTempFile()} | |`);
  }
  results['gatewayCrashes'] = gw.crashes;
  if (gw.crashes > 0) rows.push(`| gateway process crashes during retrieval (see stderr) | ${gw.crashes} | a fresh process replaced each; peak RSS above is the last process's |`);
  results['abortedResponses'] = aborted;
  if (Object.values(aborted).some((n) => n > 0)) rows.push(`| aborted responses (see stderr) | ${JSON.stringify(aborted)} | rounds with one are left out |`);
}

// --- 2. metadata and QIDO latency ---------------------------------------------------------------

async function latency(orthanc: OrthancProcess, c: Clients, gatewayPid: number): Promise<void> {
  const original = { study: syntheticStudyUid(STUDY.latency), series: syntheticSeriesUid(STUDY.latency) };
  const pseudo = await pseudonymOf(c, 'series', STUDY.latency);
  const n = Number(values['latency-requests']);
  const kinds = {
    'series metadata': {
      direct: [`${orthanc.dicomWebUrl}/studies/${original.study}/series/${original.series}/metadata`, {}],
      clinician: [`${c.base}/studies/${original.study}/series/${original.series}/metadata`, c.clinician],
      researcher: [`${c.base}/studies/${pseudo.study}/series/${pseudo.series}/metadata`, c.researcher],
    },
    'QIDO instances of a series': {
      direct: [`${orthanc.dicomWebUrl}/studies/${original.study}/series/${original.series}/instances?includefield=all`, {}],
      clinician: [`${c.base}/studies/${original.study}/series/${original.series}/instances?includefield=all`, c.clinician],
      researcher: [`${c.base}/studies/${pseudo.study}/series/${pseudo.series}/instances?includefield=all`, c.researcher],
    },
    'QIDO studies by modality': {
      direct: [`${orthanc.dicomWebUrl}/studies?ModalitiesInStudy=CT`, {}],
      clinician: [`${c.base}/studies?ModalitiesInStudy=CT`, c.clinician],
      researcher: [`${c.base}/studies?ModalitiesInStudy=CT`, c.researcher],
    },
  } as const;
  for (const [kind, targets] of Object.entries(kinds)) {
    const ms: Record<string, number[]> = { direct: [], clinician: [], researcher: [] };
    // The gateway's own CPU (utime + stime, all its threads), summed per role over the measured requests:
    // steadier than the wall time on a shared machine, and what an extra hop costs the host.
    const cpu: Record<string, number> = { clinician: 0, researcher: 0 };
    // Interleaved request by request, after a warm-up of each, so that noise falls on all three alike.
    for (let i = -5; i < n; i++) {
      for (const [who, [url, headers]] of Object.entries(targets)) {
        const before = cpuSeconds([gatewayPid]);
        const t = await seconds(async () => {
          const res = await fetch(url, { headers: { accept: 'application/dicom+json', ...headers } });
          if (res.status !== 200) throw new Error(`${kind} ${who}: ${res.status}`);
          await res.arrayBuffer();
        });
        if (i >= 0) ms[who]?.push(t * 1000);
        if (i >= 0 && who !== 'direct') cpu[who] = (cpu[who] ?? 0) + cpuSeconds([gatewayPid]) - before;
      }
    }
    const cpuMs = (who: string) => ((cpu[who] ?? 0) * 1000) / n;
    const p = (who: string, q: number) => quantile(ms[who] as number[], q);
    results[`latency-${kind}`] = {
      ...Object.fromEntries(Object.keys(ms).map((who) => [who, { p50: p(who, 0.5), p99: p(who, 0.99) }])),
      gatewayCpuMsPerRequest: { clinician: cpuMs('clinician'), researcher: cpuMs('researcher') },
    };
    rows.push(
      `| ${kind}, ${n} requests: p50 / p99 ms direct · clinician · researcher | ${p('direct', 0.5).toFixed(1)} / ${p('direct', 0.99).toFixed(1)} · ${p('clinician', 0.5).toFixed(1)} / ${p('clinician', 0.99).toFixed(1)} · ${p('researcher', 0.5).toFixed(1)} / ${p('researcher', 0.99).toFixed(1)} | p50 overhead over direct: clinician ${(p('clinician', 0.5) - p('direct', 0.5)).toFixed(1)} ms, researcher **${(p('researcher', 0.5) - p('direct', 0.5)).toFixed(1)} ms**${kind === 'series metadata' ? ' (goal ≤ 3)' : ''}; gateway CPU ms per request: clinician ${cpuMs('clinician').toFixed(1)}, researcher ${cpuMs('researcher').toFixed(1)} |`,
    );
  }
}

// --- 3. memory flat in study size ---------------------------------------------------------------

async function memory(orthanc: OrthancProcess, keys: TestKeys, factor: number): Promise<void> {
  // Issue 20's goal: peak ≤ 150 MB streaming to 8 researchers, flat in study size. One researcher, then
  // eight at once (each the whole study), at 1x and at `factor`x size.
  for (const streams of [1, 8]) {
    const peaks: Record<string, number> = {};
    for (const [label, study] of [
      ['1x', STUDY.main],
      [`${factor}x`, STUDY.large],
    ] as const) {
      // A fresh gateway per measurement: VmHWM is per process, so each peak belongs to its own streams.
      const gateway = await spawnGateway(orthanc.dicomWebUrl, keys, PRODUCT);
      try {
        const c = await clientsFor(keys, gateway.base);
        const pseudonym = (await pseudonymOf(c, 'studies', study)).study;
        const before = (await memoryOf(gateway.pid)).rss;
        const sizes = await Promise.all(Array.from({ length: streams }, () => drain(`${c.base}/studies/${pseudonym}`, { ...ACCEPT, ...c.researcher })));
        const peak = (await memoryOf(gateway.pid)).peak;
        peaks[label] = peak;
        results[`memory-${label}${streams > 1 ? `-${streams}-streams` : ''}`] = { streams, streamedMB: sizes.reduce((a, b) => a + b, 0) / MB, rssBeforeMB: before / MB, peakMB: peak / MB };
      } finally {
        await gateway.stop();
      }
    }
    const one = peaks['1x'] as number;
    const many = peaks[`${factor}x`] as number;
    rows.push(
      `| gateway peak RSS streaming the study to ${streams === 1 ? 'a researcher' : `${streams} researchers at once`} at 1x / ${factor}x size (fresh process each) | ${(one / MB).toFixed(0)} MB / ${(many / MB).toFixed(0)} MB | ${factor}x/1x **${(many / one).toFixed(2)}** (goal ≤ 1.2; peak goal < 150 MB) |`,
    );
  }
}

// --- 4. Orthanc's anonymize-then-retrieve against on-the-fly ---------------------------------------

async function orthancAnonymize(orthanc: OrthancProcess, c: Clients): Promise<void> {
  const original = syntheticStudyUid(STUDY.main);
  const pseudonym = (await pseudonymOf(c, 'studies', STUDY.main)).study;
  const [lookup] = (await (await fetch(`${orthanc.httpUrl}/tools/lookup`, { method: 'POST', body: original })).json()) as { ID: string; Type: string }[];
  if (!lookup) throw new Error('the study is not in Orthanc');
  const times: Record<string, number[]> = { orthanc: [], gateway: [] };
  for (let r = 0; r < ROUNDS; r++) {
    times['gateway']?.push(await seconds(() => drain(`${c.base}/studies/${pseudonym}`, { ...ACCEPT, ...c.researcher })));
    let copy: string | undefined;
    times['orthanc']?.push(
      await seconds(async () => {
        // Orthanc's own PS3.15 anonymization (its default profile), synchronous, into a new study.
        const res = await fetch(`${orthanc.httpUrl}/studies/${lookup.ID}/anonymize`, { method: 'POST', body: JSON.stringify({ Force: true }) });
        if (!res.ok) throw new Error(`anonymize: ${res.status}`);
        copy = ((await res.json()) as { ID: string }).ID;
        const tags = (await (await fetch(`${orthanc.httpUrl}/studies/${copy}`)).json()) as { MainDicomTags: { StudyInstanceUID: string } };
        await drain(`${orthanc.dicomWebUrl}/studies/${tags.MainDicomTags.StudyInstanceUID}`, ACCEPT);
      }),
    );
    if (copy) await fetch(`${orthanc.httpUrl}/studies/${copy}`, { method: 'DELETE' });
  }
  const o = median(times['orthanc'] as number[]);
  const g = median(times['gateway'] as number[]);
  results['orthancAnonymize'] = { seconds: times, orthancOverGateway: o / g };
  rows.push(`| Orthanc /anonymize then retrieve the copy vs researcher on the fly: s to last byte | ${o.toFixed(1)} / ${g.toFixed(1)} | on the fly is **${(o / g).toFixed(1)}×** faster (goal > 1) |`);
}

// --- 5. project membership overhead ------------------------------------------------------------

const BIG_PROJECT = 'big';
const BIG_MEMBERS = 10_000;

/**
 * The same gateway serves two researchers: one in TEST_PROJECT (every study; no membership filter) and
 * one in a project whose explicit list holds 10,000 studies (the bench's real studies among them, the
 * rest absent from the PACS, the worst case for a list scan). Requests interleaved one by one.
 */
async function projectOverhead(orthanc: OrthancProcess, keys: TestKeys): Promise<void> {
  const members = [syntheticStudyUid(STUDY.main), syntheticStudyUid(STUDY.latency)];
  for (let i = members.length; i < BIG_MEMBERS; i++) members.push(`1.2.826.0.1.3680043.10.999.${i}`);
  const gateway = await spawnGateway(orthanc.dicomWebUrl, keys, {
    ...PRODUCT,
    projects: { [TEST_PROJECT]: { membership: { all: true } }, [BIG_PROJECT]: { membership: { studies: members } } },
  });
  try {
    const all = await clientsFor(keys, gateway.base);
    const big: Clients = { ...all, researcher: { authorization: `Bearer ${await signToken(keys, { roles: ['researcher'], project: BIG_PROJECT })}` } };
    const who = { all, big };
    const pseudo = { all: await pseudonymOf(all, 'series', STUDY.latency), big: await pseudonymOf(big, 'series', STUDY.latency) };
    const main = { all: (await pseudonymOf(all, 'studies', STUDY.main)).study, big: (await pseudonymOf(big, 'studies', STUDY.main)).study };
    const n = Number(values['latency-requests']);
    const kinds: Record<string, (p: 'all' | 'big') => string> = {
      'series metadata': (p) => `/studies/${pseudo[p].study}/series/${pseudo[p].series}/metadata`,
      'QIDO one study by its UID (as OHIF opens one)': (p) => `/studies?StudyInstanceUID=${pseudo[p].study}`,
      'QIDO studies, limit 25': () => '/studies?limit=25',
      'QIDO studies by modality': () => '/studies?ModalitiesInStudy=CT',
    };
    for (const [kind, path] of Object.entries(kinds)) {
      const ms: Record<'all' | 'big', number[]> = { all: [], big: [] };
      for (let i = -3; i < n; i++) {
        for (const p of ['all', 'big'] as const) {
          const t = await seconds(async () => {
            const res = await fetch(`${gateway.base}${path(p)}`, { headers: { accept: 'application/dicom+json', ...who[p].researcher } });
            if (res.status !== 200) throw new Error(`${kind} ${p}: ${res.status}`);
            await res.arrayBuffer();
          });
          if (i >= 0) ms[p].push(t * 1000);
        }
      }
      const p50 = { all: median(ms.all), big: median(ms.big) };
      results[`project-${kind}`] = { p50, p99: { all: quantile(ms.all, 0.99), big: quantile(ms.big, 0.99) } };
      rows.push(`| ${kind}, ${n} requests: p50 ms, every study · 10,000-study project | ${p50.all.toFixed(1)} · ${p50.big.toFixed(1)} | membership overhead **${(p50.big - p50.all).toFixed(1)} ms** (×${(p50.big / p50.all).toFixed(2)}) |`);
    }
    const rates: Record<'all' | 'big', number[]> = { all: [], big: [] };
    for (let r = 0; r < ROUNDS; r++) {
      for (const p of ['all', 'big'] as const) {
        let bytes = 0;
        const t = await seconds(async () => {
          bytes = await drain(`${gateway.base}/studies/${main[p]}`, { ...ACCEPT, ...who[p].researcher });
        });
        rates[p].push(bytes / MB / t);
      }
    }
    results['project-retrieval'] = rates;
    rows.push(
      `| WADO-RS study, researcher MB/s: every study · 10,000-study project | ${median(rates.all).toFixed(0)} · ${median(rates.big).toFixed(0)} | **${(median(rates.big) / median(rates.all)).toFixed(2)}** |`,
    );
  } finally {
    await gateway.stop();
  }
}

// --- 6. DIMSE ingress: storescu to Orthanc directly, and to the gateway until all are forwarded ----

async function dimseIngest(keys: TestKeys, count: number, rounds: number): Promise<void> {
  // Orthanc's C-STORE SCP binds every interface (it has no bind address, ECOSYSTEM.md): it runs only for
  // this row, and only storescu on loopback talks to it. The gateway forwards into the same Orthanc.
  const dicomPort = await freePort();
  const pacs = await startOrthanc({ extraConfig: { DicomServerEnabled: true, DicomPort: dicomPort, DicomAet: 'ORTHANC', DicomCheckCalledAet: false } });
  const gateway = await spawnDimseGateway(pacs.dicomWebUrl, keys, { dimse: dimseBlock() });
  const times: Record<'direct' | 'gateway', number[]> = { direct: [], gateway: [] };
  const rss: { before: number; peak: number; after: number }[] = [];
  try {
    // Warm-up, not timed: a fresh process's RSS grows while its code and buffers warm up, whatever it ingests.
    const warm = mkdtempSync(join(tmpdir(), 'bench-dimse-'));
    try {
      let i = 0;
      for (const bytes of syntheticCtStudy(20, 99)) writeFileSync(join(warm, `ct-${i++}.dcm`), bytes);
      await storescu(dicomPort, [warm], { calledAe: 'ORTHANC' });
      await storescu(gateway.dimsePort, [warm]);
      await forwarded(gateway.url, 600_000);
    } finally {
      rmSync(warm, { recursive: true, force: true });
    }
    for (let round = 0; round < rounds; round++) {
      for (const target of ['direct', 'gateway'] as const) {
        // A study of its own per run (fresh UIDs), written before the clock starts.
        const dir = mkdtempSync(join(tmpdir(), 'bench-dimse-'));
        try {
          let i = 0;
          for (const bytes of syntheticCtStudy(count, 100 + round * 2 + (target === 'gateway' ? 1 : 0))) writeFileSync(join(dir, `ct-${i++}.dcm`), bytes);
          const before = (await memoryOf(gateway.pid)).rss;
          let peak = before;
          const sampler = setInterval(() => {
            void memoryOf(gateway.pid).then((m) => (peak = Math.max(peak, m.rss)), () => undefined);
          }, 250);
          const t0 = process.hrtime.bigint();
          const run = target === 'direct' ? await storescu(dicomPort, [dir], { calledAe: 'ORTHANC', timeoutMs: 1_800_000 }) : await storescu(gateway.dimsePort, [dir], { timeoutMs: 1_800_000 });
          if (target === 'gateway') await forwarded(gateway.url, 1_800_000);
          const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
          clearInterval(sampler);
          const stored = run.outcomes.filter((o) => o.status === 0).length;
          if (stored !== count) throw new Error(`${target}: ${stored} of ${count} instances stored`);
          times[target].push(elapsed);
          if (target === 'gateway') rss.push({ before, peak, after: (await memoryOf(gateway.pid)).rss });
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
    }
  } finally {
    await gateway.kill('SIGTERM');
    await pacs.stop();
  }
  const direct = median(times.direct);
  const viaGateway = median(times.gateway);
  const mb = (count * CT_INSTANCE_BYTES) / MB;
  results['dimse-ingest'] = { instances: count, mb, directSeconds: times.direct, gatewaySeconds: times.gateway, rssMB: rss.map((r) => ({ before: r.before / MB, peak: r.peak / MB, after: r.after / MB })) };
  rows.push(
    `| storescu of ${count} CT instances (${mb.toFixed(0)} MB): s to Orthanc's C-STORE SCP / s to the gateway until all forwarded | ${direct.toFixed(1)} / ${viaGateway.toFixed(1)} | gateway **${(direct / viaGateway).toFixed(2)}×** direct throughput (goal ≥ 0.8) |`,
    `| gateway RSS during DIMSE ingest (${rss.length} runs): before / peak / after | ${rss.map((r) => `${(r.before / MB).toFixed(0)} / ${(r.peak / MB).toFixed(0)} / ${(r.after / MB).toFixed(0)} MB`).join(' · ')} | peak growth ${(Math.max(...rss.map((r) => r.peak - r.before)) / MB).toFixed(0)} MB for ${mb.toFixed(0)} MB ingested (goal: flat) |`,
  );
}

// --- 7. pixel safety ------------------------------------------------------------------------------

const CINES = {
  native: 'multiframe/IM00001.implicit_little_endian.dcm',
  jpeg: 'multiframe/IM00001.fragmented_no_bot_jpeg_baseline.50.dcm',
} as const;
const CINE_FRAMES = 8;
/** The demo's rule (config/demo-pixels.yaml): the ACUSON echo's top banner. */
const ACUSON_RULE = { name: 'acuson-us-banner', match: { Modality: 'US', Manufacturer: 'ACUSON' }, rectangles: [{ x: 0, y: 0, width: 320, height: 40 }] };

/** A copy of a Part 10 file with new Study, Series and SOP Instance UIDs (its own study per codec, fresh instances). */
async function withUids(template: Buffer, uids: { study: string; series: string; sop: string }): Promise<Buffer> {
  const ui = (tag: number, uid: string) => ({ tag, vr: 'UI', value: padValue(Buffer.from(uid, 'latin1'), 'UI') });
  const events = async function* (): AsyncGenerator<Part10Event> {
    for await (const ev of new Part10Reader().read([template])) {
      if (ev.type !== 'header') {
        yield ev;
        continue;
      }
      const dataset = [...ev.header.dataset];
      setElement(dataset, ui(TAG.StudyInstanceUID, uids.study));
      setElement(dataset, ui(TAG.SeriesInstanceUID, uids.series));
      setElement(dataset, ui(TAG.SOPInstanceUID, uids.sop));
      const meta = ev.header.meta ? [...ev.header.meta] : undefined;
      if (meta) setElement(meta, ui(TAG.MediaStorageSOPInstanceUID, uids.sop));
      yield { type: 'header', header: { ...ev.header, dataset, meta } };
    }
  };
  return collect(writePart10(events()));
}

const uid = () => `2.25.${BigInt(`0x${randomBytes(15).toString('hex')}`)}`;

/**
 * (a) and (b): two gateway processes over one Orthanc, the same keys and secret (so the same pseudonyms),
 * requests interleaved round by round so that noise falls on both alike.
 */
async function pixelSafety(orthanc: OrthancProcess, keys: TestKeys, copies: number): Promise<void> {
  const cineStudies: Record<keyof typeof CINES, string> = { native: uid(), jpeg: uid() };
  for (const [codec, rel] of Object.entries(CINES) as [keyof typeof CINES, string][]) {
    const template = readFileSync(join(samplesDir(), rel));
    const series = uid();
    const files: { name: string; bytes: Buffer }[] = [];
    for (let i = 0; i < copies; i++) files.push({ name: `${codec}-${i}`, bytes: await withUids(template, { study: cineStudies[codec], series, sop: uid() }) });
    const { refused } = await loadIntoOrthanc(orthanc.httpUrl, files);
    if (refused.length > 0) throw new Error(`Orthanc refused ${refused.length} ${codec} cine copies`);
  }
  const researcher = (pixels: Record<string, unknown>) => ({
    productPixelDefaults: true,
    deid: { profiles: { researcher: { options: ['retainLongitudinalTemporalModifiedDates'], pixels } } },
  });
  const on = await spawnGateway(orthanc.dicomWebUrl, keys, researcher({ rules: [ACUSON_RULE] }));
  const off = await spawnGateway(orthanc.dicomWebUrl, keys, researcher({ enabled: false }));
  try {
    const c = { on: await clientsFor(keys, on.base), off: await clientsFor(keys, off.base) };
    // The pseudonyms are the same on both (same secret, same project): found once, through the gateway without the policy.
    const ct = (await pseudonymOf(c.off, 'studies', STUDY.main)).study;

    // (a) The CT study: the policy's verdict per instance is all it adds (kept, byte-identical).
    const ctRates: Record<'on' | 'off', number[]> = { on: [], off: [] };
    for (let r = -1; r < Math.max(ROUNDS, 5); r++) {
      for (const who of (r % 2 === 0 ? ['on', 'off'] : ['off', 'on']) as ('on' | 'off')[]) {
        let bytes = 0;
        const t = await seconds(async () => {
          bytes = await drain(`${c[who].base}/studies/${ct}`, { ...ACCEPT, ...c[who].researcher });
        });
        if (r >= 0) ctRates[who].push(bytes / MB / t); // round -1 warms both up
      }
    }
    // Each round's two retrievals are back to back (order alternating): the median of their ratios is the
    // figure, steadier than a ratio of medians on a machine other work shares.
    const paired = ctRates.on.map((on, i) => on / (ctRates.off[i] as number));
    const ratio = median(paired);
    results['pixels-ct-retrieval'] = { rates: ctRates, pairedOnOverOff: paired, onOverOff: ratio, medianOverMedian: median(ctRates.on) / median(ctRates.off) };
    rows.push(
      `| WADO-RS CT study (no rule matches), researcher MB/s: pixel policy on / \`enabled: false\` (${ctRates.on.length} paired rounds) | ${median(ctRates.on).toFixed(0)} / ${median(ctRates.off).toFixed(0)} | on/off **${ratio.toFixed(3)}** (median of paired rounds; goal ≥ 0.95) |`,
    );

    // (b) The cine: redacted on the fly (policy on) against kept as stored (policy off), per codec.
    const cineStudy = await cineTargets(c.off, copies);
    for (const codec of ['native', 'jpeg'] as const) {
      const study = cineStudy[codec];
      const times: Record<'on' | 'off', number[]> = { on: [], off: [] };
      const sizes: Record<'on' | 'off', number> = { on: 0, off: 0 };
      for (let r = -1; r < ROUNDS; r++) {
        for (const who of (r % 2 === 0 ? ['on', 'off'] : ['off', 'on']) as ('on' | 'off')[]) {
          const t = await seconds(async () => {
            sizes[who] = await drain(`${c[who].base}/studies/${study}`, { ...ACCEPT, ...c[who].researcher });
          });
          if (r >= 0) times[who].push(t);
        }
      }
      const frames = copies * CINE_FRAMES;
      const on = median(times.on);
      const offT = median(times.off);
      results[`pixels-cine-${codec}`] = { copies, frames, seconds: times, bytes: sizes, msPerFrame: { on: (on * 1000) / frames, off: (offT * 1000) / frames } };
      rows.push(
        `| US cine ${codec === 'native' ? 'native (Implicit VR LE)' : 'JPEG Baseline'}, ${copies} × ${CINE_FRAMES} frames, researcher: redacted on the fly / kept (policy off): MB/s · ms per frame | ${(sizes.on / MB / on).toFixed(0)} / ${(sizes.off / MB / offT).toFixed(0)} MB/s · ${((on * 1000) / frames).toFixed(2)} / ${((offT * 1000) / frames).toFixed(2)} ms | redacted/kept time **${(on / offT).toFixed(2)}×**${codec === 'jpeg' ? ' (decoded, blanked, sent native: MB/s of the native output)' : ''} |`,
      );
    }
  } finally {
    await on.stop();
    await off.stop();
  }
}

/** The researcher's pseudonymous StudyInstanceUID of each cine study, told apart by their Photometric Interpretation. */
async function cineTargets(c: Clients, copies: number): Promise<Record<keyof typeof CINES, string>> {
  type Json = Record<string, { Value?: unknown[] }>[];
  const get = async (path: string) => (await (await fetch(`${c.base}${path}`, { headers: { accept: 'application/dicom+json', ...c.researcher } })).json()) as Json;
  const out: Partial<Record<keyof typeof CINES, string>> = {};
  for (const s of await get('/studies?ModalitiesInStudy=US&includefield=00201208&limit=1000')) {
    const study = s['0020000D']?.Value?.[0];
    if (typeof study !== 'string' || s['00201208']?.Value?.[0] !== copies) continue;
    // Stored as JPEG Baseline, the copies say YBR_FULL; the native ones RGB (seen through the gateway without the policy).
    const pi = (await get(`/studies/${study}/metadata`))[0]?.['00280004']?.Value?.[0];
    if (pi === 'YBR_FULL') out.jpeg = study;
    else if (pi === 'RGB') out.native = study;
  }
  if (!out.native || !out.jpeg) throw new Error('the cine studies were not found through the gateway');
  return out as Record<keyof typeof CINES, string>;
}

/**
 * (c) Per codec, the cost per frame of what a redacted encapsulated frame costs beyond passing it on
 * (bench/pixel-codecs.ts: decode with the codec library, then blank; frames are written native, never
 * re-encoded), medians over `rounds`; and native blanking's MB/s against a plain copy of the same chunks.
 */
async function pixelCodecs(): Promise<void> {
  const measured = await benchPixelCodecs(Math.max(ROUNDS, 3));
  results['pixel-codecs'] = measured;
  for (const r of measured) {
    rows.push(
      `| redact one encapsulated frame, ${r.codec} (${r.sample.split('/').pop()}, ${r.frames} frame${r.frames > 1 ? 's' : ''} of ${(r.frameBytes / 1024).toFixed(0)} KiB): ms decode · blank | ${r.decodeMsMedian.toFixed(2)} · ${r.blankMsMedian.toFixed(3)} | blank/decode **${(r.blankMsMedian / r.decodeMsMedian).toFixed(3)}** |`,
    );
  }
  const blank = benchNativeBlanking(256).mbPerSecond;
  const chunk = Buffer.alloc(64 * 1024, 7);
  const target = Buffer.alloc(64 * 1024);
  const total = 256 * MB;
  const t = await seconds(async () => {
    for (let sent = 0; sent < total; sent += chunk.length) chunk.copy(target);
  });
  const copy = total / 1e6 / t;
  results['pixel-native-blanking'] = { blankMBps: blank, copyMBps: copy };
  rows.push(`| native blanking as it streams (512 × 512 16-bit cine, 64 KiB chunks): MB/s blank · plain copy | ${blank.toFixed(0)} · ${copy.toFixed(0)} | blank/copy **${(blank / copy).toFixed(2)}** |`);
}

// --- run ------------------------------------------------------------------------------------------

const instances = Math.max(1, Math.round((Number(values['study-mb']) * MB) / CT_INSTANCE_BYTES));
const factor = Number(values['memory-factor']);
const orthanc = await startOrthanc();
const keys = await makeKeys();
try {
  instancesOf[STUDY.main] = instances;
  instancesOf[STUDY.latency] = 20;
  // The synthetic CT studies, for the sections that read them.
  if (SECTIONS.some((s) => runs(s) && s !== 'ocr' && s !== 'qido-scale' && s !== 'dimse')) {
    await load(orthanc, STUDY.main, instances);
    await load(orthanc, STUDY.latency, 20);
  }
  if (runs('retrieval') || runs('latency') || runs('anonymize')) {
    let gateway = await spawnGateway(orthanc.dicomWebUrl, keys, PRODUCT);
    try {
      let c = await clientsFor(keys, gateway.base);
      const gw: GatewayHandle = {
        c,
        pid: gateway.pid,
        crashes: 0,
        async revive() {
          if (alive(gw.pid)) return false;
          gw.crashes++;
          await gateway.stop();
          gateway = await spawnGateway(orthanc.dicomWebUrl, keys, PRODUCT);
          c = gw.c = await clientsFor(keys, gateway.base);
          gw.pid = gateway.pid;
          return true;
        },
      };
      if (runs('retrieval')) {
        const nginx = await startNginx(orthanc.httpUrl).catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
        if (nginx instanceof Error) process.stderr.write(`bench: nginx anchor not measured: ${nginx.message}\n`);
        try {
          await retrieval(orthanc, gw, instances, nginx);
        } finally {
          if (!(nginx instanceof Error)) await nginx.stop();
        }
      }
      if (runs('latency')) await latency(orthanc, c, gw.pid);
      if (runs('anonymize')) await orthancAnonymize(orthanc, c);
    } finally {
      await gateway.stop();
    }
  }
  if (runs('projects')) await projectOverhead(orthanc, keys);
  if (runs('dimse')) await dimseIngest(keys, Number(values['dimse-instances']), Number(values['dimse-rounds']));
  if (runs('pixels')) {
    await pixelSafety(orthanc, keys, Number(values['cine-copies']));
    await pixelCodecs();
  }
  if (runs('ocr')) {
    const options = { seed: Number(values['ocr-seed']), frames: Number(values['ocr-frames']), textFree: Math.max(4, Math.round(Number(values['ocr-frames']) / 5)) };
    const measured = await benchOcr(options);
    results['ocr'] = { ...options, measured };
    rows.push(...ocrRows(measured, options));
  }
  if (runs('qido-scale')) {
    const sizes = values['qido-scale'].split(',').map(Number);
    const measured = await benchQidoScale(sizes, 7, Number(values['qido-paging-max']));
    results['qido-scale'] = measured;
    rows.push(...qidoScaleRows(measured));
  }
  if (factor > 0 && runs('memory')) {
    instancesOf[STUDY.large] = instances * factor;
    await load(orthanc, STUDY.large, instances * factor);
    await memory(orthanc, keys, factor);
  }
} finally {
  await orthanc.stop();
  rmSync(keys.dir, { recursive: true, force: true });
}

const table = ['| measurement | medians | ratio |', '|---|---|---|', ...rows].join('\n');
process.stdout.write(`\n${table}\n`);
mkdirSync(RESULTS, { recursive: true });
writeFileSync(join(RESULTS, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`), JSON.stringify({ table, ...results }, null, 2));

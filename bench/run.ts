// `npm run bench` (after bench/engine.ts): gateway figures measured side by side in one run, reported as ratios and medians (these
// machines are noisy). Writes a markdown table to stdout and JSON to bench/results/.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadIntoOrthanc, startOrthanc } from '../src/demo/orthanc-process.ts';
import { makeKeys, memoryOf, signToken, spawnGateway } from '../test/helpers/gateway.ts';
import { syntheticCtStudy, syntheticStudyUid } from './synthetic.ts';

const { values } = parseArgs({
  options: {
    'study-mb': { type: 'string', default: '1024' },
    rounds: { type: 'string', default: '3' },
  },
});
const MB = 1024 * 1024;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const results: Record<string, unknown> = {};
const rows: string[] = [];

async function timed<T>(fn: () => Promise<T>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function drain(url: string, headers: Record<string, string>): Promise<number> {
  const res = await fetch(url, { headers });
  if (res.status !== 200) throw new Error(`${url}: ${res.status}`);
  let n = 0;
  for await (const chunk of res.body as ReadableStream<Uint8Array>) n += chunk.byteLength;
  return n;
}

/** WADO-RS study retrieval: Orthanc direct, gateway as clinician, gateway as researcher. */
async function retrieval(): Promise<void> {
  const instances = Math.max(1, Math.round((Number(values['study-mb']) * MB) / (530 * 1024)));
  const orthanc = await startOrthanc();
  const keys = await makeKeys();
  try {
    await loadIntoOrthanc(orthanc.httpUrl, (function* () {
      let i = 0;
      for (const bytes of syntheticCtStudy(instances, 2)) yield { name: `ct-${i++}`, bytes };
    })());
    const gateway = await spawnGateway(orthanc.dicomWebUrl, keys);
    const clinician = { authorization: `Bearer ${await signToken(keys, { roles: ['clinician'] })}` };
    const researcher = { authorization: `Bearer ${await signToken(keys, { roles: ['researcher'] })}` };
    const accept = { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' };
    // The researcher navigates by pseudonym: find it by QIDO, as a client would.
    const studies = (await (await fetch(`${gateway.base}/studies?ModalitiesInStudy=CT&includefield=0020000D`, { headers: researcher })).json()) as Record<string, { Value: string[] }>[];
    const original = syntheticStudyUid(2);
    const pseudonym = studies.map((s) => s['0020000D']?.Value[0]).find((uid) => uid !== undefined) as string;
    const rssBefore = (await memoryOf(gateway.pid)).rss;
    const aborted: Record<string, number> = {};
    for (const concurrency of [1, 8]) {
      const rates: Record<string, number[]> = { direct: [], clinician: [], researcher: [] };
      for (let r = 0; r < Number(values.rounds); r++) {
        for (const [name, url, headers] of [
          ['direct', `${orthanc.dicomWebUrl}/studies/${original}`, accept],
          ['clinician', `${gateway.base}/studies/${original}`, { ...accept, ...clinician }],
          ['researcher', `${gateway.base}/studies/${pseudonym}`, { ...accept, ...researcher }],
        ] as const) {
          let bytes = 0;
          let failed = 0;
          const s = await timed(async () => {
            const sizes = await Promise.all(
              Array.from({ length: concurrency }, () =>
                drain(url, headers).catch((error: unknown) => {
                  // Counted and reported, not hidden: an aborted response is a finding.
                  failed++;
                  process.stderr.write(`${name} (${concurrency}): ${String((error as { cause?: unknown }).cause ?? error)}\n`);
                  return 0;
                }),
              ),
            );
            bytes = sizes.reduce((a, b) => a + b, 0);
          });
          aborted[name] = (aborted[name] ?? 0) + failed;
          if (failed === 0) rates[name]?.push(bytes / MB / s);
        }
      }
      const m = (k: string) => median(rates[k] as number[]);
      results[`retrieval-${concurrency}`] = { instances, rates, researcherOverClinician: m('researcher') / m('clinician'), clinicianOverDirect: m('clinician') / m('direct') };
      rows.push(`| WADO-RS study (${instances} CT, ${concurrency} client${concurrency > 1 ? 's' : ''}): MB/s direct / clinician / researcher | ${m('direct').toFixed(0)} / ${m('clinician').toFixed(0)} / ${m('researcher').toFixed(0)} | researcher/clinician ${(m('researcher') / m('clinician')).toFixed(2)}, clinician/direct ${(m('clinician') / m('direct')).toFixed(2)} |`);
      // VmHWM only grows, so the peak read after the 1-client rounds is that of single streams.
      const peak = (await memoryOf(gateway.pid)).peak;
      results[`memory-${concurrency}`] = { rssBeforeMB: rssBefore / MB, peakMB: peak / MB };
      rows.push(`| gateway peak RSS, up to ${concurrency} concurrent stream${concurrency > 1 ? 's' : ''} of the study | ${(rssBefore / MB).toFixed(0)} MB before, ${(peak / MB).toFixed(0)} MB peak | growth ${((peak - rssBefore) / MB).toFixed(0)} MB |`);
    }
    results['abortedResponses'] = aborted;
    if (Object.values(aborted).some((n) => n > 0)) rows.push(`| aborted responses (see stderr) | ${JSON.stringify(aborted)} | rounds with one are left out |`);
    await gateway.stop();
  } finally {
    await orthanc.stop();
    rmSync(keys.dir, { recursive: true, force: true });
  }
}

await retrieval();
const table = ['| measurement | medians | ratio |', '|---|---|---|', ...rows].join('\n');
process.stdout.write(`\n${table}\n`);
const dir = resolve(import.meta.dirname, 'results');
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`), JSON.stringify(results, null, 2));


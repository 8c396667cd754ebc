// The gateway's own CPU per researcher request, this checkout against another build, side by side.
//   node --import tsx bench/ab-gateway.ts --other /path/to/other/checkout [--requests 280]
// The other checkout must be built (`npm run build`) and have node_modules. Both gateways run against
// one Orthanc holding the bench's 20-instance CT series, with the product pixel defaults; batches of
// requests alternate between them (order flipped each round), one warm-up round first. CPU is utime +
// stime of the gateway process (all its threads) from /proc, per request; medians over 7 rounds.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadIntoOrthanc, startOrthanc } from '../src/demo/orthanc-process.ts';
import * as THIS from '../test/helpers/gateway.ts';
import { cpuSeconds } from './nginx.ts';
import { syntheticCtStudy } from './synthetic.ts';
import { median } from './stats.ts';

const { values } = parseArgs({ options: { other: { type: 'string' }, requests: { type: 'string', default: '280' } } });
if (values.other === undefined) throw new Error('--other: the checkout to compare with');
const OTHER = (await import(resolve(values.other, 'test/helpers/gateway.ts'))) as typeof THIS;
const ROUNDS = 7;
const perBatch = Math.max(1, Math.round(Number(values.requests) / ROUNDS));

type Json = Record<string, { Value?: unknown[] }>[];
interface Target {
  name: string;
  pid: number;
  headers: Record<string, string>;
  urls: Record<string, string>;
  stop(): Promise<void>;
}

const orthanc = await startOrthanc();
const targets: Target[] = [];
try {
  await loadIntoOrthanc(
    orthanc.httpUrl,
    (function* () {
      let i = 0;
      for (const bytes of syntheticCtStudy(20, 3)) yield { name: `ct-${i++}`, bytes };
    })(),
  );
  for (const [name, helpers] of [['other', OTHER], ['this', THIS]] as const) {
    const keys = await helpers.makeKeys();
    const gateway = await helpers.spawnGateway(orthanc.dicomWebUrl, keys, { productPixelDefaults: true });
    targets.push({ name, pid: gateway.pid, headers: {}, urls: {}, stop: () => gateway.stop() });
    const token = await helpers.signToken(keys, { roles: ['researcher'], project: helpers.TEST_PROJECT });
    const headers = { authorization: `Bearer ${token}`, accept: 'application/dicom+json' };
    const get = async (path: string) => (await (await fetch(`${gateway.base}${path}`, { headers })).json()) as Json;
    const study = (await get('/studies'))[0]?.['0020000D']?.Value?.[0];
    const series = (await get(`/studies/${study}/series`))[0]?.['0020000E']?.Value?.[0];
    if (typeof study !== 'string' || typeof series !== 'string') throw new Error(`${name}: the series was not found`);
    const target = targets[targets.length - 1] as Target;
    target.headers = headers;
    target.urls = {
      'series metadata': `${gateway.base}/studies/${study}/series/${series}/metadata`,
      'QIDO instances of the series': `${gateway.base}/studies/${study}/series/${series}/instances?includefield=all`,
    };
  }
  for (const kind of Object.keys(targets[0]?.urls ?? {})) {
    const cpu: Record<string, number[]> = { other: [], this: [] };
    for (let round = -1; round < ROUNDS; round++) {
      for (const t of round % 2 === 0 ? targets : [...targets].reverse()) {
        const before = cpuSeconds([t.pid]);
        for (let i = 0; i < perBatch; i++) {
          const res = await fetch(t.urls[kind] as string, { headers: t.headers });
          if (res.status !== 200) throw new Error(`${t.name} ${kind}: ${res.status}`);
          await res.arrayBuffer();
        }
        if (round >= 0) cpu[t.name]?.push(((cpuSeconds([t.pid]) - before) * 1000) / perBatch);
      }
    }
    const [other, mine] = [median(cpu['other'] ?? []), median(cpu['this'] ?? [])];
    process.stdout.write(`${kind}: gateway CPU ms per researcher request, other ${other.toFixed(1)} · this ${mine.toFixed(1)} (this/other ${(mine / other).toFixed(2)})\n`);
  }
} finally {
  for (const t of targets) await t.stop();
  await orthanc.stop();
}

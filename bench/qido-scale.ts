// Issue 20, goal 5: QIDO-RS at PACS scale. For each size N (`--qido-scale 4000,20000`): a fresh Orthanc
// loaded with N tiny single-instance studies (one patient each), and two researcher gateways on it side by
// side, one paging through the PACS for what it matches itself (the study index off) and one with the
// de-identified study index (dicomweb/study-index.ts) kept current from Orthanc's change feed. Each query
// is timed against the closest query Orthanc itself can run (on the originals), medians of `rounds`
// interleaved requests. The paging gateway is measured only up to `--qido-paging-max` studies (past
// it one query takes many seconds). The index's full scan is timed too. The pixel policy is off here:
// the instances have no pixels, and the census would be a cost of its own (the retrieval sections
// measure it).
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { loadIntoOrthanc, startOrthanc } from '../src/demo/orthanc-process.ts';
import { keyedUid } from '../src/deid/pseudonym.ts';
import { TAG } from '../src/dicom/tags.ts';
import { projectScope } from '../src/projects/project.ts';
import { makeKeys, scopeKey, signToken, spawnGateway, TEST_PROJECT } from '../test/helpers/gateway.ts';
import { syntheticInstance } from '../test/helpers/synthetic-instance.ts';
import { median } from './stats.ts';

type Json = Array<Record<string, { Value?: unknown[] }>>;

export interface QidoScaleRow {
  readonly studies: number;
  readonly query: string;
  readonly directMs: number;
  readonly pagingMs: number | undefined;
  readonly indexMs: number;
  readonly results: { direct: number; paging: number | undefined; index: number };
}

export interface QidoScaleResult {
  readonly studies: number;
  readonly loadSeconds: number;
  readonly indexBuildSeconds: number;
  readonly rows: QidoScaleRow[];
}

const SYLLABLES = ['AN', 'BER', 'CO', 'DA', 'EL', 'FIN', 'GOR', 'HAL', 'IN', 'JO', 'KAR', 'LEN', 'MOR', 'NIL', 'OS', 'PER', 'QUI', 'RO', 'SAN', 'TOR', 'UL', 'VAN', 'WES', 'YOR'];
const pick = <T>(xs: readonly T[], n: number) => xs[n % xs.length] as T;

/** One tiny study (one SC instance without pixels) of its own patient: name, ID, date and description vary. */
function tinyStudy(n: number): Buffer {
  const study = `2.25.${BigInt(`0x${randomBytes(15).toString('hex')}`)}`;
  const surname = `${pick(SYLLABLES, n)}${pick(SYLLABLES, Math.floor(n / 24))}${pick(SYLLABLES, Math.floor(n / 576))}`;
  const day = new Date(Date.UTC(2000, 0, 1) + (n * 7_919 % 7_300) * 86_400_000).toISOString().slice(0, 10).replace(/-/g, '');
  return syntheticInstance(`${study}.1.1`, [
    [0x00080020, 'DA', day],
    [0x00080060, 'CS', n % 3 === 0 ? 'CT' : n % 3 === 1 ? 'MR' : 'OT'],
    [0x00081030, 'LO', `${n % 3 === 0 ? 'CT' : 'MR'} STUDY ${n}`],
    [TAG.PatientName, 'PN', `${surname}^P${n}`],
    [TAG.PatientID, 'LO', `SCALE-${n}`],
    [TAG.StudyInstanceUID, 'UI', study],
    [TAG.SeriesInstanceUID, 'UI', `${study}.1`],
  ]);
}

/** Six loaders side by side, drawing study numbers from one counter. */
async function loadTiny(httpUrl: string, count: number): Promise<void> {
  let next = 0;
  const files = function* () {
    for (let n = next++; n < count; n = next++) yield { name: `tiny-${n}`, bytes: tinyStudy(n) };
  };
  const loaded = await Promise.all(Array.from({ length: 6 }, () => loadIntoOrthanc(httpUrl, files())));
  const refused = loaded.reduce((n, l) => n + l.refused.length, 0);
  if (refused > 0) throw new Error(`Orthanc refused ${refused} tiny studies`);
}

async function timed(url: string, headers: Record<string, string>): Promise<{ ms: number; count: number }> {
  const t0 = process.hrtime.bigint();
  const res = await fetch(url, { headers: { accept: 'application/dicom+json', ...headers } });
  const text = await res.text();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (res.status !== 200 && res.status !== 204) throw new Error(`${res.status} from a QIDO query: ${text.slice(0, 200)}`);
  return { ms, count: text === '' ? 0 : (JSON.parse(text) as unknown[]).length };
}


export async function benchQidoScale(sizes: readonly number[], rounds: number, pagingMax: number): Promise<QidoScaleResult[]> {
  const out: QidoScaleResult[] = [];
  for (const size of sizes) {
    const orthanc = await startOrthanc();
    const keys = await makeKeys();
    try {
      const t0 = Date.now();
      await loadTiny(orthanc.httpUrl, size);
      const loadSeconds = (Date.now() - t0) / 1000;
      const indexed = await spawnGateway(orthanc.dicomWebUrl, keys, { dataDir: join(keys.dir, 'indexed'), qido: { index: { enabled: true, orthancUrl: orthanc.httpUrl } } });
      const paging = size <= pagingMax ? await spawnGateway(orthanc.dicomWebUrl, keys, { dataDir: join(keys.dir, 'paging') }) : undefined;
      try {
        // Test tokens live minutes: one per request.
        const researcher = async () => ({ authorization: `Bearer ${await signToken(keys, { roles: ['researcher'], project: TEST_PROJECT })}` });
        // The index: built by the first search that needs it, in the background.
        const b0 = Date.now();
        await timed(`${indexed.base}/studies?PatientName=ANON^A*`, await researcher());
        const db = join(keys.dir, 'indexed', 'pseudonyms.sqlite');
        for (;;) {
          if (existsSync(db)) {
            const store = new Database(db, { readonly: true });
            const state = store.prepare('SELECT 1 FROM study_index_state WHERE scope = ?').get(projectScope(TEST_PROJECT));
            store.close();
            if (state) break;
          }
          if (Date.now() - b0 > 1_800_000) throw new Error('the study index was not built in 30 minutes');
          await new Promise((r) => setTimeout(r, 100));
        }
        const indexBuildSeconds = (Date.now() - b0) / 1000;
        process.stderr.write(`qido-scale: ${size} studies loaded in ${loadSeconds.toFixed(0)} s, index built in ${indexBuildSeconds.toFixed(1)} s\n`);
        // A few studies as the PACS holds them and as the researcher sees them (by the keyed pseudonym, known once the index is built).
        const fields = 'includefield=00100010&includefield=00100020&includefield=00080020';
        const originals = (await (await fetch(`${orthanc.dicomWebUrl}/studies?limit=20&${fields}`)).json()) as Json;
        const secret = scopeKey(keys);
        const pseudonyms = originals.map((o) => keyedUid(secret, o['0020000D']?.Value?.[0] as string));
        const seen = (await (await fetch(`${indexed.base}/studies?StudyInstanceUID=${pseudonyms.join(',')}&${fields}`, { headers: await researcher() })).json()) as Json;
        const bySeen = new Map(seen.map((s) => [s['0020000D']?.Value?.[0], s]));
        const pairs = originals.map((o, i) => ({ o, r: bySeen.get(pseudonyms[i]) })).filter((p) => p.r);
        const sample = pairs[7] ?? pairs[0];
        if (!sample?.r) throw new Error('no study of the sample seen by the researcher');
        const v = (d: Json[number], hex: string) => d[hex]?.Value?.[0];
        const nameOf = (d: Json[number]) => (v(d, '00100010') as { Alphabetic: string }).Alphabetic;
        const plus = (date: string, days: number) => new Date(Date.UTC(+date.slice(0, 4), +date.slice(4, 6) - 1, +date.slice(6, 8)) + days * 86_400_000).toISOString().slice(0, 10).replace(/-/g, '');
        const [od, rd] = [v(sample.o, '00080020') as string, v(sample.r, '00080020') as string];
        const queries: Array<[string, string, string]> = [
          ['first page, limit=100', 'limit=100', 'limit=100'],
          ['PatientName prefix (pseudonyms matched by the gateway)', `PatientName=${nameOf(sample.o).slice(0, 3)}*`, `PatientName=${encodeURIComponent(nameOf(sample.r).slice(0, 7))}*`],
          ['StudyDescription=CT* (removed by the profile: 0 results)', 'StudyDescription=CT*', 'StudyDescription=CT*'],
          ['StudyDate, a 30-day range (shifted dates)', `StudyDate=${od}-${plus(od, 30)}`, `StudyDate=${rd}-${plus(rd, 30)}`],
          ['PatientID (mapped back)', `PatientID=${v(sample.o, '00100020') as string}`, `PatientID=${v(sample.r, '00100020') as string}`],
          ['StudyInstanceUID (mapped back)', `StudyInstanceUID=${v(sample.o, '0020000D') as string}`, `StudyInstanceUID=${v(sample.r, '0020000D') as string}`],
        ];
        const rows: QidoScaleRow[] = [];
        for (const [query, direct, mine] of queries) {
          const times = { direct: [] as number[], paging: [] as number[], index: [] as number[] };
          const counts = { direct: 0, paging: undefined as number | undefined, index: 0 };
          for (let round = 0; round < rounds; round++) {
            const d = await timed(`${orthanc.dicomWebUrl}/studies?${direct}`, {});
            times.direct.push(d.ms);
            counts.direct = d.count;
            if (paging) {
              const p = await timed(`${paging.base}/studies?${mine}`, await researcher());
              times.paging.push(p.ms);
              counts.paging = p.count;
            }
            const i = await timed(`${indexed.base}/studies?${mine}`, await researcher());
            times.index.push(i.ms);
            counts.index = i.count;
          }
          if (counts.paging !== undefined && counts.paging !== counts.index) throw new Error(`${query}: the index found ${counts.index}, paging ${counts.paging}`);
          rows.push({ studies: size, query, directMs: median(times.direct), pagingMs: paging ? median(times.paging) : undefined, indexMs: median(times.index), results: counts });
          process.stderr.write(`${qidoScaleRows([{ studies: size, loadSeconds, indexBuildSeconds, rows: rows.slice(-1) }]).slice(1).join('\n')}\n`);
        }
        out.push({ studies: size, loadSeconds, indexBuildSeconds, rows });
      } finally {
        await indexed.stop();
        await paging?.stop();
      }
    } finally {
      await orthanc.stop();
      rmSync(keys.dir, { recursive: true, force: true });
    }
  }
  return out;
}

/** The markdown rows: direct · paging · index ms per query and size, and index / direct (goal ≤ 2 and ≤ 200 ms). */
export function qidoScaleRows(results: readonly QidoScaleResult[]): string[] {
  const rows: string[] = [];
  for (const r of results) {
    rows.push(`| QIDO at ${r.studies} studies: load · study index full scan, s | ${r.loadSeconds.toFixed(0)} · ${r.indexBuildSeconds.toFixed(1)} | |`);
    for (const q of r.rows) {
      const paging = q.pagingMs === undefined ? 'not measured' : q.pagingMs.toFixed(0);
      rows.push(
        `| QIDO at ${r.studies} studies, ${q.query}: ms direct · researcher paging · researcher with the index (results ${q.results.direct} · ${q.results.paging ?? '–'} · ${q.results.index}) | ${q.directMs.toFixed(1)} · ${paging} · ${q.indexMs.toFixed(1)} | index/direct **${(q.indexMs / q.directMs).toFixed(2)}** |`,
      );
    }
  }
  return rows;
}

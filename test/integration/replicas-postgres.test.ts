import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { keyedUid } from '../../src/deid/pseudonym.ts';
import { StoreError } from '../../src/store/errors.ts';
import { openPostgresStore } from '../../src/store/postgres-store.ts';
import type { Mapping } from '../../src/store/pseudonym-store.ts';
import { makeKeys, signToken, spawnGateway, TEST_PROJECT, type TestKeys } from '../helpers/gateway.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.ts';

type Json = Record<string, { Value?: unknown[] }>;
/** The scope the hand-made mappings below are saved in. */
const S = 'project:hand-made';
const uidOf = (d: Json | undefined, tag: string) => d?.[tag]?.Value?.[0] as string | undefined;

describe('two gateway replicas share one PostgreSQL store', () => {
  let db: TestPostgres;
  let orthanc: OrthancProcess;
  let keys: TestKeys;
  /** The same keys and secret, another dir: spawnGateway writes its config file into `dir`. */
  let keys2: TestKeys;
  let replicas: Array<Awaited<ReturnType<typeof spawnGateway>>> = [];
  let researcher: string;
  let steward: string;

  before(async () => {
    [db, { orthanc }, keys] = await Promise.all([startTestPostgres(), startTestOrthanc({ loadSamples: true }), makeKeys()]);
    keys2 = { ...keys, dir: await mkdtemp(join(tmpdir(), 'deid-replica-')) };
    // spawnGateway writes a fixed config; the store is chosen through the environment overrides it inherits.
    process.env['DEID_GATEWAY__STORE__TYPE'] = 'postgres';
    process.env['DEID_GATEWAY__STORE__URL'] = db.url;
    try {
      // Started at once: schema creation under the advisory lock must not race.
      replicas = await Promise.all([spawnGateway(orthanc.dicomWebUrl, keys), spawnGateway(orthanc.dicomWebUrl, keys2)]);
    } finally {
      delete process.env['DEID_GATEWAY__STORE__TYPE'];
      delete process.env['DEID_GATEWAY__STORE__URL'];
    }
    researcher = await signToken(keys, { roles: ['researcher'], sub: 'researcher-r', project: TEST_PROJECT });
    steward = await signToken(keys, { roles: ['steward'], sub: 'steward-s' });
  });
  after(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await orthanc?.stop();
    await db?.stop();
    for (const k of [keys, keys2]) if (k) await rm(k.dir, { recursive: true, force: true });
  });

  const get = async (replica: number, path: string, accept = 'application/dicom+json') => {
    const res = await fetch(`${replicas[replica]?.base}${path}`, { headers: { authorization: `Bearer ${researcher}`, accept } });
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(res.status, 200, `${path} on replica ${replica}: ${res.status} ${body.subarray(0, 200).toString()}`);
    return body;
  };

  test('driven concurrently over the same studies, both replicas show the same pseudonyms and the store holds one mapping per original', async () => {
    let requests = 0;
    const json = async (replica: number, path: string) => {
      requests++;
      // RetrieveURL names the replica that answered: the one thing allowed to differ.
      return JSON.parse((await get(replica, path)).toString().replaceAll(replicas[replica]?.url as string, 'GATEWAY')) as Json[];
    };
    // First contact on both at once: every mapping is raced.
    const [a, b] = await Promise.all([json(0, '/studies?includefield=all'), json(1, '/studies?includefield=all')]);
    assert.ok(a.length >= 20, `${a.length} studies`);
    assert.deepEqual(b, a, 'the same QIDO answer, pseudonyms and shifted dates included, from both replicas');
    const studies = a.map((s) => uidOf(s, '0020000D') as string);
    assert.ok(studies.every((uid) => /^2\.25\.\d+$/.test(uid)));

    // Interleaved: each study's series search, metadata and instance list on one replica, the same on the
    // other, then every instance retrieved from the replica that did not list it, eight requests in flight.
    const seen = new Set<string>(studies);
    const tasks: Array<() => Promise<void>> = [];
    for (const [i, study] of studies.entries()) {
      tasks.push(async () => {
        const [metaA, metaB] = await Promise.all([json(i % 2, `/studies/${study}/metadata`), json((i + 1) % 2, `/studies/${study}/metadata`)]);
        assert.deepEqual(metaB, metaA, `metadata of study ${i} differs between replicas`);
        const [seriesA, seriesB] = await Promise.all([json((i + 1) % 2, `/studies/${study}/series`), json(i % 2, `/studies/${study}/series`)]);
        assert.deepEqual(seriesB, seriesA);
        for (const m of metaA) {
          const series = uidOf(m, '0020000E') as string;
          const sop = uidOf(m, '00080018') as string;
          seen.add(series).add(sop);
          tasks.push(async () => {
            requests += 2;
            const [x, y] = await Promise.all([
              get(i % 2, `/studies/${study}/series/${series}/instances/${sop}`, 'multipart/related; type="application/dicom"; transfer-syntax=*'),
              get((i + 1) % 2, `/studies/${study}/series/${series}/instances/${sop}`, 'multipart/related; type="application/dicom"; transfer-syntax=*'),
            ]);
            assert.ok(x.length > 132 && y.length > 132);
            assert.ok(x.includes(Buffer.from(sop)) && y.includes(Buffer.from(sop)), 'the instance carries its pseudonymous SOP Instance UID');
          });
        }
      });
    }
    const workers = Array.from({ length: 8 }, async () => {
      for (let task = tasks.shift(); task; task = tasks.shift()) await task();
    });
    await Promise.all(workers);
    assert.ok(requests > 100, `${requests} requests`);

    // Nothing lost: every pseudonymous UID any response showed maps back in the shared store.
    const uids = [...seen];
    const found = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM scoped_pseudonym WHERE kind = 'uid' AND pseudonym = ANY($1)`, [uids]);
    assert.equal(found.rows[0]?.n, uids.length);
    // Nothing doubled: one mapping per (kind, pseudonym) and one pseudonym per original.
    const perPseudonym = await db.query(`SELECT kind, pseudonym, count(*) FROM scoped_pseudonym GROUP BY scope, kind, pseudonym HAVING count(*) > 1`);
    assert.deepEqual(perPseudonym.rows, []);
    const perOriginal = await db.query(`SELECT kind, original, count(*) FROM scoped_pseudonym GROUP BY scope, kind, original HAVING count(*) > 1`);
    assert.deepEqual(perOriginal.rows, []);
    const total = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM scoped_pseudonym');
    assert.ok((total.rows[0]?.n ?? 0) >= uids.length);

    // Every one of those requests left one audit record, whichever replica served it.
    const deadline = Date.now() + 5_000;
    let audited = 0;
    while (Date.now() < deadline) {
      const r = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_event WHERE user_id = 'researcher-r' AND role_id = 'researcher'`);
      audited = r.rows[0]?.n ?? 0;
      if (audited >= requests) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(audited, requests);
  });

  test('a pseudonym issued by one replica is re-identified by the other, and the shared audit table refuses UPDATE, DELETE and TRUNCATE', async () => {
    const [study] = JSON.parse((await get(0, '/studies?limit=1')).toString()) as Json[];
    const pseudonym = uidOf(study, '0020000D') as string;
    const res = await fetch(`${replicas[1]?.url}/reidentify`, {
      method: 'POST',
      headers: { authorization: `Bearer ${steward}`, 'content-type': 'application/json' },
      body: JSON.stringify({ project: TEST_PROJECT, kind: 'uid', pseudonym }),
    });
    assert.equal(res.status, 200);
    const { original } = (await res.json()) as { original: string };
    const direct = await fetch(`${orthanc.dicomWebUrl}/studies?StudyInstanceUID=${original}`);
    assert.equal(((await direct.json()) as unknown[]).length, 1, 'the original is a study Orthanc holds');

    const before = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_event');
    assert.ok((before.rows[0]?.n ?? 0) > 0);
    for (const sql of [`UPDATE audit_event SET user_id = 'someone-else'`, 'DELETE FROM audit_event', 'TRUNCATE audit_event']) {
      await assert.rejects(db.query(sql), /append-only/, sql);
    }
    const after = await db.query<{ n: number; changed: number }>(
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE user_id = 'someone-else')::int AS changed FROM audit_event`,
    );
    assert.ok((after.rows[0]?.n ?? 0) >= (before.rows[0]?.n ?? 0));
    assert.equal(after.rows[0]?.changed, 0);
  });

  test('many clients saving overlapping batches at once lose nothing, duplicate nothing and never deadlock; a colliding pseudonym is refused exactly once', async () => {
    const clients = await Promise.all(Array.from({ length: 12 }, () => openPostgresStore({ url: db.url, poolMax: 3 })));
    try {
      // The earlier tests saved real keyed pseudonyms in this store. A keyed UID is `2.25.<n>`, one arc
      // after 2.25 (PS3.5 B.2; keyedUid in src/deid/pseudonym.ts), so the hand-made ones below take a
      // further arc (`2.25.900.<i>`): no keyed UID equals one or matches LIKE '2.25.900.%'.
      const keysN = 400;
      const all: Mapping[] = Array.from({ length: keysN }, (_, i) => ({ kind: 'uid', pseudonym: `2.25.900.${i}`, original: `1.2.900.${i}` }));
      // What made the count flaky: a real keyed UID whose digits happen to begin with 900 (about 1 in 3,400 do).
      const secret = Buffer.from('a-secret-for-this-test');
      let n = 0;
      while (!keyedUid(secret, `1.2.3.${n}`).startsWith('2.25.900')) n++;
      await clients[0]?.save(S, [{ kind: 'uid', pseudonym: keyedUid(secret, `1.2.3.${n}`), original: `1.2.3.${n}` }]);
      // Each client saves overlapping slices, half of them in reverse order (the order that deadlocks unsorted inserts).
      const saves = clients.flatMap((store, c) =>
        Array.from({ length: 6 }, (_, j) => {
          const start = ((c * 37 + j * 53) % keysN) - 50;
          const slice = all.slice(Math.max(0, start), Math.max(0, start) + 120);
          return store.save(S, (c + j) % 2 ? slice.reverse() : slice);
        }),
      );
      saves.push(...clients.map((store) => store.save(S, all)));
      await Promise.all(saves);
      const held = await db.query<{ pseudonym: string; original: string }>(`SELECT pseudonym, original FROM scoped_pseudonym WHERE pseudonym LIKE '2.25.900.%'`);
      assert.equal(held.rows.length, keysN);
      for (const row of held.rows) assert.equal(row.original, `1.2.900.${row.pseudonym.slice('2.25.900.'.length)}`);

      // Fresh keys each round, the same batch forwards and backwards from every client at the same moment:
      // inserted unsorted, such batches wait on each other's rows and deadlock.
      for (let round = 0; round < 15; round++) {
        const batch: Mapping[] = Array.from({ length: 150 }, (_, i) => ({ kind: 'patientId', pseudonym: `R${round}-${i}`, original: `P${round}-${i}` }));
        await Promise.all(clients.map((store, c) => store.save(S, c % 2 ? [...batch].reverse() : batch)));
      }
      const rounds = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM scoped_pseudonym WHERE kind = 'patientId' AND pseudonym LIKE 'R%-%'`);
      assert.equal(rounds.rows[0]?.n, 15 * 150);

      // The same pseudonym for two originals, from two clients at once, ten times: one wins, one is refused.
      for (let round = 0; round < 10; round++) {
        const p = `2.25.777.${round}`;
        const outcomes = await Promise.allSettled(
          clients.slice(0, 2).map((store, i) => store.save(S, [{ kind: 'uid', pseudonym: p, original: `1.2.777.${round}.${i}` }])),
        );
        const refused = outcomes.filter((o) => o.status === 'rejected');
        assert.equal(refused.length, 1, `round ${round}`);
        const reason = (refused[0] as PromiseRejectedResult).reason as unknown;
        assert.ok(reason instanceof StoreError && reason.code === 'STORE_PSEUDONYM_COLLISION');
        const winner = outcomes.findIndex((o) => o.status === 'fulfilled');
        assert.equal(await clients[5]?.originalOf(S, 'uid', p), `1.2.777.${round}.${winner}`);
      }
      // A batch with one colliding pair is refused whole, as the SQLite store does.
      await assert.rejects(
        clients[0]?.save(S, [{ kind: 'uid', pseudonym: '2.25.555.0', original: '1.2.555' }, { kind: 'uid', pseudonym: '2.25.900.0', original: '9.9' }]) ?? Promise.resolve(),
        (e: unknown) => e instanceof StoreError && e.code === 'STORE_PSEUDONYM_COLLISION',
      );
      assert.equal(await clients[1]?.originalOf(S, 'uid', '2.25.555.0'), undefined);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });

  test('a consent withdrawal made through one replica is in force on the next request to the other', async () => {
    const studies = JSON.parse((await get(0, '/studies?includefield=00100020')).toString()) as Json[];
    const target = studies.find((s) => uidOf(s, '00100020')) as Json;
    const [study, patient] = [uidOf(target, '0020000D') as string, uidOf(target, '00100020') as string];
    await get(0, `/studies/${study}/metadata`); // served, and its membership cached, by replica 0
    const res = await fetch(`${replicas[1]?.url}/projects/${TEST_PROJECT}/withdrawals`, {
      method: 'POST',
      headers: { authorization: `Bearer ${steward}`, 'content-type': 'application/json' },
      body: JSON.stringify({ pseudonym: patient }),
    });
    assert.equal(res.status, 200, await res.text());
    const next = await fetch(`${replicas[0]?.base}/studies/${study}/metadata`, { headers: { authorization: `Bearer ${researcher}`, accept: 'application/dicom+json' } });
    assert.equal(next.status, 404, 'the very next request to the other replica');
    await next.arrayBuffer();
    const after = JSON.parse((await get(0, '/studies?includefield=00100020')).toString()) as Json[];
    assert.ok(!after.some((s) => uidOf(s, '00100020') === patient), "none of the patient's studies is listed");
    // Once anyone has withdrawn, a study whose Patient ID the PACS does not give is out too (fail closed).
    const unplaced = studies.filter((s) => !('00100020' in s)).length;
    assert.equal(after.length, studies.length - studies.filter((s) => uidOf(s, '00100020') === patient).length - unplaced);
  });
});

// Issue 13, findings 1 and 6: a researcher's request path is decoded exactly once, validated, and the
// PACS path rebuilt from the pseudonym map — never sliced from or forwarded as the caller's text.
// Property-based (fast-check): every GET route pattern, every path segment mutated (percent-encoding of
// any character in either hex case, double encoding, encoded `/` and `.`, repeated segments, planted
// copies of pseudonyms and original UIDs, trailing segments), against a real Orthanc behind a logging
// proxy. The PACS may only ever see URLs built from the pseudonym map, and no researcher response may
// carry an original UID; bodies are parsed and scanned by scan-leaks.py too.
import assert from 'node:assert/strict';
import { readFileSync, symlinkSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { keyedUid } from '../../src/deid/pseudonym.ts';
import { loadIntoOrthanc } from '../../src/demo/orthanc-process.ts';
import { samplesDir } from '../../src/demo/samples.ts';
import { readPart10Buffer } from '../../src/dicom/part10-reader.ts';
import { asciiValue } from '../../src/dicom/dataset.ts';
import { ROUTES } from '../../src/dicomweb/routes.ts';
import { makeKeys, startTestGateway, type TestGateway, type TestKeys, scopeKey } from '../helpers/gateway.ts';
import { splitMultipart } from '../helpers/multipart.ts';
import { listInstances, startTestOrthanc, type InstanceRef, type OrthancProcess } from '../helpers/orthanc.ts';
import { startRecordingProxy, type RecordingProxy } from '../helpers/recording-proxy.ts';
import { scanLeaks } from '../helpers/leak-scan.ts';

const SAMPLES = [
  'transfer-syntax/MR_small.dcm',
  'private-tags/CT_small.dcm',
  'multiframe/CT0012.fragmented_no_bot_jpeg_ls.80.dcm',
  'overlay-icon/examples_overlay.dcm',
  'private-tags/philips-mr-epi.dcm',
];
const STUDY_UID = 0x0020000d;
const SERIES_UID = 0x0020000e;
const SOP_UID = 0x00080018;

interface Answer {
  status: number;
  contentType: string;
  body: Buffer;
}

/** GET with the path sent byte for byte as written (fetch would normalise `%2e` and dot segments). */
function rawGet(base: URL, path: string, token: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: base.hostname, port: base.port, method: 'GET', path, headers: { authorization: `Bearer ${token}`, accept: '*/*' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('a researcher path is decoded once and rebuilt from the pseudonym map', () => {
  let orthanc: OrthancProcess;
  let proxy: RecordingProxy;
  let keys: TestKeys;
  let gateway: TestGateway;
  let token: string;
  let base: URL;
  let originals: InstanceRef[];
  let pseudonyms: InstanceRef[];
  /** pseudonym → original, for every UID of the loaded instances. */
  const originalOf = new Map<string, string>();
  const originalUids = new Set<string>();
  const scanDir = mkdtempSync(join(tmpdir(), 'deid-paths-'));
  const originalsDir = join(scanDir, 'originals');
  const outputsDir = join(scanDir, 'outputs');
  let saved = 0;

  before(async () => {
    ({ orthanc } = await startTestOrthanc());
    await loadIntoOrthanc(orthanc.httpUrl, SAMPLES.map((name) => ({ name, bytes: readFileSync(join(samplesDir(), name)) })));
    proxy = await startRecordingProxy(orthanc.httpUrl);
    keys = await makeKeys();
    gateway = await startTestGateway(proxy.dicomWebUrl, {}, keys);
    token = await gateway.token('researcher');
    base = new URL(gateway.base);
    originals = await listInstances(orthanc.dicomWebUrl);
    assert.equal(originals.length, SAMPLES.length);
    const secret = scopeKey(keys);
    const pseudo = (uid: string) => {
      const p = keyedUid(secret, uid);
      originalOf.set(p, uid);
      originalUids.add(uid);
      return p;
    };
    pseudonyms = originals.map((o) => ({ study: pseudo(o.study), series: pseudo(o.series), instance: pseudo(o.instance) }));
    // The gateway issues these pseudonyms through its own QIDO (and saves them) before they can be used.
    const res = await fetch(`${gateway.base}/instances?includefield=0020000D&includefield=0020000E`, { headers: { authorization: `Bearer ${token}` } });
    const listed = (await res.json()) as Array<Record<string, { Value?: string[] }>>;
    assert.deepEqual(new Set(listed.map((d) => d['00080018']?.Value?.[0])), new Set(pseudonyms.map((p) => p.instance)));
    const { mkdirSync } = await import('node:fs');
    mkdirSync(originalsDir);
    mkdirSync(outputsDir);
    SAMPLES.forEach((name, i) => {
      symlinkSync(join(samplesDir(), name), join(originalsDir, `${i}.dcm`));
    });
  });
  after(async () => {
    await gateway?.close();
    await proxy?.close();
    await orthanc?.stop();
    rmSync(scanDir, { recursive: true, force: true });
    if (keys) rmSync(keys.dir, { recursive: true, force: true });
  });

  /** Every upstream request of one researcher request is a canonical path built from the map. */
  function assertUpstreamFromMap(path: string, mark: number): void {
    const decodedSegments = new Set<string>();
    for (const segment of path.split('?')[0]!.split('/')) {
      try {
        decodedSegments.add(decodeURIComponent(segment));
      } catch {
        // undecodable: contributes no UID
      }
    }
    const allowed = new Set([...decodedSegments].map((s) => originalOf.get(s)).filter((o): o is string => o !== undefined));
    for (const seen of proxy.since(mark)) {
      const url = new URL(seen.url, 'http://pacs');
      assert.equal(url.pathname, seen.url.split('?')[0], `${path}: the PACS path is already normalised (${seen.url})`);
      // QIDO (PS3.18 10.6): its query is the oracle test's concern (query-oracles.test.ts).
      const search = /^\/dicom-web(?:\/studies\/([0-9.]+)(?:\/series\/([0-9.]+))?)?\/(?:studies|series|instances)$/.exec(url.pathname);
      const retrieve =
        /^\/dicom-web\/studies\/([0-9.]+)(?:\/series\/([0-9.]+)(?:\/instances\/([0-9.]+))?)?(\/metadata|\/rendered|\/thumbnail|\/frames\/[0-9,]+(?:\/rendered|\/thumbnail)?|\/(?:bulk|bulkdata)\/[0-9A-Fa-f]{8}(?:\/[0-9]{1,6}\/[0-9A-Fa-f]{8})*)?$/.exec(
          url.pathname,
        );
      const match = search ?? retrieve;
      assert.ok(match, `${path}: the PACS was asked a non-canonical path: ${seen.url}`);
      for (const uid of match.slice(1, 4).filter((u): u is string => u !== undefined)) {
        assert.ok(allowed.has(uid), `${path}: the PACS path holds ${uid}, which is not the original of a pseudonym in the request`);
      }
      if (search) continue;
      if (!/\/(rendered|thumbnail)$/.test(url.pathname)) assert.equal(url.search, '', `${path}: a query went upstream: ${seen.url}`);
    }
  }

  /** No original UID anywhere in the body; Part 10 parts parsed and their UIDs checked. */
  async function assertNoOriginal(path: string, answer: Answer): Promise<void> {
    const text = answer.body.toString('latin1');
    for (const uid of originalUids) assert.ok(!text.includes(uid), `${path}: the response (${answer.status}) holds original UID ${uid}`);
    if (answer.status === 200 && /multipart\/related/i.test(answer.contentType) && /application\/dicom(?!\+)/i.test(answer.contentType)) {
      for (const part of splitMultipart(answer.body, answer.contentType)) {
        const { dataset } = (await readPart10Buffer(part.body)).header;
        for (const tag of [STUDY_UID, SERIES_UID, SOP_UID]) {
          const uid = asciiValue(dataset, tag);
          assert.ok(uid === undefined || !originalUids.has(uid), `${path}: a Part 10 part carries an original UID`);
        }
      }
    }
    if (answer.status === 200 && saved < 150) writeFileSync(join(outputsDir, `${saved++}.bin`), answer.body);
  }

  test('the reported bypass (an encoded character in the instance UID, a planted copy later) is refused, nothing goes upstream', async () => {
    for (const [i, p] of pseudonyms.entries()) {
      const o = originals[i]!;
      const encodedFirst = `%3${p.instance[0]}${p.instance.slice(1)}`;
      const encodedDot = p.instance.replace('.', '%2E');
      for (const path of [
        `/dicom-web/studies/${p.study}/series/${p.series}/instances/${encodedFirst}/bulk/instances/${p.instance}`,
        `/dicom-web/studies/${p.study}/series/${p.series}/instances/${encodedDot}/bulk/instances/${p.instance}`,
        `/dicom-web/studies/${p.study}/series/${p.series}/instances/${encodedDot}/bulk/instances/${o.instance}`,
        `/dicom-web/studies/${p.study}/series/${p.series}/instances/${p.instance.replace('.', '%2e')}`,
      ]) {
        const mark = proxy.seen.length;
        const answer = await rawGet(base, path, token);
        assert.ok(answer.status === 400 || answer.status === 404, `${path}: ${answer.status}`);
        await assertNoOriginal(path, answer);
        assert.deepEqual(proxy.since(mark), [], `${path}: nothing may reach the PACS`);
      }
      // An encoded digit decodes to the same UID (RFC 3986 6.2.2.2): served like the plain path, from the map.
      const mark = proxy.seen.length;
      const path = `/dicom-web/studies/${p.study}/series/${p.series}/instances/${encodedFirst}/bulk/7FE00010/extra`;
      const answer = await rawGet(base, path, token);
      assert.notEqual(answer.status, 200, 'a bulkdata path of two tags is not Pixel Data');
      assertUpstreamFromMap(path, mark);
      await assertNoOriginal(path, answer);
    }
  });

  test('property: every route with every segment mutated reaches the PACS only through the pseudonym map', async () => {
    const templates = ROUTES.filter((r) => r.method === 'GET').map((r) => r.path);
    type Mutation =
      | { kind: 'encode'; segment: number; char: number; upper: boolean }
      | { kind: 'double'; segment: number; char: number }
      | { kind: 'encodedSlash' | 'encodedDot'; segment: number; char: number; upper: boolean }
      | { kind: 'repeat'; segment: number }
      | { kind: 'plant'; at: number; value: number }
      | { kind: 'original'; segment: number }
      | { kind: 'trailing'; value: number };
    const index = fc.nat({ max: 1_000 });
    const mutation: fc.Arbitrary<Mutation> = fc.oneof(
      fc.record({ kind: fc.constant('encode' as const), segment: index, char: index, upper: fc.boolean() }),
      fc.record({ kind: fc.constant('double' as const), segment: index, char: index }),
      fc.record({ kind: fc.constantFrom('encodedSlash' as const, 'encodedDot' as const), segment: index, char: index, upper: fc.boolean() }),
      fc.record({ kind: fc.constant('repeat' as const), segment: index }),
      fc.record({ kind: fc.constant('plant' as const), at: index, value: index }),
      fc.record({ kind: fc.constant('original' as const), segment: index }),
      fc.record({ kind: fc.constant('trailing' as const), value: index }),
    );
    const hex = (c: string, upper: boolean) => {
      const h = c.charCodeAt(0).toString(16).padStart(2, '0');
      return `%${upper ? h.toUpperCase() : h.toLowerCase()}`;
    };
    let requests = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...templates),
        fc.nat({ max: pseudonyms.length - 1 }),
        fc.constantFrom('1', '1,2', '2'),
        fc.constantFrom('7FE00010', '00281201', '7fe00010'),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        async (template, which, frames, bulk, mutations) => {
          const p = pseudonyms[which]!;
          const o = originals[which]!;
          const planted = [p.study, p.series, p.instance, o.study, o.series, o.instance, 'instances', 'bulk', 'frames', '..', '.', 'metadata'];
          const segments = template
            .split('/')
            .slice(1)
            .map((s) => ({ ':study': p.study, ':series': p.series, ':instance': p.instance, ':frames': frames, '*bulk': bulk })[s] ?? s);
          for (const m of mutations) {
            const at = (n: number) => n % segments.length;
            const edit = (n: number, f: (s: string, c: number) => string, char: number) => {
              const s = segments[at(n)]!;
              segments[at(n)] = s.length === 0 ? s : f(s, char % s.length);
            };
            switch (m.kind) {
              case 'encode':
                edit(m.segment, (s, c) => `${s.slice(0, c)}${hex(s[c]!, m.upper)}${s.slice(c + 1)}`, m.char);
                break;
              case 'double':
                edit(m.segment, (s, c) => `${s.slice(0, c)}%25${hex(s[c]!, true).slice(1)}${s.slice(c + 1)}`, m.char);
                break;
              case 'encodedSlash':
              case 'encodedDot':
                edit(m.segment, (s, c) => `${s.slice(0, c)}${m.kind === 'encodedSlash' ? (m.upper ? '%2F' : '%2f') : m.upper ? '%2E' : '%2e'}${s.slice(c)}`, m.char);
                break;
              case 'repeat':
                segments.splice(at(m.segment), 0, segments[at(m.segment)]!);
                break;
              case 'plant':
                segments.splice(at(m.at) + 1, 0, planted[m.value % planted.length]!);
                break;
              case 'original': {
                const i = at(m.segment);
                const uid = originalOf.get(segments[i]!);
                if (uid) segments[i] = uid;
                break;
              }
              case 'trailing':
                segments.push(...['bulk', 'instances', planted[m.value % planted.length]!]);
                break;
            }
          }
          const path = `/dicom-web/${segments.join('/')}`;
          const mark = proxy.seen.length;
          const answer = await rawGet(base, path, token);
          requests++;
          assert.ok(answer.status < 500 || answer.status === 502, `${path}: ${answer.status}`);
          assertUpstreamFromMap(path, mark);
          await assertNoOriginal(path, answer);
        },
      ),
      { numRuns: 1_000, seed: Number(process.env['FC_SEED'] ?? 1313), includeErrorInReport: true },
    );
    assert.ok(requests >= 1_000);
    await fetch(`${gateway.url}/healthz`).then((r) => assert.equal(r.status, 200));
  });

  test('scan-leaks finds no identity value of the originals in any researcher body', async () => {
    assert.ok(saved > 0, 'some researcher responses were 200');
    const scan = await scanLeaks(originalsDir, outputsDir);
    assert.ok(scan.clean, scan.report);
  });
});

// The canary patient (issue 8): a study generated from PS3.15 Table E.1-1 in which every attribute of
// the table holds a unique canary (test/helpers/canary-study.ts) is loaded into a real Orthanc and read
// back through every researcher route; every byte of every answer is searched for every canary. Only the
// canaries the configured PS3.15 options keep by design (derived from the table, not from the engine)
// may appear. The uploader's STOW is checked the same way on what Orthanc stored.
// Issue 13, finding 5 (Table E.1-1 Note 1): every PS3.6 attribute outside the table whose VR can carry
// identity holds a canary too; only those on the reviewed safe list (src/deid/identity-safe-list.ts),
// and dates under Full Dates, may appear, and the safe ones must (the positive control).
// Issue 17: the study's descriptions, Image Comments, an SR text item and a graphic text object hold its
// own name, ID, institution and date canaries in other spellings, and a telephone number, an e-mail address
// and a labelled record number; under the Clean options the text around them is kept and none of them is.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadIntoOrthanc } from '../../src/demo/orthanc-process.ts';
import { readPart10Buffer } from '../../src/dicom/part10-reader.ts';
import { describeCanaries, findCanaries, keptByDesign, makeCanaryStudy, type CanaryEntry, type CanaryStudy, type OptionColumn } from '../helpers/canary-study.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { scanLeaks } from '../helpers/leak-scan.ts';
import { splitMultipart } from '../helpers/multipart.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { stowBody } from '../helpers/stow.ts';

const ALL_TS = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const FRAMES_TS = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';

type Json = Record<string, { Value?: unknown[] }>[];
const first = (item: Json[number] | undefined, tag: string) => String(item?.[tag]?.Value?.[0] ?? '');

interface Answer {
  readonly route: string;
  readonly status: number;
  readonly bytes: Buffer;
}

/** The option sets the researcher gateway runs with, and why each canary may survive under it. */
const OPTION_SETS: readonly { name: string; options: OptionColumn[]; rendered: boolean }[] = [
  { name: 'Basic', options: [], rendered: true },
  { name: 'Basic + Retain Device Identity + Retain Safe Private', options: ['retainDeviceIdentity', 'retainSafePrivate'], rendered: false },
  { name: 'Basic + Retain Longitudinal Full Dates', options: ['retainLongitudinalTemporalFullDates'], rendered: false },
  {
    name: 'Basic + Clean Descriptors + Clean Structured Content + Clean Graphics + Modified Dates',
    options: ['cleanDescriptors', 'cleanStructuredContent', 'cleanGraphics', 'retainLongitudinalTemporalModifiedDates'],
    rendered: false,
  },
];

describe('the canary patient: no canary of Table E.1-1 reaches a researcher or the PACS unless an option keeps it', () => {
  let orthanc: OrthancProcess;
  let study: CanaryStudy;
  const work = mkdtempSync(join(tmpdir(), 'canary-patient-'));
  const originals = join(work, 'originals');

  before(async () => {
    study = makeCanaryStudy();
    ({ orthanc } = await startTestOrthanc());
    mkdirSync(originals);
    study.instances.forEach((bytes, i) => {
      writeFileSync(join(originals, `canary-${i}.dcm`), bytes);
    });
    const loaded = await loadIntoOrthanc(orthanc.httpUrl, study.instances.map((bytes, i) => ({ name: `canary-${i}`, bytes })));
    assert.equal(loaded.stored.length, 3, `Orthanc refused ${loaded.refused.join(', ')}`);
  });
  after(async () => {
    await orthanc?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('the generator covers every row of the table, and the scanner finds every scannable canary in the originals', () => {
    // Canaries of attributes outside the table (Note 1) carry their own tag as row, but in the overlay
    // and curve groups, whose table rows govern them.
    const tableCanaries = study.canaries.filter((c) => c.outsideTable === undefined || c.placement === 'overlay' || c.placement === 'curve');
    const rows = new Set(tableCanaries.map((c) => c.enclosing?.row ?? c.row));
    assert.equal(rows.size + study.skipped.length, 657, 'every row of Table E.1-1 (2026d) has a canary or a reason');
    assert.deepEqual(study.skipped.map((s) => s.row).sort(), ['(0000,1000)', '(0000,1001)', '(0002,0003)']);
    const scannable = study.canaries.filter((c) => c.scan !== 'none');
    const found = new Set(findCanaries(Buffer.concat([...study.instances]), study.canaries));
    assert.deepEqual(scannable.filter((c) => !found.has(c)), []);
    for (const placement of ['top', 'depth-3', 'sequence-item', 'charset-item', 'private-safe', 'private-unsafe', 'overlay', 'curve', 'misencoded', 'in-text']) {
      assert.ok(study.canaries.some((c) => c.placement === placement), placement);
    }
    assert.equal(study.canaries.filter((c) => c.scan === 'none').every((c) => c.vr === 'US'), true, 'only US values go unscanned');
  });

  test('every PS3.6 attribute outside Table E.1-1 whose VR can carry identity has a canary at the top level and at depth 3, or a reason', () => {
    assert.equal(study.outsideTable.length, 509, 'PS3.6 2026c against Table E.1-1 2026d');
    const skipped = new Set(study.outsideTableSkipped.map((s) => s.tag));
    assert.ok([...skipped].every((t) => t.startsWith('(0002,')), 'only File Meta is left out');
    const missing: string[] = [];
    for (const tag of study.outsideTable) {
      if (skipped.has(tag)) continue;
      const grouped = tag.startsWith('(50xx,') || tag.startsWith('(60xx,');
      const here = study.canaries.filter((c) => c.outsideTable !== undefined && (grouped ? c.path.slice(5, 10) === tag.slice(5, 10) && c.path.slice(1, 3) === tag.slice(1, 3) : c.row === tag));
      const where = new Set(here.map((c) => c.placement));
      if (grouped ? where.size === 0 : !(where.has('top') && where.has('depth-3'))) missing.push(`${tag} in ${[...where].join(',') || 'nothing'}`);
    }
    assert.deepEqual(missing, []);
    // Finding 5's own examples (the order and issuer sequences hold (0040,0031/0032), which are here).
    for (const tag of ['(0010,0033)', '(0010,0034)', '(0074,100A)', '(0074,100C)', '(0040,0031)', '(0040,0032)', '(0018,1003)']) {
      assert.ok(study.canaries.some((c) => c.row === tag && c.placement === 'top' && c.outsideTable === 'removed'), tag);
    }
    assert.deepEqual(study.canaries.filter((c) => c.placement === 'misencoded').map((c) => `${c.row} ${c.vr}`), ['(0018,1003) OB', '(0010,0033) CS', '(0014,1020) LO']);
    const safe = study.canaries.filter((c) => c.outsideTable === 'safe');
    assert.ok(safe.length > 100 && safe.every((c) => keptByDesign(c, [])), 'the safe list is the positive control');
  });

  for (const set of OPTION_SETS) {
    test(`${set.name}: every researcher route is free of canaries but those the options keep`, async () => {
      const gateway = await startTestGateway(orthanc.dicomWebUrl, {
        deid: { profiles: { researcher: { options: set.options } }, researcherRendered: set.rendered },
      });
      const answers: Answer[] = [];
      try {
        const token = await gateway.token('researcher');
        const get = async (route: string, accept?: string, expect: number | number[] = 200) => {
          const res = await fetch(gateway.base + route, { headers: { authorization: `Bearer ${token}`, ...(accept ? { accept } : {}) } });
          const body = Buffer.from(await res.arrayBuffer());
          const headers = Buffer.from([...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n'));
          answers.push({ route, status: res.status, bytes: Buffer.concat([headers, body]) });
          assert.ok([expect].flat().includes(res.status), `${route}: ${res.status} ${body.subarray(0, 200).toString()}`);
          return { res, body };
        };
        const json = async (route: string) => JSON.parse((await get(route, 'application/dicom+json')).body.toString()) as Json;

        // PS3.18 10.6 QIDO at every level, every attribute.
        const studies = await json('/studies?includefield=all');
        assert.equal(studies.length, 1);
        const s = first(studies[0], '0020000D');
        assert.match(s, /^2\.25\./);
        await json('/series?includefield=all');
        await json('/instances?includefield=all');
        const series = await json(`/studies/${s}/series?includefield=all`);
        assert.equal(series.length, 2);
        const instances = await json(`/studies/${s}/instances?includefield=all`);
        assert.equal(instances.length, 3);
        for (const se of series) await json(`/studies/${s}/series/${first(se, '0020000E')}/instances?includefield=all`);

        // PS3.18 10.4 metadata, retrieval, frames, bulkdata, rendered.
        const metadata = await json(`/studies/${s}/metadata`);
        if (set.options.includes('cleanDescriptors')) {
          // Cleaned where the whole instance is known (metadata, Part 10); the dummy in search results,
          // which hold only some attributes (fail closed).
          assert.match(first(metadata[0], '00081030'), /^CANARY\d{5} AX T1 \[REMOVED\]$/);
          assert.match(first(metadata[0], '0008103E'), /^CANARY\d{5} MPRAGE POST \[REMOVED\]$/);
          assert.deepEqual(series.map((se) => first(se, '0008103E')), ['ANONYMIZED', 'ANONYMIZED']);
        }
        const retrieved: Buffer[] = [];
        const part10 = async (route: string, accept: string) => {
          const { res, body } = await get(route, accept);
          for (const part of splitMultipart(body, res.headers.get('content-type'))) retrieved.push(part.body);
        };
        await part10(`/studies/${s}`, ALL_TS);
        await part10(`/studies/${s}`, 'multipart/related; type="application/dicom"');
        for (const se of series) {
          const seriesPath = `/studies/${s}/series/${first(se, '0020000E')}`;
          await json(`${seriesPath}/metadata`);
          await part10(seriesPath, ALL_TS);
        }
        for (const inst of instances) {
          const path = `/studies/${s}/series/${first(inst, '0020000E')}/instances/${first(inst, '00080018')}`;
          await json(`${path}/metadata`);
          await part10(path, ALL_TS);
          await get(`${path}/frames/1`, FRAMES_TS);
          await get(`${path}/bulk/7FE00010`, FRAMES_TS);
          await get(`${path}/bulk/60003000`, FRAMES_TS, 404); // Overlay Data: the profile removes it
          await get(`${path}/bulk/00091002`, FRAMES_TS, 404); // an unsafe private OB
          // Orthanc's DICOMweb plugin renders but has no thumbnails: its 404 is relayed, without its body.
          for (const r of ['/rendered', '/frames/1/rendered']) await get(`${path}${r}`, 'image/jpeg', set.rendered ? 200 : 403);
          await get(`${path}/thumbnail`, 'image/jpeg', set.rendered ? [200, 404] : 403);
        }
        await get(`/studies/${s}/rendered`, 'image/jpeg', set.rendered ? 200 : 403);
        assert.equal(retrieved.length, 3 + 3 + 3 + 3, 'study x2, series, instance retrievals');
        for (const p of retrieved) await readPart10Buffer(p); // every retrieved instance re-parses

        // 1. Byte-level: nothing but what the options keep.
        const allowed = new Set(study.canaries.filter((c) => keptByDesign(c, set.options)));
        const leaks: string[] = [];
        for (const a of answers) {
          const bad = findCanaries(a.bytes, study.canaries).filter((c) => !allowed.has(c));
          if (bad.length > 0) leaks.push(`${a.route} (${a.status}):\n${describeCanaries(bad)}`);
        }
        assert.deepEqual(leaks, [], leaks.join('\n\n'));

        // 2. What the options keep does reach the researcher (a scanner that finds nothing proves nothing).
        const inPart10 = new Set<CanaryEntry>(findCanaries(Buffer.concat(retrieved), study.canaries));
        const keptScannable = [...allowed].filter((c) => c.scan !== 'none');
        const missing = keptScannable.filter((c) => !inPart10.has(c));
        assert.deepEqual(missing.map((c) => `${c.id} ${c.path}`), [], 'a value the profile keeps is missing from the retrieved instances');
        if (set.options.length > 0) assert.ok(keptScannable.length > 0, 'this option set keeps some canaries');
        assert.ok(keptScannable.some((c) => c.outsideTable === 'safe'), 'the safe list outside Table E.1-1 is kept');

        // 3. The second oracle: scan-leaks.py over the originals and every answer.
        const out = join(work, `answers-${OPTION_SETS.indexOf(set)}`);
        mkdirSync(out);
        answers.forEach((a, i) => {
          writeFileSync(join(out, `answer-${i}.bin`), a.bytes);
        });
        const scan = await scanLeaks(originals, out, { options: set.options });
        assert.ok(scan.valuesSearched > 100, scan.summary);
        const unexpected = scan.hits.filter((h) => !findCanaries(Buffer.from(h.value, 'utf8'), [...allowed]).length);
        assert.deepEqual(unexpected.map((h) => `${h.kind} ${h.value} ${h.origins.map((o) => o.path).join(',')}`), [], scan.report.slice(-3000));
      } finally {
        await gateway.close();
      }
    });
  }

  test('STOW as uploader: what Orthanc stored holds no canary but those the default profile keeps', async () => {
    const gateway = await startTestGateway(orthanc.dicomWebUrl);
    try {
      const before = new Set((await (await fetch(`${orthanc.httpUrl}/instances`)).json()) as string[]);
      const { body, contentType } = stowBody([...study.instances]);
      const res = await fetch(`${gateway.base}/studies`, {
        method: 'POST',
        body: new Uint8Array(body),
        headers: { authorization: `Bearer ${await gateway.token('uploader')}`, 'content-type': contentType, accept: 'application/dicom+json' },
      });
      const answer = Buffer.from(await res.arrayBuffer());
      assert.equal(res.status, 200, answer.toString().slice(0, 300));
      const stored = ((await (await fetch(`${orthanc.httpUrl}/instances`)).json()) as string[]).filter((id) => !before.has(id));
      assert.equal(stored.length, 3);
      const options: OptionColumn[] = ['retainLongitudinalTemporalModifiedDates']; // config/schema.ts default
      const allowed = new Set(study.canaries.filter((c) => keptByDesign(c, options)));
      const files: Buffer[] = [];
      for (const id of stored) files.push(Buffer.from(await (await fetch(`${orthanc.httpUrl}/instances/${id}/file`)).arrayBuffer()));
      const leaks = [answer, ...files].flatMap((b) => findCanaries(b, study.canaries)).filter((c) => !allowed.has(c));
      assert.deepEqual(leaks, [], describeCanaries(leaks));
      const kept = new Set(findCanaries(Buffer.concat(files), study.canaries));
      assert.ok([...allowed].some((c) => c.vr === 'TM' && kept.has(c)), 'Modified Dates keeps times of day (E.3.6)');
      const out = join(work, 'stored');
      mkdirSync(out);
      files.forEach((b, i) => {
        writeFileSync(join(out, `stored-${i}.dcm`), b);
      });
      const scan = await scanLeaks(originals, out, { options });
      const unexpected = scan.hits.filter((h) => !findCanaries(Buffer.from(h.value, 'utf8'), [...allowed]).length);
      assert.deepEqual(unexpected.map((h) => `${h.kind} ${h.value}`), [], scan.report.slice(-3000));
    } finally {
      await gateway.close();
    }
  });
});

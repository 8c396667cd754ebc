// PS3.15 Annex E over every shared sample, checked by tools that are not ours: dcmdump (dcmtk) must
// parse every output, dciodvfy (dicom3tools) must report no new IOD error, scan-leaks.py must find no
// identity value of the inputs, and Pixel Data must be unchanged byte for byte.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { deidentifyCommand } from '../../../src/cli-deidentify.ts';
import { createPolicy, createSession, deidentifyJson } from '../../../src/deid/deidentify.ts';
import { PROFILE_OPTIONS } from '../../../src/deid/profile.ts';
import { rewritePart10Buffer } from '../../../src/deid/rewrite-part10.ts';
import { DicomError } from '../../../src/dicom/errors.ts';
import { datasetToJson } from '../../../src/dicom/json-model.ts';
import { readPart10Buffer } from '../../../src/dicom/part10-reader.ts';
import { asciiValue } from '../../../src/dicom/dataset.ts';
import { listDicomFiles, samplesDir } from '../../../src/demo/samples.ts';
import { scanLeaks } from '../../helpers/leak-scan.ts';

const run = promisify(execFile);
const SECRET = 'engine-samples-secret-0123456789';
const REFUSED = new Map([
  ['edge-cases/MR_truncated.dcm', 'DICOM_TRUNCATED'],
  ['edge-cases/no_meta.dcm', 'DICOM_NOT_DICOM'],
]);
/**
 * dciodvfy errors a de-identified output may add, each a consequence of Table E.1-1 itself, never of a
 * value kept: the Basic Profile removes (X) or empties (Z, and D on a sequence or binary value, for
 * which no dummy item or document is invented) attributes that some IODs require.
 */
const ACCEPTED_NEW_IOD_ERRORS: readonly (readonly [RegExp, string])[] = [
  [/Element=<\w+Sequence>/, 'a sequence the profile empties (X/Z, X/Z/D, D: zero items, nothing invented)'],
  [/Element=<EncapsulatedDocument>/, 'D on the PDF (Note 15: the document holds PHI); no dummy PDF is made'],
  [/Element=<PresentationCreation(Date|Time)>/, 'X in Basic for these Type 1 attributes'],
  [/Module=<StudyDirectoryRecord>/, 'StudyID, StudyDate, StudyTime emptied on a DICOMDIR record'],
  [/MediaStorageSOP(Instance|Class)UID but missing/, 'the input has no SOP UIDs; the File Meta we add names them'],
  [/PixelData has incorrect value length/, 'dciodvfy cannot parse the input past its group 0001 sequences; the output shows the input’s own odd Pixel Data'],
];
const sha = (b: Uint8Array | undefined) => (b ? createHash('sha256').update(b).digest('hex') : 'none');
const files = listDicomFiles(samplesDir());
const sample = (f: string) => readFileSync(join(samplesDir(), f));

async function batches<T>(items: T[], size: number, fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

async function iodErrors(file: string): Promise<Set<string>> {
  const { stdout, stderr } = await run('dciodvfy', [file]).catch((e: { stdout: string; stderr: string }) => e);
  // Values (UIDs between <>) differ by design after de-identification; compare the findings only.
  return new Set(`${stdout}\n${stderr}`.split('\n').filter((l) => l.startsWith('Error')).map((l) => l.replace(/ - \(.*$/, '').replace(/<[0-9.]+>/g, '<uid>').trim()));
}

describe('the engine over every shared sample', () => {
  const work = mkdtempSync(join(tmpdir(), 'deid-engine-'));
  const secretFile = join(work, 'secret');
  const outputs: Record<string, string> = {};

  before(async () => {
    writeFileSync(secretFile, SECRET);
    const profiles: Record<string, string> = {
      basic: 'basic',
      retainAll: PROFILE_OPTIONS.filter((o) => o.startsWith('retain') && o !== 'retainLongitudinalTemporalFullDates').join(','),
      everyOption: PROFILE_OPTIONS.filter((o) => o !== 'retainLongitudinalTemporalFullDates').join(','),
    };
    for (const [name, profile] of Object.entries(profiles)) {
      outputs[name] = join(work, name);
      const code = await deidentifyCommand(['--profile', profile, '--secret-file', secretFile, '--jobs', '2', samplesDir(), '--out', outputs[name] as string]);
      assert.equal(code, 1, 'some edge cases are refused');
    }
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  test('every sample de-identifies under each profile, except the malformed ones, which fail with a typed error', async () => {
    for (const f of files) {
      const expected = REFUSED.get(f);
      try {
        await rewritePart10Buffer(sample(f), createSession(createPolicy({ secret: SECRET })));
        assert.equal(expected, undefined, `${f} should have been refused`);
      } catch (error) {
        assert.ok(error instanceof DicomError, `${f}: ${String(error)}`);
        assert.equal(error.code, expected, f);
      }
    }
  });

  test('dcmdump parses every output and Pixel Data is byte-identical', async () => {
    for (const name of Object.keys(outputs)) {
      const done = files.filter((f) => !REFUSED.has(f));
      await batches(done, 8, async (f) => {
        const out = join(outputs[name] as string, f);
        const { stderr } = await run('dcmdump', ['-q', out]);
        assert.ok(!/^E:/m.test(stderr), `${name}/${f}: ${stderr}`);
        const [a, b] = await Promise.all([readPart10Buffer(sample(f)), readPart10Buffer(readFileSync(out))]);
        assert.equal(sha(b.pixelDataBytes), sha(a.pixelDataBytes), `${name}/${f} Pixel Data`);
      });
    }
  });

  test('dciodvfy finds no IOD error in the output that it did not find in the input', async () => {
    const unexpected: string[] = [];
    await batches(files.filter((f) => !REFUSED.has(f)), 6, async (f) => {
      const [before, afterDeid] = await Promise.all([iodErrors(join(samplesDir(), f)), iodErrors(join(outputs['basic'] as string, f))]);
      for (const error of afterDeid) {
        if (before.has(error)) continue;
        if (ACCEPTED_NEW_IOD_ERRORS.some(([pattern]) => pattern.test(error))) continue;
        unexpected.push(`${f}: ${error}`);
      }
    });
    assert.deepEqual(unexpected, []);
  });

  test('under Basic no identity value of the inputs is in the outputs: canaries, removed values, original UIDs', async () => {
    const bytes = files.filter((f) => !REFUSED.has(f)).map((f) => readFileSync(join(outputs['basic'] as string, f)).toString('latin1')).join('\n');
    for (const canary of ['CompressedSamples', '1CT1', '4MR1', '8NM1', 'PANCREAS_0001', 'JFK IMAGING', "St. John's Memorial", 'Radiologist^Jane', 'Lastname^Firstname']) {
      assert.ok(!bytes.includes(canary), `canary ${canary}`);
    }
    const scan = await scanLeaks(samplesDir(), outputs['basic'] as string, []);
    assert.ok(scan.clean, scan.report.slice(-3000));
  });

  test('the same secret gives identical bytes; another secret gives other UIDs', async () => {
    const file = sample('transfer-syntax/MR_small.dcm');
    const policy = createPolicy({ secret: SECRET });
    const [a, b] = await Promise.all([rewritePart10Buffer(file, createSession(policy)), rewritePart10Buffer(file, createSession(policy))]);
    assert.ok(a.output.equals(b.output));
    const other = await rewritePart10Buffer(file, createSession(createPolicy({ secret: `${SECRET}-other` })));
    const uid = async (buf: Buffer) => asciiValue((await readPart10Buffer(buf)).header.dataset, 0x0020000d);
    assert.notEqual(await uid(other.output), await uid(a.output));
    assert.match(String(await uid(a.output)), /^2\.25\.\d{1,39}$/);
  });

  test('two studies of one patient keep their day interval under Modified Dates', async () => {
    const policy = createPolicy({ secret: SECRET, profile: { retainLongitudinalTemporalModifiedDates: true } });
    const base = (await readPart10Buffer(sample('transfer-syntax/MR_small.dcm'))).header;
    const json = datasetToJson(base.dataset, [], base.encoding.littleEndian);
    const study = (date: string, uid: string) => ({ ...json, '00080020': { vr: 'DA', Value: [date] }, '0020000D': { vr: 'UI', Value: [uid] } });
    const first = deidentifyJson(policy, study('20200110', '1.2.3.1') as never);
    const second = deidentifyJson(policy, study('20200305', '1.2.3.2') as never);
    const day = (d: unknown) => Date.UTC(Number(String(d).slice(0, 4)), Number(String(d).slice(4, 6)) - 1, Number(String(d).slice(6, 8))) / 86_400_000;
    const [a, b] = [first['00080020']?.Value?.[0], second['00080020']?.Value?.[0]];
    assert.notEqual(a, '20200110', 'the date moved');
    assert.equal(day(b) - day(a), day('20200305') - day('20200110'));
  });

  test('one decision, two representations: json(deid(file)) equals deid(json(file)) for every sample', async () => {
    const policy = createPolicy({ secret: SECRET, profile: { retainLongitudinalTemporalModifiedDates: true, retainSafePrivate: true } });
    const toJson = async (buf: Buffer) => {
      const { header } = await readPart10Buffer(buf);
      return datasetToJson(header.dataset, [], header.encoding.littleEndian);
    };
    let compared = 0;
    for (const f of files.filter((x) => !REFUSED.has(x))) {
      const viaJson = deidentifyJson(createSession(policy), (await toJson(sample(f))) as never);
      const viaPart10 = await toJson((await rewritePart10Buffer(sample(f), createSession(policy))).output);
      const keys = [...new Set([...Object.keys(viaJson), ...Object.keys(viaPart10)])].sort();
      const differing = keys.filter((k) => JSON.stringify(viaJson[k]) !== JSON.stringify((viaPart10 as Record<string, unknown>)[k]));
      assert.deepEqual(differing, [], f);
      compared++;
    }
    assert.equal(compared, files.length - REFUSED.size);
  });
});

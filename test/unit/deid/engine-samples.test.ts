// PS3.15 Annex E over every shared sample (issue 4, "What must be shown"), checked by tools that are
// not ours where possible: dcmdump (dcmtk) parses every output, dciodvfy (dicom3tools) reports no IOD
// error the input did not have, scan-leaks.py (pydicom) finds no identity value of the inputs, and
// Pixel Data is unchanged byte for byte. The header-only memory check (the 1.8 MB cine fed in 64 KiB
// chunks) lives in rewrite-part10.test.ts and is not repeated here.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { decodeText, type CharacterSet } from '../../../src/dicom/charset.ts';
import { asciiValue, characterSetOf, findElement, setElement, type DataElement, type Dataset } from '../../../src/dicom/dataset.ts';
import { DicomError } from '../../../src/dicom/errors.ts';
import { datasetToJson, elementToJsonValue, type JsonDataset } from '../../../src/dicom/json-model.ts';
import { Part10Reader, readPart10Buffer, type Part10Event } from '../../../src/dicom/part10-reader.ts';
import { collect, writePart10 } from '../../../src/dicom/part10-writer.ts';
import { isPrivateDataElement, privateCreatorTagFor } from '../../../src/dicom/tag.ts';
import { createPolicy, createSession, deidentifyJson, type DeidPolicy, type ElementRef } from '../../../src/deid/deidentify.ts';
import { DeidError } from '../../../src/deid/errors.ts';
import { DUMMY_ITEMS } from '../../../src/deid/iod-table.generated.ts';
import { PROFILE_OPTIONS, normalizeCreator, type ProfileOption } from '../../../src/deid/profile.ts';
import { rewritePart10Buffer } from '../../../src/deid/rewrite-part10.ts';
import { SAMPLES_DIR, listSamples, sample } from '../../helpers/sample.ts';
import { CANARIES, canaryNeedles, findCanaries, scanLeaks } from '../../helpers/leak-scan.ts';

const SECRET = 'engine-samples-secret-0123456789';
const OTHER_SECRET = 'engine-samples-secret-other-9876';
/** Fail closed: these cannot be parsed safely and must be refused with this code (see the MANIFEST). */
const REFUSED = new Map([
  ['edge-cases/MR_truncated.dcm', 'DICOM_TRUNCATED'], // Pixel Data longer than the file
  ['edge-cases/no_meta.dcm', 'DICOM_NOT_DICOM'], // a stray leading byte shifts every element
]);
const FILES = listSamples();
const ACCEPTED = FILES.filter((f) => !REFUSED.has(f));

/** Basic, Basic + each of the ten options, and all options (the two date options exclude each other). */
const ALL_BUT = (left: ProfileOption): ProfileOption[] => PROFILE_OPTIONS.filter((o) => o !== left);
const PROFILES: Readonly<Record<string, readonly ProfileOption[]>> = {
  basic: [],
  ...Object.fromEntries(PROFILE_OPTIONS.map((o) => [o, [o]])),
  allWithModifiedDates: ALL_BUT('retainLongitudinalTemporalFullDates'),
  allWithFullDates: ALL_BUT('retainLongitudinalTemporalModifiedDates'),
};
// The header engine over every sample: the pixel policy (pixel-policy.test.ts) is off, so no sample is withheld.
const PIXELS_OFF = { enabled: false } as const;
const policies = new Map(Object.entries(PROFILES).map(([name, opts]) => [name, createPolicy({ secret: SECRET, profile: Object.fromEntries(opts.map((o) => [o, true])), pixels: PIXELS_OFF })]));
const policyOf = (name: string): DeidPolicy => policies.get(name) as DeidPolicy;

const sha = (b: Uint8Array | undefined): string => (b ? createHash('sha256').update(b).digest('hex') : 'none');
const PARALLEL = Math.max(2, cpus().length * 2);
/** dciodvfy runs on two processes at most (CI has two cores, and the other test files run beside this one). */
const IOD_PARALLEL = 2;

async function inBatches<T>(items: readonly T[], fn: (item: T) => Promise<void>, size = PARALLEL): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

/** Runs a tool; resolves with its exit status (a signal counts as 128+n) and both outputs. */
function tool(cmd: string, args: readonly string[], stdout = true): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', stdout ? 'pipe' : 'ignore', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout?.setEncoding('latin1').on('data', (d: string) => (out += d));
    child.stderr?.setEncoding('latin1').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? 128 + (signal ? 6 : 0), out, err }));
  });
}

/**
 * dciodvfy's Error lines, normalised: values between <> that de-identification changes by design
 * (UIDs, dates, names) and the trailing " - (…)" detail are dropped, so the finding itself is compared.
 */
async function iodErrors(file: string): Promise<{ aborted: boolean; errors: Set<string> }> {
  const { code, out, err } = await tool('dciodvfy', [file]);
  const lines = `${out}\n${err}`.split('\n').filter((l) => l.startsWith('Error'));
  return {
    aborted: code >= 128,
    errors: new Set(lines.map((l) => l.replace(/ - \(.*$/, '').replace(/Value=<[^>]*>/g, 'Value=<…>').replace(/\b\d+(\.\d+)+\b/g, '<uid>').replace(/(ReferencedSOPInstanceUID) \S+/, '$1 <uid>').trim())),
  };
}

/**
 * New dciodvfy errors a de-identified output may have, each forced by Table E.1-1 itself (an X or Z on an
 * attribute the IOD requires, a D whose dummy would be invented content) or by the input, never by a value
 * kept. Compound codes, D on sequences and attributes outside the table follow the IOD's Types (PS3.15
 * E.1.1, profile.ts ruleInIod), so they are not here.
 */
const ACCEPTED_NEW_IOD_ERRORS: readonly (readonly [RegExp, string])[] = [
  [/Element=<ContentSequence> Module=<DocumentRelationshipMacro>/, 'D on an SR’s Content Sequence (Basic; Clean Structured Content cleans it instead): a content item fitting the document’s template would be a made-up clinical statement, so the tree is emptied (iod-table.generated.ts NO_DUMMY_ITEM)'],
  [/Empty attribute \(no value\) Type 1 Required Element=<EncapsulatedDocument>/, 'D on the PDF (Table E.1-1 Note 15: the document holds PHI); no dummy document is invented'],
  [/Missing attribute Type 1 Required Element=<PresentationCreation(Date|Time)>/, 'X in Basic (Table E.1-1) on these Type 1 attributes'],
  [/Element=<Study(Date|Time|ID)> Module=<StudyDirectoryRecord>|Element=<StudyDescription> Module=<StudyDirectoryRecord>/, 'Z (StudyDate, StudyTime, StudyID) and X (StudyDescription) of Table E.1-1 in a DICOMDIR’s Study records, whose Types depend on the record type'],
  [/Missing attribute Type 1C Conditional Element=<ReferencedFileID> Module=<DirectoryInformation>/, 'Referenced File ID removed: its path components name the patient (profile.ts SUPPLEMENT_REMOVE)'],
  [/MediaStorageSOP(Instance|Class)UID but missing/, 'the input has no SOP UIDs; the File Meta we add names them'],
  [/Illegal root for UID - .* in \(0x0002,0x0003\)/, 'Retain UIDs keeps the input’s own illegal SOP Instance UID (reported on the input’s (0008,0018)); File Meta follows the dataset (PS3.10 7.1)'],
  [/PixelData has incorrect value length/, 'dciodvfy cannot parse the input past its group 0001 sequences; the output has the input’s own odd Pixel Data'],
];

const work = mkdtempSync(path.join(tmpdir(), 'deid-engine-'));
after(() => rmSync(work, { recursive: true, force: true }));
const outFile = (profile: string, rel: string): string => path.join(work, profile, rel);
/** profile -> sample -> output bytes */
const outputs = new Map<string, Map<string, Buffer>>();
const out = (profile: string, rel: string): Buffer => outputs.get(profile)?.get(rel) as Buffer;

/** Tags every profile sets differently (the options' CID 7050 codes, the temporal flag): left out of `iodKey`. */
const METHOD_TAGS = new Set([0x00120063, 0x00120064, 0x00280303]);

/** What each output is, read once for the tests that need it: its Pixel Data hash and its dciodvfy key. */
interface OutputFacts {
  readonly pixelSha: string;
  /**
   * Equal for two outputs of one sample that differ at most in METHOD_TAGS (the same structure in every
   * profile), so that dciodvfy, which reports per structure and value, runs once for both.
   */
  readonly iodKey: string;
}
let facts: Promise<Map<string, OutputFacts>> | undefined;
/** profile + '/' + sample -> facts; made on first use. */
function outputFacts(): Promise<Map<string, OutputFacts>> {
  facts ??= (async () => {
    const m = new Map<string, OutputFacts>();
    for (const name of Object.keys(PROFILES)) {
      for (const rel of ACCEPTED) {
        const { header, trailer, pixelDataBytes } = await readPart10Buffer(out(name, rel));
        const hash = createHash('sha256').update(`${rel}\0${header.transferSyntaxUID}\0`);
        const add = (ds: readonly DataElement[], top: boolean): void => {
          for (const el of ds) {
            if (top && METHOD_TAGS.has(el.tag)) continue;
            hash.update(`${el.tag},${el.vr},${el.value?.length ?? -1};`);
            if (el.value) hash.update(el.value);
            for (const item of el.items ?? []) {
              hash.update('{');
              add(item, false);
              hash.update('}');
            }
            for (const f of el.fragments ?? []) hash.update(f);
          }
        };
        add([...(header.meta ?? []), ...header.dataset, ...trailer], true);
        const pixelSha = sha(pixelDataBytes);
        m.set(`${name}/${rel}`, { pixelSha, iodKey: `${hash.digest('hex')}:${pixelSha}` });
      }
    }
    return m;
  })();
  return facts;
}

before(async () => {
  for (const name of Object.keys(PROFILES)) {
    const m = new Map<string, Buffer>();
    outputs.set(name, m);
    await Promise.all(ACCEPTED.map(async (rel) => {
      const { output } = await rewritePart10Buffer(sample(rel), createSession(policyOf(name)));
      m.set(rel, output);
      mkdirSync(path.dirname(outFile(name, rel)), { recursive: true });
      writeFileSync(outFile(name, rel), output);
    }));
  }
});

describe('every shared sample under Basic, Basic + each option and all options', () => {
  test('every sample de-identifies, except the malformed ones, which are refused with their typed error', async () => {
    for (const [rel, code] of REFUSED) {
      await assert.rejects(rewritePart10Buffer(sample(rel), createSession(policyOf('basic'))), (e: unknown) => e instanceof DicomError && e.code === code, rel);
    }
    for (const name of Object.keys(PROFILES)) assert.equal(outputs.get(name)?.size, ACCEPTED.length, name);
  });

  test('dcmdump parses every output without an error', async () => {
    const failed: string[] = [];
    await inBatches(Object.keys(PROFILES), async (name) => {
      // One dcmdump per profile over all its outputs; a file is looked at alone only if that fails.
      const all = await tool('dcmdump', ['-q', ...ACCEPTED.map((rel) => outFile(name, rel))], false);
      if (all.code === 0 && !/^E:/m.test(all.err)) return;
      for (const rel of ACCEPTED) {
        const one = await tool('dcmdump', ['-q', outFile(name, rel)], false);
        if (one.code !== 0 || /^E:/m.test(one.err)) failed.push(`${name}/${rel}: ${one.err.split('\n')[0]}`);
      }
    }, 4);
    assert.deepEqual(failed, []);
  });

  test('Pixel Data bytes are identical before and after, native and encapsulated', async () => {
    const before = new Map<string, string>();
    for (const rel of ACCEPTED) before.set(rel, sha((await readPart10Buffer(sample(rel))).pixelDataBytes));
    assert.ok([...before.values()].filter((h) => h !== 'none').length >= 40, 'most samples have Pixel Data');
    const after = await outputFacts();
    for (const name of Object.keys(PROFILES)) {
      for (const rel of ACCEPTED) assert.equal(after.get(`${name}/${rel}`)?.pixelSha, before.get(rel), `${name}/${rel}`);
    }
  });

  test('dciodvfy reports no error on an output that it did not report on the input, under Basic and every option', async () => {
    const after = await outputFacts();
    // One dciodvfy per input and per distinct output: most options change a few values of a sample, some
    // none (then only the method attributes differ, the same structure in every profile).
    const runs = new Map<string, string>(); // iodKey -> the first output file with it
    for (const name of Object.keys(PROFILES)) for (const rel of ACCEPTED) if (!runs.has(after.get(`${name}/${rel}`)!.iodKey)) runs.set(after.get(`${name}/${rel}`)!.iodKey, outFile(name, rel));
    const files = [...ACCEPTED.map((rel) => path.join(SAMPLES_DIR, rel)), ...runs.values()];
    const found = new Map<string, { aborted: boolean; errors: Set<string> }>();
    await inBatches(files, async (file) => void found.set(file, await iodErrors(file)), IOD_PARALLEL);
    const unexpected: string[] = [];
    for (const name of Object.keys(PROFILES)) {
      for (const rel of ACCEPTED) {
        const input = found.get(path.join(SAMPLES_DIR, rel));
        const output = found.get(runs.get(after.get(`${name}/${rel}`)!.iodKey)!)!;
        // dciodvfy itself aborts (SIGABRT) on edge-cases/badVR.dcm and rt/rtdose.dcm, before and after.
        if (output.aborted) {
          if (!input?.aborted) unexpected.push(`${name}/${rel}: dciodvfy aborted on the output only`);
          continue;
        }
        for (const error of output.errors) {
          if (input?.errors.has(error) || ACCEPTED_NEW_IOD_ERRORS.some(([pattern]) => pattern.test(error))) continue;
          unexpected.push(`${name}/${rel}: ${error}`);
        }
      }
    }
    assert.deepEqual(unexpected, []);
    assert.ok(runs.size < (ACCEPTED.length * Object.keys(PROFILES).length * 2) / 3, `${runs.size} distinct outputs checked`);
  });

  test('the same secret gives identical output bytes; another secret gives other UIDs', async () => {
    const other = createPolicy({ secret: OTHER_SECRET, pixels: PIXELS_OFF });
    const uids = (ds: Dataset): (string | undefined)[] => [0x0020000d, 0x0020000e, 0x00080018].map((t) => asciiValue(ds, t));
    let compared = 0;
    for (const rel of ACCEPTED) {
      const again = await rewritePart10Buffer(sample(rel), createSession(policyOf('basic')));
      assert.ok(again.output.equals(out('basic', rel)), `${rel}: same secret, same bytes`);
      const a = uids((await readPart10Buffer(out('basic', rel))).header.dataset);
      const b = uids((await readPart10Buffer((await rewritePart10Buffer(sample(rel), createSession(other))).output)).header.dataset);
      for (const [i, uid] of a.entries()) {
        if (!uid) continue;
        assert.match(uid, /^2\.25\.[1-9]\d{0,38}$/, rel);
        assert.notEqual(b[i], uid, `${rel}: another secret, another UID`);
        compared++;
      }
    }
    assert.ok(compared > 100, `${compared} UIDs compared`);
  });
});

// --- leaks -----------------------------------------------------------------------------------------

interface Identity {
  /** Values of attributes the profile removes or replaces, at any depth, as text. */
  readonly texts: Set<string>;
  /** Original UIDs of U-action attributes (replaced by keyed UIDs). */
  readonly uids: Set<string>;
  /** Slices of removed binary values (private blobs, Overlay Data, documents ...). */
  readonly binaries: Buffer[];
  /** Raw bytes of every value the profile keeps: a removed value also found here is no evidence. */
  readonly kept: Buffer[];
  readonly charsets: CharacterSet[];
}

function textsOf(el: DataElement, charset: CharacterSet, le: boolean): string[] {
  const json = elementToJsonValue(el, charset, le);
  const out: string[] = [];
  const add = (v: unknown): void => {
    if (typeof v === 'string') out.push(v);
    else if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      const pn = v as Record<string, unknown>;
      if ('Alphabetic' in pn || 'Ideographic' in pn || 'Phonetic' in pn) {
        for (const g of ['Alphabetic', 'Ideographic', 'Phonetic']) {
          if (typeof pn[g] !== 'string') continue;
          out.push(pn[g] as string);
          out.push(...(pn[g] as string).split('^'));
        }
      } else for (const sub of Object.values(pn as JsonDataset)) for (const x of sub.Value ?? []) add(x);
    }
  };
  for (const v of json.Value ?? []) add(v);
  return out;
}

/** Every value of `dataset` (all depths) into `sink`; used for what a removed or replaced sequence held. */
function collectAll(dataset: readonly DataElement[], charset: CharacterSet, le: boolean, id: Identity): void {
  const cs = characterSetOf(dataset, charset);
  for (const el of dataset) {
    if (el.items) for (const item of el.items) collectAll(item, cs, le, id);
    else collectRemoved(el, cs, le, id);
  }
}

function collectRemoved(el: DataElement, charset: CharacterSet, le: boolean, id: Identity): void {
  if (el.items) {
    collectAll(el.items.flat(), charset, le, id);
    return;
  }
  if (el.fragments) return;
  if (el.vr === 'UI') {
    for (const t of textsOf(el, charset, le)) if (!t.startsWith('1.2.840.10008.')) id.uids.add(t);
    return;
  }
  if (['OB', 'OW', 'UN', 'OF', 'OD', 'OL', 'OV'].includes(el.vr)) {
    // A 48-byte window of a long, varied binary value, as scan-leaks.py fingerprints them.
    const v = el.value;
    if (v && v.length >= 64 && new Set(v.subarray(8, 56)).size >= 8) id.binaries.push(v.subarray(8, 56));
    return;
  }
  for (const t of textsOf(el, charset, le)) id.texts.add(t.trim());
}

/** Walks the original with the same decide() the rewriter uses and sorts each value into kept or removed. */
function identityOf(dataset: readonly DataElement[], policy: DeidPolicy, le: boolean): Identity {
  const id: Identity = { texts: new Set(), uids: new Set(), binaries: [], kept: [], charsets: [] };
  const session = createSession(policy);
  const pid = findElement(dataset, 0x00100020);
  session.beginDataset(pid ? String(elementToJsonValue(pid, characterSetOf(dataset, []), le).Value?.[0] ?? '') : undefined, undefined, asciiValue(dataset, 0x00080016));
  const walk = (ds: readonly DataElement[], inherited: CharacterSet, pathTags: readonly number[]): void => {
    const cs = characterSetOf(ds, inherited);
    id.charsets.push(cs);
    for (const el of ds) {
      const ref: { -readonly [K in keyof ElementRef]: ElementRef[K] } = { tag: el.tag, vr: el.vr, path: pathTags };
      if (isPrivateDataElement(el.tag)) {
        const creator = findElement(ds, privateCreatorTagFor(el.tag) ?? 0);
        if (creator?.value) ref.privateCreator = normalizeCreator(decodeText(creator.value, cs, 'LO'));
      }
      const value = el.vr === 'SQ' || el.items || el.fragments ? undefined : elementToJsonValue(el, cs, le).Value;
      const d = session.decide(ref, value);
      if (d.op === 'recurse' && el.items) for (const item of el.items) walk(item, cs, [...pathTags, el.tag]);
      else if (d.op === 'keep' || d.op === 'recurse') {
        if (el.value) id.kept.push(el.value);
      } else collectRemoved(el, cs, le, id);
    }
  };
  walk(dataset, [], []);
  return id;
}

/**
 * The output as a leak search must see it: File Meta plus the dataset inflated when the transfer
 * syntax is Deflated (PS3.5 A.5), so that compression cannot hide a value; optionally without the
 * Pixel Data value, whose bytes are checked identical to the input's and in which short values occur
 * by chance (burned-in text is out of scope for header de-identification).
 */
async function searchable(output: Buffer, withoutPixelData = false): Promise<Buffer> {
  const parsed = await readPart10Buffer(output);
  let bytes = output;
  if (parsed.header.deflated) {
    const metaEnd = 144 + output.readUInt32LE(140); // after the preamble, "DICM" and (0002,0000)
    bytes = Buffer.concat([output.subarray(0, metaEnd), inflateRawSync(output.subarray(metaEnd))]);
  }
  const px = parsed.pixelDataBytes;
  if (!withoutPixelData || !px || px.length === 0) return bytes;
  const at = bytes.indexOf(px);
  assert.ok(at >= 0, 'Pixel Data found in the output');
  return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + px.length)]);
}

/** The enumerated values dummy items are written with (iod-table.generated.ts), e.g. PIXEL: not taken from the input. */
const DUMMY_VALUES = new Set(DUMMY_ITEMS.flat().map((attribute) => attribute[3]).filter((v) => v !== ''));

/** Too short, numeric and short, repetitive, or a dummy: found by chance, not evidence (as scan-leaks.py rules). */
function trivial(text: string): boolean {
  const bytes = Buffer.byteLength(text);
  return bytes < 4 || (/^[\d.+-]+$/.test(text) && bytes < 6) || new Set(text).size < 3 || /^(ANONYMIZED|NONE|UNKNOWN|YES|NO)$/i.test(text) || DUMMY_VALUES.has(text);
}

describe('leak checks under the Basic Profile', () => {
  test('no MANIFEST canary appears in any output, in UTF-8, Latin-1 or the sample\'s own character set', async () => {
    const found: string[] = [];
    for (const rel of ACCEPTED) for (const c of findCanaries(rel, await searchable(out('basic', rel)))) found.push(`${rel}: ${c}`);
    assert.deepEqual(found, []);
    // The search is not vacuous: every canary is found in its original, in one of its byte forms.
    const absent: string[] = [];
    for (const [rel, canary] of Object.entries(CANARIES)) {
      const there = new Set(findCanaries(rel, await searchable(sample(rel))));
      // Non-ASCII values in charsets our encoder does not produce are stood for by their raw forms.
      const wanted = canary.raw ? canary.values.filter((v) => /^[\x20-\x7e]*$/.test(v)) : canary.values;
      for (const v of [...wanted, ...(canary.raw ?? []).map((r) => `raw ${JSON.stringify(r)}`)]) if (!there.has(v)) absent.push(`${rel}: ${v}`);
    }
    assert.deepEqual(absent, []);
  });

  test('no value of an attribute the profile removes or replaces, and no original U-action UID, is in the output', async () => {
    const leaks: string[] = [];
    let searched = 0;
    let uidsSearched = 0;
    for (const rel of ACCEPTED) {
      const parsed = await readPart10Buffer(sample(rel));
      const le = parsed.header.encoding.littleEndian;
      const id = identityOf([...parsed.header.dataset, ...parsed.trailer], policyOf('basic'), le);
      const output = await searchable(out('basic', rel), true);
      const kept = Buffer.concat(id.kept);
      for (const text of id.texts) {
        if (trivial(text)) continue;
        const needles = id.charsets.flatMap((cs) => canaryNeedles(text, cs));
        if (needles.some((n) => kept.includes(n))) continue; // also the value of a kept attribute
        searched++;
        if (needles.some((n) => output.includes(n))) leaks.push(`${rel}: removed value ${JSON.stringify(text)}`);
      }
      for (const uid of id.uids) {
        // e.g. ContextGroupExtensionCreatorUID (U) holding the same organisation UID as a kept CodingSchemeUID
        if (kept.includes(uid, 0, 'latin1')) continue;
        uidsSearched++;
        // Bounded: not a prefix of a longer UID (kept or new).
        const at = output.indexOf(uid, 0, 'latin1');
        if (at >= 0 && !/[0-9.]/.test(String.fromCharCode(output[at + uid.length] ?? 0))) leaks.push(`${rel}: original UID ${uid}`);
      }
      for (const b of id.binaries) if (!kept.includes(b) && output.includes(b)) leaks.push(`${rel}: removed binary value`);
    }
    assert.deepEqual(leaks, []);
    assert.ok(searched > 300 && uidsSearched > 150, `searched ${searched} values, ${uidsSearched} UIDs`);
  });

  test('scan-leaks.py over the originals and the outputs reports no hit', async () => {
    const scan = await scanLeaks(SAMPLES_DIR, [path.join(work, 'basic')], { options: [] });
    assert.equal(scan.exitCode, 0, scan.hits.map((h) => `${h.file.slice(work.length)} ${h.kind} ${h.value} (${h.form}) from ${h.origins[0]?.original} ${h.origins[0]?.tag}`).join('\n'));
    assert.ok(scan.valuesSearched > 100 && scan.outputFiles === ACCEPTED.length, scan.summary);
  });
});

// --- dates, representations, malformed input -------------------------------------------------------

/** Part 10 bytes of `rel` with some header elements set, via our own reader and writer. */
async function withElements(rel: string, elements: readonly DataElement[]): Promise<Buffer> {
  const reader = new Part10Reader();
  async function* patched(): AsyncGenerator<Part10Event> {
    for await (const ev of reader.read([sample(rel)])) {
      if (ev.type !== 'header') yield ev;
      else {
        const dataset = [...ev.header.dataset];
        for (const el of elements) setElement(dataset, el);
        yield { type: 'header', header: { ...ev.header, dataset } };
      }
    }
  }
  return collect(writePart10(patched()));
}

const day = (da: string): number => Date.UTC(Number(da.slice(0, 4)), Number(da.slice(4, 6)) - 1, Number(da.slice(6, 8))) / 86_400_000;

describe('dates, two representations, malformed input', () => {
  test('two studies of one patient keep their day interval under Modified Dates', async () => {
    const policy = createPolicy({ secret: SECRET, profile: { retainLongitudinalTemporalModifiedDates: true }, pixels: PIXELS_OFF });
    const text = (s: string) => Buffer.from(s.length % 2 ? `${s}\0` : s, 'latin1');
    const study = (date: string, uid: string) =>
      withElements('transfer-syntax/CT1_UNC.explicit_little_endian.dcm', [
        { tag: 0x00080020, vr: 'DA', value: text(date) },
        { tag: 0x00080021, vr: 'DA', value: text(date) },
        { tag: 0x0020000d, vr: 'UI', value: text(uid) },
      ]);
    // Each study de-identified in its own session, as two separate requests would be.
    const [a, b] = await Promise.all([
      study('20200110', '1.2.826.0.1.3680043.2.1125.9.1').then((f) => rewritePart10Buffer(f, createSession(policy))),
      study('20210305', '1.2.826.0.1.3680043.2.1125.9.2').then((f) => rewritePart10Buffer(f, createSession(policy))),
    ]);
    const [da, db] = [(await readPart10Buffer(a.output)).header.dataset, (await readPart10Buffer(b.output)).header.dataset];
    for (const tag of [0x00080020, 0x00080021]) {
      const [x, y] = [asciiValue(da, tag) ?? '', asciiValue(db, tag) ?? ''];
      assert.match(x, /^\d{8}$/);
      assert.notEqual(x, '20200110', 'the date moved');
      assert.equal(day(y) - day(x), day('20210305') - day('20200110'));
    }
    assert.notEqual(asciiValue(da, 0x0020000d), asciiValue(db, 0x0020000d));
    assert.equal(asciiValue(da, 0x00100020), asciiValue(db, 0x00100020), 'one patient pseudonym');
    // Another patient gets another offset (with this secret).
    const otherPatient = await withElements('transfer-syntax/CT1_UNC.explicit_little_endian.dcm', [{ tag: 0x00080020, vr: 'DA', value: text('20200110') }, { tag: 0x00100020, vr: 'LO', value: text('OTHER-PATIENT-7') }]);
    const dc = (await readPart10Buffer((await rewritePart10Buffer(otherPatient, createSession(policy))).output)).header.dataset;
    assert.notEqual(asciiValue(dc, 0x00080020), asciiValue(da, 0x00080020));
  });

  test('one decision, two representations: json(deid(file)) equals deid(json(file)) for every sample and profile', async () => {
    const toJson = async (buf: Buffer): Promise<JsonDataset> => {
      const { header, trailer } = await readPart10Buffer(buf);
      return datasetToJson([...header.dataset, ...trailer], [], header.encoding.littleEndian);
    };
    const canonical = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x));
    const differences: string[] = [];
    let compared = 0;
    for (const name of Object.keys(PROFILES)) {
      for (const rel of ACCEPTED) {
        // The JSON of a whole file is a whole instance: its text is cleaned of its identities as in Part 10 (issue 17).
        const viaJson = deidentifyJson(createSession(policyOf(name)), await toJson(sample(rel)), { wholeInstance: true });
        const viaPart10 = await toJson(out(name, rel));
        const keys = [...new Set([...Object.keys(viaJson), ...Object.keys(viaPart10)])].sort();
        for (const k of keys) if (canonical(viaJson[k]) !== canonical(viaPart10[k])) differences.push(`${name}/${rel} ${k}: json ${canonical(viaJson[k]).slice(0, 120)} part10 ${canonical(viaPart10[k]).slice(0, 120)}`);
        compared++;
      }
    }
    assert.deepEqual(differences.slice(0, 20), []);
    assert.equal(compared, ACCEPTED.length * Object.keys(PROFILES).length);
  });

  test('with a redact verdict too: json(deid(file)) equals deid(json(file)) for every sample (Burned In Annotation, Photometric Interpretation, 113101)', async () => {
    const toJson = async (buf: Buffer): Promise<JsonDataset> => {
      const { header, trailer } = await readPart10Buffer(buf);
      return datasetToJson([...header.dataset, ...trailer], [], header.encoding.littleEndian);
    };
    const canonical = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x));
    const verdict = { action: 'redact', rule: 'test', rectangles: [{ x: 0, y: 0, width: 8, height: 8 }] } as const;
    const differences: string[] = [];
    for (const name of ['basic', 'retainLongitudinalTemporalModifiedDates']) {
      for (const rel of ACCEPTED) {
        const session = createSession(policyOf(name));
        // The header's side of the verdict only: the rewriter is told to keep the pixels, the session that they were redacted.
        const headerOnly = { beginDataset: (pid: string | undefined, _v: unknown, sopClass?: string) => session.beginDataset(pid, verdict, sopClass), decide: session.decide.bind(session), attributesToAdd: session.attributesToAdd.bind(session) };
        const viaPart10 = await toJson((await rewritePart10Buffer(sample(rel), headerOnly)).output);
        const viaJson = deidentifyJson(createSession(policyOf(name)), await toJson(sample(rel)), { pixelVerdict: verdict });
        assert.deepEqual(viaJson['00280301'], { vr: 'CS', Value: ['NO'] }, rel);
        const keys = [...new Set([...Object.keys(viaJson), ...Object.keys(viaPart10)])].sort();
        for (const k of keys) if (canonical(viaJson[k]) !== canonical(viaPart10[k])) differences.push(`${name}/${rel} ${k}: json ${canonical(viaJson[k]).slice(0, 120)} part10 ${canonical(viaPart10[k]).slice(0, 120)}`);
      }
    }
    assert.deepEqual(differences.slice(0, 20), []);
  });

  test('every malformed file in edge-cases, and truncated or corrupted copies of it, de-identifies or fails with a typed error within a time bound', async () => {
    const BOUND_MS = 5000;
    const edge = FILES.filter((f) => f.startsWith('edge-cases/'));
    assert.ok(edge.length >= 14);
    let rnd = 0x2545f491; // xorshift32: the same mutations every run
    const next = (n: number): number => {
      rnd ^= rnd << 13;
      rnd ^= rnd >>> 17;
      rnd ^= rnd << 5;
      return (rnd >>> 0) % n;
    };
    const cases: { label: string; bytes: Buffer }[] = [];
    for (const rel of edge) {
      const bytes = sample(rel);
      cases.push({ label: rel, bytes });
      for (let i = 0; i < 8; i++) {
        const cut = next(bytes.length);
        cases.push({ label: `${rel} cut at ${cut}`, bytes: bytes.subarray(0, cut) });
        const flipped = Buffer.from(bytes);
        const at = next(Math.min(bytes.length, 4096));
        flipped[at] = (flipped[at] as number) ^ (1 << next(8));
        cases.push({ label: `${rel} bit flip at ${at}`, bytes: flipped });
      }
    }
    const problems: string[] = [];
    let refused = 0;
    await inBatches(cases, async ({ label, bytes }) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), BOUND_MS)));
      const attempt = rewritePart10Buffer(bytes, createSession(policyOf('basic'))).then(
        (r) => ({ ok: true as const, output: r.output }),
        (error: unknown) => ({ ok: false as const, error }),
      );
      const result = await Promise.race([attempt, timeout]);
      clearTimeout(timer);
      if (result === 'timeout') return void problems.push(`${label}: no result within ${BOUND_MS} ms`);
      if (!result.ok) {
        refused++;
        const e = result.error;
        if (!((e instanceof DicomError || e instanceof DeidError) && typeof e.code === 'string')) problems.push(`${label}: untyped ${String(e)}`);
        return;
      }
      // Accepted: the output must itself be readable DICOM that carries the de-identification mark.
      const back = await readPart10Buffer(result.output).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
      if (back instanceof Error) problems.push(`${label}: output does not re-read (${(back as { code?: string }).code})`);
      else if (asciiValue(back.header.dataset, 0x00120062) !== 'YES') problems.push(`${label}: PatientIdentityRemoved missing`);
    }, 16);
    assert.deepEqual(problems, []);
    assert.ok(refused >= REFUSED.size, `${refused} refused`);
  });
});

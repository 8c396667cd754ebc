// Fuzzing the paths a restricted role's bytes take (issue 8): the streaming Part 10 rewriter, the
// multipart/related reader (PS3.18 8.7.1) and the DICOM JSON de-identifier (PS3.18 F.2). Every mutant
// must end in de-identified output that re-parses and holds none of the sample's canaries
// (MANIFEST.md), or in a typed error (DicomError, DeidError, MultipartError) — never a TypeError or
// RangeError, never a hang, never an allocation sized by a declared length.
// `npm test` runs about 10,000 cases; `FUZZ_RUNS=200000 npm run fuzz` runs the same properties longer.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { createPolicy, createSession, deidentifyJson, type DicomJsonDataset } from '../../../src/deid/deidentify.ts';
import { DeidError } from '../../../src/deid/errors.ts';
import { rewritePart10 } from '../../../src/deid/rewrite-part10.ts';
import { DicomError, MultipartError } from '../../../src/dicom/errors.ts';
import { readMultipart } from '../../../src/dicom/multipart.ts';
import { readPart10Buffer } from '../../../src/dicom/part10-reader.ts';
import { collect } from '../../../src/dicom/part10-writer.ts';
import { findCanaries } from '../../helpers/leak-scan.ts';
import { sample } from '../../helpers/sample.ts';

/** Total cases across the properties below; FUZZ_RUNS scales them all (npm run fuzz). */
const TOTAL = Number(process.env['FUZZ_RUNS'] ?? 10_000);
const runs = (share: number) => Math.max(10, Math.round(TOTAL * share));
const SEED = process.env['FUZZ_SEED'] === undefined ? undefined : Number(process.env['FUZZ_SEED']);
const fcOptions = (share: number) => ({ numRuns: runs(share), ...(SEED === undefined ? {} : { seed: SEED }) });
const CASE_MS = 2_000;

/** fc.assert, with the failing case's own error in the message (the TAP report drops `cause`). */
async function check(property: fc.IAsyncProperty<unknown[]> | fc.IProperty<unknown[]>, share: number): Promise<void> {
  try {
    await fc.assert(property as fc.IAsyncProperty<unknown[]>, fcOptions(share));
  } catch (error) {
    const cause = (error as { cause?: unknown }).cause;
    throw new Error(`${(error as Error).message}\nCause: ${cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)}`);
  }
}

// Ten varied samples: explicit/implicit LE, explicit BE, deflate, encapsulated (JPEG, RLE), SR with
// nested Content Sequences, RT, ISO_IR 100, GE private groups, no File Meta.
const SAMPLES = [
  'transfer-syntax/MR_small.dcm',
  'transfer-syntax/MR_small_implicit.dcm',
  'transfer-syntax/MR_small_bigendian.dcm',
  'sr/report_dfl.dcm',
  'transfer-syntax/SC_rgb_jpeg_dcmtk.dcm',
  'transfer-syntax/MR_small_RLE.dcm',
  'sr/test-SR.dcm',
  'rt/rtplan.dcm',
  'charset/chrFren.dcm',
  'private-tags/CT_small.dcm',
  'edge-cases/ExplVR_BigEndNoMeta.dcm',
].map((rel) => ({ rel, bytes: sample(rel) }));

// The rewriter's framing, not the pixel policy: it is off, so no sample is withheld for its pixels.
const policy = createPolicy({ secret: 'fuzz-secret-0123456789abcdef', pixels: { enabled: false } });

function isTyped(error: unknown): boolean {
  return error instanceof DicomError || error instanceof DeidError || error instanceof MultipartError;
}

/** `bytes` in chunks of the given sizes, cycled; at most ~2048 chunks, so the 2 s bound measures the code, not the chunk count. */
async function* chunked(bytes: Buffer, sizes: readonly number[]): AsyncGenerator<Buffer> {
  let i = 0;
  const least = Math.ceil(bytes.length / 2048);
  for (let at = 0; at < bytes.length; i++) {
    const n = sizes.length === 0 ? bytes.length : Math.max(least, sizes[i % sizes.length] as number);
    yield bytes.subarray(at, at + n);
    at += n;
  }
}

interface Outcome {
  readonly kind: 'output' | 'typed-error';
  readonly ms: number;
  readonly code?: string;
}

/**
 * Rewrites `input` in the given chunking and checks the outcome: output must re-parse and hold none of
 * `rel`'s canaries; an error must be typed. Returns what happened, for the distribution checks.
 */
async function rewriteChecked(rel: string, input: Buffer, sizes: readonly number[], canaries = true): Promise<Outcome> {
  try {
    return await rewriteOnce(rel, input, sizes, canaries);
  } catch (error) {
    // fast-check reports the counterexample; the cause says which sample and what went wrong.
    throw new Error(`${rel} (${input.length} bytes): ${(error as Error).message}`, { cause: error });
  }
}

async function rewriteOnce(rel: string, input: Buffer, sizes: readonly number[], canaries: boolean): Promise<Outcome> {
  const t0 = performance.now();
  let output: Buffer;
  try {
    const { output: out } = rewritePart10(chunked(input, sizes), createSession(policy), { maxHeaderBytes: 1024 * 1024 });
    output = await collect(out);
  } catch (error) {
    const ms = performance.now() - t0;
    if (!isTyped(error)) throw new Error(`untyped ${(error as Error)?.name}: ${(error as Error)?.message}`, { cause: error });
    assert.ok(ms < CASE_MS, `${ms} ms`);
    return { kind: 'typed-error', ms, code: (error as { code: string }).code };
  }
  const ms = performance.now() - t0;
  assert.ok(ms < CASE_MS, `${ms} ms`);
  if (canaries) assert.deepEqual(findCanaries(rel, output), [], `${rel}: canary in output`);
  await readPart10Buffer(output); // what we emit is itself valid Part 10
  return { kind: 'output', ms };
}

// --- element boundaries (for truncation and header corruption) -------------------------------------

interface Boundary {
  /** Offset of an element (or item/delimiter) header. */
  readonly at: number;
  /** Offset and size of its length field. */
  readonly lengthAt: number;
  readonly lengthSize: 2 | 4;
  /** Offset of its explicit VR, if any. */
  readonly vrAt: number | undefined;
  readonly le: boolean;
}

const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/**
 * Every element header of a non-deflated sample, found by walking it: File Meta (Explicit VR LE, PS3.10
 * 7.1), then the dataset in the encoding the repo's reader reports (PS3.5 7.1.2/7.1.3, 7.5). Sequences
 * and items are entered, never skipped, so nested headers count too.
 */
async function boundaries(bytes: Buffer): Promise<Boundary[]> {
  const { header } = await readPart10Buffer(bytes);
  if (header.deflated) return [];
  const out: Boundary[] = [];
  let at = bytes.subarray(128, 132).toString('latin1') === 'DICM' ? 132 : 0;
  let explicit = true;
  let le = true;
  let inMeta = at === 132;
  while (at + 8 <= bytes.length) {
    if (inMeta && bytes.readUInt16LE(at) !== 0x0002) {
      inMeta = false;
      explicit = header.encoding.explicitVr;
      le = header.encoding.littleEndian;
    }
    if (!inMeta && at === 0) {
      explicit = header.encoding.explicitVr;
      le = header.encoding.littleEndian;
    }
    const group = le ? bytes.readUInt16LE(at) : bytes.readUInt16BE(at);
    const element = le ? bytes.readUInt16LE(at + 2) : bytes.readUInt16BE(at + 2);
    if (group === 0xfffe) {
      out.push({ at, lengthAt: at + 4, lengthSize: 4, vrAt: undefined, le });
      at += 8; // an item is entered; delimiters have no value
      continue;
    }
    const read32 = (o: number) => (le ? bytes.readUInt32LE(o) : bytes.readUInt32BE(o));
    if (!explicit) {
      const length = read32(at + 4);
      out.push({ at, lengthAt: at + 4, lengthSize: 4, vrAt: undefined, le });
      at += 8 + (length === 0xffffffff || (group === 0x7fe0 && element === 0x0010) ? 0 : length);
      if (group === 0x7fe0) break;
      continue;
    }
    const vr = bytes.toString('latin1', at + 4, at + 6);
    const long = LONG_VRS.has(vr);
    const length = long ? read32(at + 8) : le ? bytes.readUInt16LE(at + 6) : bytes.readUInt16BE(at + 6);
    out.push({ at, lengthAt: long ? at + 8 : at + 6, lengthSize: long ? 4 : 2, vrAt: at + 4, le });
    if (group === 0x7fe0 && element === 0x0010) break;
    at += (long ? 12 : 8) + (vr === 'SQ' || length === 0xffffffff ? 0 : length);
  }
  return out;
}

const BOUNDARIES = await Promise.all(SAMPLES.map(async (s) => ({ ...s, boundaries: await boundaries(s.bytes) })));
const WITH_BOUNDARIES = BOUNDARIES.filter((s) => s.boundaries.length > 0);

const chunkSizes = fc.array(fc.integer({ min: 1, max: 4096 }), { minLength: 0, maxLength: 8 });
const sampleIndex = fc.integer({ min: 0, max: SAMPLES.length - 1 });
const boundaryPick = fc.tuple(fc.integer({ min: 0, max: WITH_BOUNDARIES.length - 1 }), fc.nat());

describe('fuzzing the streaming Part 10 rewriter', () => {
  test('the unmutated samples rewrite cleanly in any chunking (baseline)', async () => {
    for (const s of SAMPLES) {
      const outcome = await rewriteChecked(s.rel, s.bytes, [1 + (s.bytes.length % 97)]);
      assert.equal(outcome.kind, 'output', s.rel);
    }
    assert.ok(WITH_BOUNDARIES.length >= 8);
    assert.ok(WITH_BOUNDARIES.every((s) => s.boundaries.length > 20), 'the walker finds the headers');
  });

  test('bit flips anywhere end in clean output or a typed error', async () => {
    await check(
      fc.asyncProperty(sampleIndex, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 8 }), chunkSizes, async (i, flips, sizes) => {
        const { rel, bytes } = SAMPLES[i] as (typeof SAMPLES)[number];
        const mutant = Buffer.from(bytes);
        for (const [at, bit] of flips) mutant[at % mutant.length]! ^= 1 << bit;
        // A flip inside a tag makes it another attribute (StudyID (0020,0010) SH -> SeriesNumber
        // (0020,0011), which the profile keeps): no de-identifier can tell, so the canary check
        // applies only when every flip missed the tag fields.
        const tags = (BOUNDARIES[i] as (typeof BOUNDARIES)[number]).boundaries;
        const hitsTag = flips.some(([at]) => tags.some((b) => at % mutant.length >= b.at && at % mutant.length < b.at + 4));
        await rewriteChecked(rel, mutant, sizes, !hitsTag);
      }),
      0.3,
    );
  });

  test('truncation at every element boundary ends in clean output or a typed error', async (t) => {
    let cases = 0;
    const codes = new Map<string, number>();
    for (const s of WITH_BOUNDARIES) {
      for (const b of s.boundaries) {
        for (const cut of [b.at, b.at + 1, b.lengthAt + b.lengthSize]) {
          const outcome = await rewriteChecked(s.rel, s.bytes.subarray(0, cut), [1 + (cut % 509)]);
          codes.set(outcome.code ?? outcome.kind, (codes.get(outcome.code ?? outcome.kind) ?? 0) + 1);
          cases++;
        }
      }
    }
    t.diagnostic(`${cases} truncations: ${JSON.stringify(Object.fromEntries(codes))}`);
    assert.ok(cases > 1000, `${cases} cases`);
    assert.ok((codes.get('DICOM_TRUNCATED') ?? 0) + (codes.get('DICOM_UNTERMINATED_SEQUENCE') ?? 0) > 100, JSON.stringify([...codes]));
  });

  test('corrupted, odd and huge declared lengths end in clean output or a typed error', async () => {
    const lengths = fc.oneof(
      fc.constantFrom(0, 1, 3, 0x7fff, 0xffff, 0xfffffff0, 0xfffffffe, 0xffffffff, 0x7fffffff, 0x80000000, 0x3fffffff),
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 0, max: 512 }).map((n) => n * 2 + 1),
    );
    await check(
      fc.asyncProperty(boundaryPick, lengths, chunkSizes, async ([si, bi], length, sizes) => {
        const s = WITH_BOUNDARIES[si] as (typeof WITH_BOUNDARIES)[number];
        const b = s.boundaries[bi % s.boundaries.length] as Boundary;
        const mutant = Buffer.from(s.bytes);
        const le = b.le;
        if (b.lengthSize === 2) le ? mutant.writeUInt16LE(length & 0xffff, b.lengthAt) : mutant.writeUInt16BE(length & 0xffff, b.lengthAt);
        else le ? mutant.writeUInt32LE(length >>> 0, b.lengthAt) : mutant.writeUInt32BE(length >>> 0, b.lengthAt);
        await rewriteChecked(s.rel, mutant, sizes);
      }),
      0.2,
    );
  });

  test('wrong VRs end in clean output or a typed error', async () => {
    const vrs = fc.constantFrom('AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'PN', 'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV', 'XX', '\0\0');
    await check(
      fc.asyncProperty(boundaryPick, vrs, chunkSizes, async ([si, bi], vr, sizes) => {
        const s = WITH_BOUNDARIES[si] as (typeof WITH_BOUNDARIES)[number];
        const withVr = s.boundaries.filter((b) => b.vrAt !== undefined);
        const b = withVr[bi % withVr.length];
        if (!b) return;
        const mutant = Buffer.from(s.bytes);
        mutant.write(vr, b.vrAt as number, 'latin1');
        await rewriteChecked(s.rel, mutant, sizes);
      }),
      0.12,
    );
  });

  test('a huge declared length allocates nothing of that size; 10,000 nested sequences are refused', async () => {
    const base = sample('transfer-syntax/MR_small.dcm');
    const b = (WITH_BOUNDARIES.find((s) => s.rel === 'transfer-syntax/MR_small.dcm') as (typeof WITH_BOUNDARIES)[number]).boundaries;
    const pixel = b.find((x) => base.readUInt16LE(x.at) === 0x7fe0) as Boundary;
    const comment = b.find((x) => x.lengthSize === 4 && base.toString('latin1', x.vrAt ?? 0, (x.vrAt ?? 0) + 2) === 'OB' && base.readUInt16LE(x.at) !== 0x0002) ?? pixel;
    // (a) Pixel Data and (b) a header element declare ~4 GiB, (c) a header element 60 MiB (under the cap),
    // and only the file's own bytes follow.
    const cases: { at: number; length: number; maxHeaderBytes?: number }[] = [
      { at: pixel.lengthAt, length: 0xfffffff0 },
      { at: comment.lengthAt, length: 0xfffffff0 },
      { at: comment.lengthAt, length: 60 * 1024 * 1024, maxHeaderBytes: 64 * 1024 * 1024 },
    ];
    for (const c of cases) {
      const mutant = Buffer.from(base);
      mutant.writeUInt32LE(c.length, c.at);
      globalThis.gc?.();
      const before = process.memoryUsage();
      let peakArrayBuffers = before.arrayBuffers;
      let peakRss = before.rss;
      const sizes = [1024];
      const source = (async function* () {
        for await (const chunk of chunked(mutant, sizes)) {
          const m = process.memoryUsage();
          peakArrayBuffers = Math.max(peakArrayBuffers, m.arrayBuffers);
          peakRss = Math.max(peakRss, m.rss);
          yield chunk;
        }
      })();
      const { output } = rewritePart10(source, createSession(policy), c.maxHeaderBytes ? { maxHeaderBytes: c.maxHeaderBytes } : {});
      await assert.rejects(collect(output), (e: unknown) => isTyped(e));
      const after = process.memoryUsage();
      peakArrayBuffers = Math.max(peakArrayBuffers, after.arrayBuffers);
      peakRss = Math.max(peakRss, after.rss);
      assert.ok(peakArrayBuffers - before.arrayBuffers < 8 * 1024 * 1024, `arrayBuffers grew by ${peakArrayBuffers - before.arrayBuffers}`);
      assert.ok(peakRss - before.rss < 48 * 1024 * 1024, `RSS grew by ${peakRss - before.rss}`);
    }

    // 10,000 nested undefined-length sequences (PS3.5 7.5.2) under a text element.
    const head = Buffer.from(base.subarray(0, b.find((x) => base.readUInt16LE(x.at) === 0x0008)?.at ?? 0));
    const sq = Buffer.from([0x08, 0x00, 0x15, 0x11, 0x53, 0x51, 0, 0, 0xff, 0xff, 0xff, 0xff]); // (0008,1115) SQ, undefined
    const item = Buffer.from([0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]);
    const deep = Buffer.concat([head, ...Array.from({ length: 10_000 }, () => Buffer.concat([sq, item]))]);
    const t0 = performance.now();
    const { output } = rewritePart10(chunked(deep, [4096]), createSession(policy));
    await assert.rejects(collect(output), (e: unknown) => e instanceof DicomError && e.code === 'DICOM_DEPTH_EXCEEDED');
    assert.ok(performance.now() - t0 < CASE_MS);
  });
});

// --- multipart/related ------------------------------------------------------------------------------

function multipartBody(boundary: string, parts: readonly Buffer[], headers: readonly string[]): Buffer {
  const chunks: Buffer[] = [Buffer.from('preamble\r\n')];
  parts.forEach((p, i) => {
    chunks.push(Buffer.from(`--${boundary}\r\n${headers[i % headers.length]}\r\n\r\n`), p, Buffer.from('\r\n'));
  });
  chunks.push(Buffer.from(`--${boundary}--\r\nepilogue`));
  return Buffer.concat(chunks);
}

async function readAll(body: Buffer, boundary: string, sizes: readonly number[]): Promise<Buffer[]> {
  const parts: Buffer[] = [];
  for await (const part of readMultipart(chunked(body, sizes), boundary, { maxHeaderBytes: 1024, maxParts: 16 })) {
    const chunks: Buffer[] = [];
    for await (const c of part.body) chunks.push(c);
    parts.push(Buffer.concat(chunks));
  }
  return parts;
}

describe('fuzzing the multipart/related reader', () => {
  const boundary = fc.stringMatching(/^[A-Za-z0-9'()+_,./:=?-]{1,40}$/);
  // Part contents that like to look like delimiters: the boundary with and without CRLF, dashes.
  const content = (b: string) =>
    fc
      .array(fc.oneof(fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)), fc.constantFrom(`--${b}`, `\r\n-${b}`, `--${b}--`, '\r\n\r\n', `\n--${b}`, `\r--${b}`, '--').map((s) => Buffer.from(s))), { maxLength: 6 })
      .map((pieces) => Buffer.concat(pieces))
      .filter((buf) => !buf.includes(`\r\n--${b}`) && !buf.toString('latin1').startsWith(`--${b}`));

  test('well-formed bodies split back into exactly their parts, in any chunking', async () => {
    await check(
      fc.asyncProperty(
        boundary.chain((b) => fc.tuple(fc.constant(b), fc.array(content(b), { minLength: 0, maxLength: 4 }))),
        chunkSizes,
        async ([b, parts], sizes) => {
          const body = multipartBody(b, parts, ['Content-Type: application/dicom', 'content-type: application/octet-stream\r\nX-Extra: 1']);
          const got = await readAll(body, b, sizes);
          assert.deepEqual(got.map((p) => p.toString('hex')), parts.map((p) => p.toString('hex')));
        },
      ),
      0.08,
    );
  });

  test('mutated bodies end in parts or a MultipartError, and a cut body never reads as complete', async () => {
    await check(
      fc.asyncProperty(
        boundary.chain((b) => fc.tuple(fc.constant(b), fc.array(content(b), { minLength: 1, maxLength: 3 }))),
        fc.oneof(
          fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
          fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
          fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 40 }) }),
        ),
        chunkSizes,
        async ([b, parts], mutation, sizes) => {
          const body = multipartBody(b, parts, ['Content-Type: application/dicom']);
          let mutant: Buffer;
          const closeAt = body.lastIndexOf(`--${b}--`);
          if (mutation.kind === 'cut') mutant = body.subarray(0, mutation.at % (closeAt + 2 + b.length));
          else if (mutation.kind === 'flip') {
            mutant = Buffer.from(body);
            mutant[mutation.at % mutant.length]! ^= 1 << mutation.bit;
          } else {
            const at = mutation.at % body.length;
            mutant = Buffer.concat([body.subarray(0, at), Buffer.from(mutation.bytes), body.subarray(at)]);
          }
          try {
            await readAll(mutant, b, sizes);
            // Cut before the close delimiter's second dash: never a clean end.
            assert.notEqual(mutation.kind, 'cut', 'a truncated body was read as complete');
          } catch (error) {
            if (!(error instanceof MultipartError)) throw error;
          }
        },
      ),
      0.08,
    );
  });
});

// --- DICOM JSON ---------------------------------------------------------------------------------------

describe('fuzzing the DICOM JSON de-identifier', () => {
  const CANARY = 'JSONCANARY0123';
  const VRS = ['AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'OB', 'OW', 'PN', 'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV', 'XX', ''];
  // Identity attributes (PatientName, PatientID, AccessionNumber, InstitutionName, StudyInstanceUID,
  // OtherPatientIDs, PatientBirthDate) and a private one, each holding the canary in some shape.
  const IDENTITY_KEYS = ['00100010', '00100020', '00080050', '00080080', '0020000D', '00101000', '00100030', '00091010'];
  const CANARY_BASE64 = Buffer.from(CANARY).toString('base64').slice(0, 16);
  const identityKey = fc.constantFrom(...IDENTITY_KEYS);
  const canaryValue: fc.Arbitrary<unknown> = fc.oneof(
    fc.constant(CANARY),
    fc.constant({ Alphabetic: CANARY }),
    fc.constant({ Ideographic: CANARY }),
    fc.constant({ '00100010': { vr: 'PN', Value: [{ Alphabetic: CANARY }] } }),
    fc.constant([CANARY]),
    fc.constant(1),
    fc.constant(null),
  );
  const junk: fc.Arbitrary<unknown> = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constant(undefined), fc.array(fc.string(), { maxLength: 3 }), fc.object({ maxDepth: 2 }));
  const element = (value: fc.Arbitrary<unknown>) =>
    fc.oneof(
      fc.record({ vr: fc.constantFrom(...VRS), Value: fc.array(value, { maxLength: 3 }) }),
      fc.record({ vr: fc.constantFrom(...VRS), Value: value }),
      fc.record({ vr: fc.constantFrom(...VRS), InlineBinary: fc.constant(Buffer.from(CANARY).toString('base64')) }),
      fc.record({ vr: fc.constantFrom(...VRS), BulkDataURI: fc.constant(`http://pacs/${CANARY}`) }),
      junk,
    );
  const dataset: fc.Arbitrary<Record<string, unknown>> = fc.letrec((tie) => ({
    dataset: fc.dictionary(
      fc.oneof(identityKey, fc.stringMatching(/^[0-9A-Fa-f]{8}$/), fc.string({ maxLength: 10 })),
      fc.oneof({ depthSize: 'small' }, element(canaryValue), element(junk), fc.record({ vr: fc.constant('SQ'), Value: fc.array(tie('dataset'), { maxLength: 2 }) })),
      { maxKeys: 8 },
    ),
  })).dataset as fc.Arbitrary<Record<string, unknown>>;

  test('malformed datasets end in de-identified JSON without the canary, or a typed error', async () => {
    let outputs = 0;
    await check(
      fc.property(dataset, (ds) => {
        let out: DicomJsonDataset;
        try {
          out = deidentifyJson(policy, ds as DicomJsonDataset);
        } catch (error) {
          if (!isTyped(error)) throw error;
          return;
        }
        outputs++;
        // The canary may survive only in attributes the profile keeps as they are (a K tag from the
        // dictionary, not an identity attribute), which the generator reaches only under random keys.
        // Under every identity key, at any depth, it must be gone.
        const inspect = (d: unknown): void => {
          if (typeof d !== 'object' || d === null) return;
          for (const [key, el] of Object.entries(d)) {
            if (IDENTITY_KEYS.includes(key)) {
              const text = JSON.stringify(el ?? null);
              assert.ok(!text.includes(CANARY) && !text.includes(CANARY_BASE64), `${key}: ${JSON.stringify(out).slice(0, 400)}`);
            }
            for (const item of ((el as { Value?: unknown[] })?.Value ?? [])) inspect(item);
          }
        };
        inspect(out);
      }),
      0.12,
    );
    assert.ok(outputs > 0, 'some datasets were de-identified');
  });
});

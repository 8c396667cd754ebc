import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRequire } from 'node:module';
import { datasetToJson, elementToJsonValue, jsonToDataset, jsonValueToElementBytes } from '../../../src/dicom/json-model.ts';
import { readPart10Buffer } from '../../../src/dicom/part10-reader.ts';
import { listSamples, sample } from '../../helpers/sample.ts';

const STRING_VRS = new Set(['AE', 'AS', 'CS', 'DA', 'DT', 'LO', 'LT', 'SH', 'ST', 'TM', 'UC', 'UI', 'UR', 'UT', 'PN']);
const REFUSED = new Set(['edge-cases/MR_truncated.dcm', 'edge-cases/no_meta.dcm']);

interface OracleElement {
  vr: string;
  Value?: unknown[];
}

interface Dcmjs {
  data: { DicomMessage: { readFile(b: ArrayBuffer): { dict: Record<string, OracleElement> } } };
}
// dcmjs ships no type declarations; require keeps the oracle typed here without a global .d.ts.
const dcmjs = createRequire(import.meta.url)('dcmjs') as Dcmjs;

function dcmjsDict(buf: Buffer): Record<string, OracleElement> {
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length) as ArrayBuffer;
  return dcmjs.data.DicomMessage.readFile(ab).dict;
}

/** dcmjs writes an empty value as [""] and trims differently; compare meaning, not spelling. */
function normalize(values: unknown[] | undefined): unknown[] {
  const v = (values ?? []).map((x) => (typeof x === 'string' ? x.trim() : x));
  return v.every((x) => x === '' || x === null) ? [] : v.map((x) => (x === '' ? null : x));
}

/**
 * What a JSON round trip may change: odd-length binary gains its pad byte (PS3.5 6.2), and text the
 * source character set cannot re-encode moves to ISO_IR 192 (then only (0008,0005) differs).
 */
function normalizeJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalizeJson);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === '00080005') continue;
    if (k === 'InlineBinary' && typeof v === 'string') {
      const b = Buffer.from(v, 'base64');
      out[k] = (b.length % 2 ? Buffer.concat([b, Buffer.of(0)]) : b).toString('base64');
    } else out[k] = normalizeJson(v);
  }
  return out;
}

describe('json-model', () => {
  for (const rel of ['transfer-syntax/MR_small.dcm', 'private-tags/CT_small.dcm', 'sr/reportsi.dcm', 'rt/rtplan.dcm', 'charset/chrFren.dcm', 'transfer-syntax/MR_small_bigendian.dcm', 'multiframe/liver.dcm']) {
    it(`agrees with dcmjs on the tags and string values of ${rel}`, async () => {
      const buf = sample(rel);
      const parsed = await readPart10Buffer(buf);
      const ours = { ...datasetToJson(parsed.header.dataset, [], parsed.header.encoding.littleEndian), ...datasetToJson(parsed.trailer, [], true) };
      const theirs = dcmjsDict(buf);
      const oursTags = Object.keys(ours).filter((k) => k !== '7FE00010' && !k.endsWith('0000')).sort();
      const theirTags = Object.keys(theirs).filter((k) => k !== '7FE00010' && !k.endsWith('0000')).sort();
      assert.deepEqual(oursTags, theirTags);
      for (const key of theirTags) {
        const t = theirs[key];
        // dcmjs relabels every character set as ISO_IR 192 (ECOSYSTEM.md).
        if (!t || !STRING_VRS.has(t.vr) || key === '00080005') continue;
        assert.deepEqual(normalize(ours[key]?.Value), normalize(t.Value), `value of ${key}`);
      }
    });
  }

  for (const rel of listSamples().filter((r) => !REFUSED.has(r))) {
    it(`round-trips the JSON of ${rel} through Part 10 values unchanged`, async () => {
      const { header } = await readPart10Buffer(sample(rel));
      const le = header.encoding.littleEndian;
      const json = datasetToJson(header.dataset, [], le);
      const back = datasetToJson(jsonToDataset(json, [], le), [], le);
      assert.deepEqual(normalizeJson(back), normalizeJson(json));
    });
  }

  it('writes numbers as JSON numbers, AT as hex and binary as InlineBinary (PS3.18 F.2)', () => {
    const le = true;
    const us = elementToJsonValue({ tag: 0x00280010, vr: 'US', value: Buffer.from([0x00, 0x02]) }, [], le);
    assert.deepEqual(us, { vr: 'US', Value: [512] });
    const ds = elementToJsonValue({ tag: 0x00180050, vr: 'DS', value: Buffer.from('1.25\\-3 ') }, [], le);
    assert.deepEqual(ds, { vr: 'DS', Value: [1.25, -3] });
    const at = elementToJsonValue({ tag: 0x00209165, vr: 'AT', value: Buffer.from([0x20, 0x00, 0x32, 0x00]) }, [], le);
    assert.deepEqual(at, { vr: 'AT', Value: ['00200032'] });
    const ow = elementToJsonValue({ tag: 0x00091001, vr: 'OW', value: Buffer.from([0x01, 0x02]) }, [], false);
    assert.deepEqual(ow, { vr: 'OW', InlineBinary: Buffer.from([0x02, 0x01]).toString('base64') });
    const pn = elementToJsonValue({ tag: 0x00100010, vr: 'PN', value: Buffer.from('Doe^John=^=') }, [], le);
    assert.deepEqual(pn, { vr: 'PN', Value: [{ Alphabetic: 'Doe^John', Ideographic: '^' }] });
  });

  it('encodes JSON values in the target byte order and pads to even length', () => {
    assert.deepEqual(jsonValueToElementBytes('US', [1, 2], [], false), Buffer.from([0, 1, 0, 2]));
    // DS: at most 16 characters (PS3.5 6.2), the value kept: a fraction loses its trailing zeros, an integer none.
    const ds = (n: number) => jsonValueToElementBytes('DS', [n], [], true).toString().trim();
    const wide = 1234567890123450 + 0.25; // 18 characters as String(): shortened to 16 significant digits
    assert.equal(ds(wide), '1234567890123450');
    assert.equal(ds(12345678901234500), '1.2345678901e+16');
    assert.equal(ds(0.1 + 0.2), '0.3');
    assert.equal(ds(-0.000000123456789012), '-1.2345678901e-7');
    for (const n of [wide, 12345678901234500, 0.1 + 0.2, 1 / 3, -987654.3210987654, 1e-20]) {
      const text = ds(n);
      assert.ok(text.length <= 16, text);
      assert.ok(Math.abs(Number(text) - n) <= Math.abs(n) * 1e-9, `${n} → ${text}`);
    }
    assert.deepEqual(jsonValueToElementBytes('UI', ['1.2.3'], [], true), Buffer.from('1.2.3\0'));
    assert.deepEqual(jsonValueToElementBytes('LO', ['X'], [], true), Buffer.from('X '));
    assert.deepEqual(jsonValueToElementBytes('PN', [{ Alphabetic: 'A^B' }], [], true), Buffer.from('A^B '));
    assert.deepEqual(jsonValueToElementBytes('LO', [], [], true), Buffer.alloc(0));
    assert.throws(() => jsonValueToElementBytes('PN', [{ Alphabetic: '山田' }], ['ISO_IR 100'], true), { code: 'DICOM_UNSUPPORTED_CHARSET' });
  });
});

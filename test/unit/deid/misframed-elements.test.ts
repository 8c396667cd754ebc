// Elements whose encoding hides other elements inside a kept value: each must be removed or refused,
// never passed on (found in review: a standard sequence written with VR OB, a binary number whose
// length swallowed the next element).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createPolicy, createSession, deidentifyJson, type DicomJsonDataset } from '../../../src/deid/deidentify.ts';
import { rewritePart10Buffer } from '../../../src/deid/rewrite-part10.ts';
import { DicomInvalidValueError } from '../../../src/dicom/errors.ts';

const LONG = new Set(['OB', 'OW', 'OF', 'OD', 'OL', 'OV', 'SQ', 'UT', 'UN', 'UC', 'UR']);

/** One explicit-VR little-endian element; `length` may lie about the value's size. */
function element(tag: number, vr: string, value: Buffer, length = value.length): Buffer {
  const head = Buffer.alloc(LONG.has(vr) ? 12 : 8);
  head.writeUInt16LE(tag >>> 16, 0);
  head.writeUInt16LE(tag & 0xffff, 2);
  head.write(vr, 4, 'latin1');
  if (LONG.has(vr)) head.writeUInt32LE(length, 8);
  else head.writeUInt16LE(length, 6);
  return Buffer.concat([head, value]);
}
const text = (s: string, pad = ' ') => Buffer.from(s.length % 2 ? s + pad : s, 'latin1');

function part10(dataset: Buffer[]): Buffer {
  const ts = element(0x00020010, 'UI', text('1.2.840.10008.1.2.1', '\0'));
  const length = Buffer.alloc(4);
  length.writeUInt32LE(ts.length);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), element(0x00020000, 'UL', length), ts, ...dataset]);
}

const HEADER = [
  element(0x00080016, 'UI', text('1.2.840.10008.5.1.4.1.1.2', '\0')),
  element(0x00080018, 'UI', text('1.2.826.0.1.3680043.10.543.7001', '\0')),
  element(0x00100010, 'PN', text('Doe^John')),
];
const policy = createPolicy({ secret: 'misframed-secret-0123456789abcdef' });

describe('misframed elements', () => {
  test('a kept standard sequence written with a non-SQ VR is removed with its hidden items (Part 10 and JSON)', async () => {
    // An item holding PatientName, as a real sequence would, but under VR OB.
    const name = element(0x00100010, 'PN', text('SECRET^NAME'));
    const item = Buffer.concat([Buffer.from([0xfe, 0xff, 0x00, 0xe0]), Buffer.alloc(4), name]);
    item.writeUInt32LE(name.length, 4);
    for (const tag of [0x00540016, 0x00081115, 0x00400260]) {
      const { output } = await rewritePart10Buffer(part10([...HEADER, element(tag, 'OB', item)].sort((a, b) => a.readUInt16LE(0) - b.readUInt16LE(0) || a.readUInt16LE(2) - b.readUInt16LE(2))), createSession(policy));
      assert.equal(output.includes(Buffer.from('SECRET^NAME')), false, `(${tag.toString(16)}) as OB`);
    }
    const json: DicomJsonDataset = { '00100020': { vr: 'LO', Value: ['ID1'] }, '00400260': { vr: 'OB', InlineBinary: item.toString('base64') } };
    assert.equal(deidentifyJson(policy, json)['00400260'], undefined);
  });

  test('a binary number longer than its VM allows (a length that swallowed the next element) is refused', async () => {
    const victim = element(0x00321032, 'PN', text('EVIL^DOCTOR'));
    const rows = element(0x00280010, 'US', Buffer.from([0, 2]), 2 + victim.length);
    await assert.rejects(rewritePart10Buffer(part10([...HEADER, rows, victim]), createSession(policy)), (error: unknown) => {
      assert.ok(error instanceof DicomInvalidValueError);
      assert.equal(error.code, 'DICOM_INVALID_VALUE');
      return true;
    });
    // The well-formed file goes through.
    const { output } = await rewritePart10Buffer(part10([...HEADER, element(0x00280010, 'US', Buffer.from([0, 2]))]), createSession(policy));
    assert.ok(output.length > 0);
  });
});

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { IDENTITY_ATTRIBUTES, Pseudonymizer, identityAttribute, keyedUid, normalizePersonName, patientNameBasis } from '../../../src/deid/pseudonym.ts';
import { lookup } from '../../../src/dicom/dictionary.ts';

const secret = Buffer.from('a-test-secret-of-enough-length!!');
const other = Buffer.from('another-secret-of-enough-length!');

test('a keyed UID is 2.25 plus at most 39 digits, at most 64 characters', () => {
  for (let i = 0; i < 200; i++) {
    const uid = keyedUid(secret, `1.2.840.99999.${i}`);
    assert.match(uid, /^2\.25\.(0|[1-9]\d{0,38})$/);
    assert.ok(uid.length <= 64);
    assert.ok(BigInt(uid.slice(5)) < 2n ** 128n);
  }
});

test('UIDs are the same with the same secret and differ with another secret', () => {
  const original = '1.2.826.0.1.3680043.8.498.1';
  assert.equal(keyedUid(secret, original), keyedUid(Buffer.from(secret), original));
  assert.notEqual(keyedUid(secret, original), keyedUid(other, original));
  assert.notEqual(keyedUid(secret, original), keyedUid(secret, `${original}.1`));
});

test('identity codes fit their VR: ASCII, PatientID and AccessionNumber within 16, PN as ANON^code', () => {
  const p = new Pseudonymizer(secret);
  assert.match(p.identity('patientId', 'PAT-001'), /^[A-Z2-7]{16}$/);
  assert.match(p.identity('accessionNumber', 'ACC123456'), /^[A-Z2-7]{16}$/);
  assert.match(p.identity('otherPatientId', 'OTHER-9'), /^[A-Z2-7]{16}$/);
  assert.match(p.identity('patientName', patientNameBasis('PAT-001', 'Doe^John')), /^ANON\^[A-Z2-7]{12}$/);
  assert.match(p.value('free text', 16), /^[A-Z2-7]{16}$/);
});

test('each pseudonym is recorded once as a pair with its kind and original', () => {
  const p = new Pseudonymizer(secret);
  const uid = p.uid('1.2.3');
  p.uid('1.2.3');
  const id = p.identity('patientId', 'PAT-001');
  assert.deepEqual(p.pairs(), [
    { kind: 'uid', pseudonym: uid, original: '1.2.3' },
    { kind: 'patientId', pseudonym: id, original: 'PAT-001' },
  ]);
});

test('fresh mode is consistent within a session and differs across sessions', () => {
  const a = new Pseudonymizer(secret, Buffer.alloc(16, 1));
  const b = new Pseudonymizer(secret, Buffer.alloc(16, 2));
  const deterministic = new Pseudonymizer(secret);
  assert.equal(a.uid('1.2.3'), a.uid('1.2.3'));
  assert.notEqual(a.uid('1.2.3'), b.uid('1.2.3'));
  assert.notEqual(a.uid('1.2.3'), deterministic.uid('1.2.3'));
  assert.notEqual(a.identity('patientId', 'P1'), b.identity('patientId', 'P1'));
  assert.equal(a.fresh, true);
  assert.equal(deterministic.fresh, false);
});

test('each identity attribute is named once, with its PS3.6 keyword, and its code fits the VR', () => {
  const maxLength: Record<string, number> = { LO: 64, SH: 16, PN: 64 - 'ANON^'.length };
  for (const a of IDENTITY_ATTRIBUTES) {
    const entry = lookup(a.tag);
    assert.equal(entry?.keyword, a.keyword);
    assert.ok(a.codeLength <= (maxLength[entry?.vrs[0] ?? ''] ?? 0), a.keyword);
    assert.equal(identityAttribute(a.tag), a);
  }
  assert.equal(new Set(IDENTITY_ATTRIBUTES.map((a) => a.kind)).size, IDENTITY_ATTRIBUTES.length);
  assert.deepEqual(IDENTITY_ATTRIBUTES.filter((a) => a.mapsBack).map((a) => a.keyword), ['PatientID', 'AccessionNumber']);
});

test('a name pseudonym is keyed on the Patient ID when there is one, on the normalised name otherwise', () => {
  assert.equal(patientNameBasis(' H32EXAMPLE ', 'ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎'), 'PatientID=H32EXAMPLE');
  assert.equal(patientNameBasis('H32EXAMPLE', '^=;3ED^B@O:'), 'PatientID=H32EXAMPLE', 'whatever the spelling');
  assert.equal(patientNameBasis('', 'Doe^John'), 'PatientName=Doe^John');
  assert.equal(patientNameBasis(undefined, 'Doe^John'), 'PatientName=Doe^John');
  const p = new Pseudonymizer(secret);
  assert.notEqual(p.identity('patientName', patientNameBasis('X', 'A')), p.identity('patientName', patientNameBasis('', 'X')), 'an ID and a name never share a basis');
});

test('name normalisation removes only what PS3.5 6.2 calls insignificant', () => {
  assert.equal(normalizePersonName('Doe^John^^='), 'Doe^John');
  assert.equal(normalizePersonName(' Doe ^ John =^='), 'Doe^John');
  assert.equal(normalizePersonName('Hong^Gildong=^=^'), 'Hong^Gildong');
  assert.equal(normalizePersonName('^^'), '');
  assert.equal(normalizePersonName('=Yamada'), '=Yamada', 'an interior empty group stays');
  assert.equal(normalizePersonName('Buc^Je\u0301ro\u0302me'), 'Buc^J\u00e9r\u00f4me', 'NFC');
  assert.notEqual(normalizePersonName('DOE^JOHN'), normalizePersonName('Doe^John'), 'case is significant');
  assert.notEqual(normalizePersonName('ﾔﾏﾀﾞ'), normalizePersonName('ヤマダ'), 'width is significant');
  assert.notEqual(normalizePersonName('Wang^XiaoDong=王^小東'), normalizePersonName('Wang^XiaoDong=王^小东'));
});

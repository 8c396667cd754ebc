import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { Pseudonymizer, keyedUid } from '../../../src/deid/pseudonym.ts';

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
  assert.match(p.patientId('PAT-001'), /^[A-Z2-7]{16}$/);
  assert.match(p.accessionNumber('ACC123456'), /^[A-Z2-7]{16}$/);
  assert.match(p.otherPatientId('OTHER-9'), /^[A-Z2-7]{16}$/);
  assert.match(p.patientName('Doe^John'), /^ANON\^[A-Z2-7]{12}$/);
  assert.match(p.value('free text', 16), /^[A-Z2-7]{16}$/);
});

test('each pseudonym is recorded once as a pair with its kind and original', () => {
  const p = new Pseudonymizer(secret);
  const uid = p.uid('1.2.3');
  p.uid('1.2.3');
  const id = p.patientId('PAT-001');
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
  assert.notEqual(a.patientId('P1'), b.patientId('P1'));
  assert.equal(a.fresh, true);
  assert.equal(deterministic.fresh, false);
});

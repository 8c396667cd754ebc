import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { describeProfile } from '../../../src/deid/conformance.ts';
import { createPolicy } from '../../../src/deid/deidentify.ts';

const secret = 'a-test-secret-of-enough-length!!';

test('the conformance listing covers every table row and says what happens to the value', () => {
  const rows = describeProfile(createPolicy({ secret }));
  assert.equal(rows.length, 657);
  const by = new Map(rows.map((r) => [r.tag, r]));
  assert.equal(by.get('(0010,0010)')?.effect, 'keyed pseudonym');
  assert.equal(by.get('(0020,000D)')?.effect, 'keyed UID 2.25.<HMAC>');
  assert.equal(by.get('(0008,0020)')?.effect, 'empty (zero length)');
  assert.equal(by.get('(0008,1140)')?.effect, 'keep, profile applied to the items');
  assert.equal(by.get('(FFFA,FFFA)')?.effect, 'remove');
  assert.equal(by.get('(0008,0080)')?.effect, 'dummy "ANONYMIZED"');
});

test('the listing follows the options in effect', () => {
  const rows = describeProfile(createPolicy({ secret, profile: { retainLongitudinalTemporalModifiedDates: true, retainSafePrivate: true } }));
  const by = new Map(rows.map((r) => [r.tag, r]));
  assert.equal(by.get('(0008,0020)')?.effect, 'shifted by the patient day offset');
  assert.equal(by.get('(0008,0030)')?.effect, 'keep');
  assert.match(by.get('(gggg,eeee) where gggg is odd')!.effect, /Table E\.3\.10-1/);
});

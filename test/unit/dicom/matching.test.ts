import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { globMatch, matchesKey, parseMatchKey } from '../../../src/dicom/matching.ts';

const key = (vr: string, value: string, fuzzy = false) => {
  const k = parseMatchKey(vr, value, { fuzzy });
  assert.ok(k, `${vr} ${value} parses`);
  return k;
};

describe('PS3.4 C.2.2.2 matching on de-identified values', () => {
  test('wild cards agree with a reference regular expression on every short pattern and value', () => {
    const reference = (pattern: string, value: string) =>
      new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 's').test(value);
    fc.assert(
      fc.property(fc.stringMatching(/^[ab*?]{0,8}$/), fc.stringMatching(/^[ab]{0,10}$/), (pattern, value) => {
        assert.equal(globMatch(pattern, value), reference(pattern, value), `${pattern} ~ ${value}`);
      }),
      { numRuns: 5_000 },
    );
  });

  test('an adversarial pattern costs at most (|pattern| + 1) × (|value| + 1) steps, never exponential', () => {
    const value = 'a'.repeat(1_000);
    for (const pattern of [`${'*'.repeat(13)}#`, `${'*a'.repeat(500)}#`, `${'*a?'.repeat(300)}#`, `a*${'?'.repeat(500)}*#`]) {
      const count = { steps: 0 };
      assert.equal(globMatch(pattern, value, false, count), false);
      assert.ok(count.steps <= (pattern.length + 1) * (value.length + 1), `${pattern.slice(0, 12)}…: ${count.steps} steps`);
    }
    // Doubling the pattern at most doubles the work.
    const steps = (n: number) => {
      const count = { steps: 0 };
      globMatch(`${'*a'.repeat(n)}#`, value, false, count);
      return count.steps;
    };
    assert.ok(steps(400) <= 2 * steps(200) + value.length);
  });

  test('dates are validated as calendar dates: month 86 is not a month, and no range bound rolls over', () => {
    for (const bad of ['20088614-', '20140230', '2014021', '2014-02-14', '-', 'abc', '20140214-20140101', '20140214\\', '']) {
      assert.equal(parseMatchKey('DA', bad), undefined, bad);
    }
    assert.equal(parseMatchKey('TM', '2561'), undefined);
    assert.equal(parseMatchKey('DT', '20141332'), undefined);
    assert.equal(parseMatchKey('IS', '12a'), undefined);
    assert.equal(parseMatchKey('AS', '45Y'), undefined);
    assert.equal(parseMatchKey('LO', 'a\u0001b'), undefined);
  });

  test('single values, lists and ranges (open at either end) match at the key’s precision', () => {
    assert.ok(matchesKey(key('DA', '20140206'), ['20140206']));
    assert.ok(!matchesKey(key('DA', '20140207-'), ['20140206']));
    assert.ok(matchesKey(key('DA', '20140206-'), ['20140206']));
    assert.ok(matchesKey(key('DA', '-20140206'), ['20140206']));
    assert.ok(!matchesKey(key('DA', '-20140205'), ['20140206']));
    assert.ok(matchesKey(key('DA', '20130101\\20140206'), ['20140206']));
    assert.ok(matchesKey(key('TM', '10-11'), ['103000.5']));
    assert.ok(!matchesKey(key('TM', '1031-'), ['103000']));
    assert.ok(matchesKey(key('DT', '20140206-20140207'), ['20140206101010+0000']));
    assert.ok(matchesKey(key('DT', '20140206101010-0500'), ['20140206101010']), 'a negative UTC offset is not a range');
    assert.ok(matchesKey(key('PN', 'anon^AB*'), ['ANON^ABCD']), 'PN is case-insensitive');
    assert.ok(matchesKey(key('PN', 'anon', true), ['ANON^ABCD']), 'fuzzy PN matches a prefix');
    assert.ok(!matchesKey(key('LO', 'abc'), ['ABC']), 'other text is case-sensitive');
    assert.ok(matchesKey(key('LO', 'a?c\\x*'), ['xyz']));
    assert.ok(!matchesKey(key('DA', '20140206'), []), 'an empty attribute matches no key');
  });
});

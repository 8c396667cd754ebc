import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { globMatch, indexForm, indexRanges, matchesKey, parseMatchKey } from '../../../src/dicom/matching.ts';

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
  // Issue 20: the study index looks a key up by ranges of index forms, then matches each candidate.
  // The ranges must hold every value the key matches (a superset), or the index would miss a study.
  describe('index ranges hold every value a key matches', () => {
    const inRanges = (ranges: ReturnType<typeof indexRanges>, form: string | undefined) =>
      form !== undefined && (ranges ?? []).some((r) => form >= r.from && (r.below === '' || form < r.below));
    const sound = (vr: string, keyText: string, value: string, fuzzy = false) => {
      const k = parseMatchKey(vr, keyText, { fuzzy });
      if (!k || !matchesKey(k, [value])) return false;
      const ranges = indexRanges(k);
      if (ranges === undefined) return false; // no bound: the index reads every entry
      assert.ok(inRanges(ranges, indexForm(vr, value)), `${vr} ${JSON.stringify(keyText)} matches ${JSON.stringify(value)} outside its ranges`);
      return true;
    };
    test('text and person names: exact, wild cards, lists, any case, fuzzy prefixes', () => {
      const text = fc.stringMatching(/^[aAbBzZ^ 1é\u{1F600}]{1,8}$/u);
      const pattern = fc.stringMatching(/^[aAbBzZ^ 1é\u{1F600}*?]{1,8}$/u);
      let checked = 0;
      for (const vr of ['PN', 'LO', 'SH', 'CS']) {
        fc.assert(
          fc.property(fc.array(pattern, { minLength: 1, maxLength: 3 }), text, fc.boolean(), (alternatives, value, fuzzy) => {
            if (sound(vr, alternatives.join('\\'), value, fuzzy)) checked++;
          }),
          { numRuns: 3_000 },
        );
        // Keys made from the value itself, so that most match.
        fc.assert(
          fc.property(text, fc.integer({ min: 1, max: 8 }), fc.boolean(), fc.boolean(), (value, cut, lower, fuzzy) => {
            const start = lower ? value.slice(0, cut).toLowerCase() : value.slice(0, cut);
            if (sound(vr, `${start}*`, value, fuzzy) && sound(vr, value, value, fuzzy)) checked++;
          }),
          { numRuns: 2_000 },
        );
      }
      assert.ok(checked > 2_000, `${checked} matching keys checked`);
    });
    test('dates, times and date-times: single values and ranges at any precision', () => {
      const day = fc.date({ min: new Date('1900-01-01T00:00:00Z'), max: new Date('2099-12-31T00:00:00Z'), noInvalidDate: true });
      const da = (d: Date) => d.toISOString().slice(0, 10).replace(/-/g, '');
      const tm = (d: Date, digits: number) => d.toISOString().slice(11, 19).replace(/:/g, '').slice(0, digits);
      let checked = 0;
      fc.assert(
        fc.property(day, day, day, fc.constantFrom('single', 'range', 'from', 'to'), (a, b, v, shape) => {
          const [lo, hi] = [da(a), da(b)].sort() as [string, string];
          const keyText = shape === 'single' ? lo : shape === 'range' ? `${lo}-${hi}` : shape === 'from' ? `${lo}-` : `-${hi}`;
          for (const value of [da(v), lo, hi]) if (sound('DA', keyText, value)) checked++;
        }),
        { numRuns: 3_000 },
      );
      fc.assert(
        fc.property(day, day, day, fc.constantFrom(2, 4, 6), fc.constantFrom(2, 4, 6), fc.integer({ min: 4, max: 8 }), (a, b, v, pa, pv, pd) => {
          const [lo, hi] = [tm(a, pa), tm(b, pa)].sort() as [string, string];
          for (const [vr, keyText, value] of [
            ['TM', `${lo}-${hi}`, tm(v, pv)],
            ['TM', `${lo}-`, tm(v, pv)],
            ['TM', `-${hi}`, tm(v, pv)],
            ['DT', `${da(a).slice(0, pd)}-${da(b)}`, `${da(v)}${tm(v, 6)}`],
            ['DT', `${da(a).slice(0, pd)}-`, `${da(v).slice(0, pd)}`],
          ] as const) {
            if (sound(vr, keyText, value)) checked++;
          }
        }),
        { numRuns: 3_000 },
      );
      assert.ok(checked > 3_000, `${checked} matching keys checked`);
    });
    test('a pattern that starts with a wild card, or an open range on both sides, has no bound', () => {
      assert.equal(indexRanges(key('PN', '*SMITH')), undefined);
      assert.equal(indexRanges(key('PN', 'SMITH\\?ONES')), undefined);
      assert.deepEqual(indexRanges(key('PN', 'smi*')), [{ from: 'SMI', below: 'SMJ' }]);
      assert.deepEqual(indexRanges(key('DA', '20200101-20201231')), [{ from: '20200101', below: '20201232' }]);
      assert.deepEqual(indexRanges(key('DT', '202001-20211231')), [{ from: '202001', below: '20211232' }]);
      assert.deepEqual(indexRanges(key('TM', '1000-')), [{ from: '1', below: '' }]);
    });
  });
});

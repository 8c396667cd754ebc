import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import {
  DEFAULT_DATE_SHIFT_RANGE,
  checkDateShiftRange,
  patientDayOffset,
  shiftDA,
  shiftDT,
  shiftDateValue,
} from '../../../src/deid/date-shift.ts';

const secret = Buffer.from('a-test-secret-of-enough-length!!');

test('DA moves by whole days across month, year and leap-day boundaries', () => {
  assert.equal(shiftDA('20200301', -1), '20200229');
  assert.equal(shiftDA('20210101', -1), '20201231');
  assert.equal(shiftDA('20200101', 365), '20201231');
  assert.equal(shiftDA('20200101 ', -10), '20191222'); // Part 10 padding
  assert.equal(shiftDA('2020.03.01', -1), '20200229'); // ACR-NEMA form
  assert.equal(shiftDA('20201341', -1), undefined);
  assert.equal(shiftDA('yesterday', -1), undefined);
});

test('partial DA and DT keep their precision, anchored mid-period', () => {
  assert.equal(shiftDA('202003', -10), '202003');
  assert.equal(shiftDA('202003', -20), '202002');
  assert.equal(shiftDA('2020', -100), '2020');
  assert.equal(shiftDA('2020', -200), '2019');
  assert.equal(shiftDT('202003', -20), '202002');
});

test('DT keeps time and fraction and drops its UTC offset suffix, so Timezone Offset From UTC governs it', () => {
  assert.equal(shiftDT('20200301123000.123456+0100', -1), '20200229123000.123456');
  assert.equal(shiftDT('20200301123000.5-0500', -1), '20200229123000.5');
  assert.equal(shiftDT('20200301123000+1400', -1), '20200229123000'); // the easternmost offset PS3.5 6.2 allows
  assert.equal(shiftDT('20200301123000-1200', -1), '20200229123000'); // the westernmost
  assert.equal(shiftDT('20200301123000+0000', -1), '20200229123000');
  assert.equal(shiftDT('20200301123000-0000', -1), '20200229123000'); // forbidden spelling of UTC, still read
  assert.equal(shiftDT('20200301123000.123456', -1), '20200229123000.123456'); // no suffix: as before
  assert.equal(shiftDT('2020030112', 2), '2020030312');
  assert.equal(shiftDT('20200301123000+0100 ', -1), '20200229123000'); // Part 10 padding
});

test('a DT offset outside -1200..+1400 or with minutes above 59 is not read (the value is emptied)', () => {
  assert.equal(shiftDT('20200301123000+1401', -1), undefined);
  assert.equal(shiftDT('20200301123000-1201', -1), undefined);
  assert.equal(shiftDT('20200301123000+0160', -1), undefined);
  assert.equal(shiftDT('20200301123000+01', -1), undefined);
  assert.equal(shiftDateValue('20200301123000+1500-20200302', 'DT', -1), undefined);
});

test('a DT with a suffix keeps its precision: the suffix is not a component (PS3.5 6.2)', () => {
  assert.equal(shiftDT('2007-0500', -400), '2006'); // "2007-0500 is a legal value"
  assert.equal(shiftDT('2020+1400', -200), '2019');
  assert.equal(shiftDT('202003+0100', -20), '202002');
  assert.equal(shiftDT('20200301-0500', -1), '20200229');
  assert.equal(shiftDT('2020030112+0530', -1), '2020022912');
  assert.equal(shiftDT('202003011230-0930', -1), '202002291230');
  assert.equal(shiftDT('20200301123059.1+0100', -1), '20200229123059.1');
});

test('near midnight the date is not moved across the day by the offset: it stays with its DA sibling', () => {
  // Converting to UTC would give 20200228233000 and 20200301043000 and so reveal the original offset
  // as the difference to the DA + TM pair, which keeps its local wall clock.
  const acquisitionDate = shiftDA('20200301', -1)!;
  assert.equal(shiftDT('20200301003000+0100', -1), `${acquisitionDate}003000`);
  assert.equal(shiftDT('20200301233000-0500', -1), `${acquisitionDate}233000`);
  assert.equal(shiftDT('20200101000000.000001+1400', -1), '20191231000000.000001');
  assert.equal(shiftDT('20201231235959.999999-1200', 1), '20210101235959.999999');
});

test('date ranges shift both ends, open ends stay open', () => {
  assert.equal(shiftDateValue('20200101-20200301', 'DA', -1), '20191231-20200229');
  assert.equal(shiftDateValue('-20200301', 'DA', -1), '-20200229');
  assert.equal(shiftDateValue('20200101-', 'DA', -1), '20191231-');
  assert.equal(shiftDateValue('20200101120000-20200102', 'DT', -1), '20191231120000-20200101');
  assert.equal(shiftDateValue('20200101120000+0100-20200102120000-0500', 'DT', 1), '20200102120000-20200103120000');
  assert.equal(shiftDateValue('2020+0100-202103-0500', 'DT', -200), '2019-202008');
  assert.equal(shiftDateValue('20200101120000.5+1400-', 'DT', -1), '20191231120000.5-');
  assert.equal(shiftDateValue('-20200102-0500', 'DT', -1), '-20200101');
  assert.equal(shiftDateValue('-', 'DA', -1), undefined);
});

test('the patient offset is keyed, within the range, never zero, and the same for every study', () => {
  const seen = new Set<number>();
  for (let i = 0; i < 300; i++) {
    const days = patientDayOffset(secret, `P${i}`, { minDays: -3, maxDays: 3 });
    assert.ok(days >= -3 && days <= 3 && days !== 0);
    seen.add(days);
  }
  assert.equal(seen.size, 6);
  const a = patientDayOffset(secret, 'PAT-001', DEFAULT_DATE_SHIFT_RANGE);
  assert.equal(a, patientDayOffset(secret, 'PAT-001', DEFAULT_DATE_SHIFT_RANGE));
  assert.ok(a >= -365 && a <= -1);
  const salted = (salt: number): number[] =>
    ['P1', 'P2', 'P3', 'P4'].map((id) => patientDayOffset(secret, id, DEFAULT_DATE_SHIFT_RANGE, Buffer.alloc(16, salt)));
  assert.notDeepEqual(salted(1), salted(2)); // fresh mode: a per-call salt changes the offsets
});

test('two studies of one patient keep their day interval', () => {
  const days = patientDayOffset(secret, 'PAT-001', DEFAULT_DATE_SHIFT_RANGE);
  const first = shiftDA('20200110', days)!;
  const second = shiftDA('20200325', days)!;
  const toMs = (d: string): number => Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8));
  assert.equal((toMs(second) - toMs(first)) / 86_400_000, 75);
  assert.notEqual(first, '20200110');
});

test('range validation', () => {
  assert.deepEqual(checkDateShiftRange({ minDays: -365, maxDays: -1 }), []);
  assert.equal(checkDateShiftRange({ minDays: 5, maxDays: 1 }).length, 1);
  assert.equal(checkDateShiftRange({ minDays: 0, maxDays: 0 }).length, 1);
  assert.equal(checkDateShiftRange({ minDays: 0.5, maxDays: 1e9 }).length, 2);
});

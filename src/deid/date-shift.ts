// Date shift for the Retain Longitudinal Temporal Information with Modified Dates Option
// (PS3.15 E.3.6): every DA and DT value of a patient moves by the same keyed number of whole days,
// so intervals between that patient's studies hold. TM values are unchanged (whole days only).
//
// Time zone: the engine writes Timezone Offset From UTC (0008,0201) as +0000 (PS3.15 Table E.1-1: C
// under this option), which hides where the data came from. PS3.3 C.12.1.1.8 makes that attribute the
// zone of every DA and TM value, and of every DT value without an explicitly encoded offset. DA and
// TM keep their local wall-clock values, so the one consistent frame is "local wall clock, zone
// hidden": a DT's &ZZXX suffix (PS3.5 6.2) is dropped and its wall clock kept, which puts the DT under
// the same (0008,0201) as its DA/TM siblings (and, where the source has no (0008,0201), leaves all
// three equally without a zone). Converting the DT to UTC instead would leave AcquisitionDateTime
// differing from AcquisitionDate + AcquisitionTime by exactly the original offset, which gives the
// hidden zone back.
import { createHmac } from 'node:crypto';

/** Inclusive range of the per-patient offset in days; 0 is never chosen (a shift must change dates). */
export interface DateShiftRange {
  readonly minDays: number;
  readonly maxDays: number;
}

export const DEFAULT_DATE_SHIFT_RANGE: DateShiftRange = Object.freeze({ minDays: -365, maxDays: -1 });

const LIMIT_DAYS = 36_500;

/** Every problem with a range, naming `key`; empty when valid. */
export function checkDateShiftRange(range: DateShiftRange, key = 'dateShift'): string[] {
  const issues: string[] = [];
  const { minDays, maxDays } = range;
  if (!Number.isSafeInteger(minDays) || Math.abs(minDays) > LIMIT_DAYS) issues.push(`${key}.minDays: an integer within ±${LIMIT_DAYS}`);
  if (!Number.isSafeInteger(maxDays) || Math.abs(maxDays) > LIMIT_DAYS) issues.push(`${key}.maxDays: an integer within ±${LIMIT_DAYS}`);
  if (issues.length === 0 && minDays > maxDays) issues.push(`${key}: minDays is greater than maxDays`);
  if (issues.length === 0 && minDays === 0 && maxDays === 0) issues.push(`${key}: the range holds no non-zero offset`);
  return issues;
}

/**
 * The patient's offset: HMAC-SHA256(secret, [fresh salt] + "dateshift:" + original PatientID), its
 * first 48 bits reduced onto the non-zero integers of the range. A dataset without PatientID uses "".
 */
export function patientDayOffset(secret: Uint8Array, patientId: string, range: DateShiftRange, salt?: Uint8Array): number {
  const mac = createHmac('sha256', secret);
  if (salt !== undefined) mac.update(`fresh:${Buffer.from(salt).toString('hex')}:`);
  const digest = mac.update('dateshift:').update(patientId, 'utf8').digest();
  const n = digest.readUIntBE(0, 6);
  const spansZero = range.minDays <= 0 && range.maxDays >= 0;
  const count = range.maxDays - range.minDays + 1 - (spansZero ? 1 : 0);
  const offset = range.minDays + (n % count);
  return spansZero && offset >= 0 ? offset + 1 : offset;
}

const DAY_MS = 86_400_000;

interface CivilDate {
  readonly year: number;
  readonly month: number;
  readonly day: number;
}

function validDate(year: number, month: number, day: number): boolean {
  if (month < 1 || month > 12 || day < 1) return false;
  return day <= new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function addDays(date: CivilDate, days: number): CivilDate | undefined {
  const t = new Date(0);
  t.setUTCFullYear(date.year, date.month - 1, date.day);
  const moved = new Date(t.getTime() + days * DAY_MS);
  const year = moved.getUTCFullYear();
  if (year < 1 || year > 9999) return undefined;
  return { year, month: moved.getUTCMonth() + 1, day: moved.getUTCDate() };
}

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/**
 * Shifts the date part (YYYY[MM[DD]]) and keeps its precision. A partial date is anchored in the
 * middle of its period (day 15 of the month, 2 July of the year) so the result is the period that
 * holds the shifted middle: consistent with full dates of the same patient.
 */
function shiftDatePart(yyyy: string, mm: string | undefined, dd: string | undefined, days: number): string | undefined {
  const year = Number(yyyy);
  const month = mm === undefined ? 7 : Number(mm);
  const day = dd === undefined ? (mm === undefined ? 2 : 15) : Number(dd);
  if (!validDate(year, month, day)) return undefined;
  const moved = addDays({ year, month, day }, days);
  if (moved === undefined) return undefined;
  let out = pad(moved.year, 4);
  if (mm !== undefined) out += pad(moved.month, 2);
  if (dd !== undefined) out += pad(moved.day, 2);
  return out;
}

// PS3.5 6.2 DA: YYYYMMDD (and, sensibly, the partial YYYY / YYYYMM; ACR-NEMA YYYY.MM.DD is read too).
const DA = /^(\d{4})(?:(\d{2})(\d{2})?)?$/;
const DA_LEGACY = /^(\d{4})\.(\d{2})\.(\d{2})$/;
// PS3.5 6.2 DT: YYYY[MM[DD[HH[MM[SS[.F{1-6}]]]]]][&ZZXX]
const DT_SOURCE = '\\d{4}(?:\\d{2}(?:\\d{2}(?:\\d{2}(?:\\d{2}(?:\\d{2}(?:\\.\\d{1,6})?)?)?)?)?)?(?:[+-]\\d{4})?';
const DT = /^(\d{4})(?:(\d{2})(?:(\d{2})(\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?$/;
const DT_RANGE = new RegExp(`^(${DT_SOURCE})?-(${DT_SOURCE})?$`);

// PS3.5 6.2 DT, Note: "The range of the offset is -1200 to +1400."
const MAX_EAST_MINUTES = 14 * 60;
const MAX_WEST_MINUTES = 12 * 60;

/** Whether a &ZZXX suffix is an offset PS3.5 6.2 allows (-0000, which it forbids, still means UTC). */
function validUtcOffset(suffix: string): boolean {
  const hours = Number(suffix.slice(1, 3));
  const minutes = Number(suffix.slice(3, 5));
  if (minutes > 59) return false;
  return hours * 60 + minutes <= (suffix[0] === '+' ? MAX_EAST_MINUTES : MAX_WEST_MINUTES);
}

/** Shifts one DA value; undefined when it is not a date this code can read. */
export function shiftDA(value: string, days: number): string | undefined {
  const text = value.trim();
  const m = DA.exec(text) ?? DA_LEGACY.exec(text);
  if (!m) return undefined;
  return shiftDatePart(m[1]!, m[2], m[3], days);
}

/**
 * Shifts one DT value: the date part moves, the time of day and fraction are kept as they are, and
 * the UTC offset suffix is dropped (see the top of this file; the suffix is not a component, PS3.5
 * 6.2, so the precision stays). Undefined for an offset outside PS3.5 6.2's range: fail closed.
 */
export function shiftDT(value: string, days: number): string | undefined {
  const m = DT.exec(value.trim());
  if (!m) return undefined;
  const suffix = m[5];
  if (suffix !== undefined && !validUtcOffset(suffix)) return undefined;
  const date = shiftDatePart(m[1]!, m[2], m[3], days);
  if (date === undefined) return undefined;
  return date + (m[4] ?? '');
}

/**
 * Shifts a DA or DT value, or a range of them (PS3.4 C.2.2.2.5: "A-B", "A-", "-B"; both ends move
 * by the same offset). Undefined when the value cannot be read; the caller must not keep it then.
 */
export function shiftDateValue(value: string, vr: 'DA' | 'DT', days: number): string | undefined {
  const text = value.trim();
  if (text === '') return '';
  const single = vr === 'DA' ? shiftDA(text, days) : shiftDT(text, days);
  if (single !== undefined) return single;
  let from: string | undefined;
  let to: string | undefined;
  if (vr === 'DA') {
    const parts = text.split('-');
    if (parts.length !== 2) return undefined;
    [from, to] = parts;
  } else {
    const m = DT_RANGE.exec(text);
    if (!m) return undefined;
    from = m[1] ?? '';
    to = m[2] ?? '';
  }
  if (from === undefined || to === undefined || (from === '' && to === '')) return undefined;
  const shift = (v: string): string | undefined => (v === '' ? '' : vr === 'DA' ? shiftDA(v, days) : shiftDT(v, days));
  const a = shift(from);
  const b = shift(to);
  return a === undefined || b === undefined ? undefined : `${a}-${b}`;
}

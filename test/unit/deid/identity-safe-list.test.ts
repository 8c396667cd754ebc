// The reviewed safe list of src/deid/identity-safe-list.ts against ../shared/standard (so it cannot drift
// from PS3.6 or Table E.1-1), and the Table E.1-1 Note 1 rule it feeds: every standard attribute outside
// the table whose VR can carry identity is removed (names emptied, dates by the temporal options) unless
// it is on the list, by its PS3.6 VR and by the VR it is encoded with; a `keep` override still keeps.
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { DEFAULT_STANDARD_DIR } from '../../../scripts/generate-profile.ts';
import { createPolicy, createSession, type Decision, type DeidPolicy } from '../../../src/deid/deidentify.ts';
import { IDENTITY_SAFE_LIST, IDENTITY_VRS, SAFE_CATEGORIES, identitySafeEntry } from '../../../src/deid/identity-safe-list.ts';
import { SUPPLEMENT_CLEAN, SUPPLEMENT_REMOVE, overridesKeepingBasicRemoved, tableEntryFor } from '../../../src/deid/profile.ts';
import { parseTag } from '../../../src/dicom/tag.ts';

interface DictRow {
  readonly tag: string;
  readonly keyword: string | null;
  readonly vr: string | null;
  readonly part: string;
}
const dictionary = JSON.parse(readFileSync(join(DEFAULT_STANDARD_DIR, 'ps3.6-dictionary.json'), 'utf8')) as DictRow[];
const table = JSON.parse(readFileSync(join(DEFAULT_STANDARD_DIR, 'ps3.15-table-e1-1.json'), 'utf8')) as { tag: string }[];
const tableTags = new Set(table.map((r) => r.tag));
const vrsOf = (d: DictRow): string[] => (d.vr ?? '').split(' or ').filter((v) => v !== '');
/** A concrete tag for a PS3.6 pattern: the first group or element a repeating `xx` stands for. */
const concrete = (pattern: string): number => parseTag(pattern.replace(/x/g, '0'))!;

/** PS3.6 data elements (not PS3.7 commands) that Table E.1-1 does not list and whose VR can carry identity. */
const candidates = dictionary.filter((d) => d.part === 'PS3.6' && !tableTags.has(d.tag) && vrsOf(d).some((v) => IDENTITY_VRS.has(v)));
/** Those the table's repeating-group rows govern all the same: curves (50xx,xxxx) and overlays (60xx, with Overlay Data). */
const byGroupRow = candidates.filter((d) => d.tag.startsWith('(50xx,') || d.tag.startsWith('(60xx,'));

const secret = 'identity-safe-list-secret-0123456789';
const policy = (profile: Record<string, boolean> = {}, overrides: Record<string, string> = {}): DeidPolicy => createPolicy({ secret, profile, overrides });
const SAMPLE: Record<string, unknown> = { PN: { Alphabetic: 'DOE^JANE' }, DA: '20000615', DT: '20000615101112', UR: 'https://example.org/x' };
function decide(p: DeidPolicy, tag: number, vr: string, value: unknown = SAMPLE[vr] ?? 'SAMPLE VALUE'): Decision {
  const session = createSession(p);
  session.beginDataset('PATIENT-1');
  return session.decide({ tag, vr, path: [0x00400260] }, [value]);
}

describe('the safe list matches the standard it was reviewed against', () => {
  const dict = new Map(dictionary.map((d) => [d.tag, d]));

  test('every entry is a PS3.6 data element with that keyword and VR, a VR that can carry identity, absent from Table E.1-1', () => {
    const problems: string[] = [];
    for (const [tag, keyword, vr] of IDENTITY_SAFE_LIST) {
      const d = dict.get(tag);
      if (d === undefined || d.part !== 'PS3.6') problems.push(`${tag}: not a PS3.6 data element`);
      else {
        if (d.keyword !== keyword) problems.push(`${tag}: keyword ${keyword}, PS3.6 says ${d.keyword}`);
        if (d.vr !== vr) problems.push(`${tag}: VR ${vr}, PS3.6 says ${d.vr}`);
      }
      if (!IDENTITY_VRS.has(vr)) problems.push(`${tag}: VR ${vr} cannot carry identity, so the entry is pointless`);
      if (tableTags.has(tag) || tableEntryFor(parseTag(tag)!) !== undefined) problems.push(`${tag}: Table E.1-1 lists it`);
      if (SUPPLEMENT_REMOVE.has(parseTag(tag)!) || SUPPLEMENT_CLEAN.has(parseTag(tag)!)) problems.push(`${tag}: a supplement names it`);
    }
    assert.deepEqual(problems, []);
  });

  test('no entry twice, every category explained, and the close calls say why', () => {
    const tags = IDENTITY_SAFE_LIST.map(([tag]) => tag);
    assert.equal(new Set(tags).size, tags.length);
    for (const [tag, keyword, vr, category, note] of IDENTITY_SAFE_LIST) {
      assert.ok(category in SAFE_CATEGORIES, `${tag}: category ${category}`);
      assert.ok(!['PN', 'DA', 'DT', 'AE'].includes(vr), `${tag}: names, dates and AE titles are never safe`);
      if (vr === 'UR' || /(ID|Identifier)$/.test(keyword)) assert.ok(note !== undefined && note.length > 10, `${tag} ${keyword}: an identifier or URL on the list needs a note`);
      assert.equal(identitySafeEntry(parseTag(tag)!)?.[1], keyword);
    }
  });

  test('the attributes of finding 5 (issue 13) are not on it', () => {
    for (const tag of ['(0010,0033)', '(0010,0034)', '(0074,100A)', '(0074,100C)', '(0010,0024)', '(0040,0026)', '(0040,0031)', '(0040,0032)', '(0008,0051)', '(0018,1003)']) {
      assert.equal(identitySafeEntry(parseTag(tag)!), undefined, tag);
    }
  });

  test('it is a small part of the candidates: PS3.6 attributes outside Table E.1-1 whose VR can carry identity', () => {
    assert.equal(candidates.length, 509, 'PS3.6 2026c against Table E.1-1 2026d');
    assert.equal(IDENTITY_SAFE_LIST.length, 105);
    assert.equal(candidates.length - IDENTITY_SAFE_LIST.length, 404, 'removed (or emptied, or by date option) by the Note 1 rule');
    assert.equal(byGroupRow.length, 11);
  });
});

describe('Table E.1-1 Note 1: outside the table, a VR that can carry identity is removed unless safe-listed', () => {
  const basic = policy();

  test('under the Basic Profile every candidate is removed (a name emptied) at any depth, every safe entry kept', () => {
    const wrong: string[] = [];
    for (const d of candidates) {
      const vr = vrsOf(d)[0]!;
      const decision = decide(basic, concrete(d.tag), vr);
      const safe = identitySafeEntry(concrete(d.tag)) !== undefined;
      const expected = safe ? 'keep' : vr === 'PN' || d.tag === '(0040,A160)' ? 'replace' : 'remove';
      if (decision.op !== expected) wrong.push(`${d.tag} ${d.keyword} ${vr}: ${decision.op}, expected ${expected}`);
      if (decision.op === 'replace' && vr === 'PN' && decision.value.length !== 0) wrong.push(`${d.tag}: a name outside the table is emptied`);
    }
    assert.deepEqual(wrong, []);
  });

  test('the attributes of finding 5 are removed, on every option set', () => {
    const optionSets: Record<string, boolean>[] = [{}, { retainDeviceIdentity: true }, { retainPatientCharacteristics: true, retainInstitutionIdentity: true }, { retainLongitudinalTemporalFullDates: true }, { retainLongitudinalTemporalModifiedDates: true }];
    const finding5: [string, string][] = [
      ['(0010,0033)', 'LO'], // PatientBirthDateInAlternativeCalendar
      ['(0010,0034)', 'LO'], // PatientDeathDateInAlternativeCalendar
      ['(0074,100A)', 'UR'], // ContactURI
      ['(0074,100C)', 'LO'], // ContactDisplayName
      ['(0040,0031)', 'UT'], // LocalNamespaceEntityID (in IssuerOfPatientIDQualifiersSequence, order identifier sequences)
      ['(0040,0032)', 'UT'], // UniversalEntityID
      ['(0018,1003)', 'LO'], // DeviceID: Retain Device Identity keeps only what its column names
    ];
    for (const options of optionSets) {
      for (const [t, vr] of finding5) assert.equal(decide(policy(options), parseTag(t)!, vr).op, 'remove', `${t} under ${JSON.stringify(options)}`);
    }
  });

  test('dates outside the table follow the temporal options: removed, shifted with Modified Dates, kept with Full Dates', () => {
    const tag = parseTag('(0008,041F)')!; // StudyUpdateDateTime (DT)
    const da = parseTag('(0014,1020)')!; // ExpiryDate (DA)
    assert.equal(decide(basic, tag, 'DT').op, 'remove');
    assert.equal(decide(basic, da, 'DA').op, 'remove');
    const shifted = decide(policy({ retainLongitudinalTemporalModifiedDates: true }), da, 'DA');
    assert.equal(shifted.op, 'replace');
    assert.match(String((shifted as { value: unknown[] }).value[0]), /^\d{8}$/);
    assert.notEqual((shifted as { value: unknown[] }).value[0], '20000615');
    assert.equal(decide(policy({ retainLongitudinalTemporalFullDates: true }), tag, 'DT').op, 'keep');
  });

  test('a misencoded VR does not let a value through: PS3.6 VR and encoded VR both count', () => {
    // DeviceID (LO) encoded as binary or as CS, Rows (US) encoded as LO, a safe CodeValue encoded as UN.
    assert.equal(decide(basic, 0x00181003, 'OB', undefined).op, 'remove');
    assert.equal(decide(basic, 0x00181003, 'CS', 'DEVICE7').op, 'remove');
    assert.equal(decide(basic, 0x00280010, 'LO', 'DOE^JANE').op, 'remove');
    assert.equal(decide(basic, 0x00280010, 'US', 512).op, 'keep');
    assert.equal(decide(basic, 0x00080060, 'CS', 'CT').op, 'keep');
    assert.equal(decide(basic, 0x00080100, 'UN', undefined).op, 'keep');
    // A DA attribute encoded as LO is no longer a date that Full Dates keeps; a CS one encoded as DA is one.
    assert.equal(decide(policy({ retainLongitudinalTemporalFullDates: true }), parseTag('(0014,1020)')!, 'LO', 'x').op, 'remove');
    assert.equal(decide(policy({ retainLongitudinalTemporalFullDates: true }), 0x00080060, 'DA', '20000615').op, 'keep');
    assert.equal(decide(policy({ retainLongitudinalTemporalModifiedDates: true }), 0x00080060, 'DA', '20000615').op, 'replace');
    // A standard sequence encoded as text is not kept either.
    assert.equal(decide(basic, 0x00400260, 'LO', 'x').op, 'remove');
  });

  test('an override still wins: keep keeps (and is warned about), remove removes a safe entry', () => {
    const p = policy({}, { DeviceID: 'keep', Manufacturer: 'remove', '(0014,2006)': 'keep' });
    assert.equal(decide(p, 0x00181003, 'LO').op, 'keep');
    assert.equal(decide(p, 0x00181003, 'OB', undefined).op, 'keep');
    assert.equal(decide(p, parseTag('(0014,2006)')!, 'PN').op, 'keep'); // EvaluatorName
    assert.equal(decide(p, 0x00080070, 'LO').op, 'remove');
    const warned = overridesKeepingBasicRemoved(p.profile).map((w) => [w.tag, w.profileAction]);
    assert.deepEqual(warned, [['(0018,1003)', 'X'], ['(0014,2006)', 'Z']]);
  });

  test('the rule is visible through ruleFor, so callers that ask the profile see it too', () => {
    assert.deepEqual(basic.profile.ruleFor(0x00181003), { action: 'X', source: 'dictionary' });
    assert.deepEqual(basic.profile.ruleFor(0x00080070), { action: 'K', source: 'dictionary' });
    assert.deepEqual(basic.profile.ruleFor(parseTag('(0014,2006)')!), { action: 'Z', source: 'dictionary' });
    assert.deepEqual(policy({ retainLongitudinalTemporalModifiedDates: true }).profile.ruleFor(parseTag('(0014,1020)')!), { action: 'C', source: 'retainLongitudinalTemporalModifiedDates' });
  });
});

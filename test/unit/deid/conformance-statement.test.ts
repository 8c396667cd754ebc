import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { CATEGORIES, conformanceStatement, statementMarkdown } from '../../../src/deid/conformance.ts';
import { createPolicy } from '../../../src/deid/deidentify.ts';
import { IDENTITY_SAFE_LIST } from '../../../src/deid/identity-safe-list.ts';

const secret = 'a-test-secret-of-enough-length!!';

test('the statement names the options in effect, the method codes written and the attributes added', () => {
  const s = conformanceStatement(createPolicy({ secret, profile: { retainLongitudinalTemporalModifiedDates: true, retainSafePrivate: true } }), { role: 'researcher', renderedOffered: false });
  assert.equal(s.role, 'researcher');
  assert.deepEqual(s.options.filter((o) => o.enabled).map((o) => o.name).sort(), ['retainLongitudinalTemporalModifiedDates', 'retainSafePrivate']);
  assert.equal(s.options.length, 10);
  assert.deepEqual(s.methodCodes.map((c) => c.code), ['113100', '113107', '113111']);
  assert.deepEqual(s.dateShift, { minDays: -365, maxDays: -1 });
  assert.deepEqual(
    s.attributesAdded.map((a) => [a.keyword, a.keyword === 'DeidentificationMethodCodeSequence' ? '' : a.value]),
    [
      ['PatientIdentityRemoved', 'YES'],
      ['DeidentificationMethod', 'deid-gateway DICOM PS3.15 2026d Annex E'],
      ['DeidentificationMethodCodeSequence', ''],
      ['LongitudinalTemporalInformationModified', 'MODIFIED'],
    ],
  );
  assert.match(s.rules[0] as string, /Table E\.3\.10-1/);
});

test('every row has one category, the summary adds up, and overrides move attributes between categories', () => {
  const basic = conformanceStatement(createPolicy({ secret }));
  const rows = [...basic.attributes, ...basic.otherAttributes];
  assert.equal(Object.values(basic.summary).reduce((a, b) => a + b, 0), rows.length);
  for (const c of CATEGORIES) if (c !== 'kept') assert.ok(basic.summary[c] > 0, `some attribute is ${c}`);
  assert.equal(basic.summary.kept, 0, 'the Basic Profile keeps no Table E.1-1 attribute as it is');
  const by = (s: typeof basic, keyword: string) => [...s.attributes, ...s.otherAttributes].find((r) => r.keyword === keyword);
  assert.equal(by(basic, 'PatientName')?.category, 'replaced');
  assert.equal(by(basic, 'StudyDate')?.category, 'emptied');
  assert.equal(by(basic, 'PatientAddress')?.category, 'removed');
  assert.equal(by(basic, 'ReferencedFileID')?.source, 'supplement');
  assert.equal(by(basic, 'ReferencedFileID')?.category, 'removed');
  assert.equal(basic.dateShift, undefined);
  assert.deepEqual(basic.overrides, []);

  // EvaluatorName is outside Table E.1-1: kept by override, it appears among the other attributes.
  const custom = conformanceStatement(createPolicy({ secret, overrides: { PatientSex: 'remove', StudyDate: 'keep', EvaluatorName: 'keep' } }));
  assert.equal(by(custom, 'PatientSex')?.category, 'removed');
  assert.equal(by(custom, 'PatientSex')?.source, 'override');
  assert.equal(by(custom, 'StudyDate')?.category, 'kept');
  assert.equal(by(custom, 'EvaluatorName')?.category, 'kept');
  assert.equal(custom.summary.kept, basic.summary.kept + 2);
  assert.deepEqual(custom.overrides.map((o) => `${o.keyword}=${o.override}`).sort(), ['EvaluatorName=keep', 'PatientSex=remove', 'StudyDate=keep']);
});

test('the statement does not depend on the secret, and fresh mode is stated', () => {
  const a = conformanceStatement(createPolicy({ secret, profile: { retainLongitudinalTemporalModifiedDates: true } }));
  const b = conformanceStatement(createPolicy({ secret: 'another-secret-entirely-0123456789', profile: { retainLongitudinalTemporalModifiedDates: true } }));
  assert.deepEqual(a, b);
  const fresh = conformanceStatement(createPolicy({ secret, pseudonymMode: 'fresh' }));
  assert.equal(fresh.pseudonyms.mode, 'fresh');
  assert.match(fresh.pseudonyms.uids, /random salt per request/);
});

test('the markdown lists every attribute under its category, with the options table', () => {
  const s = conformanceStatement(createPolicy({ secret, overrides: { StudyDescription: 'replace:CT | head' } }), { role: 'uploader' });
  const md = statementMarkdown(s);
  assert.match(md, /^# De-identification conformance statement: uploader\n/);
  assert.match(md, /\| retainUIDs \| no \|/);
  for (const c of CATEGORIES) {
    const heading = `## ${c[0]!.toUpperCase()}${c.slice(1)} (${s.summary[c]})`;
    assert.ok(md.includes(heading), heading);
  }
  const tableRows = md.split('\n').filter((l) => /^\| \(/.test(l) && l.split(' | ').length === 6);
  assert.equal(tableRows.length, s.attributes.length + s.otherAttributes.length);
  assert.ok(md.includes('| (0008,1030) | StudyDescription | replace:CT \\| head |'), 'a | in a value is escaped');
  assert.ok(!md.includes('Rendered images'), 'rendered pixels are a researcher matter');
});

test('the statement prints the safe list of Table E.1-1 Note 1 and says that other identity-capable attributes outside the table are removed', () => {
  const basic = conformanceStatement(createPolicy({ secret }));
  assert.equal(basic.identitySafeList.length, IDENTITY_SAFE_LIST.length);
  assert.ok(basic.identitySafeList.every((r) => r.effect === 'keep' && r.reason.length > 20), 'every safe attribute is kept, with its reason');
  const code = basic.identitySafeList.find((r) => r.keyword === 'CodeValue');
  assert.deepEqual([code?.tag, code?.vr, code?.category], ['(0008,0100)', 'SH', 'coded']);
  const rule = basic.rules.find((r) => r.includes('(Note 1)')) ?? '';
  assert.match(rule, /removed when their VR can carry identity \(PN LO SH ST LT UT UC UR AE DA DT/);
  assert.match(rule, new RegExp(`except the ${IDENTITY_SAFE_LIST.length} technical attributes of the reviewed safe list`));
  assert.match(rule, /dates \(DA, DT\) are removed/);
  assert.ok(basic.rules.some((r) => /Retain Device Identity does not keep Device ID \(0018,1003\)/.test(r)));
  assert.match(conformanceStatement(createPolicy({ secret, profile: { retainLongitudinalTemporalModifiedDates: true } })).rules.find((r) => r.includes('(Note 1)')) ?? '', /shifted with the others/);
  assert.match(conformanceStatement(createPolicy({ secret, profile: { retainLongitudinalTemporalFullDates: true } })).rules.find((r) => r.includes('(Note 1)')) ?? '', /kept \(Full Dates\)/);

  // An override applies to a safe attribute like to any other; the list shows the effect in force.
  const custom = conformanceStatement(createPolicy({ secret, overrides: { Manufacturer: 'remove', DeviceID: 'keep' } }));
  assert.equal(custom.identitySafeList.find((r) => r.keyword === 'Manufacturer')?.effect, 'remove');
  assert.equal(custom.otherAttributes.find((r) => r.keyword === 'DeviceID')?.category, 'kept');
  assert.equal(conformanceStatement(createPolicy({ secret })).otherAttributes.find((r) => r.keyword === 'DeviceID'), undefined);

  const md = statementMarkdown(basic);
  assert.ok(md.includes(`## Safe list: attributes outside Table E.1-1 kept although their VR can carry identity (${IDENTITY_SAFE_LIST.length})`));
  const safeRows = md.split('\n').filter((l) => /^\| \(/.test(l) && l.split(' | ').length === 5);
  assert.equal(safeRows.length, IDENTITY_SAFE_LIST.length);
  assert.ok(md.includes('| (0020,1040) | PositionReferenceIndicator | LO | '), 'a row per safe attribute');
});

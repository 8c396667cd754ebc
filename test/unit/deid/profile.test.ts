import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { DeidPolicyError } from '../../../src/deid/errors.ts';
import {
  PROFILE_OPTIONS,
  compileProfile,
  isStandardTag,
  overridesKeepingBasicRemoved,
  resolveCompoundCode,
} from '../../../src/deid/profile.ts';
import { parseTag } from '../../../src/dicom/tag.ts';
import { TABLE_E1_1 } from '../../../src/deid/profile-table.generated.ts';

const basic = compileProfile();
const tag = (text: string): number => parseTag(text)!;

test('compound codes resolve to the alternative that keeps any IOD Type valid', () => {
  assert.equal(resolveCompoundCode('X/Z'), 'Z');
  assert.equal(resolveCompoundCode('X/D'), 'D');
  assert.equal(resolveCompoundCode('X/Z/D'), 'D');
  assert.equal(resolveCompoundCode('Z/D'), 'D');
  assert.equal(resolveCompoundCode('X/Z/U*'), 'U');
  assert.equal(resolveCompoundCode('K'), 'K');
});

test('representative rows of the Basic Profile get the table action', () => {
  const expect: [string, string][] = [
    ['(0010,0010)', 'Z'], // PatientName
    ['(0010,0020)', 'D'], // PatientID Z/D
    ['(0010,0030)', 'Z'], // PatientBirthDate
    ['(0010,1010)', 'X'], // PatientAge
    ['(0020,000D)', 'U'], // StudyInstanceUID
    ['(0008,0018)', 'U'], // SOPInstanceUID
    ['(0008,0020)', 'Z'], // StudyDate
    ['(0008,0080)', 'D'], // InstitutionName X/Z/D
    ['(0008,1140)', 'U'], // ReferencedImageSequence X/Z/U*
    ['(0040,A730)', 'D'], // ContentSequence
    ['(FFFA,FFFA)', 'X'], // DigitalSignaturesSequence, Note 8
    ['(0400,0561)', 'X'], // OriginalAttributesSequence, Note 12
    ['(0088,0200)', 'X'], // IconImageSequence, Note 11
    ['(0042,0011)', 'D'], // EncapsulatedDocument, Note 15
  ];
  for (const [t, action] of expect) {
    const rule = basic.ruleFor(tag(t));
    assert.equal(rule.action, action, t);
    assert.equal(rule.source, 'basic', t);
  }
});

test('each option flips exactly the rows its column names, and no other', () => {
  for (let i = 0; i < PROFILE_OPTIONS.length; i++) {
    const option = PROFILE_OPTIONS[i]!;
    const profile = compileProfile({ options: { [option]: true } });
    for (const [text, kind, basicCode, cells] of TABLE_E1_1) {
      if (kind !== 'exact') continue;
      const rule = profile.ruleFor(tag(text));
      const cell = cells[i]!;
      if (cell === '.') {
        assert.equal(rule.source, 'basic', `${option} ${text}`);
        assert.equal(rule.action, resolveCompoundCode(basicCode as never), `${option} ${text}`);
      } else {
        assert.equal(rule.source, option, `${option} ${text}`);
        assert.equal(rule.action, cell, `${option} ${text}`);
      }
    }
  }
});

test('when two options in effect disagree on a row, clean wins over keep', () => {
  const profile = compileProfile({ options: { retainDeviceIdentity: true, retainLongitudinalTemporalModifiedDates: true } });
  const rule = profile.ruleFor(tag('(0018,700C)')); // DateOfLastDetectorCalibration: Dev K, Modif C
  assert.equal(rule.action, 'C');
  assert.equal(rule.source, 'retainLongitudinalTemporalModifiedDates');
  assert.equal(profile.ruleFor(tag('(0018,1000)')).action, 'K'); // DeviceSerialNumber
});

test('repeating groups follow the curve and overlay rows on even groups 5000-501E and 6000-601E', () => {
  assert.equal(basic.ruleFor(tag('(5000,3000)')).action, 'X');
  assert.equal(basic.ruleFor(tag('(501E,2500)')).action, 'X');
  assert.equal(basic.ruleFor(tag('(6002,3000)')).action, 'X');
  assert.equal(basic.ruleFor(tag('(6000,4000)')).action, 'X');
  // OverlayRows: not listed, but Overlay Data (Type 1, PS3.3 C.9.2) goes, so its whole group goes.
  assert.equal(basic.ruleFor(tag('(6000,0010)')).action, 'X');
  assert.equal(basic.ruleFor(tag('(6020,0010)')).action, 'X'); // outside the repeating range: unknown
  const graphics = compileProfile({ options: { cleanGraphics: true } });
  assert.equal(graphics.ruleFor(tag('(6004,3000)')).action, 'C');
  assert.equal(graphics.ruleFor(tag('(5002,0010)')).action, 'C');
  // Clean Graphics: a bitmap cannot be cleaned, so Overlay Data is removed (deidentify.ts #clean) and its group with it.
  assert.equal(graphics.ruleFor(tag('(6000,0010)')).action, 'X');
});

test('standard attributes the table does not list are kept, unknown public ones removed', () => {
  assert.deepEqual(basic.ruleFor(tag('(0008,0060)')), { action: 'K', source: 'dictionary' }); // Modality
  assert.equal(basic.ruleFor(tag('(7FE0,0010)')).action, 'K'); // PixelData
  assert.deepEqual(basic.ruleFor(tag('(0009,1000)')).action, 'X'); // private row
  assert.deepEqual(basic.ruleFor(tag('(0008,9999)')), { action: 'X', source: 'unknown' });
  assert.equal(isStandardTag(tag('(0028,0410)')), true); // (0028,04x0) mask
  assert.equal(isStandardTag(tag('(0008,9999)')), false);
  const custom = compileProfile({ isKnownTag: (t) => t === tag('(0008,9999)') });
  assert.equal(custom.ruleFor(tag('(0008,9999)')).action, 'K');
  assert.equal(custom.ruleFor(tag('(0008,0060)')).action, 'X');
});

test('MAC Parameters and Encrypted Attributes sequences are removed though the table omits them', () => {
  assert.deepEqual(basic.ruleFor(tag('(4FFE,0001)')), { action: 'X', source: 'supplement' });
  assert.deepEqual(basic.ruleFor(tag('(0400,0500)')), { action: 'X', source: 'supplement' });
});

test('safe private attributes are matched by creator and element offset, not by block', () => {
  const profile = compileProfile({ options: { retainSafePrivate: true } });
  assert.equal(profile.safePrivateVr(0x0019, 'GEMS_ACQU_01', 0x23), 'DS');
  assert.equal(profile.safePrivateVr(0x0019, 'GEMS_ACQU_01 ', 0x23), 'DS'); // LO padding
  assert.equal(profile.safePrivateVr(0x0019, 'SIEMENS MR HEADER', 0x23), undefined);
  assert.equal(profile.isSafePrivateCreator(0x0019, 'GEMS_ACQU_01'), true);
  assert.equal(profile.isSafePrivateCreator(0x0021, 'GEMS_ACQU_01'), false);
});

test('overrides apply on top of the profile and keep-overrides of removed attributes are listed', () => {
  const profile = compileProfile({
    options: { retainUIDs: true },
    overrides: {
      '(0010,1010)': 'keep', // PatientAge X
      '00081030': 'hash', // StudyDescription
      PatientSex: 'replace:O',
      '(0008,0060)': 'remove',
      '(0020,000D)': 'keep', // K under Retain UIDs, but U in Basic
      '(0008,0070)': 'keep', // Manufacturer: not in the table, kept anyway: no warning
    },
  });
  assert.equal(profile.ruleFor(tag('(0010,1010)')).action, 'K');
  assert.equal(profile.ruleFor(tag('(0008,1030)')).action, 'hash');
  assert.deepEqual(profile.ruleFor(tag('(0010,0040)')), { action: 'replace', value: 'O', source: 'override', tableCode: 'Z' });
  assert.equal(profile.ruleFor(tag('(0008,0060)')).action, 'X');
  const warnings = overridesKeepingBasicRemoved(profile);
  const names = warnings.map((w) => w.tag);
  assert.ok(names.includes('(0010,1010)'));
  assert.ok(names.includes('(0020,000D)'));
  assert.equal(warnings.find((w) => w.tag === '(0010,1010)')?.keyword, 'PatientAge');
  assert.equal(warnings.find((w) => w.tag === '(0020,000D)')?.profileAction, 'K');
  assert.ok(!names.includes('(0008,0070)'));
});

test('a bad profile input reports every problem at once, naming each key', () => {
  assert.throws(
    () => compileProfile({
      options: { retainEverything: true, retainLongitudinalTemporalFullDates: true, retainLongitudinalTemporalModifiedDates: true } as never,
      overrides: { NoSuchKeyword: 'keep', '(0009,1010)': 'keep', '(0010,0010)': 'scramble' },
    }),
    (err: unknown) => {
      assert.ok(err instanceof DeidPolicyError);
      assert.equal(err.code, 'DEID_BAD_POLICY');
      assert.equal(err.issues.length, 5);
      assert.match(err.message, /retainEverything/);
      assert.match(err.message, /NoSuchKeyword/);
      assert.match(err.message, /\(0009,1010\)/);
      return true;
    },
  );
});

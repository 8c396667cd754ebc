// Issue 17, part 2: text cleaning for the Clean options (src/deid/text-clean.ts) and how the engine uses
// it: which attributes are cleaned, where the dataset's identity values come from (the whole Part 10
// header, a whole metadata instance), and where they cannot be known (a QIDO result: the dummy).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { findElement, setElement, type Dataset } from '../../../src/dicom/dataset.ts';
import { datasetToJson, jsonToDataset, type JsonDataset } from '../../../src/dicom/json-model.ts';
import { readPart10Buffer } from '../../../src/dicom/part10-reader.ts';
import { encodeDataset, encodeFileMeta } from '../../../src/dicom/part10-writer.ts';
import { conformanceStatement, statementMarkdown } from '../../../src/deid/conformance.ts';
import { createPolicy, createSession, deidentifyJson, type DeidPolicyOptions } from '../../../src/deid/deidentify.ts';
import type { ProfileOptions } from '../../../src/deid/profile.ts';
import { rewritePart10Buffer, type Part10Policy } from '../../../src/deid/rewrite-part10.ts';
import {
  CLEANED_TEXT_MAX_CHARS,
  IDENTITY_ROLES,
  NO_IDENTITIES,
  TEXT_CLEAN_MARKER,
  cleanText,
  collectIdentities,
  jsonIdentitySource,
  textCleaningOf,
} from '../../../src/deid/text-clean.ts';
import { sample } from '../../helpers/sample.ts';

const R = TEXT_CLEAN_MARKER;
const secret = 'a-test-secret-of-enough-length!!';
const policy = (profile: ProfileOptions, extra: Partial<DeidPolicyOptions> = {}) => createPolicy({ secret, profile, ...extra });

/** A patient with the identities real headers carry, nested ones included. */
const PATIENT: JsonDataset = {
  '00080020': { vr: 'DA', Value: ['20190304'] },
  '00080050': { vr: 'SH', Value: ['ACC778899'] },
  '00080080': { vr: 'LO', Value: ["St. Mary's General Hospital"] },
  '00080090': { vr: 'PN', Value: [{ Alphabetic: 'van der Berg^Anna^^Dr.' }] },
  '00081070': { vr: 'PN', Value: [{ Alphabetic: 'Okonkwo^Kwame' }] },
  '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Müller^Hans-Jürgen', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' }] },
  '00100020': { vr: 'LO', Value: ['AB-123456'] },
  '00100030': { vr: 'DA', Value: ['19700304'] },
  '00101002': { vr: 'SQ', Value: [{ '00100020': { vr: 'LO', Value: ['XZ-9071'] } }] },
  '00102154': { vr: 'SH', Value: ['+44 20 7946 0018'] },
  '00200010': { vr: 'SH', Value: ['1'] },
};
const identities = collectIdentities(jsonIdentitySource(PATIENT));
const birthFixed = collectIdentities(jsonIdentitySource(PATIENT), { fixedDate: (tag) => tag === 0x00100030 });
const clean = (text: string, vr = 'LT', shiftDays?: number) => cleanText(text, shiftDays === undefined ? identities : birthFixed, shiftDays === undefined ? { vr } : { vr, shiftDays });

describe('cleanText: keep the text, remove what identifies', () => {
  test('clinical text without identities is kept as it is', () => {
    for (const text of ['AX T1 MPRAGE POST', 'CT HEAD W/O CONTRAST 5mm', 'DWI b=1000 ADC 3.0T', 'L4/L5 disc 10:32 12.4 mm 3/4', "Crohn's T2* BI-RADS 4A", 'Series 1 of 2']) {
      assert.equal(clean(text), text);
    }
  });

  test('each name component of every person name, in any order, case and accent, is removed; titles stay', () => {
    assert.equal(clean('CT head for Hans-Jürgen Müller'), `CT head for ${R}`);
    assert.equal(clean('MULLER, HANS-JURGEN: brain'), `${R}: brain`);
    assert.equal(clean('hans jurgen mueller follow-up'), `${R} follow-up`); // umlaut transliterated
    assert.equal(clean('Seen by Dr. Anna van der Berg'), `Seen by Dr. ${R}`);
    assert.equal(clean('Dr. Berg and the van team'), `Dr. ${R} and the van team`); // particles alone are words
    assert.equal(clean('tech OKONKWO'), `tech ${R}`);
    assert.equal(clean('Mullerian duct, Bergamo'), 'Mullerian duct, Bergamo'); // whole words only
  });

  test('CJK names are found without spaces, in kana of either script and in full-width Latin', () => {
    assert.equal(clean('山田太郎様 CT'), `${R}様 CT`);
    assert.equal(clean('太郎 山田'), R);
    assert.equal(clean('ヤマダ タロウ MR'), `${R} MR`); // katakana for the hiragana phonetic group
    assert.equal(clean('ＭＵＬＬＥＲ 頭部'), `${R} 頭部`); // full-width Latin in a Japanese text
  });

  test('identifiers of the dataset are removed with any separators, a nested one too; one or two characters are not identifiers', () => {
    assert.equal(clean('ref AB123456 / ab 123 456 / AB-123456'), `ref ${R}`);
    assert.equal(clean('old id xz9071'), `old id ${R}`);
    assert.equal(clean('accession ACC778899'), R); // a label and its value
    assert.equal(clean('see ACC778899.'), `see ${R}.`);
    assert.equal(clean('Series 1 T1'), 'Series 1 T1'); // Study ID "1" is not searched
  });

  test('labels with their values, e-mail addresses, URLs, telephone numbers, long digit runs and UIDs are removed', () => {
    assert.equal(clean('MRN: 99887766 brain'), `${R} brain`);
    assert.equal(clean('Patient ID K7326X; ID#4711 left'), `${R} left`); // neighbours joined
    assert.equal(clean('call (555) 010-0199 or +1 555 010 0142'), `call ${R} or ${R}`);
    assert.equal(clean('mail anna.berg@example.org, https://pacs.example.org/x?id=1'), `mail ${R}`);
    assert.equal(clean('record 123456789 series 4'), `record ${R} series 4`);
    assert.equal(clean('uid 1.2.840.113619.2.55.3.604688119 from 10.1.2.3'), `uid ${R} from ${R}`);
    assert.equal(clean('no #2 of 3, b=800'), 'no #2 of 3, b=800');
  });

  test('dates are removed in every common spelling', () => {
    for (const date of ['20190304', '2019-03-04', '04/03/2019', '3/4/2019', '4 Mar 2019', '4-MAR-2019', 'March 4, 2019', '03.04.19', '2019/03/04', 'Mar 2019', '03/2019', '2019-03']) {
      assert.equal(clean(`scan ${date} done`), `scan ${R} done`, date);
    }
  });

  test('under Modified Dates a date is shifted in its own spelling where it is unambiguous, else removed', () => {
    const d = -10; // 2019-03-04 - 10 days = 2019-02-22
    assert.equal(clean('prior 2019-03-04, 20190304, 4 Mar 2019, March 4, 2019, 25/03/2019, 03/25/2019, 4-MAR-2019', 'LT', d),
      'prior 2019-02-22, 20190222, 22 Feb 2019, February 22, 2019, 15/03/2019, 03/15/2019, 22-FEB-2019');
    assert.equal(clean('ambiguous 04/03/2019 and 03.04.19', 'LT', d), `ambiguous ${R} and ${R}`);
    assert.equal(clean('since 03/2019, 2019-03 and Mar 2019; dilution 1/1000', 'LT', -20), 'since 02/2019, 2019-02 and Feb 2019; dilution 1/1000'); // a month: its 15th, shifted
    assert.equal(clean('a long text '.repeat(2000) + 'tel 555-0100 '.repeat(2000), 'UT', d).length > 20000, true); // many removals stay linear
    assert.equal(clean('born 1970-03-04', 'LT', d), `born ${R}`); // the birth date the profile removes
    assert.equal(clean('seen 1970-03-04 today', 'LT', d), `seen ${R} today`); // the same day, unlabelled
    assert.equal(clean('DOB: 1980-01-02', 'LT', d), `DOB: ${R}`); // labelled: never shifted
  });

  test('neighbouring removals become one marker, and the result fits the VR', () => {
    assert.equal(clean('Müller Hans-Jürgen AB-123456 ACC778899'), R);
    assert.equal(CLEANED_TEXT_MAX_CHARS.get('SH'), 16);
    const sh = cleanText('AX T1 Li Ng POST FLAIR', collectIdentities(jsonIdentitySource({ '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Li^Ng' }] } })), { vr: 'SH' });
    assert.equal(sh, `AX T1 ${R} `); // 16 characters: cut, never longer
    assert.equal([...cleanText('x'.repeat(70), NO_IDENTITIES, { vr: 'LO' })].length, 64);
  });

  test('the identity roles name only known attributes, and collecting reads nested values', () => {
    for (const keywords of Object.values(IDENTITY_ROLES)) assert.ok(keywords.length > 0);
    assert.ok(identities.size > 10);
    assert.equal(NO_IDENTITIES.size, 0);
    assert.equal(cleanText('Hans Müller', NO_IDENTITIES), 'Hans Müller', 'without identity values, names are not known');
  });
});

describe('textCleaningOf: which C-action text the Clean options clean', () => {
  const opts = (o: ProfileOptions) => createPolicy({ secret, profile: o }).options;
  const all = opts({ cleanDescriptors: true, cleanStructuredContent: true, cleanGraphics: true });
  test('C from a Clean option on a text VR; not CS, PN, dates, binary; never an override', () => {
    assert.equal(textCleaningOf({ action: 'C', source: 'cleanDescriptors' }, { tag: 0x00081030, vr: 'LO', path: [] }, all), 'cleanDescriptors');
    assert.equal(textCleaningOf({ action: 'C', source: 'retainPatientCharacteristics' }, { tag: 0x00102110, vr: 'LO', path: [] }, all), 'retainPatientCharacteristics');
    assert.equal(textCleaningOf({ action: 'C', source: 'cleanDescriptors' }, { tag: 0x00400562, vr: 'CS', path: [] }, all), undefined);
    assert.equal(textCleaningOf({ action: 'C', source: 'retainLongitudinalTemporalModifiedDates' }, { tag: 0x00080020, vr: 'DA', path: [] }, all), undefined);
    assert.equal(textCleaningOf({ action: 'K', source: 'override' }, { tag: 0x00081030, vr: 'LO', path: [] }, all), undefined);
  });
  test('Text Value under Clean Structured Content; Unformatted Text Value inside the annotation sequences the options clean', () => {
    const textValue = { tag: 0x0040a160, vr: 'UT', path: [0x0040a730] };
    assert.equal(textCleaningOf({ action: 'C', source: 'supplement' }, textValue, all), 'cleanStructuredContent');
    assert.equal(textCleaningOf({ action: 'C', source: 'supplement' }, textValue, opts({ cleanDescriptors: true })), undefined);
    const inGraphics = { tag: 0x00700006, vr: 'ST', path: [0x00700001, 0x00700008] };
    assert.equal(textCleaningOf({ action: 'D', source: 'basic' }, inGraphics, opts({ cleanGraphics: true })), 'cleanGraphics');
    assert.equal(textCleaningOf({ action: 'D', source: 'basic' }, { ...inGraphics, path: [] }, opts({ cleanGraphics: true })), undefined);
    assert.equal(textCleaningOf({ action: 'D', source: 'basic' }, { ...inGraphics, path: [0x0040b020] }, opts({ cleanStructuredContent: true })), 'cleanStructuredContent');
  });
});

// --- the engine -------------------------------------------------------------------------------------

/** An SR-like instance: descriptions that name the patient, SR text, a graphic annotation text object. */
function instance(): JsonDataset {
  return {
    '00080005': { vr: 'CS', Value: ['ISO_IR 192'] },
    '00080016': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.88.11'] },
    '00080018': { vr: 'UI', Value: ['1.2.826.0.1.3680043.10.543.1'] },
    '00081030': { vr: 'LO', Value: ['MR brain Müller AB-123456'] },
    '0008103E': { vr: 'LO', Value: ['AX T1 MPRAGE POST'] },
    '00181030': { vr: 'LO', Value: ['Protocol for Okonkwo'] },
    '0040A730': {
      vr: 'SQ',
      Value: [
        { '0040A040': { vr: 'CS', Value: ['TEXT'] }, '0040A160': { vr: 'UT', Value: ['Hans Müller (MRN: 5551234, 4 Mar 2019): no acute findings.'] } },
        { '0040A040': { vr: 'CS', Value: ['PNAME'] }, '0040A123': { vr: 'PN', Value: [{ Alphabetic: 'Okonkwo^Kwame' }] } },
      ],
    },
    '00700001': { vr: 'SQ', Value: [{ '00700008': { vr: 'SQ', Value: [{ '00700006': { vr: 'ST', Value: ['arrow: lesion, Hans Muller'] } }] } }] },
    ...PATIENT,
  };
}

const ALL_CLEAN: ProfileOptions = { cleanDescriptors: true, cleanStructuredContent: true, cleanGraphics: true };
type Json = Record<string, { Value?: unknown[] }>;
/** The Value at a path: tag keys, and item indexes as numbers. */
const v = (ds: Json, ...path: (string | number)[]): unknown => {
  let here: unknown = ds;
  for (const key of path) here = typeof key === 'number' ? (here as unknown[])[key] : (here as Json)[key]?.Value;
  return here;
};

describe('the engine cleans text where it knows the whole dataset, and gives the dummy where it does not', () => {
  test('DICOM JSON of a whole instance (metadata): descriptions, SR text and graphic text are cleaned; a PNAME item is a dummy', () => {
    const out = deidentifyJson(policy(ALL_CLEAN), instance(), { wholeInstance: true }) as Json;
    assert.deepEqual(v(out, '00081030'), [`MR brain ${R}`]);
    assert.deepEqual(v(out, '0008103E'), ['AX T1 MPRAGE POST']);
    assert.deepEqual(v(out, '00181030'), [`Protocol for ${R}`]);
    assert.deepEqual(v(out, '0040A730', 0, '0040A160'), [`${R} (${R}): no acute findings.`]);
    assert.deepEqual(v(out, '0040A730', 1, '0040A123'), [{ Alphabetic: 'ANONYMIZED' }]);
    assert.deepEqual(v(out, '00700001', 0, '00700008', 0, '00700006'), [`arrow: lesion, ${R}`]);
    assert.ok(!JSON.stringify(out).includes('Müller') && !JSON.stringify(out).includes('Okonkwo'));
  });

  test('under Modified Dates the SR text date is shifted with the patient offset, as the dataset dates are', () => {
    const out = deidentifyJson(policy({ ...ALL_CLEAN, retainLongitudinalTemporalModifiedDates: true }), instance(), { wholeInstance: true }) as Json;
    const shiftedStudyDate = v(out, '00080020') as string[];
    const day = shiftedStudyDate[0] as string;
    const expected = new Date(Date.UTC(Number(day.slice(0, 4)), Number(day.slice(4, 6)) - 1, Number(day.slice(6, 8))));
    const spelled = `${expected.getUTCDate()} ${expected.toLocaleString('en', { month: 'short', timeZone: 'UTC' })} ${expected.getUTCFullYear()}`;
    assert.deepEqual(v(out, '0040A730', 0, '0040A160'), [`${R} (${R}, ${spelled}): no acute findings.`]);
  });

  test('a QIDO result (only some attributes) cannot know every identity: the text gets the dummy (fail closed)', () => {
    const out = deidentifyJson(policy(ALL_CLEAN), instance()) as Json;
    assert.deepEqual(v(out, '00081030'), ['ANONYMIZED']);
    assert.deepEqual(v(out, '0008103E'), ['ANONYMIZED']);
  });

  test('without a Clean option nothing is cleaned: Basic removes the descriptions and the SR content as before', () => {
    const out = deidentifyJson(policy({}), instance(), { wholeInstance: true }) as Json;
    assert.equal(out['00081030'], undefined);
    assert.deepEqual(out['0040A730'], { vr: 'SQ' });
  });

  test('an override wins over cleaning', () => {
    const out = deidentifyJson(policy(ALL_CLEAN, { overrides: { StudyDescription: 'keep', SeriesDescription: 'remove' } }), instance(), { wholeInstance: true }) as Json;
    assert.deepEqual(v(out, '00081030'), ['MR brain Müller AB-123456']);
    assert.equal(out['0008103E'], undefined);
  });
});

function part10(json: JsonDataset): Buffer {
  const dataset = jsonToDataset(json, [], true);
  return Buffer.concat([
    encodeFileMeta({ transferSyntaxUID: '1.2.840.10008.1.2.1', mediaStorageSOPClassUID: '1.2.840.10008.5.1.4.1.1.88.11', mediaStorageSOPInstanceUID: '1.2.826.0.1.3680043.10.543.1' }),
    encodeDataset(dataset, { explicitVr: true, littleEndian: true }),
  ]);
}

async function rewrittenJson(input: Buffer, session: Part10Policy): Promise<Json> {
  const { output } = await rewritePart10Buffer(input, session);
  const parsed = await readPart10Buffer(output);
  return datasetToJson(parsed.header.dataset, [], true) as Json;
}

describe('Part 10: the header is read whole before any of it is decided', () => {
  test('Study Description (0008,1030) is cleaned of Patient Name (0010,0010), which comes after it, and of a nested Patient ID', async () => {
    const json = instance();
    (json['00081030'] as { Value: unknown[] }).Value = ['MR brain Müller xz9071'];
    const out = await rewrittenJson(part10(json), createSession(policy(ALL_CLEAN)));
    assert.deepEqual(v(out, '00081030'), [`MR brain ${R}`]);
    assert.deepEqual(v(out, '0040A730', 0, '0040A160'), [`${R} (${R}): no acute findings.`]);
    assert.deepEqual(v(out, '00700001', 0, '00700008', 0, '00700006'), [`arrow: lesion, ${R}`]);
  });

  test('a policy that does not take the identities (a wrapper without setIdentities) gives the dummy (fail closed)', async () => {
    const session = createSession(policy(ALL_CLEAN));
    const wrapper: Part10Policy = {
      beginDataset: (id, verdict) => session.beginDataset(id, verdict),
      decide: (ref, value) => session.decide(ref, value),
      attributesToAdd: () => session.attributesToAdd(),
    };
    const out = await rewrittenJson(part10(instance()), wrapper);
    assert.deepEqual(v(out, '00081030'), ['ANONYMIZED']);
  });

  test('a Japanese dataset (ISO 2022 IR 87): the name in kanji and in romaji is removed from text in either script', async () => {
    const parsed = await readPart10Buffer(sample('charset/chrH31.dcm'));
    const dataset: Dataset = [...parsed.header.dataset];
    // "CT 山田太郎 YAMADA 頭部" in ISO 2022 IR 87: ESC $ B switches to JIS X 0208, ESC ( B back to ASCII.
    const text = Buffer.from('CT \x1b$B;3EDB@O:\x1b(B YAMADA \x1b$BF,It\x1b(B ', 'latin1');
    setElement(dataset, { tag: 0x00081030, vr: 'LO', value: text });
    const input = Buffer.concat([
      encodeFileMeta({ transferSyntaxUID: '1.2.840.10008.1.2.1', mediaStorageSOPClassUID: '1.2.840.10008.5.1.4.1.1.7', mediaStorageSOPInstanceUID: '1.2.826.0.1.3680043.10.543.2' }),
      encodeDataset(dataset, { explicitVr: true, littleEndian: true }),
    ]);
    const before = datasetToJson(dataset, [], true) as Json;
    assert.deepEqual(v(before, '00081030'), ['CT 山田太郎 YAMADA 頭部']);
    const out = await rewrittenJson(input, createSession(policy({ cleanDescriptors: true }, { pixels: { enabled: false } })));
    assert.deepEqual(v(out, '00081030'), [`CT ${R} 頭部`]);
    assert.ok(findElement(parsed.header.dataset, 0x00100010));
  });
});

describe('the conformance statement says what the Clean options remove and keep', () => {
  test('the cleaned attributes per option, the removals, what is kept and where the identities are known', () => {
    const s = conformanceStatement(policy(ALL_CLEAN));
    const row = s.attributes.find((r) => r.keyword === 'StudyDescription');
    assert.equal(row?.category, 'cleaned');
    assert.match(row?.effect ?? '', /^text cleaned/);
    assert.equal(s.attributes.find((r) => r.keyword === 'ReasonForTheAttributeModification')?.effect, 'dummy "ANONYMIZED"'); // CS: not text
    const descriptors = s.textCleaning.options.find((o) => o.option === 'cleanDescriptors');
    assert.ok(descriptors?.attributes.includes('SeriesDescription') && descriptors.attributes.includes('ProtocolName'));
    assert.deepEqual(s.textCleaning.options.find((o) => o.option === 'cleanStructuredContent')?.attributes, ['TextValue']);
    assert.equal(s.textCleaning.inSequences.length, 2);
    const md = statementMarkdown(s);
    assert.ok(md.includes('## Text cleaning (Clean options, PS3.15 E.3.3, E.3.5, E.3.11)'));
    assert.ok(md.includes(`each removal replaced by ${R}`));
    assert.match(md, /QIDO-RS results .* the text is replaced by the VR dummy \(fail closed\)/);
    const basic = conformanceStatement(policy({}));
    assert.deepEqual([basic.textCleaning.options, basic.textCleaning.inSequences], [[], []]);
    assert.ok(statementMarkdown(basic).includes('No option in effect cleans text'));
  });
});

// Issue 17, part 2: the canary patient (test/helpers/canary-study.ts) through the engine alone, under each
// Clean option by itself and all together (with and without Modified Dates): no canary embedded in its
// descriptions, SR text or graphic text survives, in Part 10 or in DICOM JSON, and the text around them
// (each text attribute's own canary) does where the option cleans rather than replaces. The same study
// goes through every researcher route of a real Orthanc in test/integration/canary-patient.test.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { datasetToJson } from '../../../src/dicom/json-model.ts';
import { readPart10Buffer } from '../../../src/dicom/part10-reader.ts';
import { createPolicy, createSession, deidentifyJson } from '../../../src/deid/deidentify.ts';
import { rewritePart10Buffer } from '../../../src/deid/rewrite-part10.ts';
import { describeCanaries, findCanaries, keptByDesign, makeCanaryStudy, type OptionColumn } from '../../helpers/canary-study.ts';

const study = makeCanaryStudy();
const secret = 'a-test-secret-of-enough-length!!';

const SETS: readonly (readonly OptionColumn[])[] = [
  ['cleanDescriptors'],
  ['cleanStructuredContent'],
  ['cleanGraphics'],
  ['cleanDescriptors', 'cleanStructuredContent', 'cleanGraphics', 'retainLongitudinalTemporalModifiedDates', 'retainPatientCharacteristics'],
];

describe('the canary patient with identities inside its text', () => {
  test('the originals hold every embedded form: in descriptions, Image Comments, the SR text item and the graphic text object', () => {
    const all = Buffer.concat([...study.instances]);
    const inText = study.canaries.filter((c) => c.placement === 'in-text');
    assert.equal(inText.length, 3);
    assert.deepEqual(inText.filter((c) => !findCanaries(all, [c]).length), []);
    const withForms = study.canaries.filter((c) => c.placement === 'top' && c.needles.length > 0 && ['(0010,0010)', '(0010,0020)', '(0010,0030)', '(0008,0020)', '(0008,0090)'].includes(c.path));
    assert.equal(withForms.length, 5, 'names, IDs and dates have other spellings in text');
    for (const needle of withForms.flatMap((c) => c.needles)) assert.ok(all.includes(needle), needle.toString('latin1'));
  });

  for (const options of SETS) {
    test(`${options.join(' + ')}: no embedded canary survives in Part 10 or DICOM JSON; the text around them does where it is cleaned`, async () => {
      const profile = Object.fromEntries(options.map((o) => [o, true]));
      const policy = createPolicy({ secret, profile, pixels: { enabled: false } });
      const allowed = new Set(study.canaries.filter((c) => keptByDesign(c, options)));
      const outputs: Buffer[] = [];
      const part10: Buffer[] = [];
      // The three instances differ only in their UIDs: one is enough here.
      for (const input of study.instances.slice(0, 1)) {
        const { output } = await rewritePart10Buffer(input, createSession(policy));
        part10.push(output);
        const parsed = await readPart10Buffer(input);
        const json = datasetToJson(parsed.header.dataset, [], true);
        outputs.push(output, Buffer.from(JSON.stringify(deidentifyJson(policy, json, { wholeInstance: true }))), Buffer.from(JSON.stringify(deidentifyJson(policy, json))));
      }
      const leaks = outputs.flatMap((b) => findCanaries(b, study.canaries)).filter((c) => !allowed.has(c));
      assert.deepEqual(leaks, [], describeCanaries([...new Set(leaks)]));
      // The positive control: what cleaning keeps is there (a scanner that finds nothing proves nothing):
      // the text around the embedded identities, and each text attribute's own canary.
      const all = Buffer.concat(part10).toString('latin1');
      if (options.includes('cleanDescriptors')) assert.match(all, /CANARY\d{5} AX T1 \[REMOVED\]/);
      if (options.includes('cleanStructuredContent')) assert.match(all, /no acute findings; patient \[REMOVED\] \(\[REMOVED\]\), DOB \[REMOVED\], referred by \[REMOVED\]/);
      if (options.includes('cleanGraphics')) assert.match(all, /arrow: lesion of \[REMOVED\]/);
      const kept = new Set(findCanaries(Buffer.concat(part10), study.canaries));
      const cleaned = [...allowed].filter((c) => c.scan !== 'none' && ['LO', 'SH', 'ST', 'LT', 'UT', 'UC'].includes(c.vr) && c.basic !== 'K' && c.outsideTable !== 'safe');
      if (!options.includes('cleanGraphics') || options.length > 1) assert.ok(cleaned.length > 0, 'some text is cleaned rather than replaced');
      assert.deepEqual(cleaned.filter((c) => !kept.has(c)).map((c) => `${c.id} ${c.path}`), []);
    });
  }
});

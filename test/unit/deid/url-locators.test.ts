// Issue 14: URL attributes (UR) that locate the original object, its storage or its host are one profile
// rule shared by every representation, not a QIDO-only deletion. Part 10 and DICOM JSON are checked here
// (QIDO results are DICOM JSON through the same deidentifyJson; test/integration/public-links.test.ts and
// researcher-view.test.ts see the gateway's own Retrieve URL there).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createPolicy, createSession, deidentifyJson, type DicomJsonDataset } from '../../../src/deid/deidentify.ts';
import { SUPPLEMENT_REMOVE } from '../../../src/deid/profile.ts';
import { rewritePart10Buffer } from '../../../src/deid/rewrite-part10.ts';
import { lookup } from '../../../src/dicom/dictionary.ts';
import { datasetToJson, jsonToDataset } from '../../../src/dicom/json-model.ts';
import { readPart10Buffer } from '../../../src/dicom/part10-reader.ts';
import { encodeDataset, encodeFileMeta } from '../../../src/dicom/part10-writer.ts';
import { tagToHex } from '../../../src/dicom/tag.ts';
import { TAG } from '../../../src/dicom/tags.ts';
import { EXPLICIT_VR_LITTLE_ENDIAN } from '../../../src/dicom/transfer-syntax.ts';

// About header attributes: the pixel policy is off, so no sample is withheld for its pixels.
const policy = createPolicy({ secret: 'url-locators-secret-0123456789ab', pixels: { enabled: false } });
const ORIGINAL = '1.2.826.0.1.3680043.8.498.777';
const PACS = `http://pacs.hospital.example:8042/dicom-web/studies/${ORIGINAL}`;
const key = tagToHex;

/** A dataset with locators at the top level and inside a reference, and a URN code value. */
function dataset(): DicomJsonDataset {
  return {
    [key(TAG.SOPClassUID)]: { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.88.59'] },
    [key(TAG.SOPInstanceUID)]: { vr: 'UI', Value: [`${ORIGINAL}.3`] },
    [key(TAG.RetrieveURL)]: { vr: 'UR', Value: [PACS] },
    '0040A375': {
      // Current Requested Procedure Evidence Sequence > Referenced Series Sequence > Retrieve URL / URI
      vr: 'SQ',
      Value: [{
        [key(TAG.StudyInstanceUID)]: { vr: 'UI', Value: [ORIGINAL] },
        '00081115': { vr: 'SQ', Value: [{ [key(TAG.RetrieveURL)]: { vr: 'UR', Value: [`${PACS}/series/${ORIGINAL}.2`] }, [key(TAG.RetrieveURI)]: { vr: 'UR', Value: [`${PACS}/series/${ORIGINAL}.2`] } }] },
      }],
    },
    '0040A043': {
      // Concept Name Code Sequence with a URN Code Value: names a code, locates nothing
      vr: 'SQ',
      Value: [{ [key(TAG.CodeMeaning)]: { vr: 'LO', Value: ['Finding'] }, '00080120': { vr: 'UR', Value: ['urn:oid:2.16.840.1.113883.6.96'] } }],
    },
    [key(TAG.StorageURL)]: { vr: 'UR', Value: ['file:///pacs/storage/1234'] },
    [key(TAG.PixelDataProviderURL)]: { vr: 'UR', Value: ['http://jpip.hospital.example/1234'] },
  };
}

function part10(json: DicomJsonDataset): Buffer {
  const meta = encodeFileMeta({ transferSyntaxUID: EXPLICIT_VR_LITTLE_ENDIAN, mediaStorageSOPClassUID: '1.2.840.10008.5.1.4.1.1.88.59', mediaStorageSOPInstanceUID: `${ORIGINAL}.3` });
  return Buffer.concat([meta, encodeDataset(jsonToDataset(json, [], true), { explicitVr: true, littleEndian: true })]);
}

describe('URL attributes that locate the original', () => {
  it('are removed from DICOM JSON (metadata, QIDO) at every depth; a URN Code Value stays', () => {
    const out = JSON.stringify(deidentifyJson(createSession(policy), dataset()));
    assert.ok(!out.includes('hospital.example') && !out.includes('file:///') && !out.includes(ORIGINAL), out);
    assert.ok(out.includes('urn:oid:2.16.840.1.113883.6.96'));
  });

  it('are removed from Part 10 alike: both representations give the same dataset', async () => {
    const { output } = await rewritePart10Buffer(part10(dataset()), createSession(policy));
    const { header } = await readPart10Buffer(output);
    const fromPart10 = datasetToJson(header.dataset, [], true);
    const fromJson = deidentifyJson(createSession(policy), dataset());
    assert.ok(!output.includes('hospital.example') && !output.includes('file:///'));
    assert.deepEqual(JSON.parse(JSON.stringify(fromPart10)), JSON.parse(JSON.stringify(fromJson)));
  });

  it('every removed locator is a UR attribute of PS3.6 and is stated by the conformance rows as a supplement', () => {
    for (const tag of [TAG.RetrieveURL, TAG.RetrieveURI, TAG.StorageURL, TAG.PixelDataProviderURL, TAG.StoredInstanceBaseURI, TAG.FolderAccessURI, TAG.FileAccessURI]) {
      assert.deepEqual(lookup(tag)?.vrs, ['UR']);
      assert.equal(SUPPLEMENT_REMOVE.get(tag), lookup(tag)?.keyword);
      assert.deepEqual(policy.profile.ruleFor(tag), { action: 'X', source: 'supplement' });
    }
  });
});

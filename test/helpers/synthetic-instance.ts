import type { DataElement } from '../../src/dicom/dataset.ts';
import { encodeDataset, encodeFileMeta } from '../../src/dicom/part10-writer.ts';
import { padValue } from '../../src/dicom/vr.ts';

const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7';
const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';

/** A text element, its value padded for its VR (PS3.5 6.2). */
export function textElement(tag: number, vr: string, value: string): DataElement {
  return { tag, vr, value: padValue(Buffer.from(value, 'latin1'), vr) };
}

/** A US element (little endian). */
export function usElement(tag: number, value: number): DataElement {
  return { tag, vr: 'US', value: Buffer.from([value & 0xff, value >> 8]) };
}

/**
 * A Part 10 file in Explicit VR Little Endian: File Meta naming `sopClass` and `sopInstance`, then `dataset`
 * (ascending tag order, holding (0008,0016) and (0008,0018) itself).
 */
export function explicitLittleEndianFile(sopClass: string, sopInstance: string, dataset: readonly DataElement[]): Buffer<ArrayBuffer> {
  return Buffer.concat([
    encodeFileMeta({ transferSyntaxUID: EXPLICIT_VR_LITTLE_ENDIAN, mediaStorageSOPClassUID: sopClass, mediaStorageSOPInstanceUID: sopInstance }),
    encodeDataset(dataset, { explicitVr: true, littleEndian: true }),
  ]);
}

/**
 * A small Secondary Capture Part 10 file without pixels (Explicit VR Little Endian): SOP Class UID and
 * SOP Instance UID, then `elements` as text values, each padded for its VR. `elements` must be in
 * ascending tag order and come after (0008,0018).
 */
export function syntheticInstance(sopInstanceUid: string, elements: ReadonlyArray<readonly [tag: number, vr: string, text: string]>): Buffer {
  return explicitLittleEndianFile(SECONDARY_CAPTURE, sopInstanceUid, [
    textElement(0x00080016, 'UI', SECONDARY_CAPTURE),
    textElement(0x00080018, 'UI', sopInstanceUid),
    ...elements.map(([tag, vr, value]) => textElement(tag, vr, value)),
  ]);
}

import { encodeDataset, encodeFileMeta } from '../../src/dicom/part10-writer.ts';
import { padValue } from '../../src/dicom/vr.ts';

const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7';
const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';

/**
 * A small Secondary Capture Part 10 file without pixels (Explicit VR Little Endian): SOP Class UID and
 * SOP Instance UID, then `elements` as text values, each padded for its VR. `elements` must be in
 * ascending tag order and come after (0008,0018).
 */
export function syntheticInstance(sopInstanceUid: string, elements: ReadonlyArray<readonly [tag: number, vr: string, text: string]>): Buffer {
  const text = (tag: number, vr: string, value: string) => ({ tag, vr, value: padValue(Buffer.from(value, 'latin1'), vr) });
  return Buffer.concat([
    encodeFileMeta({ transferSyntaxUID: EXPLICIT_VR_LITTLE_ENDIAN, mediaStorageSOPClassUID: SECONDARY_CAPTURE, mediaStorageSOPInstanceUID: sopInstanceUid }),
    encodeDataset(
      [text(0x00080016, 'UI', SECONDARY_CAPTURE), text(0x00080018, 'UI', sopInstanceUid), ...elements.map(([tag, vr, value]) => text(tag, vr, value))],
      { explicitVr: true, littleEndian: true },
    ),
  ]);
}

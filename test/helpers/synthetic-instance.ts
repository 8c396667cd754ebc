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

/** The attributes of `monochromeImageFile`. */
export interface MonochromeImage {
  readonly sopClass: string;
  readonly sopInstance: string;
  readonly modality: string;
  readonly patientName: string;
  readonly patientId?: string;
  readonly study: string;
  readonly series: string;
  readonly instanceNumber?: number;
  /** Number of Frames (0028,0008), written only when given. */
  readonly frames?: number;
  readonly rows: number;
  readonly columns: number;
  readonly bitsAllocated: number;
  /** Default: bitsAllocated. High Bit is one less. */
  readonly bitsStored?: number;
  /** Native Pixel Data, OW above 8 bits allocated and OB otherwise. */
  readonly pixels: Buffer;
}

/**
 * A native single-sample MONOCHROME2 image (unsigned) in Explicit VR Little Endian: the SOP, Modality,
 * patient, study and series identifiers, then the Image Pixel module (PS3.3 C.7.6.3) and Pixel Data.
 */
export function monochromeImageFile(image: MonochromeImage): Buffer<ArrayBuffer> {
  const bitsStored = image.bitsStored ?? image.bitsAllocated;
  return explicitLittleEndianFile(image.sopClass, image.sopInstance, [
    textElement(0x00080016, 'UI', image.sopClass),
    textElement(0x00080018, 'UI', image.sopInstance),
    textElement(0x00080060, 'CS', image.modality),
    textElement(0x00100010, 'PN', image.patientName),
    ...(image.patientId !== undefined ? [textElement(0x00100020, 'LO', image.patientId)] : []),
    textElement(0x0020000d, 'UI', image.study),
    textElement(0x0020000e, 'UI', image.series),
    ...(image.instanceNumber !== undefined ? [textElement(0x00200013, 'IS', String(image.instanceNumber))] : []),
    usElement(0x00280002, 1),
    textElement(0x00280004, 'CS', 'MONOCHROME2'),
    ...(image.frames !== undefined ? [textElement(0x00280008, 'IS', String(image.frames))] : []),
    usElement(0x00280010, image.rows),
    usElement(0x00280011, image.columns),
    usElement(0x00280100, image.bitsAllocated),
    usElement(0x00280101, bitsStored),
    usElement(0x00280102, bitsStored - 1),
    usElement(0x00280103, 0),
    { tag: 0x7fe00010, vr: image.bitsAllocated > 8 ? 'OW' : 'OB', value: image.pixels },
  ]);
}

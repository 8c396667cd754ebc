// Transfer syntaxes (PS3.5 10 and Annex A; UIDs from PS3.6 Table A-1).
import type { DatasetEncoding } from './dataset.ts';
import { DicomUnsupportedTransferSyntaxError } from './errors.ts';
import { TAG } from './tags.ts';

export const IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2';
export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';
const DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1.99';
const EXPLICIT_VR_BIG_ENDIAN = '1.2.840.10008.1.2.2';

export interface TransferSyntax extends DatasetEncoding {
  readonly uid: string;
  /** The dataset after File Meta is a raw deflate stream (PS3.5 A.5). */
  readonly deflated: boolean;
  /** Pixel Data is encapsulated (PS3.5 A.4): undefined length, items of fragments. */
  readonly encapsulated: boolean;
}

/**
 * Every standard transfer syntax other than Implicit VR LE, Explicit VR BE and Deflated encodes the
 * dataset as Explicit VR Little Endian (PS3.5 A.4). Non-standard UIDs are refused: we cannot know
 * how their dataset is encoded (fail closed).
 */
export function transferSyntax(uid: string): TransferSyntax {
  const u = uid.replace(/[\0 ]+$/, '');
  switch (u) {
    case IMPLICIT_VR_LITTLE_ENDIAN:
      return { uid: u, explicitVr: false, littleEndian: true, deflated: false, encapsulated: false };
    case EXPLICIT_VR_LITTLE_ENDIAN:
      return { uid: u, explicitVr: true, littleEndian: true, deflated: false, encapsulated: false };
    case DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
      return { uid: u, explicitVr: true, littleEndian: true, deflated: true, encapsulated: false };
    case EXPLICIT_VR_BIG_ENDIAN:
      return { uid: u, explicitVr: true, littleEndian: false, deflated: false, encapsulated: false };
    default:
      if (/^1\.2\.840\.10008\.1\.2\.(1\.98|4\.\d+|5|6\.\d+|7\.\d+|8\.\d+)$/.test(u)) {
        return { uid: u, explicitVr: true, littleEndian: true, deflated: false, encapsulated: true };
      }
      throw new DicomUnsupportedTransferSyntaxError('unsupported transfer syntax UID', { tag: TAG.TransferSyntaxUID });
  }
}

/** The transfer syntax UID of a sniffed raw dataset encoding. */
export function uidForEncoding(enc: DatasetEncoding): string {
  if (!enc.explicitVr) return IMPLICIT_VR_LITTLE_ENDIAN;
  return enc.littleEndian ? EXPLICIT_VR_LITTLE_ENDIAN : EXPLICIT_VR_BIG_ENDIAN;
}

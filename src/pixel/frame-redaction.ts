// One frame as the WADO-RS frames transaction returns it (PS3.18 10.4.1.1.3: one multipart part per
// frame, its transfer syntax in the part's Content-Type), redacted: native input is blanked in a copy;
// encapsulated input is decoded, blanked and returned as native Explicit VR Little Endian bytes.
import { EXPLICIT_VR_LITTLE_ENDIAN } from '../dicom/transfer-syntax.ts';
import { decodedPhotometricInterpretation } from '../dicom/photometric.ts';
import type { Rectangle } from '../deid/pixel-policy.ts';
import { decodeFrame, requireCodec } from './codecs.ts';
import { PixelGeometryError } from './errors.ts';
import { assertBlankable, frameByteLength, type FrameGeometry } from './geometry.ts';
import { blankFrameInPlace } from './native-blank.ts';

const NATIVE: Readonly<Record<string, { littleEndian: boolean }>> = Object.freeze({
  '1.2.840.10008.1.2': { littleEndian: true },
  '1.2.840.10008.1.2.1': { littleEndian: true },
  '1.2.840.10008.1.2.1.99': { littleEndian: true },
  '1.2.840.10008.1.2.2': { littleEndian: false },
});

/** Whether frames of this transfer syntax can be redacted at all (native, or a codec we have). */
export function canRedactTransferSyntax(transferSyntaxUid: string): boolean {
  const uid = transferSyntaxUid.replace(/[\0 ]+$/, '');
  if (NATIVE[uid]) return true;
  try {
    requireCodec(uid);
    return true;
  } catch {
    return false;
  }
}

/**
 * The frame with `rectangles` blanked, as native bytes: for native input a blanked copy in the same
 * transfer syntax; for encapsulated input the decoded frame in Explicit VR Little Endian (its
 * Photometric Interpretation is then decodedPhotometricInterpretation of the stored one). `geometry` is
 * the instance's; only one frame is handled. Errors: PixelUnsupportedError, PixelDecodeError,
 * PixelFrameTooLargeError, PixelGeometryError (a native frame of the wrong size: shorter or longer than
 * one frame, but for the pad byte of an odd-length frame).
 */
export async function redactFrame(
  bytes: Uint8Array,
  transferSyntaxUid: string,
  geometry: FrameGeometry,
  rectangles: readonly Rectangle[],
): Promise<{ bytes: Buffer; transferSyntaxUid: string }> {
  const uid = transferSyntaxUid.replace(/[\0 ]+$/, '');
  const single = { ...geometry, numberOfFrames: 1 };
  const native = NATIVE[uid];
  if (native) {
    assertBlankable(single, { encapsulated: false });
    const expected = frameByteLength(single);
    // Exactly one frame (an odd-length frame may carry its pad byte): more would be bytes this call
    // does not blank, e.g. a second frame passed through unredacted (fail closed).
    if (bytes.length !== expected && !(expected % 2 === 1 && bytes.length === expected + 1)) {
      throw new PixelGeometryError(`native frame holds ${bytes.length} bytes, the geometry needs ${expected}`);
    }
    const copy = Buffer.from(bytes);
    blankFrameInPlace(copy, single, rectangles, { littleEndian: native.littleEndian });
    return { bytes: copy, transferSyntaxUid: uid };
  }
  requireCodec(uid);
  assertBlankable(single, { encapsulated: true });
  const decoded = await decodeFrame(bytes, uid, single);
  blankFrameInPlace(decoded, { ...single, photometricInterpretation: decodedPhotometricInterpretation(single.photometricInterpretation) }, rectangles);
  return { bytes: decoded, transferSyntaxUid: EXPLICIT_VR_LITTLE_ENDIAN };
}

// The one place an error becomes a C-STORE response status (PS3.4 B.2.3, Table B.2-1; PS3.7 C).
import { DeidError, PixelWithheldError } from '../deid/errors.ts';
import { DicomError } from '../dicom/errors.ts';
import { OcrBusyError } from '../dicomweb/errors.ts';
import { DatasetMismatchError, InstanceIdentifiersError, SopClassNotAcceptedError, SpoolFullError } from './errors.ts';

/** PS3.4 B.2.3 C-STORE statuses the listener answers (PS3.7 C.4.2 for 0110 and 0122). */
export const StoreStatus = {
  success: 0x0000,
  /** Refused: Out of Resources. */
  outOfResources: 0xa700,
  /** Error: Data Set does not match SOP Class. */
  dataSetDoesNotMatchSopClass: 0xa900,
  /** Error: Cannot understand. */
  cannotUnderstand: 0xc000,
  /** Failure: Processing failure (PS3.7 C.4.2). */
  processingFailure: 0x0110,
  /** Failure: Refused: SOP Class not supported (PS3.7 C.5.8). */
  sopClassNotSupported: 0x0122,
  /**
   * Failure: Refused: Not authorized (PS3.7 Annex C): the pixel policy withholds the instance (issue 16),
   * as the uploader's STOW refuses it with Failure Reason 0x0124. Understood, and not ours to store.
   */
  notAuthorized: 0x0124,
} as const;

/** Disk errors that say "no room", whatever the quota says. */
const NO_ROOM = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);

/** The C-STORE status for an instance refused with `error`; never 0000. */
export function storeStatusOf(error: unknown): number {
  let understood = true;
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof SpoolFullError || e instanceof OcrBusyError || NO_ROOM.has(String((e as { code?: unknown }).code))) return StoreStatus.outOfResources;
    if (e instanceof DatasetMismatchError || e instanceof InstanceIdentifiersError) return StoreStatus.dataSetDoesNotMatchSopClass;
    if (e instanceof SopClassNotAcceptedError) return StoreStatus.sopClassNotSupported;
    if (e instanceof PixelWithheldError) return StoreStatus.notAuthorized;
    // The engine could not read or de-identify it: refused whole, never forwarded raw (fail closed).
    if (e instanceof DicomError || e instanceof DeidError) understood = false;
  }
  return understood ? StoreStatus.processingFailure : StoreStatus.cannotUnderstand;
}

/** The status as the log and the metrics name it: four hex digits. */
export function statusHex(status: number): string {
  return status.toString(16).toUpperCase().padStart(4, '0');
}

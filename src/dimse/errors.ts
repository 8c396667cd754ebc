// DIMSE ingress errors: one class per failure, each with a stable `code` that callers branch on. Messages
// name codes and keys, never a UID, a patient attribute or a path. Which C-STORE status an error gets is
// decided in one place, store-status.ts.

export type DimseErrorCode =
  | 'DIMSE_SPOOL_FULL'
  | 'DIMSE_PDU_TOO_LARGE'
  | 'DIMSE_PDU_UNEXPECTED'
  | 'DIMSE_COMMAND_TOO_LARGE'
  | 'DIMSE_DATASET_MISMATCH'
  | 'DIMSE_NO_IDENTIFIERS'
  | 'DIMSE_SOP_CLASS_NOT_ACCEPTED'
  | 'DIMSE_SPOOL_STATE_INVALID'
  | 'DIMSE_INSTANCE_INCOMPLETE';

export class DimseError extends Error {
  override name = 'DimseError';
  constructor(
    readonly code: DimseErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The spool would exceed `dimse.spool.quotaBytes`: nothing of the instance is kept (PS3.4 B.2.3 A700). */
export class SpoolFullError extends DimseError {
  override name = 'SpoolFullError';
  constructor() {
    super('DIMSE_SPOOL_FULL', 'the spool is at its quota (dimse.spool.quotaBytes)');
  }
}

/** A PDU or DIMSE message past the listener's byte caps, or out of place (PS3.8 9.3): the association is aborted. */
export class PduGuardError extends DimseError {
  override name = 'PduGuardError';
  constructor(code: 'DIMSE_PDU_TOO_LARGE' | 'DIMSE_PDU_UNEXPECTED' | 'DIMSE_COMMAND_TOO_LARGE', message: string) {
    super(code, message);
  }
}

/** The dataset's SOP Class or SOP Instance UID is not the one the C-STORE request names (PS3.7 9.1.1.1; A900). */
export class DatasetMismatchError extends DimseError {
  override name = 'DatasetMismatchError';
  constructor(readonly keyword: 'SOPClassUID' | 'SOPInstanceUID') {
    super('DIMSE_DATASET_MISMATCH', `the dataset's ${keyword} differs from the C-STORE request's`);
  }
}

/** The dataset lacks an identifier the spool groups by (StudyInstanceUID, SOPInstanceUID, SOPClassUID; A900). */
export class InstanceIdentifiersError extends DimseError {
  override name = 'InstanceIdentifiersError';
  constructor(readonly keyword: string) {
    super('DIMSE_NO_IDENTIFIERS', `the dataset has no ${keyword}`);
  }
}

/** A C-STORE on a presentation context that was not accepted, or for another SOP Class than it names (0122). */
export class SopClassNotAcceptedError extends DimseError {
  override name = 'SopClassNotAcceptedError';
  constructor() {
    super('DIMSE_SOP_CLASS_NOT_ACCEPTED', 'the C-STORE names a SOP Class its presentation context did not accept');
  }
}

/** The dataset ended before its last PDV (the association closed or aborted mid-instance). */
export class InstanceIncompleteError extends DimseError {
  override name = 'InstanceIncompleteError';
  constructor(options?: { cause?: unknown }) {
    super('DIMSE_INSTANCE_INCOMPLETE', 'the instance was not received whole', options);
  }
}

/** A study's state file in the spool cannot be read: the study is quarantined as it is, never guessed at. */
export class SpoolStateError extends DimseError {
  override name = 'SpoolStateError';
  constructor(options?: { cause?: unknown }) {
    super('DIMSE_SPOOL_STATE_INVALID', 'a spooled study has no readable state file', options);
  }
}

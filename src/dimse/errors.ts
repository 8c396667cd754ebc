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
  | 'DIMSE_INSTANCE_INCOMPLETE'
  | 'DIMSE_SPOOL_JOURNAL_UNREADABLE'
  | 'DIMSE_OCR_BUSY'
  | DestinationAuthCode
  | QuarantineCode
  | RetrieveCode;

/** Why the forwarding destination did not take a study for its credentials (never the instance's fault). */
export type DestinationAuthCode =
  | 'DIMSE_DESTINATION_UNAUTHORIZED'
  | 'DIMSE_DESTINATION_FORBIDDEN'
  | 'DIMSE_DESTINATION_TOKEN_REFUSED'
  | 'DIMSE_DESTINATION_TOKEN_UNAVAILABLE';

/** Why an operator's retry of a quarantined study was not done. */
export type QuarantineCode = 'DIMSE_QUARANTINE_NOT_FOUND' | 'DIMSE_QUARANTINE_STATE_INVALID' | 'DIMSE_QUARANTINE_STUDY_OPEN' | 'DIMSE_QUARANTINE_BUSY';

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

/** A study's forwarding journal exists but cannot be read: the study is quarantined as it is (what was confirmed is unknown). */
export class SpoolJournalError extends DimseError {
  override name = 'SpoolJournalError';
  constructor(options?: { cause?: unknown }) {
    super('DIMSE_SPOOL_JOURNAL_UNREADABLE', 'a spooled study has a forwarding journal that cannot be read', options);
  }
}

/** RFC 6749 5.2 error codes (and RFC 8707 2's invalid_target): the only text of a token endpoint's answer that is kept. */
export const OAUTH_ERRORS = ['invalid_request', 'invalid_client', 'invalid_grant', 'unauthorized_client', 'unsupported_grant_type', 'invalid_scope', 'invalid_target'] as const;
export type OAuthErrorCode = (typeof OAUTH_ERRORS)[number];

/**
 * The forwarding destination refused the gateway's credentials (401 or 403), or its token endpoint gave
 * no token (refused: 400/401 with an RFC 6749 5.2 error; unavailable: unreachable, 5xx, an answer that
 * is not a token). A failure that may pass: the study is retried with backoff, then quarantined.
 * Never carries the secret, the token or the endpoint's text.
 */
export class DestinationAuthError extends DimseError {
  override name = 'DestinationAuthError';
  constructor(
    code: DestinationAuthCode,
    message: string,
    readonly detail: { readonly status?: number; readonly oauthError?: OAuthErrorCode; readonly network?: string } = {},
  ) {
    super(code, message);
  }
}

const QUARANTINE_MESSAGES: Record<QuarantineCode, string> = {
  DIMSE_QUARANTINE_NOT_FOUND: 'no quarantined study has this id',
  DIMSE_QUARANTINE_STATE_INVALID: 'the quarantined study has no readable state file (pseudonym mode unknown): send it again from its source',
  DIMSE_QUARANTINE_STUDY_OPEN: 'the same study is open under other pseudonyms (a fresh salt); retry once it is forwarded and closed',
  DIMSE_QUARANTINE_BUSY: 'this quarantined study is being retried, or the ingress is stopping',
};

/** An operator's retry of a quarantined study (`POST /dimse/quarantine/{id}/retry`) that was not done. */
export class QuarantineError extends DimseError {
  override name = 'QuarantineError';
  declare readonly code: QuarantineCode;
  constructor(code: QuarantineCode) {
    super(code, QUARANTINE_MESSAGES[code]);
  }
}

/** Why a C-GET or C-MOVE sub-operation (PS3.4 C.4.2.3, C.4.3.3), or the association it runs on, failed. */
export type RetrieveCode =
  | 'DIMSE_FILE_META_INVALID'
  | 'DIMSE_ASSOCIATION_LOST'
  | 'DIMSE_STORE_INCOMPLETE'
  | 'DIMSE_STORE_TIMEOUT'
  | 'DIMSE_DESTINATION_UNAVAILABLE'
  | 'DIMSE_NO_STORAGE_CONTEXT'
  | 'DIMSE_VIEW_REFUSED'
  | 'DIMSE_VIEW_MISMATCH'
  | 'DIMSE_DATASET_EMPTY'
  | 'DIMSE_PEER_MAX_LENGTH';

/** An instance from the view whose Part 10 File Meta (PS3.10 7.1) cannot be read: nothing of it is sent. */
export class FileMetaError extends DimseError {
  override name = 'FileMetaError';
  constructor(message: string) {
    super('DIMSE_FILE_META_INVALID', message);
  }
}

/** The association closed (or was never usable) while a message was being sent or answered. */
export class AssociationLostError extends DimseError {
  override name = 'AssociationLostError';
  constructor() {
    super('DIMSE_ASSOCIATION_LOST', 'the association closed');
  }
}

/** The dataset of a C-STORE-RQ ended or failed after its command was sent: the association must be aborted. */
export class StoreIncompleteError extends DimseError {
  override name = 'StoreIncompleteError';
  constructor(options?: { cause?: unknown }) {
    super('DIMSE_STORE_INCOMPLETE', 'the instance could not be sent whole', options);
  }
}

/** No C-STORE-RSP (or no room on the socket) in time: the association must be aborted. */
export class StoreTimeoutError extends DimseError {
  override name = 'StoreTimeoutError';
  constructor() {
    super('DIMSE_STORE_TIMEOUT', 'the peer did not answer a C-STORE-RQ in time (dimse.pduTimeoutMs)');
  }
}

/** A C-MOVE destination that could not be reached, or did not accept the association (PS3.8 9.3.4). */
export class DestinationUnavailableError extends DimseError {
  override name = 'DestinationUnavailableError';
  constructor(
    readonly reason: 'unreachable' | 'rejected' | 'aborted' | 'timeout' | 'max-length',
    options?: { cause?: unknown },
  ) {
    super('DIMSE_DESTINATION_UNAVAILABLE', `the move destination is unavailable (${reason})`, options);
  }
}

/**
 * The peer's Maximum Length (PS3.8 D.1) is not 0 (no limit) and below MIN_PEER_MAX_LENGTH
 * (store-sender.ts): no PDU this gateway sends would carry a useful fragment; the association is refused.
 */
export class PeerMaxLengthError extends DimseError {
  override name = 'PeerMaxLengthError';
  constructor() {
    super('DIMSE_PEER_MAX_LENGTH', "the peer's Maximum Length is below the gateway's floor");
  }
}

/**
 * One sub-operation that failed before any byte of it was sent: no storage context for its SOP Class
 * (PS3.4 C.4.3.3), the view refused it (`status`: its HTTP status), the view's instance is not the one
 * listed or not in the transfer syntax asked for, or it has no dataset after its File Meta.
 */
export class SubOperationError extends DimseError {
  override name = 'SubOperationError';
  constructor(
    code: 'DIMSE_NO_STORAGE_CONTEXT' | 'DIMSE_VIEW_REFUSED' | 'DIMSE_VIEW_MISMATCH' | 'DIMSE_DATASET_EMPTY',
    message: string,
    readonly status?: number,
  ) {
    super(code, message);
  }
}

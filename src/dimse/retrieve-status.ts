// The C-GET and C-MOVE response statuses (PS3.4 C.4.2.1.5 Table C.4-2, C.4.3.1.4 Table C.4-3) and the
// sub-operation counts they carry (PS3.7 9.1.3.1, 9.1.4.1): the one place a retrieval's outcome becomes
// a status.

/** PS3.4 Tables C.4-2 (C-MOVE) and C.4-3 (C-GET). */
export const RetrieveStatus = {
  /** Success: Sub-operations Complete – No Failures. */
  success: 0x0000,
  /** Warning: Sub-operations Complete – One or more Failures (or Warnings). */
  someFailed: 0xb000,
  /** Cancel: Sub-operations terminated due to Cancel Indication. */
  cancel: 0xfe00,
  /** Pending: Sub-operations are continuing. */
  pending: 0xff00,
  /** Refused: Out of Resources – Unable to calculate number of matches. */
  unableToCalculateMatches: 0xa701,
  /** Refused: Out of Resources – Unable to perform sub-operations. */
  unableToPerformSubOperations: 0xa702,
  /** Refused: Move Destination unknown (C-MOVE only). */
  moveDestinationUnknown: 0xa801,
  /** Error: Identifier does not match SOP Class. */
  identifierDoesNotMatch: 0xa900,
} as const;

/** How one C-STORE sub-operation ended, from its C-STORE-RSP status (PS3.4 B.2.3, PS3.7 C). */
export type SubOutcome = 'completed' | 'warning' | 'failed';

/** PS3.7 C.1-C.3: 0000 success; 0001 and Bxxx warnings; everything else (Axxx, Cxxx, 01xx, 02xx) a failure. */
export function subOutcomeOf(storeStatus: number): SubOutcome {
  if (storeStatus === 0x0000) return 'completed';
  if (storeStatus === 0x0001 || (storeStatus & 0xf000) === 0xb000) return 'warning';
  return 'failed';
}

/** The sub-operations of one C-GET or C-MOVE so far. */
export class SubOperations {
  completed = 0;
  warning = 0;
  failed = 0;
  /** PS3.4 C.4.2.1.4 / C.4.3.1.3: the Failed SOP Instance UID List (0008,0058) of the final response. */
  readonly failedUids: string[] = [];

  constructor(readonly total: number) {}

  get remaining(): number {
    return this.total - this.completed - this.warning - this.failed;
  }

  count(outcome: SubOutcome, sopInstanceUid: string): void {
    this[outcome]++;
    if (outcome === 'failed') this.failedUids.push(sopInstanceUid);
  }

  /**
   * The final status once every sub-operation was tried (PS3.4 C.4.2.3.1, C.4.3.3.1): Success when all
   * completed (or there were none: zero matches is not a failure, and answers the same whether a UID is
   * unknown or not the caller's); Warning (B000) when some failed or warned; when all failed, a Refused
   * status, as the SCU reads "Failure or Refused" as all unsuccessful (PS3.4 C.4.3.2): A702, as DCMTK's
   * Query/Retrieve SCP does.
   */
  finalStatus(): number {
    if (this.failed === 0 && this.warning === 0) return RetrieveStatus.success;
    if (this.completed === 0 && this.warning === 0) return RetrieveStatus.unableToPerformSubOperations;
    return RetrieveStatus.someFailed;
  }
}

/**
 * The pseudonym store: every pseudonym the engine made, mapped to its original, so a researcher can
 * navigate by pseudonymous UIDs and an authorised steward can map back. One interface; one file per
 * backend (`sqlite-store.ts` embedded; others for several replicas).
 */
export type MappingKind = 'uid' | 'patientId' | 'patientName' | 'accessionNumber' | 'otherPatientId' | 'value';

export interface Mapping {
  readonly kind: MappingKind;
  readonly pseudonym: string;
  readonly original: string;
}

export interface PseudonymStore {
  /**
   * Persists the mappings durably before it resolves, so a response that shows a pseudonym never
   * completes before its mapping is on disk. Re-saving a known mapping is a no-op.
   */
  save(mappings: readonly Mapping[]): Promise<void>;
  /** The original behind a pseudonym, or undefined if the gateway never issued it. */
  originalOf(kind: MappingKind, pseudonym: string): Promise<string | undefined>;
  /** How many mappings are held (operations, tests). */
  count(): Promise<number>;
  close(): Promise<void>;
}

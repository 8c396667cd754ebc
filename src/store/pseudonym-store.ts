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
   * Persists the mappings before it resolves: they survive a crash or restart of the gateway process.
   * Re-saving a known mapping is a no-op. Called before the bytes that show a pseudonym are written.
   */
  save(mappings: readonly Mapping[]): Promise<void>;
  /**
   * Makes everything saved so far durable on disk (power loss included) before it resolves. Called
   * once before a response that showed new pseudonyms completes, so one disk flush covers a whole
   * study instead of one per instance (group commit).
   */
  sync(): Promise<void>;
  /** The original behind a pseudonym, or undefined if the gateway never issued it. */
  originalOf(kind: MappingKind, pseudonym: string): Promise<string | undefined>;
  /** How many mappings are held (operations, tests). */
  count(): Promise<number>;
  close(): Promise<void>;
}

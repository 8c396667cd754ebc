/**
 * The pseudonym store: every pseudonym the engine made, mapped to its original, so a researcher can
 * navigate by pseudonymous UIDs and an authorised steward can map back. One interface; one file per
 * backend (`sqlite-store.ts` embedded; `postgres-store.ts` for several replicas).
 *
 * Every mapping belongs to a **scope**: one project's researcher view (`project:<name>`), or the
 * uploader's (`upload`). The keyed pseudonyms of two scopes are derived with different keys
 * (deid/pseudonym.ts scopedSecret), and a pseudonym is looked up only in the scope of the caller who
 * presents it: one project's pseudonym presented in another project is as unknown as one never issued.
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
   * Resolves to how many of them may not yet be durable (`sync`): written now, or by an earlier call
   * since the last sync. A backend that cannot tell counts them all; 0 lets the caller skip `sync`.
   */
  save(scope: string, mappings: readonly Mapping[]): Promise<number>;
  /**
   * Makes everything saved so far durable on disk (power loss included) before it resolves. Called
   * once before a response that showed new pseudonyms completes, so one disk flush covers a whole
   * study instead of one per instance (group commit).
   */
  sync(): Promise<void>;
  /** The original behind a pseudonym of `scope`, or undefined if the gateway never issued it there. */
  originalOf(scope: string, kind: MappingKind, pseudonym: string): Promise<string | undefined>;
  /** How many mappings are held, in every scope (operations, tests). */
  count(): Promise<number>;
  close(): Promise<void>;
}

/** One scope of the store: what a de-identified view or an upload reads and writes. */
export interface ScopedPseudonyms {
  readonly scope: string;
  save(mappings: readonly Mapping[]): Promise<number>;
  sync(): Promise<void>;
  originalOf(kind: MappingKind, pseudonym: string): Promise<string | undefined>;
}

export function scopedPseudonyms(store: PseudonymStore, scope: string): ScopedPseudonyms {
  return {
    scope,
    save: (mappings) => store.save(scope, mappings),
    sync: () => store.sync(),
    originalOf: (kind, pseudonym) => store.originalOf(scope, kind, pseudonym),
  };
}

/** The offline CLI's own failures (the engine's stay DicomError / DeidError with their codes). */
export type CliErrorCode = 'CLI_USAGE';

/** A command line that cannot be run (a bad option, a missing input, a report made otherwise): exit 2 with its message. */
export class UsageError extends Error {
  override name = 'UsageError';
  readonly code: CliErrorCode = 'CLI_USAGE';
}

/** The offline CLI's own failures (the engine's stay DicomError / DeidError with their codes). */
export type CliErrorCode = 'CLI_USAGE' | 'CLI_WORKER_FAILED';

/** A command line that cannot be run (a bad option, a missing input, a report made otherwise): exit 2 with its message. */
export class UsageError extends Error {
  override name = 'UsageError';
  readonly code: CliErrorCode = 'CLI_USAGE';
}

/**
 * A worker thread stopped (crashed, ran out of memory, or never started) with this file in flight: the
 * file is refused with this code (no output: it was written to a temporary name, if at all), exit 1.
 */
export class WorkerFailedError extends Error {
  override name = 'WorkerFailedError';
  readonly code: CliErrorCode = 'CLI_WORKER_FAILED';
}

// What becomes of an input the engine did not de-identify: its outcome and reason, from the error. One
// function for both places a file is rewritten (this thread with --jobs 1, a worker thread otherwise), so
// the report and the exit status do not depend on where it ran.
import { DeidError, PixelWithheldError } from '../deid/errors.ts';
import { DicomError } from '../dicom/errors.ts';
import { formatTag } from '../dicom/tag.ts';
import type { FileEntry } from './batch-report.ts';

/** The refusal as printed: a code and, where known, the tag; never a value or a message. */
export function describeError(error: unknown): string {
  if (error instanceof DicomError) return error.tag === undefined ? error.code : `${error.code} at ${formatTag(error.tag)}`;
  if (error instanceof DeidError) return 'tag' in error && typeof error.tag === 'string' ? `${error.code} at ${error.tag}` : error.code;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Z0-9_]+$/.test(code) ? code : 'INTERNAL_ERROR';
}

/** A file's outcome other than de-identified, with its reason. */
export interface FileFailure {
  readonly outcome: 'skipped' | 'withheld' | 'refused';
  readonly reason: string;
}

/** Withheld by the pixel policy, or not DICOM: a policy outcome; anything else is refused. */
export function failureOf(error: unknown): FileFailure {
  // PS3.10 7.1: no preamble/"DICM" and no recognisable dataset: not a DICOM file at all.
  if (error instanceof DicomError && error.code === 'DICOM_NOT_DICOM') return { outcome: 'skipped', reason: error.code };
  // The pixel policy's outcome, not a failure: its reason and the criterion or filter (never a value).
  if (error instanceof PixelWithheldError) return { outcome: 'withheld', reason: `${error.reason} (${error.detail})` };
  return { outcome: 'refused', reason: describeError(error) };
}

/** The report's entry for a file that failed with `error`. */
export function failedEntry(base: Pick<FileEntry, 'input' | 'inputBytes' | 'inputMtimeMs'>, error: unknown): FileEntry {
  return { ...base, ...failureOf(error) };
}

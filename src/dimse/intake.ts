// The check an instance passes before its C-STORE success response (PS3.7 9.1.1): it names the SOP Class
// and Instance its request named, it has the identifiers the spool groups by, and the de-identification
// engine rewrites it whole (output discarded), its pixel policy included. An instance the engine refuses,
// or the pixel policy withholds, is refused now, with a failure status, and never reaches the forwarder:
// nothing raw is ever sent on (fail closed).
import { createReadStream } from 'node:fs';
import { createSession, type DeidPolicy, type ElementValue } from '../deid/deidentify.ts';
import { rewritePart10, type Part10Policy } from '../deid/rewrite-part10.ts';
import { TAG } from '../dicom/tags.ts';
import { DatasetMismatchError, InstanceIdentifiersError } from './errors.ts';

/** The original identifiers of a received instance (kept in memory only, never in a path or a log). */
export interface InstanceIdentity {
  readonly sopClass: string;
  readonly sopInstance: string;
  readonly study: string;
}

const READ_CHUNK = 256 * 1024;

/** The top-level attributes the intake reads as the engine decides on them. */
const IDENTIFIERS = new Map<number, keyof InstanceIdentity>([
  [TAG.SOPClassUID, 'sopClass'],
  [TAG.SOPInstanceUID, 'sopInstance'],
  [TAG.StudyInstanceUID, 'study'],
]);

function firstText(value: ElementValue): string {
  const values = typeof value === 'function' ? value() : value;
  const first = values?.[0];
  return typeof first === 'string' ? first.trim() : '';
}

/**
 * Checks one received instance against its C-STORE request (`affected`: the request's Affected SOP Class
 * and Instance UIDs) and the policy; returns its identifiers. One pass: the engine rewrites the whole
 * instance into nothing (a fresh session, so no pseudonym is kept), and the identifiers are read as it
 * decides on them. Throws the engine's DicomError / DeidError (PixelWithheldError for an instance the pixel
 * policy withholds), InstanceIdentifiersError or DatasetMismatchError.
 */
export async function checkInstance(
  file: string,
  affected: { readonly sopClass: string; readonly sopInstance: string },
  policy: DeidPolicy,
  maxHeaderBytes: number,
): Promise<InstanceIdentity> {
  const session = createSession(policy, { fresh: true });
  const identity = { sopClass: '', sopInstance: '', study: '' };
  const observed: Part10Policy = {
    beginDataset: (patientId, verdict, sopClass) => session.beginDataset(patientId, verdict, sopClass),
    // The pixel policy decides here as it will when forwarded: a withheld instance (PixelWithheldError) is
    // refused now (0124), and a redacted one is decoded and blanked once, so one that cannot be is refused too.
    pixelVerdict: (read) => session.pixelVerdict(read),
    attributesToAdd: () => session.attributesToAdd(),
    decide(ref, value) {
      const key = ref.path.length === 0 ? IDENTIFIERS.get(ref.tag) : undefined;
      if (key !== undefined) identity[key] = firstText(value);
      return session.decide(ref, value);
    },
  };
  const { output } = rewritePart10(createReadStream(file, { highWaterMark: READ_CHUNK }), observed, { maxHeaderBytes });
  for await (const _ of output) void _;
  for (const [keyword, value] of [['SOPClassUID', identity.sopClass], ['SOPInstanceUID', identity.sopInstance], ['StudyInstanceUID', identity.study]] as const) {
    if (!value) throw new InstanceIdentifiersError(keyword);
  }
  if (identity.sopClass !== affected.sopClass) throw new DatasetMismatchError('SOPClassUID');
  if (identity.sopInstance !== affected.sopInstance) throw new DatasetMismatchError('SOPInstanceUID');
  return identity;
}

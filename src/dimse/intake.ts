// The check an instance passes before its C-STORE success response (PS3.7 9.1.1): it names the SOP Class
// and Instance its request named, it has the identifiers the spool groups by, and the de-identification
// engine rewrites it whole (output discarded), its pixel policy included. An instance the engine refuses,
// or the pixel policy withholds, is refused now, with a failure status, and never reaches the forwarder:
// nothing raw is ever sent on (fail closed).
//
// Issue 18: under an uploader profile with `pixels.ocr`, an instance the pixel policy withholds but OCR may
// redact is read by OCR here, before the response (dicomweb/upload-ocr.ts spooledTextRegions, on the
// received file), and checked again with the regions found: C-STORE success means OCR found its regions
// and the engine can blank them. If OCR fails it is refused as withheld (0x0124), naming the failure; if the
// detector was only full or out of time, for lack of resources (A700: the device sends it again). The
// regions travel with the instance to the forwarder (Forwarder.accept), which blanks them without OCR.
import { createReadStream } from 'node:fs';
import { createSession, type DeidPolicy, type ElementValue } from '../deid/deidentify.ts';
import { PixelWithheldError } from '../deid/errors.ts';
import { ocrMayRedact, withTextRegions, type AttributeReader, type PixelVerdict, type Rectangle } from '../deid/pixel-policy.ts';
import { rewritePart10, type Part10Policy } from '../deid/rewrite-part10.ts';
import { TAG } from '../dicom/tags.ts';
import { ocrFailed, spooledTextRegions, type UploadOcr } from '../dicomweb/upload-ocr.ts';
import { DatasetMismatchError, InstanceIdentifiersError } from './errors.ts';

/** The original identifiers of a received instance (kept in memory only, never in a path or a log). */
export interface InstanceIdentity {
  readonly sopClass: string;
  readonly sopInstance: string;
  readonly study: string;
}

const READ_CHUNK = 256 * 1024;

/** A checked instance: its identifiers and, when OCR redacts it, the text regions OCR found. */
export interface CheckedInstance extends InstanceIdentity {
  readonly textRegions?: readonly Rectangle[];
}

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
 * and Instance UIDs) and the policy; returns its identifiers. With `ocr` (the uploader profile has
 * `pixels.ocr`), an instance OCR may redact is read by OCR and checked again with its regions (see the head
 * of this file). Throws the engine's DicomError / DeidError (PixelWithheldError for an instance the pixel
 * policy withholds, or whose OCR failed), InstanceIdentifiersError or DatasetMismatchError.
 */
export async function checkInstance(
  file: string,
  affected: { readonly sopClass: string; readonly sopInstance: string },
  policy: DeidPolicy,
  maxHeaderBytes: number,
  ocr?: UploadOcr,
): Promise<CheckedInstance> {
  let decided: { verdict: PixelVerdict; read: AttributeReader } | undefined;
  try {
    return await checkOnce(file, affected, policy, maxHeaderBytes, (verdict, read) => {
      decided = { verdict, read };
      return verdict;
    });
  } catch (error) {
    if (!(error instanceof PixelWithheldError) || ocr === undefined || decided === undefined || !ocrMayRedact(decided.verdict)) throw error;
    const candidate = { verdict: decided.verdict as Extract<PixelVerdict, { action: 'withhold' }>, read: decided.read, head: undefined };
    let regions: readonly Rectangle[];
    try {
      regions = await spooledTextRegions(file, candidate.read, ocr, { maxHeaderBytes });
    } catch (cause) {
      // A full or slow detector is a passing state: A700, and the device sends it again (store-status.ts).
      throw ocrFailed(candidate, cause, ocr);
    }
    const identity = await checkOnce(file, affected, policy, maxHeaderBytes, (verdict) => withTextRegions(verdict, regions));
    return { ...identity, textRegions: regions };
  }
}

/**
 * One pass of the engine over the received file: it rewrites the whole instance into nothing (a fresh
 * session, so no pseudonym is kept), and the identifiers are read as it decides on them. `verdict`: what
 * becomes of the policy's pixel verdict (seen, or changed by OCR's regions).
 */
async function checkOnce(
  file: string,
  affected: { readonly sopClass: string; readonly sopInstance: string },
  policy: DeidPolicy,
  maxHeaderBytes: number,
  verdict: (verdict: PixelVerdict, read: AttributeReader) => PixelVerdict,
): Promise<InstanceIdentity> {
  const session = createSession(policy, { fresh: true });
  const identity = { sopClass: '', sopInstance: '', study: '' };
  const observed: Part10Policy = {
    beginDataset: (patientId, verdict, sopClass) => session.beginDataset(patientId, verdict, sopClass),
    // The pixel policy decides here as it will when forwarded: a withheld instance (PixelWithheldError) is
    // refused now (0124), and a redacted one is decoded and blanked once, so one that cannot be is refused too.
    pixelVerdict: (read) => verdict(session.pixelVerdict(read), read),
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

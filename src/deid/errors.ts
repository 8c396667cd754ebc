// Errors of the de-identification policy layer. Callers branch on `code`, never on the message;
// messages name tags and codes, never values or patient data (STYLE habit 4).
import type { WithholdReason } from './pixel-verdict.ts';

export type DeidErrorCode = 'DEID_BAD_POLICY' | 'DEID_UNSUPPORTED_VALUE' | 'DEID_NO_DATASET' | 'DEID_PIXELS_WITHHELD';

export class DeidError extends Error {
  readonly code: DeidErrorCode;
  constructor(code: DeidErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DeidError';
    this.code = code;
  }
}

/** The policy options are invalid; `issues` lists every failure at once, each naming its key. */
export class DeidPolicyError extends DeidError {
  readonly issues: readonly string[];
  constructor(issues: readonly string[]) {
    super('DEID_BAD_POLICY', `invalid de-identification policy: ${issues.join('; ')}`);
    this.name = 'DeidPolicyError';
    this.issues = Object.freeze([...issues]);
  }
}

/** A value has a form the policy cannot de-identify safely (e.g. a non-string UID); names the tag only. */
export class DeidUnsupportedValueError extends DeidError {
  readonly tag: string;
  constructor(tag: string, reason: string) {
    super('DEID_UNSUPPORTED_VALUE', `cannot de-identify ${tag}: ${reason}`);
    this.name = 'DeidUnsupportedValueError';
    this.tag = tag;
  }
}

/** `decide` was called before `beginDataset`: the date shift needs the patient first. */
export class DeidStateError extends DeidError {
  constructor(message: string) {
    super('DEID_NO_DATASET', message);
    this.name = 'DeidStateError';
  }
}

/**
 * The pixel policy withholds this instance (pixel-policy.ts): it is not sent at all. Thrown before any
 * byte of the instance is written; a multipart response or STOW body skips (or refuses) just that part.
 * `detail` names the criterion or filter, never a value.
 */
export class PixelWithheldError extends DeidError {
  readonly reason: WithholdReason;
  readonly detail: string;
  constructor(reason: WithholdReason, detail: string) {
    super('DEID_PIXELS_WITHHELD', `instance withheld by the pixel policy (${reason}: ${detail})`);
    this.name = 'PixelWithheldError';
    this.reason = reason;
    this.detail = detail;
  }
}

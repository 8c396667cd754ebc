// The pixel verdict's vocabulary (issue 16), apart from the policy that gives it (pixel-policy.ts), so
// that the conditions, the CTP parser and the errors can name it without importing the policy.

/** An attribute's DICOM JSON "Value" array (PS3.18 F.2), undefined when absent. Top level only. */
export type AttributeReader = (tag: number) => readonly unknown[] | undefined;

/** A region to blank in every frame, in pixels: columns x..x+width-1, rows y..y+height-1. */
export interface Rectangle {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

/**
 * Why an instance is withheld:
 * - `risky`: a risky criterion held (Burned In Annotation YES, a risky modality …) and no rule matched;
 * - `filtered`: a series filter excludes it (SR, PR, KO, Encapsulated Document by default);
 * - `unredactable`: a rule matched but its pixels cannot be redacted (a layout or encoding the gateway
 *   cannot decode and blank, e.g. video): fail closed.
 */
export type WithholdReason = 'risky' | 'filtered' | 'unredactable';

export type PixelVerdict =
  | { readonly action: 'keep' }
  | { readonly action: 'redact'; readonly rule: string; readonly rectangles: readonly Rectangle[] }
  /**
   * `detail` names the criterion or filter (e.g. `BurnedInAnnotation`, `Modality US`, `filter sr`): never an
   * identity value. `ocr` (issue 18): present and true only on a `risky` withhold that no rule covers, of a
   * layout the gateway can blank, under a policy with `ocr: true`: text regions found by OCR may replace it
   * (pixel-policy.ts `withTextRegions`); until they are found, and whenever they cannot be, it stands.
   */
  | { readonly action: 'withhold'; readonly reason: WithholdReason; readonly detail: string; readonly ocr?: true };

/** The rule name of a redaction whose rectangles OCR found (issue 18). */
export const OCR_RULE = 'ocr';

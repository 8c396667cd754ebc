// Pixel safety (PS3.15 E.3.1 Clean Pixel Data; issue 16): per instance, from header attributes only, the
// one decision whether its pixels are kept byte-identical, redacted by a rule's rectangles, or withheld.
// Pure: no I/O. The QIDO census, the Part 10 rewriter, the metadata path, STOW and the CLI all ask this
// one function, so an instance is treated the same on every route.
//
// INTERFACE FIRST (written by the integrator): the types below are shared by deid/, pixel/ and
// dicomweb/. The implementation (`compilePixelPolicy`) is owned by the policy track.

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
  /** `detail` names the criterion or filter (e.g. `BurnedInAnnotation`, `Modality US`, `filter sr`): never an identity value. */
  | { readonly action: 'withhold'; readonly reason: WithholdReason; readonly detail: string };

export const KEEP: PixelVerdict = Object.freeze({ action: 'keep' });

/** What the conformance statement lists: the criteria, filters and rules in force. */
export interface PixelPolicyDescription {
  readonly risky: readonly string[];
  readonly allowed: readonly string[];
  readonly filters: readonly string[];
  readonly rules: readonly { readonly name: string; readonly source: string; readonly match: string; readonly rectangles: readonly Rectangle[] }[];
}

export interface PixelPolicy {
  /** False when nothing can be withheld or redacted: callers skip the census and every pixel check. */
  readonly active: boolean;
  /** Every tag `verdict` reads (a QIDO census asks the PACS for these, plus the frame geometry). */
  readonly attributeTags: readonly number[];
  verdict(read: AttributeReader): PixelVerdict;
  describe(): PixelPolicyDescription;
}

/** The policy that keeps everything (no criteria, filters or rules): `active` is false. */
export const KEEP_ALL: PixelPolicy = Object.freeze({
  active: false,
  attributeTags: Object.freeze([]) as readonly number[],
  verdict: () => KEEP,
  describe: () => ({ risky: [], allowed: [], filters: [], rules: [] }),
});

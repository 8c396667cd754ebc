// The one de-identification decision, used by both representations: the streaming Part 10 rewriter
// (rewrite-part10.ts) calls `session.decide` per element; DICOM JSON (metadata, QIDO) goes through
// `deidentifyJson`, which calls the same `decide`. Values are always in DICOM JSON form (PS3.18 F.2).
import { randomBytes } from 'node:crypto';
import { DEFAULT_DATE_SHIFT_RANGE, checkDateShiftRange, patientDayOffset, shiftDateValue } from './date-shift.ts';
import type { DateShiftRange } from './date-shift.ts';
import { DeidPolicyError, DeidStateError, DeidUnsupportedValueError, PixelWithheldError } from './errors.ts';
import { IDENTITY_VRS } from './identity-safe-list.ts';
import { checkPixelPolicy } from './pixel-policy.ts';
import type { AttributeReader, PixelPolicy, PixelPolicyConfig, PixelPolicyContext, PixelVerdict } from './pixel-policy.ts';
import { CompiledProfile, checkProfileInput, dummyItemTemplate, iodOfSopClass, isStandardSequenceTag, privateCreatorLookup } from './profile.ts';
import type { ProfileOption, ProfileOptions, TagRule } from './profile.ts';
import { Pseudonymizer, identityAttribute, keyedUid, patientNameBasis, scopedSecret } from './pseudonym.ts';
import type { IdentityKind, PseudonymPair } from './pseudonym.ts';
import { cleanText, collectIdentities, jsonIdentitySource, textCleaningOf } from './text-clean.ts';
import type { IdentitySet, IdentitySource } from './text-clean.ts';
import type { JsonDataset, JsonElement, JsonValue } from '../dicom/json-model.ts';
import { elementOf, formatTag, groupOf, hexKeyTag, isPrivate, tagToHex } from '../dicom/tag.ts';
import { TAG } from '../dicom/tags.ts';
import { maxBinaryValueBytes } from '../dicom/dictionary.ts';
import { binaryValueSize } from '../dicom/vr.ts';
import { decodedPhotometricInterpretation } from '../dicom/photometric.ts';

/** DICOM JSON (PS3.18 F.2), as modelled by src/dicom/json-model.ts. */
export type DicomJsonDataset = JsonDataset;
export type DicomJsonElement = JsonElement;

// --- policy -------------------------------------------------------------------------------------

export type PseudonymMode = 'deterministic' | 'fresh';

export interface DeidPolicyOptions {
  /** Basic Profile + these options (PS3.15 E.3). All off by default. */
  readonly profile?: ProfileOptions;
  /** Per-tag overrides on top of the profile: `keep | remove | empty | replace:<value> | hash`. */
  readonly overrides?: Readonly<Record<string, string>>;
  /** HMAC key for pseudonyms and date offsets; at least 16 bytes. */
  readonly secret: string | Uint8Array;
  /**
   * The pseudonym scope (a project, the uploader): pseudonyms and offsets are keyed with
   * scopedSecret(secret, scope), so two scopes' pseudonyms of one original are unlinkable. None: the
   * secret itself (the CLI, unit tests).
   */
  readonly scope?: string;
  /** Per-patient day offset range for the Modified Dates option. Default −365..−1. */
  readonly dateShift?: DateShiftRange;
  /** Default mode of sessions made from this policy. Default 'deterministic'. */
  readonly pseudonymMode?: PseudonymMode;
  /** "Is this a standard attribute?" Default: the generated PS3.6 tag list. */
  readonly isKnownTag?: (tag: number) => boolean;
  /** Keyword -> tag, for override keys outside Table E.1-1. */
  readonly resolveKeyword?: (keyword: string) => number | undefined;
  /** The pixel policy (pixel-policy.ts): keep, redact or withhold per instance. Absent: the defaults (risky withheld). */
  readonly pixels?: PixelPolicyConfig;
  /** The text of each CTP script `pixels.ctpScripts` names (read by config/resolve.ts), or why it could not be read. */
  readonly pixelScripts?: PixelPolicyContext['scripts'];
}

const MIN_SECRET_BYTES = 16;
const secrets = new WeakMap<DeidPolicy, Uint8Array>(); // kept off the object: never logged or serialized

/** A validated, frozen policy. Make it with `createPolicy`. */
export class DeidPolicy {
  readonly profile: CompiledProfile;
  readonly options: Readonly<Record<ProfileOption, boolean>>;
  readonly dateShift: DateShiftRange;
  readonly pseudonymMode: PseudonymMode;
  /** Per instance: pixels kept, redacted by a rule, or the instance withheld (PS3.15 E.3.1; issue 16). */
  readonly pixels: PixelPolicy;

  /** @internal use createPolicy */
  constructor(profile: CompiledProfile, dateShift: DateShiftRange, pseudonymMode: PseudonymMode, secret: Uint8Array, pixels: PixelPolicy) {
    this.profile = profile;
    this.pixels = pixels;
    this.options = profile.options;
    this.dateShift = Object.freeze({ ...dateShift });
    this.pseudonymMode = pseudonymMode;
    secrets.set(this, secret);
    Object.freeze(this);
  }
}

/** Validates every option (reporting all failures at once, naming keys), compiles and freezes. */
export function createPolicy(options: DeidPolicyOptions): DeidPolicy {
  const issues: string[] = [];
  let secret: Uint8Array | undefined;
  if (typeof options.secret === 'string') secret = Buffer.from(options.secret, 'utf8');
  else if (options.secret instanceof Uint8Array) secret = Uint8Array.from(options.secret);
  if (secret === undefined) issues.push('secret: a string or bytes');
  else if (secret.length < MIN_SECRET_BYTES) issues.push(`secret: at least ${MIN_SECRET_BYTES} bytes`);
  const dateShift = options.dateShift ?? DEFAULT_DATE_SHIFT_RANGE;
  issues.push(...checkDateShiftRange(dateShift));
  const mode = options.pseudonymMode ?? 'deterministic';
  if (mode !== 'deterministic' && mode !== 'fresh') issues.push('pseudonymMode: deterministic | fresh');
  const profileInput = {
    options: options.profile ?? {},
    overrides: options.overrides ?? {},
    ...(options.isKnownTag ? { isKnownTag: options.isKnownTag } : {}),
    ...(options.resolveKeyword ? { resolveKeyword: options.resolveKeyword } : {}),
  };
  issues.push(...checkProfileInput(profileInput, 'profile.').issues);
  if (options.scope !== undefined && (typeof options.scope !== 'string' || options.scope === '')) issues.push('scope: a non-empty string');
  const pixels = checkPixelPolicy(options.pixels, {
    cleanStructuredContent: options.profile?.cleanStructuredContent === true,
    ...(options.pixelScripts ? { scripts: options.pixelScripts } : {}),
  });
  issues.push(...pixels.issues.map((issue) => `profile.${issue}`));
  if (issues.length > 0 || secret === undefined || pixels.policy === undefined) throw new DeidPolicyError(issues);
  const key = options.scope === undefined ? secret : scopedSecret(secret, options.scope);
  return new DeidPolicy(new CompiledProfile(profileInput), dateShift, mode, key, pixels.policy);
}

// --- decisions ----------------------------------------------------------------------------------

/** One element as the caller sees it. `path`: tags of the enclosing sequences, outermost first. */
export interface ElementRef {
  readonly tag: number;
  readonly vr: string;
  /** The creator of the private block the element lies in (private elements (gggg,1000-FFFF) only). */
  readonly privateCreator?: string;
  readonly path: readonly number[];
}

/** `replace` with `[]` means present with zero length (Z); for SQ, zero items. */
export type Decision =
  | { readonly op: 'keep' }
  | { readonly op: 'remove' }
  | { readonly op: 'recurse' }
  | { readonly op: 'replace'; readonly value: unknown[] };

/**
 * An element's DICOM JSON "Value" array, or a function that decodes it on demand: most decisions
 * (X, K) do not look at the value, so the Part 10 rewriter passes a thunk and decodes only when asked.
 */
export type ElementValue = unknown[] | undefined | (() => unknown[] | undefined);
const valuesOf = (value: ElementValue): unknown[] | undefined => (typeof value === 'function' ? value() : value);

const KEEP: Decision = Object.freeze({ op: 'keep' });
const REMOVE: Decision = Object.freeze({ op: 'remove' });
const RECURSE: Decision = Object.freeze({ op: 'recurse' });
const replace = (value: unknown[]): Decision => ({ op: 'replace', value });

const BINARY_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);
const NUMBER_VRS = new Set(['DS', 'IS', 'US', 'SS', 'UL', 'SL', 'FL', 'FD', 'SV', 'UV']);
/** PS3.5 6.2 maximum lengths, for `hash` overrides on text. */
const TEXT_MAX = new Map([['AE', 16], ['CS', 16], ['SH', 16], ['LO', 64], ['LT', 64], ['ST', 64], ['UC', 64], ['UT', 64], ['PN', 64]]);

/**
 * D (and C without a cleaning implementation): "a non-zero length value that may be a dummy value and
 * consistent with the VR" (Table E.1-1a). SQ and binary VRs get zero length instead (see `dummy`).
 */
const DUMMY_BY_VR: Readonly<Record<string, string | number>> = {
  AE: 'ANONYMIZED', AS: '000Y', AT: '00000000', CS: 'ANONYMIZED', DA: '19000101', DT: '19000101000000',
  LO: 'ANONYMIZED', LT: 'ANONYMIZED', SH: 'ANONYMIZED', ST: 'ANONYMIZED', TM: '000000', UC: 'ANONYMIZED',
  UR: 'ANONYMIZED', UT: 'ANONYMIZED', DS: 0, IS: 0, US: 0, SS: 0, UL: 0, SL: 0, FL: 0, FD: 0, SV: 0, UV: 0,
};
const PATIENT_ID_KEY = tagToHex(TAG.PatientID);
const SOP_CLASS_KEY = tagToHex(TAG.SOPClassUID);
const BURNED_IN_ANNOTATION = 0x00280301;
const PHOTOMETRIC_INTERPRETATION = 0x00280004;

// PS3.16 CID 7050 De-identification Method (scheme DCM), in code order.
// Clean Pixel Data (113101) is per dataset: only when a redaction rule cleaned its pixels.
const CID_7050: readonly (readonly [ProfileOption | 'basic' | 'cleanPixelData', string, string])[] = [
  ['basic', '113100', 'Basic Application Confidentiality Profile'],
  ['cleanPixelData', '113101', 'Clean Pixel Data Option'],
  ['cleanGraphics', '113103', 'Clean Graphics Option'],
  ['cleanStructuredContent', '113104', 'Clean Structured Content Option'],
  ['cleanDescriptors', '113105', 'Clean Descriptors Option'],
  ['retainLongitudinalTemporalFullDates', '113106', 'Retain Longitudinal Temporal Information Full Dates Option'],
  ['retainLongitudinalTemporalModifiedDates', '113107', 'Retain Longitudinal Temporal Information Modified Dates Option'],
  ['retainPatientCharacteristics', '113108', 'Retain Patient Characteristics Option'],
  ['retainDeviceIdentity', '113109', 'Retain Device Identity Option'],
  ['retainUIDs', '113110', 'Retain UIDs Option'],
  ['retainSafePrivate', '113111', 'Retain Safe Private Option'],
  ['retainInstitutionIdentity', '113112', 'Retain Institution Identity Option'],
];
const METHOD_TEXT = 'deid-gateway DICOM PS3.15 2026d Annex E';

export interface SessionOptions {
  /** "Fresh per call": a random salt makes pseudonyms consistent within this session only. */
  readonly fresh?: boolean;
  /** The fresh-mode salt; random (16 bytes) when omitted. For tests. */
  readonly salt?: Uint8Array;
}

/** Per call (one response, one upload): holds the pseudonym pairs made and the current patient. */
export class DeidSession {
  readonly policy: DeidPolicy;
  readonly fresh: boolean;
  readonly #secret: Uint8Array;
  readonly #salt: Uint8Array | undefined;
  readonly #pseudonyms: Pseudonymizer;
  readonly #offsets = new Map<string, number>();
  #patientId: string | undefined;
  /** The current dataset's IOD (profile.ts iodOfSopClass); undefined when its SOP Class is not known. */
  #iod: number | undefined;
  /** The UIDs of dummy items, by place (#dummyItem): one HMAC each per session. */
  readonly #dummyUids = new Map<string, string>();
  /** The current dataset's pixels are redacted by a rule (beginDataset's verdict). */
  #redacted = false;
  /** The current dataset's identity values (setIdentities), read once when its first text is cleaned. */
  #identitySource: IdentitySource | undefined;
  #identities: IdentitySet | undefined;

  /** @internal use createSession */
  constructor(policy: DeidPolicy, options: SessionOptions) {
    const secret = secrets.get(policy);
    if (secret === undefined) throw new DeidPolicyError(['policy: not made by createPolicy']);
    this.policy = policy;
    this.fresh = options.fresh ?? policy.pseudonymMode === 'fresh';
    this.#secret = secret;
    this.#salt = this.fresh ? Uint8Array.from(options.salt ?? randomBytes(16)) : undefined;
    this.#pseudonyms = new Pseudonymizer(secret, this.#salt);
  }

  /**
   * Starts a top-level dataset. The date shift (E.3.6) and the PatientName pseudonym (pseudonym.ts
   * patientNameBasis) are keyed on the original PatientID, so the caller passes it before any element
   * (the rewriter parses the header first; PatientName (0010,0010) comes before PatientID (0010,0020)).
   * `verdict` is the dataset's pixel verdict (pixelVerdict): `redact` makes this dataset's decisions
   * say so (see #redactedHeader and attributesToAdd); `keep` or none changes nothing; `withhold` throws
   * PixelWithheldError, so a withheld instance is never begun (fail closed). `sopClassUid`, the dataset's
   * SOP Class UID (0008,0016), chooses compound actions by the IOD (PS3.15 E.1.1, profile.ts ruleInIod);
   * absent or unknown, each compound code takes the choice valid whatever the Type.
   */
  beginDataset(originalPatientId: string | undefined, verdict?: PixelVerdict, sopClassUid?: string): void {
    if (verdict?.action === 'withhold') throw new PixelWithheldError(verdict.reason, verdict.detail);
    this.#patientId = (originalPatientId ?? '').trim();
    this.#iod = iodOfSopClass(sopClassUid);
    this.#redacted = verdict?.action === 'redact';
    this.#identitySource = undefined; // until setIdentities: the Clean options' text gets the dummy
    this.#identities = undefined;
  }

  /**
   * The identity values of the whole dataset just begun (text-clean.ts IdentitySource), read before any
   * of its text is decided, for the Clean options' text cleaning. Without them that text is replaced by
   * the VR's dummy (fail closed: a caller holding only part of the dataset, e.g. a QIDO result, cannot
   * know every identity its text may hold).
   */
  setIdentities(source: IdentitySource): void {
    if (this.#patientId === undefined) throw new DeidStateError('setIdentities called before beginDataset');
    this.#identitySource = source;
    this.#identities = undefined;
  }

  /** The policy's pixel verdict for one instance, from its top-level header (pixel-policy.ts). */
  pixelVerdict(read: AttributeReader): PixelVerdict {
    return this.policy.pixels.verdict(read);
  }

  /**
   * What to do with one element, at any depth (PS3.15 E.1.1: the actions apply inside every Sequence
   * Item too). `value` is its DICOM JSON "Value" array; undefined when not read (binary), in which
   * case any action that needs the value gives zero length, never the original.
   *   1. Private (odd group): Table E.1-1 private row X, or E.3.10 safe-private matching.
   *   2. The tag's rule: config override, else an option column in effect (E.1.1: an option overrides
   *      the Basic Profile), else the Basic Profile, else the supplements, else, for a standard tag the
   *      table does not list, its VR (Table E.1-1 Note 1, profile.ts outsideTableRule: X when the VR
   *      can carry identity unless on the safe list, K otherwise) or, for a tag in no dictionary, X.
   *      The VR the element is encoded with counts as well as PS3.6's.
   *   3. Compound codes resolved by the attribute's Type in the dataset's IOD at this path, D on a sequence
   *      and X / Z by VR outside the table likewise (profile.ts ruleInIod, resolveCompoundCode).
   *   4. The action applied by VR: X remove; K keep (SQ: recurse); Z zero length (identity attributes:
   *      keyed pseudonym); D dummy of the VR (identity: pseudonym; UI: keyed UID; SQ/binary: zero
   *      length); U keyed UID (SQ: recurse); C see #clean.
   * The rewriter must pass the dictionary VR for an element the file encodes as UN (PS3.5 6.2.2).
   */
  decide(ref: ElementRef, value: ElementValue): Decision {
    if (this.#patientId === undefined) throw new DeidStateError('decide called before beginDataset');
    if (isPrivate(ref.tag)) return this.#decidePrivate(ref, value);
    const profile = this.policy.profile;
    let rule = profile.ruleFor(ref.tag);
    // Table E.1-1 Note 1: an attribute outside the table kept by its PS3.6 VR but encoded with a VR that
    // can carry identity (a broken or hostile encoder) is judged by that VR too. Table rows and
    // overrides carry no such check: the table and the config name the attribute itself.
    if (rule.action === 'K' && rule.source !== 'override' && rule.tableCode === undefined && IDENTITY_VRS.has(ref.vr)) {
      rule = profile.outsideTableRule(ref.tag, ref.vr);
    }
    rule = profile.ruleInIod(rule, ref, this.#iod);
    // C on text under a Clean option (and the text objects inside a sequence one cleans): text-clean.ts.
    const decision = textCleaningOf(rule, ref, profile.options) !== undefined ? this.#cleanText(ref, value) : this.#apply(rule, ref, value);
    if (this.#redacted && ref.path.length === 0) {
      const redacted = this.#redactedHeader(ref, value, decision);
      if (redacted !== undefined) return redacted;
    }
    // A standard sequence that is not parsed as SQ cannot be kept: its items would skip the profile.
    // UN is parsed as SQ by the rewriter (PS3.5 6.2.2); any other VR (OB, OW, UT … written by a broken
    // encoder) hides items as bytes, so it is removed (fail closed).
    if (ref.vr !== 'SQ' && decision.op === 'keep' && isStandardSequenceTag(ref.tag)) return REMOVE;
    return decision;
  }

  /**
   * PS3.15 E.1.1 (after the actions): 1. Patient Identity Removed (0012,0062) = YES; 2. De-identification
   * Method (0012,0063); 3. De-identification Method Code Sequence (0012,0064) with the CID 7050 codes
   * of the profile and options in effect; 4. Longitudinal Temporal Information Modified (0028,0303)
   * (PS3.3 C.7.6.1). The caller sets them on the top-level dataset, replacing any present.
   */
  attributesToAdd(): Record<string, { vr: string; Value?: JsonValue[] }> {
    const o = this.policy.options;
    const codes = CID_7050.filter(([option]) => option === 'basic' || (option === 'cleanPixelData' ? this.#redacted : o[option]));
    const temporal = o.retainLongitudinalTemporalModifiedDates ? 'MODIFIED' : o.retainLongitudinalTemporalFullDates ? 'UNMODIFIED' : 'REMOVED';
    return {
      // PS3.3 C.7.6.1.1.3: the rule blanked the burned-in text; set even when the original had none.
      ...(this.#redacted ? { [tagToHex(BURNED_IN_ANNOTATION)]: { vr: 'CS', Value: ['NO'] } } : {}),
      [tagToHex(TAG.PatientIdentityRemoved)]: { vr: 'CS', Value: ['YES'] },
      [tagToHex(TAG.DeidentificationMethod)]: { vr: 'LO', Value: [METHOD_TEXT] },
      [tagToHex(TAG.DeidentificationMethodCodeSequence)]: {
        vr: 'SQ',
        Value: codes.map(([, value, meaning]) => ({
          [tagToHex(TAG.CodeValue)]: { vr: 'SH', Value: [value] },
          [tagToHex(TAG.CodingSchemeDesignator)]: { vr: 'SH', Value: ['DCM'] },
          [tagToHex(TAG.CodeMeaning)]: { vr: 'LO', Value: [meaning] },
        })),
      },
      [tagToHex(TAG.LongitudinalTemporalInformationModified)]: { vr: 'CS', Value: [temporal] },
    };
  }

  /** Every pseudonym made in this session, for the caller to persist. */
  pairs(): readonly PseudonymPair[] {
    return this.#pseudonyms.pairs();
  }

  /** The number of pairs made so far (cheap: checked per chunk on the streaming paths). */
  get pairCount(): number {
    return this.#pseudonyms.pairCount;
  }

  /** The pairs made after the first `index`, in order. */
  pairsSince(index: number): readonly PseudonymPair[] {
    return this.#pseudonyms.pairsSince(index);
  }

  /**
   * Forgets the pairs made after the first `index`: a dataset de-identified only to be matched and
   * then filtered out leaves nothing to save (its pseudonyms were never shown).
   */
  discardPairsSince(index: number): void {
    this.#pseudonyms.discardSince(index);
  }

  /**
   * A top-level header element of a dataset whose pixels a rule redacts (Clean Pixel Data, PS3.15
   * E.3.1): Burned In Annotation becomes NO, and Photometric Interpretation names the colour space the
   * redacted frames are written in (dicom/photometric.ts), replaced only when that differs. An element
   * the profile removes stays removed. Undefined: the profile's decision stands.
   */
  #redactedHeader(ref: ElementRef, value: ElementValue, decision: Decision): Decision | undefined {
    if (decision.op === 'remove') return undefined;
    if (ref.tag === BURNED_IN_ANNOTATION) return replace(['NO']);
    if (ref.tag !== PHOTOMETRIC_INTERPRETATION || decision.op !== 'keep') return undefined;
    const stored = valuesOf(value)?.[0];
    if (typeof stored !== 'string') return undefined;
    const decoded = decodedPhotometricInterpretation(stored);
    return decoded === stored.trim() ? undefined : replace([decoded]);
  }

  // PS3.15 E.3.10 Retain Safe Private Option; without it the Table E.1-1 private row is X.
  #decidePrivate(ref: ElementRef, value: ElementValue): Decision {
    const profile = this.policy.profile;
    if (!profile.options.retainSafePrivate) return REMOVE;
    const group = groupOf(ref.tag);
    const element = elementOf(ref.tag);
    // PS3.5 7.8.1: (gggg,0010-00FF) are Private Creator elements; each reserves the block
    // (gggg,xx00-xxFF) where xx is its element number. Keep a creator only if Table E.3.10-1 lists
    // attributes under it in this group, so that retained attributes keep their creator.
    if (element >= 0x0010 && element <= 0x00ff) {
      const first = valuesOf(value)?.[0];
      const creator = typeof first === 'string' ? first : undefined;
      return creator !== undefined && profile.isSafePrivateCreator(group, creator) ? KEEP : REMOVE;
    }
    if (element < 0x1000 || ref.privateCreator === undefined) return REMOVE;
    // Matched by creator + element offset within the block (the element's low byte).
    const safeVr = profile.safePrivateVr(group, ref.privateCreator, element & 0xff);
    if (safeVr === undefined) return REMOVE;
    if (ref.vr === 'UN' && (safeVr === 'SQ' || safeVr === 'UI')) return REMOVE; // cannot clean unparsed
    if (ref.vr === 'SQ') return RECURSE; // E.3.10: private sequences are cleaned item by item
    if (ref.vr === 'UI' && !profile.options.retainUIDs) return this.#uids(ref, value); // keep links consistent
    return KEEP;
  }

  #apply(rule: TagRule, ref: ElementRef, value: ElementValue): Decision {
    const { vr } = ref;
    switch (rule.action) {
      case 'X':
        return REMOVE;
      case 'K':
        // K on a sequence: "cleaned", i.e. the profile applies to its items (E.1.1). Attributes outside
        // Table E.1-1 that can carry identity never get here as K (see decide, step 2).
        if (vr === 'SQ') return RECURSE;
        return KEEP;
      case 'Z': {
        // Table Z on PatientName / AccessionNumber: "or a non-zero length value that may be a dummy
        // value" (E.1-1a), here a keyed pseudonym so that studies can be listed and linked. An
        // `empty` override means empty.
        const kind = rule.source === 'override' ? undefined : identityAttribute(ref.tag)?.kind;
        return kind !== undefined ? this.#identity(kind, ref, value) : replace([]);
      }
      case 'D': {
        const kind = identityAttribute(ref.tag)?.kind;
        return kind !== undefined ? this.#identity(kind, ref, value) : this.#dummy(ref, value, 'dummyItem' in rule ? rule.dummyItem : undefined);
      }
      case 'U':
        if (vr === 'SQ') return RECURSE; // X/Z/U*: keep the items, replace the UIDs inside
        if (vr === 'UI') return this.#uids(ref, value);
        return this.#dummy(ref, value);
      case 'C':
        return this.#clean(rule, ref, value);
      case 'replace':
        return replace(this.#replacement(rule.value, ref));
      case 'hash':
        return this.#hash(ref, value);
    }
  }

  /**
   * C: "replace with values of similar meaning known not to contain identifying information".
   * 1. Modified Dates: DA/DT shift by the patient's offset (E.3.6); TM unchanged; binary timestamps
   *    (CertifiedTimestamp, FrameOriginTimestamp) cannot be shifted and are removed;
   *    TimezoneOffsetFromUTC becomes +0000.
   * 2. A sequence is cleaned by applying the profile to its items (E.1.1).
   * 3. Binary values (Overlay Data, Maker Note, …) and curves (50xx) cannot be cleaned: removed.
   * 4. Text under Clean Descriptors, Clean Structured Content or Clean Graphics does not get here: decide
   *    sends it to #cleanText (text-clean.ts textCleaningOf). Anything else (CS, PN, AE …) has no
   *    cleaning implementation here: it is replaced by the VR's dummy value.
   */
  #clean(rule: TagRule, ref: ElementRef, value: ElementValue): Decision {
    const { vr } = ref;
    if (rule.source === 'retainLongitudinalTemporalModifiedDates') {
      if (vr === 'DA' || vr === 'DT') return this.#shift(ref, value);
      if (vr === 'TM') return KEEP;
      if (ref.tag === TAG.TimezoneOffsetFromUTC) return replace(['+0000']);
    }
    if (vr === 'SQ') return RECURSE;
    if (BINARY_VRS.has(vr) || (groupOf(ref.tag) & 0xff00) === 0x5000) return REMOVE;
    return this.#dummy(ref, value);
  }

  /**
   * D: a dummy of the VR. SQ: the dummy item of `item` (profile.ts ruleInIod), else zero items; binary:
   * zero length (no bytes are invented).
   */
  #dummy(ref: ElementRef, value: ElementValue, item?: number): Decision {
    const { vr } = ref;
    if (vr === 'SQ' && item !== undefined) return replace([this.#dummyItem(item, [...ref.path, ref.tag].map(tagToHex).join('>'))]);
    if (vr === 'UI') return this.#uids(ref, value);
    if (vr === 'PN') return replace([{ Alphabetic: 'ANONYMIZED' }]);
    const dummy = DUMMY_BY_VR[vr];
    return replace(dummy === undefined ? [] : [dummy]);
  }

  /**
   * PS3.15 E.1.1 D on a sequence: one item with the attributes its macro requires (profile.ts
   * dummyItemTemplate), each a dummy of its VR, an enumerated value where the IOD checks one, or present
   * and empty (Type 2). Nothing of the original items is used. UIDs are keyed on the attribute's place
   * (`where`), so all dummy references of a scope are one UID; they stand for no original, so no pair is
   * made for them.
   */
  #dummyItem(index: number, where: string): JsonDataset {
    const item: JsonDataset = {};
    for (const [tag, vr, count, fixed, nested] of dummyItemTemplate(index)) {
      const at = `${where}>${tag}`;
      if (count === 0) item[tag] = { vr };
      else if (vr === 'SQ') item[tag] = { vr, Value: [this.#dummyItem(nested ?? -1, at)] };
      else {
        const one = vr === 'UI' ? this.#dummyUid(at) : vr === 'PN' ? { Alphabetic: 'ANONYMIZED' } : fixed !== '' ? (NUMBER_VRS.has(vr) ? Number(fixed) : fixed) : DUMMY_BY_VR[vr];
        item[tag] = { vr, Value: Array<JsonValue>(count).fill(one as JsonValue) };
      }
    }
    return item;
  }

  /**
   * C on text (PS3.15 E.3.3, E.3.5, E.3.11): the text kept, the identity values of the dataset and the
   * patterns that identify removed, dates shifted under Modified Dates (text-clean.ts cleanText). Without
   * the dataset's identity values (setIdentities), or without the value itself: the VR's dummy.
   */
  #cleanText(ref: ElementRef, lazy: ElementValue): Decision {
    const identities = this.#identitySet();
    const value = identities === undefined ? undefined : valuesOf(lazy);
    if (identities === undefined || value === undefined) return this.#dummy(ref, lazy);
    const shiftDays = this.policy.options.retainLongitudinalTemporalModifiedDates ? this.#dayOffset() : undefined;
    return replace(value.map((v) => {
      if (v === null) return null;
      if (typeof v !== 'string') throw this.#unsupported(ref, 'text value is not a string');
      return cleanText(v, identities, shiftDays === undefined ? { vr: ref.vr } : { vr: ref.vr, shiftDays });
    }));
  }

  #identitySet(): IdentitySet | undefined {
    if (this.#identities === undefined && this.#identitySource !== undefined) {
      const profile = this.policy.profile;
      // Under Modified Dates a date in text is shifted, unless the profile removes that date (PS3.15 E.3.6).
      const fixedDate = (tag: number): boolean => {
        const rule = profile.ruleFor(tag);
        return !(rule.action === 'C' && rule.source === 'retainLongitudinalTemporalModifiedDates');
      };
      this.#identities = collectIdentities(this.#identitySource, this.policy.options.retainLongitudinalTemporalModifiedDates ? { fixedDate } : {});
    }
    return this.#identities;
  }

  #dummyUid(at: string): string {
    let uid = this.#dummyUids.get(at);
    if (uid === undefined) {
      uid = keyedUid(this.#secret, `dummy ${at}`, this.#salt);
      this.#dummyUids.set(at, uid);
    }
    return uid;
  }

  #uids(ref: ElementRef, lazy: ElementValue): Decision {
    const value = valuesOf(lazy);
    if (value === undefined) return replace([]);
    return replace(value.map((v) => {
      if (v === null) return null;
      if (typeof v !== 'string') throw this.#unsupported(ref, 'UID value is not a string');
      const uid = v.replace(/[\0 ]+$/, '').trim();
      return uid === '' ? v : this.#pseudonyms.uid(uid);
    }));
  }

  /**
   * Z or D on an identity attribute (pseudonym.ts IDENTITY_ATTRIBUTES): each non-empty value becomes its
   * keyed code; an empty one stays empty. PatientName's code is keyed on the patient, not on the name's
   * spelling: on the dataset's original Patient ID at the top level, else on the normalised name
   * (pseudonym.ts patientNameBasis), so QIDO, metadata and Part 10 show one name pseudonym.
   */
  #identity(kind: IdentityKind, ref: ElementRef, lazy: ElementValue): Decision {
    const value = valuesOf(lazy);
    if (value === undefined) return replace([]);
    const p = this.#pseudonyms;
    return replace(value.map((v) => {
      if (v === null) return null;
      if (kind === 'patientName') {
        const name = personName(v);
        if (name === undefined) throw this.#unsupported(ref, 'PN value is neither a PN object nor a string');
        if (name === '') return v;
        return { Alphabetic: p.identity(kind, patientNameBasis(ref.path.length === 0 ? this.#patientId : undefined, name)) };
      }
      if (typeof v !== 'string') throw this.#unsupported(ref, 'value is not a string');
      const original = v.trim();
      return original === '' ? v : p.identity(kind, original);
    }));
  }

  #hash(ref: ElementRef, lazy: ElementValue): Decision {
    const kind = identityAttribute(ref.tag)?.kind;
    if (kind !== undefined) return this.#identity(kind, ref, lazy);
    if (ref.vr === 'UI') return this.#uids(ref, lazy);
    const max = TEXT_MAX.get(ref.vr);
    if (max === undefined) return REMOVE; // a hash of a number, date, binary or sequence is not a valid value
    const value = valuesOf(lazy);
    if (value === undefined) return replace([]);
    return replace(value.map((v) => {
      if (v === null) return null;
      const original = ref.vr === 'PN' ? personName(v) : typeof v === 'string' ? v.trim() : undefined;
      if (original === undefined) throw this.#unsupported(ref, 'value is not text');
      if (original === '') return v;
      const code = this.#pseudonyms.value(original, max);
      return ref.vr === 'PN' ? { Alphabetic: code } : code;
    }));
  }

  #replacement(text: string, ref: ElementRef): unknown[] {
    const { vr } = ref;
    if (text === '' || vr === 'SQ' || BINARY_VRS.has(vr)) return [];
    if (vr === 'PN') return [{ Alphabetic: text }];
    if (NUMBER_VRS.has(vr)) {
      const n = Number(text);
      if (!Number.isFinite(n)) throw this.#unsupported(ref, 'replacement is not a number');
      return [n];
    }
    return [text];
  }

  // PS3.15 E.3.6: all dates of the patient move by one keyed offset; an unreadable value is emptied.
  #shift(ref: ElementRef, lazy: ElementValue): Decision {
    const value = valuesOf(lazy);
    if (value === undefined) return replace([]);
    const vr = ref.vr === 'DT' ? 'DT' : 'DA';
    const days = this.#dayOffset();
    return replace(value.map((v) => {
      if (v === null) return null;
      if (typeof v !== 'string') throw this.#unsupported(ref, 'date value is not a string');
      return shiftDateValue(v, vr, days) ?? null;
    }));
  }

  #dayOffset(): number {
    const patientId = this.#patientId ?? '';
    let days = this.#offsets.get(patientId);
    if (days === undefined) {
      days = patientDayOffset(this.#secret, patientId, this.policy.dateShift, this.#salt);
      this.#offsets.set(patientId, days);
    }
    return days;
  }

  #unsupported(ref: ElementRef, reason: string): DeidUnsupportedValueError {
    return new DeidUnsupportedValueError([...ref.path, ref.tag].map(formatTag).join('>'), reason);
  }
}

export function createSession(policy: DeidPolicy, options: SessionOptions = {}): DeidSession {
  return new DeidSession(policy, options);
}

const PN_GROUPS = new Set(['Alphabetic', 'Ideographic', 'Phonetic']);

/** The Part 10 form of a PN value ("Alphabetic=Ideographic=Phonetic"), each group trimmed. */
function personName(v: unknown): string | undefined {
  if (typeof v === 'string') return v.trim();
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const pn = v as Record<string, unknown>;
  // PS3.18 F.2.2: a PN value has only these three string groups. Anything else (an item under a PN
  // key, found by test/unit/fuzz) is not a name and must not be passed on as if it were empty.
  if (Object.entries(pn).some(([k, g]) => !PN_GROUPS.has(k) || (g !== undefined && typeof g !== 'string'))) return undefined;
  const groups = [pn['Alphabetic'], pn['Ideographic'], pn['Phonetic']].map((g) => (typeof g === 'string' ? g.trim() : ''));
  return groups.join('=').replace(/=+$/, '');
}

// --- DICOM JSON ---------------------------------------------------------------------------------

export interface DeidentifyJsonOptions {
  /** Add the E.1.1 method attributes (attributesToAdd) to the top level. Default true. */
  readonly addMethodAttributes?: boolean;
  /**
   * Maps a kept BulkDataURI (which may embed original UIDs in its path) to the URI the caller serves;
   * undefined drops the element. Default: kept as is.
   */
  readonly bulkDataURI?: (uri: string, ref: ElementRef) => string | undefined;
  /**
   * The instance's pixel verdict (session.pixelVerdict), as the Part 10 path passes it to
   * beginDataset, so the metadata of a redacted instance says what its pixels are. `withhold` throws
   * PixelWithheldError.
   */
  readonly pixelVerdict?: PixelVerdict;
  /**
   * The dataset is one whole instance (WADO-RS metadata): its identity values are read from it before
   * its text is cleaned (Clean options, text-clean.ts). Default false: a dataset that holds only some
   * attributes (a QIDO result) gets the VR's dummy for that text instead (fail closed).
   */
  readonly wholeInstance?: boolean;
}

/**
 * De-identifies one DICOM JSON dataset (PS3.18 F.2) with the same decisions as the Part 10 rewriter.
 * With a policy a fresh session is made per call (its pairs are then lost: pass a session to keep
 * them). Private creators are resolved from the (gggg,00xx) elements of the same item.
 */
export function deidentifyJson(target: DeidPolicy | DeidSession, dataset: DicomJsonDataset, options: DeidentifyJsonOptions = {}): DicomJsonDataset {
  const session = target instanceof DeidSession ? target : createSession(target);
  const patientId = dataset[PATIENT_ID_KEY]?.Value?.[0];
  const sopClass = dataset[SOP_CLASS_KEY]?.Value?.[0];
  session.beginDataset(typeof patientId === 'string' ? patientId : undefined, options.pixelVerdict, typeof sopClass === 'string' ? sopClass : undefined);
  if (options.wholeInstance === true) session.setIdentities(jsonIdentitySource(dataset));
  const out = walk(session, dataset, [], options);
  if (options.addMethodAttributes !== false) {
    for (const [key, element] of Object.entries(session.attributesToAdd())) out[key] = element;
    return sortKeys(out);
  }
  return out;
}

/** Pixel Data (7FE0,0010), Float Pixel Data (7FE0,0008), Double Float Pixel Data (7FE0,0009): PS3.3 C.7.6.3. */
const PIXEL_DATA_KEYS: ReadonlySet<string> = new Set(['7FE00010', '7FE00008', '7FE00009']);

/**
 * Whether a top-level element of a redacted dataset is its pixels inline (InlineBinary or Value, PS3.18
 * F.2.7): those bytes are the unblanked original and are dropped. A BulkDataURI stays: the caller serves
 * it redacted or refuses it.
 */
function isInlinePixels(key: string, element: DicomJsonElement): boolean {
  return PIXEL_DATA_KEYS.has(key) && (element.InlineBinary !== undefined || element.Value !== undefined);
}

function walk(session: DeidSession, dataset: DicomJsonDataset, path: readonly number[], options: DeidentifyJsonOptions): DicomJsonDataset {
  if (typeof dataset !== 'object' || dataset === null || Array.isArray(dataset)) {
    throw new DeidUnsupportedValueError(path.map(formatTag).join('>') || 'dataset', 'item is not a DICOM JSON object');
  }
  const out: DicomJsonDataset = {};
  const creatorOf = privateCreatorLookup((creatorTag) => {
    const creator = dataset[tagToHex(creatorTag)]?.Value?.[0];
    return typeof creator === 'string' ? creator : undefined;
  });
  for (const key of sortedKeys(dataset)) {
    const tag = hexKeyTag(key); // PS3.18 F.2.1.1: the key is "ggggeeee"
    const element = dataset[key];
    if (tag === undefined) throw new DeidUnsupportedValueError(key.slice(0, 16), 'not a DICOM JSON tag key');
    if (typeof element !== 'object' || element === null || typeof element.vr !== 'string') {
      throw new DeidUnsupportedValueError(formatTag(tag), 'element has no vr');
    }
    const value = element.Value;
    if (value !== undefined && !Array.isArray(value)) throw new DeidUnsupportedValueError(formatTag(tag), 'Value is not an array');
    const privateCreator = creatorOf(tag);
    const ref: ElementRef = privateCreator === undefined ? { tag, vr: element.vr, path } : { tag, vr: element.vr, path, privateCreator };
    const decision = session.decide(ref, value);
    const outKey = key.toUpperCase(); // an 8-hex key (checked above), in PS3.18 F.2.1.1's upper case
    if (path.length === 0 && options.pixelVerdict?.action === 'redact' && isInlinePixels(outKey, element)) continue;
    switch (decision.op) {
      case 'remove':
        break;
      case 'keep': {
        checkKeptJsonValue(ref, value);
        // A new element object; its Value is shared with the input, which nothing here mutates.
        const kept: DicomJsonElement = { ...element };
        if (kept.BulkDataURI !== undefined && options.bulkDataURI !== undefined) {
          const uri = options.bulkDataURI(kept.BulkDataURI, ref);
          if (uri === undefined) break;
          kept.BulkDataURI = uri;
        }
        out[outKey] = kept;
        break;
      }
      case 'recurse': {
        const items = (value ?? []).map((item) => walk(session, item as DicomJsonDataset, [...path, tag], options));
        out[outKey] = items.length > 0 ? { vr: element.vr, Value: items } : { vr: element.vr };
        break;
      }
      case 'replace':
        out[outKey] = decision.value.length > 0 ? { vr: element.vr, Value: decision.value as JsonValue[] } : { vr: element.vr };
        break;
    }
  }
  return out;
}

/**
 * The JSON side of the Part 10 rewriter's keep checks (rewrite-part10.ts): a kept binary number with more
 * values than its PS3.6 VM allows, or kept text with control characters PS3.5 6.1.2 does not permit, is
 * a misframed element that swallowed its neighbours in the PACS's source file: refused, never passed on.
 */
function checkKeptJsonValue(ref: ElementRef, value: readonly unknown[] | undefined): void {
  if (value === undefined || value.length === 0) return;
  const size = binaryValueSize(ref.vr);
  if (size !== undefined) {
    const maxBytes = maxBinaryValueBytes(ref.tag, ref.vr);
    if (maxBytes !== undefined && value.length > maxBytes / size) throw new DeidUnsupportedValueError(placeOf(ref), 'kept value has more values than its VM allows');
    return;
  }
  for (const v of value) {
    const forbidden =
      typeof v === 'string'
        ? holdsControlCharacters(v)
        : typeof v === 'object' && v !== null && Object.values(v as Record<string, unknown>).some((g) => typeof g === 'string' && holdsControlCharacters(g));
    if (forbidden) throw new DeidUnsupportedValueError(placeOf(ref), 'kept value holds control characters');
  }
}

/** PS3.5 6.1.2: control characters no text VR permits (trailing NUL padding aside). */
const FORBIDDEN_CONTROL = /[\u0000-\u0008\u000b\u000e-\u001a\u001c-\u001f]/;
const holdsControlCharacters = (text: string): boolean => FORBIDDEN_CONTROL.test(text) && FORBIDDEN_CONTROL.test(text.replace(/[\u0000 ]+$/, ''));

const placeOf = (ref: ElementRef): string => [...ref.path, ref.tag].map(formatTag).join('>');

/** The keys of a dataset in code-unit order: a PACS's are usually in order already, and are then not sorted again. */
function sortedKeys(dataset: DicomJsonDataset): string[] {
  const keys = Object.keys(dataset);
  for (let i = 1; i < keys.length; i++) if ((keys[i - 1] as string) > (keys[i] as string)) return keys.sort();
  return keys;
}

function sortKeys(dataset: DicomJsonDataset): DicomJsonDataset {
  const out: DicomJsonDataset = {};
  for (const key of sortedKeys(dataset)) out[key] = dataset[key]!;
  return out;
}

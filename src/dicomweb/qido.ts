// PS3.18 10.6 Search (QIDO-RS) for a restricted role.
//
// The rule (SECURITY.md, "query oracles"): no condition derived from a caller's value on an attribute
// whose de-identified value differs from the original ever reaches the PACS — not widened, not
// transformed, not at all. Whether the PACS found something is observable (timing, counts, paging)
// whatever the gateway filters afterwards. So, per matching key:
//   1. the profile keeps the attribute unchanged: the key goes upstream, re-encoded;
//   2. the researcher sees the attribute absent or empty: only universal matching could match it
//      (PS3.4 C.2.2.2.3), so the answer is empty and the PACS is not asked;
//   3. a pseudonymous UID, Patient ID or Accession Number: mapped back through the store (an unknown
//      pseudonym gives an empty answer, the PACS not asked);
//   4. anything else (shifted dates, pseudonymous names, dummies, wild cards on pseudonyms): matched
//      here on the de-identified values (src/dicom/matching.ts), the PACS asked only to include the
//      attribute. Datasets filtered out leave no pseudonym behind.
// Every value is validated for its VR first (400 when malformed) and capped in length and in the
// number of alternatives, so a query's cost is bounded by its length.
//
// Pixel safety (issue 16): under an active pixel policy each result is checked against its study's census
// (pixel-census.ts). A withheld instance is absent, and so is a series or study with nothing left; the
// attributes derived from the instances below a result (ModalitiesInStudy, the Number of … Related …
// counts) are recomputed from what remains, and a key on one of them is matched here, on the recomputed
// value, never upstream (it would match on the withheld instances too).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createSession, deidentifyJson, type DicomJsonDataset } from '../deid/deidentify.ts';
import { lookup, tagForAttributeId } from '../dicom/dictionary.ts';
import { matchesKey, matchValues, parseMatchKey, type MatchKey } from '../dicom/matching.ts';
import { tagToHex } from '../dicom/tag.ts';
import { TAG } from '../dicom/tags.ts';
import { identityAttribute } from '../deid/pseudonym.ts';
import { originalPath, originalUid, refuseUpstreamError, requireStudy, savingSession, uidPath, unusable, type DeidentifiedView, type Membership, type ResourcePath } from './deidentified-view.ts';
import { BadRequestError, UnknownResourceError } from './errors.ts';
import { jsonArrayItems } from './json-array-stream.ts';
import { endBody, writeChunk } from './response-writer.ts';
import { acceptFor, OFFERED } from './content-negotiation.ts';
import { withStreamLifetime, type StreamLifetime } from './stream-lifetime.ts';
import { isUid } from '../dicom/uid.ts';
import { UID_LIST_CHUNK } from './project-view.ts';
import { DERIVED_TAGS, recomputeDerived, studiesPixels, studyPixels, type PixelObserver, type StudyPixels } from './pixel-census.ts';
import { ocrMayRedact, type PixelVerdict } from '../deid/pixel-policy.ts';

type QueryLevel = 'study' | 'series' | 'instance';

const STUDY_UID = tagToHex(TAG.StudyInstanceUID);
const SERIES_UID = tagToHex(TAG.SeriesInstanceUID);
const SOP_UID = tagToHex(TAG.SOPInstanceUID);
const UPSTREAM_PAGE = 200;
const MAX_LIMIT = 10_000;
/** Caps that bound a query's cost: its whole text, one key's value, one key's alternatives. */
export const QUERY_LIMITS = Object.freeze({ queryChars: 8_192, valueChars: 1_024, alternatives: 64 });
/** PS3.4 C.2.2.2.4 wild cards and the C.2.2.2.8 list separator: a value holding one is no single value. */
const WILDCARD_OR_LIST = /[*?\\]/;
/** Values that cannot be matched as text (PS3.4 C.2.2.2: no matching is defined for them). */
const UNMATCHABLE_VRS = new Set(['SQ', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);

/**
 * Attributes of the Patient and Study IEs (PS3.3 C.7.1.1 Patient, C.7.1.3 Clinical Trial Subject,
 * C.7.2.1 General Study, C.7.2.2 Patient Study, C.7.2.3 Clinical Trial Study; PS3.4 C.6.1.1.2-3), and
 * of the Series IE with its Equipment and Frame of Reference (C.7.3.1 General Series, C.7.3.2 Clinical
 * Trial Series, C.7.5.1 General Equipment, C.7.4.1 Frame of Reference; PS3.4 C.6.1.1.4). Under a pixel
 * policy a study or series search takes keys of its own level and above only: a key of a lower level
 * (Burned In Annotation, Image Type, or Modality for a study) would let a study or series match by
 * instances the policy withholds, and so show what QIDO hides (PS3.18 10.6.1.2.1 leaves such keys to
 * the origin server).
 */
const STUDY_LEVEL_KEYWORDS = [
  'PatientName', 'PatientID', 'IssuerOfPatientID', 'IssuerOfPatientIDQualifiersSequence', 'TypeOfPatientID', 'PatientBirthDate',
  'PatientBirthTime', 'PatientSex', 'QualityControlSubject', 'OtherPatientIDsSequence', 'OtherPatientNames', 'PatientBirthName',
  'PatientMotherBirthName', 'EthnicGroup', 'PatientComments', 'PatientSpeciesDescription', 'PatientSpeciesCodeSequence',
  'PatientBreedDescription', 'PatientBreedCodeSequence', 'BreedRegistrationSequence', 'ResponsiblePerson', 'ResponsiblePersonRole',
  'ResponsibleOrganization', 'PatientIdentityRemoved', 'DeidentificationMethod', 'DeidentificationMethodCodeSequence',
  'ClinicalTrialSponsorName', 'ClinicalTrialProtocolID', 'ClinicalTrialProtocolName', 'ClinicalTrialSiteID', 'ClinicalTrialSiteName',
  'ClinicalTrialSubjectID', 'ClinicalTrialSubjectReadingID', 'ClinicalTrialProtocolEthicsCommitteeName',
  'ClinicalTrialProtocolEthicsCommitteeApprovalNumber', 'StudyInstanceUID', 'StudyDate', 'StudyTime', 'ReferringPhysicianName',
  'ReferringPhysicianIdentificationSequence', 'ConsultingPhysicianName', 'ConsultingPhysicianIdentificationSequence', 'StudyID',
  'AccessionNumber', 'IssuerOfAccessionNumberSequence', 'StudyDescription', 'PhysiciansOfRecord', 'PhysiciansOfRecordIdentificationSequence',
  'NameOfPhysiciansReadingStudy', 'PhysiciansReadingStudyIdentificationSequence', 'RequestingServiceCodeSequence', 'ReferencedStudySequence',
  'ProcedureCodeSequence', 'ReasonForPerformedProcedureCodeSequence', 'AdmittingDiagnosesDescription', 'AdmittingDiagnosesCodeSequence',
  'PatientAge', 'PatientSize', 'PatientWeight', 'PatientSizeCodeSequence', 'MeasuredAPDimension', 'MeasuredLateralDimension',
  'MedicalAlerts', 'Allergies', 'SmokingStatus', 'PregnancyStatus', 'LastMenstrualDate', 'PatientState', 'Occupation',
  'AdditionalPatientHistory', 'AdmissionID', 'IssuerOfAdmissionIDSequence', 'ServiceEpisodeID', 'ServiceEpisodeDescription',
  'PatientSexNeutered', 'ReasonForVisit', 'ReasonForVisitCodeSequence', 'ClinicalTrialTimePointID', 'ClinicalTrialTimePointDescription',
  'ConsentForClinicalTrialUseSequence', 'TimezoneOffsetFromUTC',
];
const SERIES_LEVEL_KEYWORDS = [
  'Modality', 'SeriesInstanceUID', 'SeriesNumber', 'Laterality', 'SeriesDate', 'SeriesTime', 'PerformingPhysicianName',
  'PerformingPhysicianIdentificationSequence', 'ProtocolName', 'SeriesDescription', 'SeriesDescriptionCodeSequence', 'OperatorsName',
  'OperatorIdentificationSequence', 'ReferencedPerformedProcedureStepSequence', 'RelatedSeriesSequence', 'BodyPartExamined',
  'PatientPosition', 'RequestAttributesSequence', 'PerformedProcedureStepID', 'PerformedProcedureStepStartDate',
  'PerformedProcedureStepStartTime', 'PerformedProcedureStepEndDate', 'PerformedProcedureStepEndTime', 'PerformedProcedureStepDescription',
  'PerformedProtocolCodeSequence', 'CommentsOnThePerformedProcedureStep', 'AnatomicalOrientationType', 'ClinicalTrialCoordinatingCenterName',
  'ClinicalTrialSeriesID', 'ClinicalTrialSeriesDescription', 'Manufacturer', 'InstitutionName', 'InstitutionAddress', 'StationName',
  'InstitutionalDepartmentName', 'ManufacturerModelName', 'DeviceSerialNumber', 'SoftwareVersions', 'FrameOfReferenceUID',
  'PositionReferenceIndicator',
];
function tagsOf(keywords: readonly string[]): number[] {
  return keywords.map((keyword) => {
    const tag = tagForAttributeId(keyword);
    if (tag === undefined) throw new Error(`unknown keyword ${keyword}`);
    return tag;
  });
}
const STUDY_LEVEL_TAGS: ReadonlySet<number> = new Set(tagsOf(STUDY_LEVEL_KEYWORDS));
const SERIES_LEVEL_TAGS: ReadonlySet<number> = new Set([...STUDY_LEVEL_TAGS, ...tagsOf(SERIES_LEVEL_KEYWORDS)]);

/** Whether a search at `level` under a pixel policy may take a key on `tag` (see STUDY_LEVEL_KEYWORDS). */
function keyOfLevel(level: QueryLevel, tag: number): boolean {
  if (level === 'instance' || DERIVED_TAGS.has(tag)) return true;
  return (level === 'study' ? STUDY_LEVEL_TAGS : SERIES_LEVEL_TAGS).has(tag);
}

interface Predicate {
  tag: number;
  key: MatchKey;
}

export interface SearchRequest {
  level: QueryLevel;
  path: ResourcePath;
  /** The raw query string without '?'. */
  query: string;
  publicBase: string;
}

interface PlannedQuery {
  upstreamParams: URLSearchParams;
  gatewaySide: Predicate[];
  limit: number | undefined;
  offset: number;
  /** Nothing can match (an attribute the researcher sees empty, an unknown pseudonym): the PACS is not asked. */
  empty: boolean;
  /** The derived attributes (pixel-census.ts DERIVED) the caller named, as a key or an includefield. */
  derived: Set<number>;
}

/** Resolves a QIDO attribute key (keyword or 8 hex digits, PS3.18 8.3.4.1). Sequence paths are refused. */
function resolveKey(key: string): { tag: number; vr: string } {
  const tag = tagForAttributeId(key);
  if (tag === undefined) throw new BadRequestError('QIDO_BAD_KEY', 'a query key is neither a keyword nor a tag');
  const vr = lookup(tag)?.vrs[0] ?? 'UN';
  return { tag, vr };
}

const badValue = (tag: number) => new BadRequestError('QIDO_BAD_VALUE', `the value of ${tagToHex(tag)} is not valid for its VR`);

/**
 * Plans the upstream query and the gateway-side predicates. Pure but for the store look-ups. A key on
 * a `reserved` tag (one the project's membership query sends upstream itself) is matched here,
 * on the de-identified values, whatever the profile does with it.
 */
async function plan(view: DeidentifiedView, query: string, reserved: ReadonlySet<number>, pixels: boolean, level: QueryLevel): Promise<PlannedQuery> {
  if (query.length > QUERY_LIMITS.queryChars) throw new BadRequestError('QIDO_QUERY_TOO_LONG', `the query is longer than ${QUERY_LIMITS.queryChars} characters`);
  const params = new URLSearchParams(query);
  const upstreamParams = new URLSearchParams();
  const gatewaySide: Predicate[] = [];
  const seen = new Set<string>();
  let limit: number | undefined;
  let offset = 0;
  let empty = false;
  const derived = new Set<number>();
  const fuzzyValues = params.getAll('fuzzymatching');
  if (fuzzyValues.some((v) => v !== 'true' && v !== 'false')) throw new BadRequestError('QIDO_BAD_PARAMETER', 'fuzzymatching must be true or false');
  const fuzzy = fuzzyValues.includes('true');
  const probe = createSession(view.policy);
  probe.beginDataset('probe');
  const added = probe.attributesToAdd();

  for (const [key, value] of params) {
    if (key === 'fuzzymatching') continue;
    if (key === 'includefield') {
      for (const field of value.split(',')) {
        if (field === 'all') upstreamParams.append('includefield', 'all');
        else {
          const { tag } = resolveKey(field);
          if (DERIVED_TAGS.has(tag)) derived.add(tag);
          upstreamParams.append('includefield', tagToHex(tag));
        }
      }
      continue;
    }
    if (seen.has(key)) throw new BadRequestError('QIDO_DUPLICATE_KEY', 'a query key appears more than once');
    seen.add(key);
    if (key === 'limit' || key === 'offset') {
      if (!/^[0-9]{1,9}$/.test(value)) throw new BadRequestError('QIDO_BAD_PARAMETER', `${key} must be a non-negative integer`);
      if (key === 'limit') limit = Math.min(Number(value), MAX_LIMIT);
      else offset = Number(value);
      continue;
    }
    const { tag, vr } = resolveKey(key);
    const hex = tagToHex(tag);
    if (seen.has(hex) && hex !== key) throw new BadRequestError('QIDO_DUPLICATE_KEY', 'a query key appears more than once');
    seen.add(hex);
    if (DERIVED_TAGS.has(tag)) derived.add(tag);
    if (value === '') continue; // PS3.4 C.2.2.2.3 universal matching: no condition at all
    // A gateway-set attribute (E.1.1 method attributes, URLs) is matched on what the researcher sees.
    if (pixels && !(vr === 'UR' || hex in added) && !keyOfLevel(level, tag)) {
      throw new BadRequestError('QIDO_BAD_KEY', `${hex} is not a key of a ${level}-level search`);
    }
    if (value.length > QUERY_LIMITS.valueChars || value.split('\\').length > QUERY_LIMITS.alternatives) {
      throw new BadRequestError('QIDO_VALUE_TOO_LONG', `a query value is longer than ${QUERY_LIMITS.valueChars} characters or has more than ${QUERY_LIMITS.alternatives} alternatives`);
    }
    if (UNMATCHABLE_VRS.has(vr)) throw new BadRequestError('QIDO_BAD_KEY', `${hex} cannot be matched by value`);
    // 1. Validate for the VR, whatever happens next: a malformed value is 400 on every path.
    const uids = vr === 'UI' ? value.split(/[,\\]/) : undefined;
    if (uids && !uids.every(isUid)) throw badValue(tag);
    const matchKey = vr === 'UI' ? undefined : parseMatchKey(vr, value, { fuzzy });
    if (vr !== 'UI' && matchKey === undefined) throw badValue(tag);
    // 2. What does the researcher see of this attribute? The profile's one decision says.
    const decision = probe.decide({ tag, vr, path: [] }, [value]);
    // Set or rebuilt by the gateway on every result, whatever the original held: the E.1.1 attributes
    // (Patient Identity Removed, …) and URLs (Retrieve URL). Matched here, on what the researcher sees.
    // A derived attribute is recomputed from what the pixel policy leaves (pixel-census.ts): matched on that.
    if (vr === 'UR' || hex in added || (pixels && DERIVED_TAGS.has(tag)) || (reserved.has(tag) && decision.op !== 'remove' && !(decision.op === 'replace' && decision.value.length === 0))) {
      gatewaySide.push({ tag, key: matchKey as MatchKey });
      upstreamParams.append('includefield', hex);
      continue;
    }
    if (decision.op === 'keep') {
      upstreamParams.set(hex, uids ? uids.join(',') : value); // the de-identified value is the original one
      continue;
    }
    if (decision.op === 'remove' || (decision.op === 'replace' && decision.value.length === 0)) {
      empty = true; // absent or empty for the researcher: no key value matches it (PS3.4 C.2.2.2)
      continue;
    }
    // Replaced by a constant (the VR's dummy, whatever the original held): a key the constant does not
    // match finds nothing, and the PACS is not asked (PS3.4 C.2.2.2; issue 20: no paging through the
    // archive for an answer known in advance). One the constant matches is matched here, on each result
    // (the attribute may be absent from some).
    if (matchKey !== undefined && decision.op === 'replace' && replacedByConstant(probe, tag, vr, value, decision) && !matchesKey(matchKey, matchValues({ vr, Value: decision.value as never[] }))) {
      empty = true;
      continue;
    }
    if (uids) {
      // UID list matching (PS3.4 C.2.2.2.2): each pseudonym back to its original; unknown ones drop out.
      const originals: string[] = [];
      for (const uid of uids) {
        try {
          originals.push(await originalUid(view, uid));
        } catch (error) {
          if (!(error instanceof UnknownResourceError)) throw error;
        }
      }
      if (originals.length === 0) empty = true;
      else upstreamParams.set(hex, originals.join(','));
      continue;
    }
    const identity = identityAttribute(tag);
    if (identity?.mapsBack && !WILDCARD_OR_LIST.test(value)) {
      const original = await view.store.originalOf(identity.kind, value);
      if (original === undefined) {
        empty = true;
        continue;
      }
      // PS3.4 C.2.2.2.4 has no escape: an original holding `*`, `?` or `\` would be a wild card or a
      // list upstream (a condition on other patients' originals). Such a key is matched here instead.
      if (!WILDCARD_OR_LIST.test(original)) {
        upstreamParams.set(hex, original);
        continue;
      }
    }
    gatewaySide.push({ tag, key: matchKey as MatchKey });
    upstreamParams.append('includefield', hex);
  }
  if (fuzzy) upstreamParams.set('fuzzymatching', 'true');
  // The date shift and the name pseudonym are keyed on the original Patient ID (PS3.15 E.3.6): ask for it
  // at every level, so a PACS that leaves it out of series or instance results cannot change either.
  upstreamParams.append('includefield', tagToHex(TAG.PatientID));
  // Membership and the hierarchy are checked per result by its study (project-view.ts, requireStudy).
  upstreamParams.append('includefield', STUDY_UID);
  return { upstreamParams, gatewaySide, limit, offset, empty, derived };
}

/** Text VRs: any string is a valid value, so probing with two others than the key's says whether the replacement depends on the value. */
const FREE_TEXT_VRS: ReadonlySet<string> = new Set(['LO', 'SH', 'ST', 'LT', 'UT', 'UC']);

/** The profile replaces this text attribute with the same value whatever it held (a dummy, not a pseudonym or cleaned text). */
function replacedByConstant(probe: ReturnType<typeof createSession>, tag: number, vr: string, value: string, decision: ReturnType<ReturnType<typeof createSession>['decide']>): boolean {
  if (decision.op !== 'replace' || !FREE_TEXT_VRS.has(vr)) return false;
  const same = (other: string) => {
    const d = probe.decide({ tag, vr, path: [] }, [other]);
    return d.op === 'replace' && JSON.stringify(d.value) === JSON.stringify(decision.value);
  };
  return same(`${value}A`) && same('B');
}

/** PS3.4 C.2.2.2 on the de-identified values (src/dicom/matching.ts: linear in the key's length). */
function matches(dataset: DicomJsonDataset, p: Predicate): boolean {
  return matchesKey(p.key, matchValues(dataset[tagToHex(p.tag)]));
}

/**
 * The gateway's own Retrieve URL (PS3.18 10.6.3), built from pseudonymous UIDs. The PACS's URLs, which
 * name originals, were removed by the profile (deid/profile.ts SUPPLEMENT_REMOVE), as in every representation.
 */
function fixUrls(dataset: DicomJsonDataset, level: QueryLevel, publicBase: string): DicomJsonDataset {
  const study = dataset[STUDY_UID]?.Value?.[0];
  const series = dataset[SERIES_UID]?.Value?.[0];
  const sop = dataset[SOP_UID]?.Value?.[0];
  let url: string | undefined;
  if (typeof study === 'string') {
    url = `${publicBase}/studies/${study}`;
    if (level !== 'study') url = typeof series === 'string' ? `${url}/series/${series}` : undefined;
    if (url && level === 'instance') url = typeof sop === 'string' ? `${url}/instances/${sop}` : undefined;
  }
  if (url) dataset[tagToHex(TAG.RetrieveURL)] = { vr: 'UR', Value: [url] };
  return dataset;
}

/** What the pixel policy does to one search result, from its study's census. */
interface ResultPixels {
  /** Nothing of it is left (a withheld instance; a series or study whose every instance is withheld). */
  readonly dropped: boolean;
  /** An instance's own verdict (instance level). */
  readonly verdict?: PixelVerdict;
  /** Instances withheld, by reason (`unlisted`: no census lists it), and redacted, that the result covers. */
  readonly withheld: ReadonlyMap<string, number>;
  readonly redacted: number;
}

const UNLISTED: ResultPixels = Object.freeze({ dropped: true, withheld: new Map([['unlisted', 1]]), redacted: 0 });

/**
 * The pixel policy on one search result (the item's derived attributes recomputed in place). Fail closed:
 * a result its study's census does not list is dropped.
 */
function pixelsOf(item: DicomJsonDataset, level: QueryLevel, censuses: ReadonlyMap<string, StudyPixels>, derived: ReadonlySet<number>): ResultPixels {
  const [study, series, sop] = [STUDY_UID, SERIES_UID, SOP_UID].map((hex) => item[hex]?.Value?.[0]);
  const census = typeof study === 'string' ? censuses.get(study) : undefined;
  if (census === undefined) return UNLISTED;
  recomputeDerived(item, census, derived);
  if (level === 'instance') {
    const verdict = typeof series === 'string' && typeof sop === 'string' ? census.verdictOf(series, sop) : undefined;
    if (verdict === undefined) return UNLISTED;
    // Issue 18: an instance OCR may redact is listed without OCR being run during a search (pixel-census.ts
    // PixelSummary.shown); retrieval redacts it, or withholds it if OCR fails. Its result is de-identified
    // without a redact verdict: it claims no redaction that has not happened.
    if (ocrMayRedact(verdict)) return { dropped: false, withheld: new Map(), redacted: 0 };
    if (verdict.action === 'withhold') return { dropped: true, verdict, withheld: new Map([[verdict.reason, 1]]), redacted: 0 };
    return { dropped: false, verdict, withheld: new Map(), redacted: verdict.action === 'redact' ? 1 : 0 };
  }
  const summary = level === 'study' ? census.study : typeof series === 'string' ? census.seriesSummary(series) : undefined;
  if (summary === undefined) return UNLISTED;
  return { dropped: summary.shown === 0, withheld: summary.withheldBy, redacted: summary.redacted };
}

function tallyPixels(observe: PixelObserver | undefined, pixels: ResultPixels): void {
  if (!observe) return;
  for (const [reason, count] of pixels.withheld) if (count > 0) observe('withheld', reason, count);
  if (pixels.redacted > 0) observe('redacted', 'rule', pixels.redacted);
}

const LEVEL_PATH: Record<QueryLevel, string> = { study: '/studies', series: '/series', instance: '/instances' };

/**
 * PS3.18 10.6 for a restricted role, in DICOM JSON only (PS3.18 10.6.3.2; the XML model is 406). Every
 * upstream page is asked within the caller's stream lifetime: a caller who leaves stops the paging at
 * once, the page in flight aborted (PS3.18 has no partial QIDO answer to finish).
 */
export function searchDeidentified(view: DeidentifiedView, req: IncomingMessage, res: ServerResponse, r: SearchRequest): Promise<void> {
  return withStreamLifetime(res, (lifetime) => search(view, req, res, r, lifetime));
}

async function search(view: DeidentifiedView, req: IncomingMessage, res: ServerResponse, r: SearchRequest, lifetime: StreamLifetime) {
  const { chosen: mediaType } = acceptFor(req, OFFERED.json);
  const original = await originalPath(view, r.path); // a study in the path is checked for membership there
  const { membership } = view;
  // Only member studies are asked (upstreamSources): at study level the project's conditions go
  // upstream, and a researcher's key on the same attribute is matched here.
  const constrained = !membership.project.allStudies && original.study === undefined;
  const reserved = new Set(constrained && r.level === 'study' ? membership.conditions.map((c) => c.tag) : []);
  const pixelPolicy = view.policy.pixels;
  // Each original study's census, read for the page in hand (pixel-census.ts); none without an active policy.
  const censuses = pixelPolicy.active ? new Map<string, StudyPixels>() : undefined;
  const q = await plan(view, r.query, reserved, censuses !== undefined, r.level);
  const { session, flush, makeDurable } = savingSession(view);
  let written = 0;
  const finish = async () => {
    await makeDurable(); // PS3.15 pseudonyms the caller saw stay resolvable after any restart
    if (written === 0) {
      res.statusCode = 200;
      res.setHeader('content-type', mediaType);
      endBody(res, '[]');
    } else endBody(res, ']');
  };
  if (q.empty) return finish();

  // Every result is already a member: the study in the path was admitted, or the project holds every
  // study and no patient withdrew. Then limit and offset go upstream as asked, when nothing else is
  // matched here.
  const allMembers = original.study !== undefined || (membership.project.allStudies && !membership.anyWithdrawn);
  // A result the pixel policy may drop is counted here, so limit and offset are applied here too.
  const passThrough = allMembers && q.gatewaySide.length === 0 && censuses === undefined;
  const sendUpstream = (request: Parameters<StreamLifetime['send']>[1]) => lifetime.send(view.upstream, request);
  const refreshed = new Set<string>();
  /** The censuses of the studies of a page of results; an instance a cached census does not list has it read again once. */
  const readCensuses = async (items: readonly DicomJsonDataset[]) => {
    if (censuses === undefined) return;
    const studies = items.map((item) => item[STUDY_UID]?.Value?.[0]).filter((uid): uid is string => typeof uid === 'string');
    await studiesPixels(view.census, pixelPolicy, studies, sendUpstream, censuses);
    if (r.level !== 'instance') return;
    for (const item of items) {
      const [study, series, sop] = [STUDY_UID, SERIES_UID, SOP_UID].map((hex) => item[hex]?.Value?.[0]);
      if (typeof study !== 'string' || refreshed.has(study) || typeof series !== 'string' || typeof sop !== 'string') continue;
      if (censuses.get(study)?.verdictOf(series, sop) !== undefined) continue;
      refreshed.add(study);
      censuses.delete(study);
      const instances = await view.census.instancesOf(study, pixelPolicy.attributeTags, sendUpstream, { fresh: true });
      censuses.set(study, studyPixels(pixelPolicy, instances));
    }
  };
  let skipped = 0;
  const show = async (item: DicomJsonDataset): Promise<void> => {
    requireStudy(original, item[STUDY_UID]?.Value?.[0]);
    if (r.level !== 'study') membership.learn(item);
    const pixels = censuses && pixelsOf(item, r.level, censuses, q.derived);
    const mark = session.pairCount;
    const deidentified = fixUrls(
      // A search result carries no BulkDataURI: one the PACS gave names original UIDs (the metadata route
      // rewrites them, wado.ts); the caller retrieves bulk data through the metadata.
      deidentifyJson(session, item, { bulkDataURI: () => undefined, ...(pixels?.verdict?.action === 'redact' ? { pixelVerdict: pixels.verdict } : {}) }),
      r.level,
      r.publicBase,
    );
    let shown = q.gatewaySide.every((p) => matches(deidentified, p));
    if (shown && pixels?.dropped) {
      tallyPixels(view.observePixels, pixels);
      shown = false;
    }
    if (shown && !passThrough && skipped < q.offset) {
      skipped++;
      shown = false;
    }
    if (shown && q.limit !== undefined && written >= q.limit) shown = false;
    if (!shown) {
      session.discardPairsSince(mark); // never shown: nothing of it is saved
      return;
    }
    if (pixels) tallyPixels(view.observePixels, pixels);
    await flush();
    if (written === 0) {
      res.statusCode = 200;
      res.setHeader('content-type', mediaType);
    }
    await writeChunk(res, Buffer.from(`${written === 0 ? '[' : ','}${JSON.stringify(deidentified)}`));
    written++;
  };
  const full = () => q.limit !== undefined && written >= q.limit;

  const base = `${uidPath(original)}${LEVEL_PATH[r.level]}`;
  const ask = (params: URLSearchParams, path = base) =>
    lifetime.send(view.upstream, { method: 'GET', pathAndQuery: `${path}?${params}`, headers: { accept: 'application/dicom+json' } });
  try {
    if (passThrough) {
      const params = new URLSearchParams(q.upstreamParams);
      if (q.limit !== undefined) params.set('limit', String(q.limit));
      if (q.offset) params.set('offset', String(q.offset));
      const upstreamRes = await ask(params);
      if (upstreamRes.statusCode === 204) upstreamRes.body.resume();
      else {
        if (upstreamRes.statusCode >= 300) refuseUpstreamError(upstreamRes);
        for await (const item of jsonArrayItems(upstreamRes.body, view.maxJsonDatasetBytes)) await show(item as DicomJsonDataset);
      }
      return await finish();
    }
    // One page at a time: membership is decided for the page at once (one facts query per study chunk).
    const page = async (params: URLSearchParams, offset: number, path = base): Promise<DicomJsonDataset[]> => {
      const paged = new URLSearchParams(params);
      paged.set('limit', String(UPSTREAM_PAGE));
      paged.set('offset', String(offset));
      const upstreamRes = await ask(paged, path);
      if (upstreamRes.statusCode === 204) {
        upstreamRes.body.resume();
        return [];
      }
      if (upstreamRes.statusCode >= 300) refuseUpstreamError(upstreamRes);
      const items: DicomJsonDataset[] = [];
      for await (const item of jsonArrayItems(upstreamRes.body, view.maxJsonDatasetBytes)) items.push(item as DicomJsonDataset);
      return items;
    };
    // Studies an earlier source gave (study level: the conditions query), not given again by a later one.
    const given = new Set<string>();
    const consume = async (items: DicomJsonDataset[], source: UpstreamSource) => {
      const admitted = allMembers ? items.map(() => true) : await membership.admits(items, r.level);
      for (const [i, item] of items.entries()) {
        // Censuses are read a slice of results ahead, not for a whole upstream page a small limit never reaches.
        if (i % CENSUS_SLICE === 0) await readCensuses(items.slice(i, i + CENSUS_SLICE).filter((_, j) => admitted[i + j]));
        const study = item[STUDY_UID]?.Value?.[0];
        if (typeof study === 'string' && source.remember) given.add(study);
        if (admitted[i] && !(source.skipGiven && typeof study === 'string' && given.has(study))) await show(item);
        if (full()) return;
      }
    };
    // A study-level key matched here is answered from the de-identified study index when it can
    // (study-index.ts): the PACS is asked for the candidates only, by UID, each matched again here.
    const indexed = !constrained && r.level === 'study' && q.gatewaySide.length > 0 ? await indexedStudies(view, q) : undefined;
    // The first page of the next few sources is asked ahead (a long explicit list is many short queries).
    const sources = upstreamSources(view, q, r.level, constrained, page, indexed)[Symbol.asyncIterator]();
    const ahead: Array<{ source: UpstreamSource; first: Promise<DicomJsonDataset[]> }> = [];
    let exhausted = false;
    const refill = async () => {
      while (!exhausted && ahead.length < SOURCES_AHEAD) {
        const next = await sources.next();
        if (next.done) exhausted = true;
        else {
          const first = page(next.value.params, 0);
          first.catch(() => undefined); // awaited below; a failure of one never awaited must not be unhandled
          ahead.push({ source: next.value, first });
        }
      }
    };
    await refill();
    for (let next = ahead.shift(); next && !full(); next = ahead.shift()) {
      let items = await next.first;
      for (let offset = 0; ; ) {
        await consume(items, next.source);
        if (items.length < UPSTREAM_PAGE || full()) break;
        offset += UPSTREAM_PAGE;
        items = await page(next.source.params, offset);
      }
      await refill();
    }
  } catch (error) {
    throw unusable(error);
  }
  await finish();
}

/**
 * The original UIDs of the studies the study index gives for the search's gateway-side keys (each
 * pseudonym mapped back like one in a path; one the store does not map is left out), within the
 * StudyInstanceUIDs the caller named; undefined when the index cannot answer.
 */
async function indexedStudies(view: DeidentifiedView, q: PlannedQuery): Promise<string[] | undefined> {
  const candidates = await view.studyIndex?.candidates(view, q.gatewaySide);
  if (candidates === undefined) return undefined;
  const asked = q.upstreamParams.get(STUDY_UID)?.split(',');
  const originals: string[] = [];
  for (const uid of candidates) {
    try {
      const original = await originalUid(view, uid);
      if (!asked || asked.includes(original)) originals.push(original);
    } catch (error) {
      if (!(error instanceof UnknownResourceError)) throw error;
    }
  }
  return originals;
}

/** Search results whose studies' censuses are read at once (pixel-census.ts reads a few in parallel). */
const CENSUS_SLICE = 16;

/** Sources whose first page is asked before the one in hand is done. */
const SOURCES_AHEAD = 4;

/**
 * One upstream query of a search, paged through. `remember`: the studies it gives are noted;
 * `skipGiven`: a study an earlier source gave is not given again.
 */
interface UpstreamSource {
  readonly params: URLSearchParams;
  readonly remember?: boolean;
  readonly skipGiven?: boolean;
}

type PageReader = (params: URLSearchParams, offset: number, path?: string) => Promise<DicomJsonDataset[]>;

/**
 * The upstream queries of one search, in order. The study index's candidates (`indexed`): a UID-list
 * query per chunk. Unconstrained (a project of every study, or a study in the path that was admitted):
 * the planned query. Otherwise the PACS is asked only about member
 * studies, never with the researcher's keys over the whole archive (a timing and paging oracle on
 * studies outside the project):
 *   - study level: (1) the planned keys with the project's conditions (PS3.4 C.2.2.2); then (2) the
 *     explicit list, a UID-list query per chunk (PS3.4 C.2.2.2.2) intersected with the
 *     StudyInstanceUIDs the researcher asked for, skipping what (1) gave;
 *   - series and instance level: the member studies (the list, then those the project's conditions
 *     match, asked at study level with the project's keys only), a UID-list query per chunk.
 */
async function* upstreamSources(
  view: DeidentifiedView,
  q: PlannedQuery,
  level: QueryLevel,
  constrained: boolean,
  page: PageReader,
  indexed: readonly string[] | undefined,
): AsyncGenerator<UpstreamSource> {
  const { membership } = view;
  const { conditions } = membership;
  const forStudies = (uids: readonly string[]) => {
    const params = new URLSearchParams(q.upstreamParams);
    params.set(STUDY_UID, uids.join(','));
    if (level === 'study') for (const c of conditions) params.append('includefield', c.hex); // admitted here on the dataset's own values
    return params;
  };
  if (indexed) {
    for (let i = 0; i < indexed.length; i += UID_LIST_CHUNK) yield { params: forStudies(indexed.slice(i, i + UID_LIST_CHUNK)) };
    return;
  }
  if (!constrained) {
    yield { params: q.upstreamParams };
    return;
  }
  const asked = q.upstreamParams.get(STUDY_UID)?.split(',');
  if (level === 'study') {
    if (conditions.length > 0) {
      const params = new URLSearchParams(q.upstreamParams);
      // The PACS matches the project's conditions exactly as PS3.4 says, not as the caller's flag would loosen them.
      params.delete('fuzzymatching');
      for (const c of conditions) {
        params.set(c.hex, c.value);
        params.append('includefield', c.hex);
      }
      yield { params, remember: true };
    }
    for (let index = 0; ; index++) {
      const chunk = await membership.listedChunk(index);
      const uids = asked ? chunk.filter((uid) => asked.includes(uid)) : chunk;
      if (uids.length > 0) yield { params: forStudies(uids), skipGiven: true };
      if (chunk.length < UID_LIST_CHUNK) return;
    }
  }
  let pending: string[] = [];
  for await (const uid of memberStudies(membership, page)) {
    if (asked && !asked.includes(uid)) continue;
    pending.push(uid);
    if (pending.length === UID_LIST_CHUNK) {
      yield { params: forStudies(pending) };
      pending = [];
    }
  }
  if (pending.length > 0) yield { params: forStudies(pending) };
}

/** Every member study's original UID once: the explicit list, then the studies the project's conditions match. */
async function* memberStudies(membership: Membership, page: PageReader): AsyncGenerator<string> {
  const seen = new Set<string>();
  for (let index = 0; ; index++) {
    const chunk = await membership.listedChunk(index);
    for (const uid of chunk) {
      if (seen.has(uid)) continue;
      seen.add(uid);
      yield uid;
    }
    if (chunk.length < UID_LIST_CHUNK) break;
  }
  if (membership.conditions.length === 0) return;
  const params = new URLSearchParams();
  for (const c of membership.conditions) params.set(c.hex, c.value);
  params.append('includefield', STUDY_UID);
  for (let offset = 0; ; offset += UPSTREAM_PAGE) {
    const studies = await page(params, offset, LEVEL_PATH.study);
    for (const s of studies) {
      const uid = s[STUDY_UID]?.Value?.[0];
      if (typeof uid === 'string' && !seen.has(uid)) {
        seen.add(uid);
        yield uid;
      }
    }
    if (studies.length < UPSTREAM_PAGE) return;
  }
}

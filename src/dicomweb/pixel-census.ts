// The pixel census (issue 16): per original study, the header attributes the project's pixel policy reads
// (deid/pixel-policy.ts), for every instance the PACS lists, from one instance-level search
// (PS3.18 10.6, `/studies/{study}/instances?includefield=…`). From it each request computes, under its own
// project's policy, every instance's verdict (keep / redact / withhold), and per series and study what
// remains once the withheld instances are gone: the counts and modalities QIDO shows (PS3.18 10.6.3.3.1),
// so a withheld instance is absent on every route and leaves no trace in a count.
//
// The attributes, not the verdicts, are cached (they are the PACS's facts, shared by every project: the key
// is the study and the attributes asked), for as long as the study facts of project-view.ts. Fail closed:
// a census that cannot be read fails the request; nothing is shown without one. A policy that is not
// `active` needs no census at all, and none is asked for.
import { tagForAttributeId } from '../dicom/dictionary.ts';
import type { JsonDataset } from '../dicom/json-model.ts';
import { tagToHex } from '../dicom/tag.ts';
import { TAG } from '../dicom/tags.ts';
import { ocrMayRedact, type AttributeReader, type PixelPolicy, type PixelVerdict, type WithholdReason } from '../deid/pixel-policy.ts';
import { PIXEL_TAG } from '../pixel/geometry.ts';
import { boundedCache, singleFlightCache } from '../store/cached-store.ts';
import { UnknownResourceError, UpstreamUnusableError } from './errors.ts';
import { jsonArrayItems } from './json-array-stream.ts';
import { encodeSegment } from './routes.ts';
import type { UpstreamRequest, UpstreamResponse } from './upstream.ts';

/** A keyword of PS3.6 as its tag, resolved once (TAG in dicom/tags.ts names only what dicom/ itself uses). */
function tagOf(keyword: string): number {
  const tag = tagForAttributeId(keyword);
  if (tag === undefined) throw new Error(`unknown keyword ${keyword}`);
  return tag;
}

/** PS3.18 10.6.3.3.1: the attributes a search answer derives from the instances below it; recomputed here. */
export const DERIVED = Object.freeze({
  ModalitiesInStudy: tagOf('ModalitiesInStudy'),
  SOPClassesInStudy: tagOf('SOPClassesInStudy'),
  NumberOfStudyRelatedSeries: tagOf('NumberOfStudyRelatedSeries'),
  NumberOfStudyRelatedInstances: tagOf('NumberOfStudyRelatedInstances'),
  NumberOfSeriesRelatedInstances: tagOf('NumberOfSeriesRelatedInstances'),
});
export const DERIVED_TAGS: ReadonlySet<number> = new Set(Object.values(DERIVED));

const STUDY_UID = TAG.StudyInstanceUID;
const SERIES_UID = TAG.SeriesInstanceUID;
const SOP_UID = TAG.SOPInstanceUID;
const MODALITY = tagOf('Modality');
/**
 * Asked of every instance whatever the policy reads: where it lies, what it is (the derived attributes),
 * and the geometry of its frames (PS3.3 C.7.6.3), so the frames route can redact without another request.
 */
const ALWAYS = Object.freeze([
  STUDY_UID,
  SERIES_UID,
  SOP_UID,
  TAG.SOPClassUID,
  MODALITY,
  ...Object.entries(PIXEL_TAG)
    .filter(([keyword]) => !keyword.startsWith('ExtendedOffsetTable') && keyword !== 'PixelData')
    .map(([, tag]) => tag),
]);
/** Instances per upstream page of a census (limit/offset, PS3.18 8.3.4.4): a PACS may cap an answer silently. */
export const CENSUS_PAGE = 1_000;
/** Pages a census reads at most (readCensus). */
export const CENSUS_MAX_PAGES = 50;
/** Studies whose census is read at once for one page of search results. */
const CENSUS_CONCURRENCY = 4;
/** Instances whose own metadata attributes are kept (instanceAttributes), and for how long at most. */
const MAX_CACHED_INSTANCES = 10_000;
const INSTANCE_TTL_SECONDS = 30;
/** Studies whose census is kept (each a few hundred bytes per instance). */
const MAX_CACHED_STUDIES = 2_000;

/** One instance as the census saw it: where it lies and the attributes asked, read as the policy reads them. */
export interface CensusInstance {
  readonly series: string;
  readonly sop: string;
  readonly read: AttributeReader;
}

/** An upstream request within the caller's lifetime (stream-lifetime.ts `send`). */
export type CensusSend = (request: Omit<UpstreamRequest, 'signal'>) => Promise<UpstreamResponse>;

/** The shared, cached reader of censuses (one per gateway: project-view.ts). */
export interface CensusSource {
  /**
   * Every instance the PACS lists under the study, with `tags` and the always-asked attributes.
   * `fresh`: read again even if cached (an instance the cached census does not list).
   */
  instancesOf(studyUid: string, tags: readonly number[], send: CensusSend, options?: { fresh?: boolean }): Promise<readonly CensusInstance[]>;
  /**
   * The instance's own attributes (`tags` and the always-asked ones) from its metadata (PS3.18
   * 10.4.1.1.2), not from a search: a PACS may leave Burned In Annotation, Image Type … out of a search
   * answer even when asked, never out of the metadata. Asked before the pixels of one instance are
   * relayed; cached briefly. 404 from the PACS: UnknownResourceError; anything else unusable: refused.
   */
  instanceAttributes(instance: InstanceUids, tags: readonly number[], send: CensusSend): Promise<AttributeReader>;
}

/** Original UIDs of one instance. */
export interface InstanceUids {
  readonly study: string;
  readonly series: string;
  readonly sop: string;
}

export function censusSource(options: { maxJsonDatasetBytes: number; ttlSeconds?: number; maxStudies?: number }): CensusSource {
  // Single flight: the researchers who open one cold study together share one census (issue 20: eight
  // at once each asked the PACS for the whole study's instance list).
  const cache = singleFlightCache<readonly CensusInstance[]>({ ttlSeconds: options.ttlSeconds ?? 60, maxKeys: options.maxStudies ?? MAX_CACHED_STUDIES });
  const instanceCache = boundedCache<AttributeReader>({ ttlSeconds: Math.min(options.ttlSeconds ?? 60, INSTANCE_TTL_SECONDS), maxKeys: MAX_CACHED_INSTANCES });
  return {
    async instanceAttributes(instance, tags, send) {
      const asked = [...new Set([...ALWAYS, ...tags])].sort((a, b) => a - b);
      const hexes = asked.map(tagToHex);
      const key = `${instance.study}\u0000${instance.series}\u0000${instance.sop}\u0000${hexes.join(',')}`;
      const hit = instanceCache.get(key);
      if (hit) return hit;
      const read = await readInstanceAttributes(instance, hexes, send, options.maxJsonDatasetBytes);
      instanceCache.set(key, read);
      return read;
    },
    async instancesOf(studyUid, tags, send, { fresh = false } = {}) {
      const asked = [...new Set([...ALWAYS, ...tags])].sort((a, b) => a - b);
      const key = `${studyUid}\u0000${asked.map(tagToHex).join(',')}`;
      return (await cache.get(key, () => readCensus(studyUid, asked, send, options.maxJsonDatasetBytes), { fresh })).value;
    },
  };
}

/**
 * The pages of a census (limit/offset, PS3.18 8.3.4.4), until a page is empty or adds no instance not
 * seen (a PACS that ignores offset repeats its first page), at most CENSUS_MAX_PAGES. A short page does
 * not end it: a PACS may cap an answer below the limit asked, silently; the next offset is what was
 * received. A census cut short by the page cap is safe: an instance no census lists is withheld on every
 * route (wado.ts, qido.ts).
 */
async function readCensus(studyUid: string, asked: readonly number[], send: CensusSend, maxJsonDatasetBytes: number): Promise<CensusInstance[]> {
  const out: CensusInstance[] = [];
  const seen = new Set<string>();
  const hexes = asked.map(tagToHex);
  let offset = 0;
  for (let page = 0; page < CENSUS_MAX_PAGES; page++) {
    const params = new URLSearchParams();
    for (const hex of hexes) params.append('includefield', hex);
    params.set('limit', String(CENSUS_PAGE));
    params.set('offset', String(offset));
    const res = await send({ method: 'GET', pathAndQuery: `/studies/${encodeSegment(studyUid)}/instances?${params}`, headers: { accept: 'application/dicom+json' } });
    let count = 0;
    let added = 0;
    if (res.statusCode === 204 || res.statusCode === 404) res.body.resume();
    else if (res.statusCode !== 200) {
      res.body.resume();
      throw new UpstreamUnusableError(`pixel census: status ${res.statusCode}`);
    } else {
      for await (const item of jsonArrayItems(res.body, maxJsonDatasetBytes)) {
        count++;
        const instance = censusInstance(item as JsonDataset, studyUid, hexes);
        if (seen.has(instance.sop)) continue; // a PACS that pages inconsistently repeats; never counted twice
        seen.add(instance.sop);
        out.push(instance);
        added++;
      }
    }
    if (count === 0 || added === 0) return out;
    offset += count;
  }
  return out;
}

async function readInstanceAttributes(instance: InstanceUids, hexes: readonly string[], send: CensusSend, maxJsonDatasetBytes: number): Promise<AttributeReader> {
  const path = `/studies/${encodeSegment(instance.study)}/series/${encodeSegment(instance.series)}/instances/${encodeSegment(instance.sop)}/metadata`;
  const res = await send({ method: 'GET', pathAndQuery: path, headers: { accept: 'application/dicom+json' } });
  if (res.statusCode !== 200) {
    res.body.resume();
    if (res.statusCode === 404) throw new UnknownResourceError('instance');
    throw new UpstreamUnusableError(`instance metadata: status ${res.statusCode}`);
  }
  let found: AttributeReader | undefined;
  for await (const item of jsonArrayItems(res.body, maxJsonDatasetBytes)) {
    const dataset = item as JsonDataset;
    const text = (tag: number) => dataset[tagToHex(tag)]?.Value?.[0];
    const study = text(STUDY_UID);
    // Fail closed: the metadata of another instance (or study) than the one asked never decides.
    if (text(SOP_UID) !== instance.sop || text(SERIES_UID) !== instance.series || (study !== undefined && study !== instance.study)) {
      throw new UpstreamUnusableError('instance metadata: not the instance asked');
    }
    if (found !== undefined) throw new UpstreamUnusableError('instance metadata: more than one dataset');
    found = keptReader(dataset, hexes);
  }
  if (found === undefined) throw new UpstreamUnusableError('instance metadata: empty');
  return found;
}

/** Float and Double Float Pixel Data (PS3.3 C.7.6.3): present (a BulkDataURI, no Value) counts as present. */
const FLOAT_PIXEL_KEYS: ReadonlySet<string> = new Set(['7FE00008', '7FE00009']);

/** Only what was asked is kept (a PACS may answer more): smaller, and the policy reads nothing else. */
function keptReader(dataset: JsonDataset, hexes: readonly string[]): AttributeReader {
  const kept = new Map<number, readonly unknown[]>();
  for (const hex of hexes) {
    const element = dataset[hex];
    const value = element?.Value;
    if (Array.isArray(value)) kept.set(Number.parseInt(hex, 16), Object.freeze([...value]));
    else if (element !== undefined && FLOAT_PIXEL_KEYS.has(hex)) kept.set(Number.parseInt(hex, 16), Object.freeze([]));
  }
  return (tag: number) => kept.get(tag);
}

/** Fail closed: an instance the census cannot place (no UIDs, another study) makes the census unusable. */
function censusInstance(dataset: JsonDataset, studyUid: string, hexes: readonly string[]): CensusInstance {
  const text = (tag: number) => {
    const v = dataset[tagToHex(tag)]?.Value?.[0];
    return typeof v === 'string' && v !== '' ? v : undefined;
  };
  const series = text(SERIES_UID);
  const sop = text(SOP_UID);
  const study = text(STUDY_UID);
  if (series === undefined || sop === undefined) throw new UpstreamUnusableError('pixel census: an instance without its UIDs');
  if (study !== undefined && study !== studyUid) throw new UpstreamUnusableError('pixel census: an instance of another study');
  return Object.freeze({ series, sop, read: keptReader(dataset, hexes) });
}

/** A dataset's attributes read as the policy reads them (top level only, PS3.18 F.2 Value arrays). */
export function jsonReader(dataset: JsonDataset): AttributeReader {
  return (tag) => {
    const value = dataset[tagToHex(tag)]?.Value;
    return Array.isArray(value) ? value : undefined;
  };
}

/** What remains of a series or study for the researcher, and what was taken out. */
export interface PixelSummary {
  /**
   * Instances shown (kept, redacted, or OCR-eligible). An OCR-eligible instance (a withhold OCR may replace,
   * issue 18) is counted as shown without OCR being run during a search: retrieval redacts it, or, if OCR
   * fails then, withholds it (a count may thus be one too many; it never shows an identity value).
   */
  readonly shown: number;
  readonly redacted: number;
  /** Instances whose verdict is a withhold OCR may replace (counted in `shown`, not in `withheld`). */
  readonly ocrEligible: number;
  readonly withheld: number;
  /** Withheld instances by reason. */
  readonly withheldBy: ReadonlyMap<WithholdReason, number>;
  /** Series with at least one instance shown (a study's). */
  readonly seriesShown: number;
  /** PS3.18 10.6.3.3.1 ModalitiesInStudy / SOPClassesInStudy of the instances shown, in first-seen order. */
  readonly modalities: readonly string[];
  readonly sopClasses: readonly string[];
}

/**
 * One study's census under one project's policy, for one request: the verdict of every instance it
 * lists, and the summaries. Verdicts are computed once per request.
 */
export interface StudyPixels {
  /** undefined: the census does not list the instance (stored since, or not in this study). */
  verdictOf(series: string, sop: string): PixelVerdict | undefined;
  /** The attributes the census read of an instance (frame geometry), or undefined. */
  readerOf(series: string, sop: string): AttributeReader | undefined;
  seriesSummary(series: string): PixelSummary | undefined;
  readonly study: PixelSummary;
  /** Issue 18: the instances (of one series, or of the study) whose verdict is a withhold OCR may replace. */
  ocrCandidates(series?: string): readonly CensusInstance[];
}

export function studyPixels(policy: PixelPolicy, instances: readonly CensusInstance[]): StudyPixels {
  const byKey = new Map<string, { instance: CensusInstance; verdict: PixelVerdict }>();
  const series = new Map<string, Tally>();
  const study = new Tally();
  for (const instance of instances) {
    const verdict = policy.verdict(instance.read);
    byKey.set(`${instance.series}/${instance.sop}`, { instance, verdict });
    const s = series.get(instance.series) ?? new Tally();
    series.set(instance.series, s);
    s.add(instance, verdict);
    study.add(instance, verdict);
  }
  const summaries = new Map([...series].map(([uid, tally]) => [uid, tally.summary()]));
  for (const s of summaries.values()) if (s.shown > 0) study.seriesShown++;
  return {
    verdictOf: (s, sop) => byKey.get(`${s}/${sop}`)?.verdict,
    readerOf: (s, sop) => byKey.get(`${s}/${sop}`)?.instance.read,
    seriesSummary: (uid) => summaries.get(uid),
    study: study.summary(),
    ocrCandidates: (s) => [...byKey.values()].filter((e) => ocrMayRedact(e.verdict) && (s === undefined || e.instance.series === s)).map((e) => e.instance),
  };
}

class Tally {
  shown = 0;
  redacted = 0;
  ocrEligible = 0;
  withheld = 0;
  seriesShown = 0;
  readonly withheldBy = new Map<WithholdReason, number>();
  readonly modalities = new Set<string>();
  readonly sopClasses = new Set<string>();
  add(instance: CensusInstance, verdict: PixelVerdict): void {
    if (ocrMayRedact(verdict)) this.ocrEligible++;
    else if (verdict.action === 'withhold') {
      this.withheld++;
      this.withheldBy.set(verdict.reason, (this.withheldBy.get(verdict.reason) ?? 0) + 1);
      return;
    }
    this.shown++;
    if (verdict.action === 'redact') this.redacted++;
    const modality = instance.read(MODALITY)?.[0];
    if (typeof modality === 'string' && modality !== '') this.modalities.add(modality);
    const sopClass = instance.read(TAG.SOPClassUID)?.[0];
    if (typeof sopClass === 'string' && sopClass !== '') this.sopClasses.add(sopClass);
  }
  summary(): PixelSummary {
    return {
      shown: this.shown,
      redacted: this.redacted,
      ocrEligible: this.ocrEligible,
      withheld: this.withheld,
      withheldBy: this.withheldBy,
      seriesShown: this.seriesShown,
      modalities: [...this.modalities],
      sopClasses: [...this.sopClasses],
    };
  }
}

/**
 * The derived attributes (PS3.18 10.6.3.3.1) of one search result, recomputed from the census where the
 * result holds them or `wanted` names them: a count or a modality of a withheld instance never shows.
 */
export function recomputeDerived(dataset: JsonDataset, pixels: StudyPixels, wanted: ReadonlySet<number>): void {
  const set = (tag: number, vr: string, value: Array<string | number>) => {
    const hex = tagToHex(tag);
    if (!(hex in dataset) && !wanted.has(tag)) return;
    dataset[hex] = value.length > 0 ? { vr, Value: value } : { vr };
  };
  const { study } = pixels;
  set(DERIVED.ModalitiesInStudy, 'CS', [...study.modalities]);
  set(DERIVED.SOPClassesInStudy, 'UI', [...study.sopClasses]);
  set(DERIVED.NumberOfStudyRelatedSeries, 'IS', [study.seriesShown]);
  set(DERIVED.NumberOfStudyRelatedInstances, 'IS', [study.shown]);
  const seriesUid = dataset[tagToHex(SERIES_UID)]?.Value?.[0];
  const series = typeof seriesUid === 'string' ? pixels.seriesSummary(seriesUid) : undefined;
  if (series) set(DERIVED.NumberOfSeriesRelatedInstances, 'IS', [series.shown]);
}

/** How a response's instances fared (the audit record and the metric; request-context.ts). */
export type PixelOutcome = 'withheld' | 'redacted';
/** `reason`: the WithholdReason, `rule` for a redaction, or `unlisted` (an instance no census lists). */
export type PixelObserver = (outcome: PixelOutcome, reason: string, count: number) => void;

/** Reads the censuses of several studies, a few at a time, for one request. */
export async function studiesPixels(
  source: CensusSource,
  policy: PixelPolicy,
  studyUids: Iterable<string>,
  send: CensusSend,
  known: Map<string, StudyPixels>,
): Promise<void> {
  const wanted = [...new Set(studyUids)].filter((uid) => !known.has(uid));
  for (let i = 0; i < wanted.length; i += CENSUS_CONCURRENCY) {
    const batch = wanted.slice(i, i + CENSUS_CONCURRENCY);
    const read = await Promise.all(batch.map((uid) => source.instancesOf(uid, policy.attributeTags, send)));
    for (const [j, uid] of batch.entries()) known.set(uid, studyPixels(policy, read[j] as readonly CensusInstance[]));
  }
}

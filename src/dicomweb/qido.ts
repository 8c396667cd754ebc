// PS3.18 10.6 Search (QIDO-RS) for a restricted role. The PACS is only ever asked what cannot reveal
// an identity: pseudonymous UIDs, Patient IDs and Accession Numbers are mapped back to originals
// through the store; attributes the profile keeps unchanged go upstream as written; date ranges are
// widened by the largest date shift; every other matching key is evaluated here, on the de-identified
// values, and never sent upstream — so a query on an original name cannot tell whether it exists.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createSession, deidentifyJson, type DicomJsonDataset, type DicomJsonElement } from '../deid/deidentify.ts';
import { lookup, tagForKeyword } from '../dicom/dictionary.ts';
import { parseTag, tagToHex } from '../dicom/tag.ts';
import { originalPath, originalUid, refuseUpstreamError, savingSession, uidPath, unusable, type DeidentifiedView, type ResourcePath } from './deidentified-view.ts';
import { BadRequestError, UnknownResourceError } from './errors.ts';
import { jsonArrayItems } from './json-array-stream.ts';
import { writeChunk } from './response-writer.ts';

export type QueryLevel = 'study' | 'series' | 'instance';

const PATIENT_ID = 0x00100020;
const ACCESSION_NUMBER = 0x00080050;
const RETRIEVE_URL = 0x00081190;
const STUDY_UID = '0020000D';
const SERIES_UID = '0020000E';
const SOP_UID = '00080018';
const UPSTREAM_PAGE = 200;
const MAX_LIMIT = 10_000;

interface Predicate {
  tag: number;
  vr: string;
  value: string;
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
  fuzzy: boolean;
  /** A key that maps to nothing the gateway issued: the answer is empty, and the PACS is not asked. */
  empty: boolean;
}

/** Resolves a QIDO attribute key (keyword or 8 hex digits, PS3.18 8.3.4.1). Sequence paths are refused. */
function resolveKey(key: string): { tag: number; vr: string } {
  const tag = /^[0-9A-Fa-f]{8}$/.test(key) ? parseTag(key) : tagForKeyword(key);
  if (tag === undefined) throw new BadRequestError('QIDO_BAD_KEY', 'a query key is neither a keyword nor a tag');
  const vr = lookup(tag)?.vrs[0] ?? 'UN';
  return { tag, vr };
}

/** Plans the upstream query and the gateway-side predicates. Pure but for the store look-ups. */
async function plan(view: DeidentifiedView, query: string): Promise<PlannedQuery> {
  const params = new URLSearchParams(query);
  const upstreamParams = new URLSearchParams();
  const gatewaySide: Predicate[] = [];
  let limit: number | undefined;
  let offset = 0;
  let fuzzy = false;
  let empty = false;
  const probe = createSession(view.policy);
  probe.beginDataset('probe');

  for (const [key, value] of params) {
    if (key === 'limit' || key === 'offset') {
      if (!/^[0-9]{1,9}$/.test(value)) throw new BadRequestError('QIDO_BAD_PARAMETER', `${key} must be a non-negative integer`);
      if (key === 'limit') limit = Math.min(Number(value), MAX_LIMIT);
      else offset = Number(value);
      continue;
    }
    if (key === 'fuzzymatching') {
      if (value !== 'true' && value !== 'false') throw new BadRequestError('QIDO_BAD_PARAMETER', 'fuzzymatching must be true or false');
      fuzzy = value === 'true';
      continue;
    }
    if (key === 'includefield') {
      for (const field of value.split(',')) {
        if (field === 'all') upstreamParams.append('includefield', 'all');
        else upstreamParams.append('includefield', tagToHex(resolveKey(field).tag));
      }
      continue;
    }
    const { tag, vr } = resolveKey(key);
    if (value === '') continue; // universal matching
    const decision = probe.decide({ tag, vr, path: [] }, [value]);
    if (decision.op === 'keep') {
      upstreamParams.set(tagToHex(tag), value); // the de-identified value is the original one
      continue;
    }
    if (vr === 'UI') {
      // UID list matching (PS3.4 C.2.2.2.2): each pseudonym back to its original; unknown ones drop out.
      const originals: string[] = [];
      for (const uid of value.split(/[,\\]/)) {
        try {
          originals.push(await originalUid(view, uid));
        } catch (error) {
          if (!(error instanceof UnknownResourceError)) throw error;
        }
      }
      if (originals.length === 0) empty = true;
      else upstreamParams.set(tagToHex(tag), originals.join(','));
      continue;
    }
    if ((tag === PATIENT_ID || tag === ACCESSION_NUMBER) && !/[*?\\]/.test(value)) {
      const kind = tag === PATIENT_ID ? 'patientId' : 'accessionNumber';
      const original = await view.store.originalOf(kind, value);
      if (original === undefined) empty = true;
      else upstreamParams.set(tagToHex(tag), original);
      continue;
    }
    gatewaySide.push({ tag, vr, value });
    upstreamParams.append('includefield', tagToHex(tag));
    if ((vr === 'DA' || vr === 'DT') && view.policy.options.retainLongitudinalTemporalModifiedDates) {
      const widened = widenRange(value, vr, view.policy.maxShiftDays);
      if (widened) upstreamParams.set(tagToHex(tag), widened);
    }
  }
  if (fuzzy) upstreamParams.set('fuzzymatching', 'true');
  return { upstreamParams, gatewaySide, limit, offset, fuzzy, empty };
}

/** PS3.4 C.2.2.2.5 range matching, widened by the date shift so the PACS returns a superset. */
function widenRange(value: string, vr: 'DA' | 'DT', days: number): string | undefined {
  const [from, to] = value.includes('-') ? value.split('-', 2) : [value, value];
  const shift = (d: string | undefined, sign: number) => {
    if (!d) return '';
    const m = /^(\d{4})(\d{2})(\d{2})/.exec(d);
    if (!m) return undefined;
    const t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) + sign * days * 86_400_000;
    return new Date(t).toISOString().slice(0, 10).replace(/-/g, '');
  };
  const a = shift(from, -1);
  const b = shift(to, +1);
  if (a === undefined || b === undefined) return undefined;
  void vr;
  return `${a}-${b}`;
}

/** The values of one element as match strings (PN: each component group). */
function valuesOf(element: DicomJsonElement | undefined): string[] {
  if (!element?.Value) return [];
  return element.Value.flatMap((v) => {
    if (typeof v === 'string' || typeof v === 'number') return [String(v)];
    if (v && typeof v === 'object') {
      return ['Alphabetic', 'Ideographic', 'Phonetic'].map((k) => (v as Record<string, unknown>)[k]).filter((s): s is string => typeof s === 'string');
    }
    return [];
  });
}

const escapeRegex = (s: string) => s.replace(/[.+^${}()|[\]\\]/g, '\\$&');

/** PS3.4 C.2.2.2: single value, wild card, range and list matching, on de-identified values. */
function matches(dataset: DicomJsonDataset, p: Predicate, fuzzy: boolean): boolean {
  const values = valuesOf(dataset[tagToHex(p.tag)]);
  if (values.length === 0) return false;
  if (p.vr === 'DA' || p.vr === 'DT' || p.vr === 'TM') {
    if (p.value.includes('-')) {
      const [from = '', to = ''] = p.value.split('-', 2);
      return values.some((v) => (!from || v >= from) && (!to || v.slice(0, to.length) <= to));
    }
    return values.some((v) => v.startsWith(p.value));
  }
  const caseInsensitive = p.vr === 'PN' || fuzzy;
  const alternatives = p.value.split('\\');
  return alternatives.some((alt) => {
    const pattern = `^${escapeRegex(alt).replace(/\*/g, '.*').replace(/\?/g, '.')}${p.vr === 'PN' && fuzzy ? '' : '$'}`;
    const re = new RegExp(pattern, caseInsensitive ? 'iu' : 'u');
    return values.some((v) => re.test(v.trim()));
  });
}

/** URL attributes are rebuilt from pseudonymous UIDs; the PACS's own URLs name originals. */
function fixUrls(dataset: DicomJsonDataset, level: QueryLevel, publicBase: string): DicomJsonDataset {
  for (const [key, element] of Object.entries(dataset)) {
    if (element.vr === 'UR') delete dataset[key];
  }
  const study = dataset[STUDY_UID]?.Value?.[0];
  const series = dataset[SERIES_UID]?.Value?.[0];
  const sop = dataset[SOP_UID]?.Value?.[0];
  let url: string | undefined;
  if (typeof study === 'string') {
    url = `${publicBase}/studies/${study}`;
    if (level !== 'study') url = typeof series === 'string' ? `${url}/series/${series}` : undefined;
    if (url && level === 'instance') url = typeof sop === 'string' ? `${url}/instances/${sop}` : undefined;
  }
  if (url) dataset[tagToHex(RETRIEVE_URL)] = { vr: 'UR', Value: [url] };
  return dataset;
}

const LEVEL_PATH: Record<QueryLevel, string> = { study: '/studies', series: '/series', instance: '/instances' };

export async function searchDeidentified(view: DeidentifiedView, _req: IncomingMessage, res: ServerResponse, r: SearchRequest) {
  const original = await originalPath(view, r.path);
  const q = await plan(view, r.query);
  const { session, flush, makeDurable } = savingSession(view);
  const finish = async (count: number) => {
    await makeDurable(); // PS3.15 pseudonyms the caller saw stay resolvable after any restart
    if (count === 0) {
      res.statusCode = 200;
      res.setHeader('content-type', 'application/dicom+json');
      res.end('[]');
    } else res.end(']');
  };
  if (q.empty) return finish(0);

  const base = `${uidPath(original)}${LEVEL_PATH[r.level]}`;
  const pageSize = q.gatewaySide.length === 0 ? undefined : UPSTREAM_PAGE;
  let upstreamOffset = pageSize === undefined ? q.offset : 0;
  let skipped = 0;
  let written = 0;
  try {
    for (;;) {
      const params = new URLSearchParams(q.upstreamParams);
      if (pageSize === undefined) {
        if (q.limit !== undefined) params.set('limit', String(q.limit));
        if (q.offset) params.set('offset', String(q.offset));
      } else {
        params.set('limit', String(pageSize));
        params.set('offset', String(upstreamOffset));
      }
      const text = params.toString();
      const upstreamRes = await view.upstream.send({
        method: 'GET',
        pathAndQuery: `${base}${text ? `?${text}` : ''}`,
        headers: { accept: 'application/dicom+json' },
      });
      if (upstreamRes.statusCode === 204) {
        upstreamRes.body.resume();
        break;
      }
      if (upstreamRes.statusCode >= 300) refuseUpstreamError(upstreamRes);
      let received = 0;
      for await (const item of jsonArrayItems(upstreamRes.body, view.maxJsonDatasetBytes)) {
        received++;
        const deidentified = fixUrls(deidentifyJson(session, item as DicomJsonDataset), r.level, r.publicBase);
        if (!q.gatewaySide.every((p) => matches(deidentified, p, q.fuzzy))) continue;
        if (pageSize !== undefined && skipped < q.offset) {
          skipped++;
          continue;
        }
        if (q.limit !== undefined && written >= q.limit) continue;
        await flush();
        if (written === 0) {
          res.statusCode = 200;
          res.setHeader('content-type', 'application/dicom+json');
        }
        await writeChunk(res, Buffer.from(`${written === 0 ? '[' : ','}${JSON.stringify(deidentified)}`));
        written++;
      }
      if (pageSize === undefined || received < pageSize) break;
      if (q.limit !== undefined && written >= q.limit) break;
      upstreamOffset += pageSize;
    }
  } catch (error) {
    throw unusable(error);
  }
  await finish(written);
}

// What a policy does per attribute, for the conformance statement (PS3.15 E.3.10 asks that retained
// private attributes be listed; the rest documents the profile). Derived by asking the real decision
// function about a sample value, so the listing cannot drift from what `decide` does.
import { createSession } from './deidentify.ts';
import type { DeidPolicy, Decision } from './deidentify.ts';
import { SAFE_PRIVATE_ATTRIBUTES, TABLE_E1_1 } from './profile-table.generated.ts';
import { lookup } from '../dicom/dictionary.ts';
import { parseTag } from './profile.ts';

export interface ConformanceRow {
  /** As printed in Table E.1-1, e.g. `(0010,0010)`, `(60xx,3000)`. */
  readonly tag: string;
  readonly keyword: string;
  readonly vr: string;
  /** The Basic Profile code of Table E.1-1. */
  readonly basic: string;
  /** Resolved action and where it came from (basic, an option, an override). */
  readonly action: string;
  readonly source: string;
  /** What happens to a value: keep, remove, empty, dummy "…", keyed UID, keyed pseudonym, date shift, clean items. */
  readonly effect: string;
}

const SAMPLE: Readonly<Record<string, unknown>> = {
  AE: 'SAMPLE', AS: '042Y', AT: '00100010', CS: 'SAMPLE', DA: '20000615', DT: '20000615120000', DS: 1, FD: 1, FL: 1,
  IS: 1, LO: 'SAMPLE', LT: 'SAMPLE', PN: { Alphabetic: 'SAMPLE^NAME' }, SH: 'SAMPLE', SL: 1, SS: 1, ST: 'SAMPLE', SV: 1,
  TM: '120000', UC: 'SAMPLE', UI: '1.2.3.4', UL: 1, UR: 'SAMPLE', US: 1, UT: 'SAMPLE', UV: 1,
};

function concreteTag(text: string): number {
  return parseTag(text.replace('(50xx,xxxx)', '(5000,3000)').replace('60xx', '6000')) ?? 0;
}

function describe(decision: Decision, vr: string, sample: unknown): string {
  switch (decision.op) {
    case 'keep':
      return 'keep';
    case 'remove':
      return 'remove';
    case 'recurse':
      return 'keep, profile applied to the items';
    case 'replace': {
      const [first] = decision.value;
      if (decision.value.length === 0) return vr === 'SQ' ? 'empty (zero items)' : 'empty (zero length)';
      if (vr === 'UI') return 'keyed UID 2.25.<HMAC>';
      if ((vr === 'DA' || vr === 'DT') && typeof first === 'string' && first !== sample && !first.startsWith('1900')) {
        return 'shifted by the patient day offset';
      }
      const text = JSON.stringify(first);
      if (/ANON\^|"[A-Z2-7]{16}"/.test(text)) return 'keyed pseudonym';
      return `dummy ${text}`;
    }
  }
}

/** One row per Table E.1-1 row (exact and repeating), plus the private rule, under `policy`. */
export function describeProfile(policy: DeidPolicy): ConformanceRow[] {
  const session = createSession(policy, { fresh: false });
  session.beginDataset('SAMPLE');
  const rows: ConformanceRow[] = [];
  for (const [text, kind, basic, , keyword] of TABLE_E1_1) {
    if (kind === 'private') continue;
    const tag = concreteTag(text);
    const vr = lookup(tag)?.vrs.at(-1) ?? 'OB'; // "OB or OW": the last; curve data has none
    const rule = policy.profile.ruleFor(tag);
    const sample = SAMPLE[vr];
    const decision = session.decide({ tag, vr, path: [] }, sample === undefined ? undefined : [sample]);
    rows.push({ tag: text, keyword, vr, basic, action: rule.action, source: rule.source, effect: describe(decision, vr, sample) });
  }
  const safe = policy.options.retainSafePrivate;
  rows.push({
    tag: '(gggg,eeee) where gggg is odd',
    keyword: '',
    vr: '',
    basic: 'X',
    action: safe ? 'C' : 'X',
    source: safe ? 'retainSafePrivate' : 'basic',
    effect: safe
      ? `keep the ${SAFE_PRIVATE_ATTRIBUTES.length} attributes of Table E.3.10-1 (matched by creator and offset) and their creators; remove the rest`
      : 'remove',
  });
  return rows;
}

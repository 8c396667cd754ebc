// Issue 17, part 2: a generated corpus of study/series descriptions and SR texts with identities embedded
// the ways real ones are (names in any order, case and accent, IDs with and without labels, dates in many
// spellings, telephone numbers, e-mail addresses), beside clinical words and numbers that must stay.
// Measured: recall of identity tokens removed (goal 1.0) and retention of clinical tokens (goal ≥ 0.95),
// with and without Modified Dates. Seeded: the same corpus every run.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cleanText, collectIdentities, jsonIdentitySource, TEXT_CLEAN_MARKER } from '../../../src/deid/text-clean.ts';
import type { JsonDataset } from '../../../src/dicom/json-model.ts';
import { prng } from '../../helpers/prng.ts';


const FAMILY = ['Müller', 'Łukaszewicz', 'Nguyễn', "O'Brien", 'van der Berg', 'Al-Sayed', 'Smith-Jones', 'García', 'Kowalczyk', 'Dubois', 'Østergaard', 'Fitzgerald', 'Okonkwo', 'Svensson', 'Papadopoulos', 'Lefèvre', 'Zhang', 'Li', 'Ng', 'Brontë'];
const GIVEN = ['Hans-Jürgen', 'José', 'Zoë', 'François', 'Siobhan', 'Aleksandra', 'Björn', 'Chiara', 'Mateus', 'Ingrid', 'Kwame', 'Renée', 'Dmitri', 'Ayşe', 'Thibault'];
const JAPANESE: readonly (readonly [string, string, string, string])[] = [
  ['Yamada', 'Tarou', '山田', '太郎'],
  ['Tanaka', 'Hanako', '田中', '花子'],
  ['Suzuki', 'Ichiro', '鈴木', '一郎'],
];
const INSTITUTIONS = ["St. Mary's General Hospital", 'Klinikum Nordstadt', 'Riverside Imaging Center', 'Hôpital Saint-Éloi'];
const CLINICAL = [
  'AX', 'T1', 'T2', 'MPRAGE', 'POST', 'PRE', 'FLAIR', 'DWI', 'b1000', 'ADC', 'SWI', 'TOF', 'CT', 'HEAD', 'CHEST', 'ABDOMEN', 'PELVIS', 'W/O', 'CONTRAST',
  'sagittal', 'coronal', 'axial', 'lesion', 'frontal', 'lobe', 'enhancement', 'no', 'acute', 'findings', 'mass', 'effect', 'left', 'right', 'mild',
  'stenosis', 'nodule', 'ROI', 'follow-up', 'protocol', 'routine', 'brain', 'spine', 'lumbar', 'cervical', 'knee', 'shoulder', 'angio', 'perfusion',
  '3.0T', '1.5T', '5mm', '120kV', '12', 'mm', '2.5', 'cm', 'x', '512', 'slice', 'series', 'phase', 'venous', 'arterial', 'portal', 'delayed',
  'C5-C6', 'L4/L5', '10:32', 'b=800', '3/4', 'DLP', '450', 'mGy', 'grade', '2', 'week', "Crohn's", 'Hodgkin', 'T2*', 'x3', '5x5x3', 'PA/LAT',
  '#2', '2/3', 'CTDIvol', '12.4', 'BI-RADS', '4A', 'TI-RADS', 'PI-RADS', 'v2.1', 'Gd', '0.1', 'mmol/kg', '(1/2)', '100%', 'HU', '-850', 'ECG-gated',
];

interface Embedded {
  /** The text as written into the corpus. */
  readonly form: string;
  /** Identity (must go) or clinical (must stay). */
  readonly identity: boolean;
  /** How an identity is checked: a name by each of its words, anything else as written. */
  readonly kind?: 'name' | 'literal';
}

interface Sample {
  readonly dataset: JsonDataset;
  readonly vr: 'LO' | 'UT';
  readonly text: string;
  readonly parts: readonly Embedded[];
}

const pick = <T>(r: () => number, list: readonly T[]): T => list[Math.floor(r() * list.length)] as T;
const digits = (r: () => number, n: number): string => Array.from({ length: n }, (_, i) => String(Math.floor(r() * 10) || (i === 0 ? 1 : 0))).join('');
const pad2 = (n: number): string => String(n).padStart(2, '0');
const MONTH_NAMES = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const stripAccents = (s: string): string => s.normalize('NFKD').replace(/\p{M}/gu, '');

/** A date in one of the spellings real text uses. */
function dateForm(r: () => number, y: number, m: number, d: number): string {
  const mon = MONTH_NAMES[m - 1] as string;
  const forms = [
    `${y}${pad2(m)}${pad2(d)}`, `${y}-${pad2(m)}-${pad2(d)}`, `${pad2(d)}/${pad2(m)}/${y}`, `${m}/${d}/${y}`, `${d} ${mon.slice(0, 3)} ${y}`,
    `${mon} ${d}, ${y}`, `${pad2(d)}.${pad2(m)}.${String(y).slice(2)}`, `${d}-${mon.slice(0, 3).toUpperCase()}-${y}`, `${y}/${pad2(m)}/${pad2(d)}`,
  ];
  return pick(r, forms);
}

function nameForm(r: () => number, family: string, given: string): string[] {
  const forms: string[][] = [
    [`${given} ${family}`], [`${family}, ${given}`], [`${family.toUpperCase()} ${given.toUpperCase()}`], [`${given.toLowerCase()} ${family.toLowerCase()}`],
    [stripAccents(`${family} ${given}`)], [`Dr. ${family}`], [`${given[0]}. ${family}`], [family.replace(/ü/g, 'ue').replace(/ö/g, 'oe')],
  ];
  return pick(r, forms);
}

/** One sample: a dataset with its identities and a text holding some of them among clinical words. */
function makeSample(r: () => number, index: number): Sample {
  const japanese = index % 7 === 0 ? pick(r, JAPANESE) : undefined;
  const family = japanese ? japanese[0] : pick(r, FAMILY);
  const given = japanese ? japanese[1] : pick(r, GIVEN);
  const physicianFamily = pick(r, FAMILY.filter((f) => f !== family));
  const physicianGiven = pick(r, GIVEN.filter((g) => g !== given));
  const operator = pick(r, FAMILY.filter((f) => f !== family && f !== physicianFamily));
  const patientId = pick(r, [digits(r, 8), `AB-${digits(r, 6)}`, `MRN${digits(r, 5)}`, `${digits(r, 3)}-${digits(r, 3)}-${digits(r, 3)}`, `K${digits(r, 4)}X`]);
  const otherId = `OP${digits(r, 5)}`;
  const accession = pick(r, [`ACC${digits(r, 6)}`, digits(r, 10), `RAD-${digits(r, 4)}-${digits(r, 3)}`]);
  const birth = { y: 1930 + Math.floor(r() * 70), m: 1 + Math.floor(r() * 12), d: 1 + Math.floor(r() * 28) };
  const study = { y: 2015 + Math.floor(r() * 9), m: 1 + Math.floor(r() * 12), d: 1 + Math.floor(r() * 28) };
  const institution = pick(r, INSTITUTIONS);
  const phone = pick(r, [`+44 20 7946 ${digits(r, 4)}`, `(555) 010-${digits(r, 4)}`, `0171 ${digits(r, 7)}`, `+49 89 ${digits(r, 8)}`]);
  const email = `${stripAccents(given).toLowerCase().replace(/[^a-z]/g, '')}.${stripAccents(physicianFamily).toLowerCase().replace(/[^a-z]/g, '')}@example.org`;
  const dataset: JsonDataset = {
    '00100010': { vr: 'PN', Value: [japanese ? { Alphabetic: `${family}^${given}`, Ideographic: `${japanese[2]}^${japanese[3]}` } : { Alphabetic: `${family}^${given}` }] },
    '00100020': { vr: 'LO', Value: [patientId] },
    '00101002': { vr: 'SQ', Value: [{ '00100020': { vr: 'LO', Value: [otherId] } }] },
    '00080050': { vr: 'SH', Value: [accession] },
    '00100030': { vr: 'DA', Value: [`${birth.y}${pad2(birth.m)}${pad2(birth.d)}`] },
    '00080020': { vr: 'DA', Value: [`${study.y}${pad2(study.m)}${pad2(study.d)}`] },
    '00080080': { vr: 'LO', Value: [institution] },
    '00080090': { vr: 'PN', Value: [{ Alphabetic: `${physicianFamily}^${physicianGiven}^^Dr.` }] },
    '00081070': { vr: 'PN', Value: [{ Alphabetic: operator }] },
    '00102154': { vr: 'SH', Value: [phone] },
  };
  const long = index % 2 === 1;
  const pieces: Embedded[][] = [];
  const clinical = (n: number): Embedded[] => Array.from({ length: n }, () => ({ form: pick(r, CLINICAL), identity: false }));
  const idPiece = (): Embedded[] => {
    const choices: Embedded[][] = [
      nameForm(r, family, given).map((form) => ({ form, identity: true, kind: 'name' as const })),
      nameForm(r, physicianFamily, physicianGiven).map((form) => ({ form, identity: true, kind: 'name' as const })),
      [{ form: operator.toUpperCase(), identity: true, kind: 'name' }],
      [{ form: patientId, identity: true }],
      [{ form: `MRN: ${digits(r, 7)}`, identity: true }],
      [{ form: `ID#${patientId.replace(/-/g, '')}`, identity: true }],
      [{ form: otherId.toLowerCase(), identity: true }],
      [{ form: accession, identity: true }],
      [{ form: dateForm(r, birth.y, birth.m, birth.d), identity: true }],
      [{ form: dateForm(r, study.y, study.m, study.d), identity: true }],
      [{ form: phone, identity: true }],
      [{ form: email, identity: true }],
      [{ form: institution, identity: true }],
    ];
    if (japanese) choices.push([{ form: `${japanese[2]}${japanese[3]}`, identity: true }], [{ form: `${japanese[0].toUpperCase()} ${japanese[1]}`, identity: true, kind: 'name' }]);
    return pick(r, choices);
  };
  const segments = long ? 6 : 2;
  for (let i = 0; i < segments; i++) {
    pieces.push(clinical(long ? 3 : 1 + Math.floor(r() * 2)));
    pieces.push(idPiece());
  }
  pieces.push(clinical(long ? 3 : 1));
  const parts = pieces.flat();
  const text = parts.map((p) => p.form).join(' ');
  return { dataset, vr: long ? 'UT' : 'LO', text, parts };
}

/** Folded for comparison as the cleaner folds (case, accents): identity forms must not survive even so. */
const folded = (s: string): string => stripAccents(s).toLowerCase().replace(/ø/g, 'o').replace(/ł/g, 'l');
const wordsOf = (s: string): string[] => folded(s).split(/[^\p{L}\p{N}]+/u).filter((w) => w !== '');
/** Not names: titles and particles a name form may carry. */
const NOT_NAMES = new Set(['dr', 'van', 'der']);

/**
 * Whether an identity still occurs in `out`: a name if any of its words of 2 or more letters does (as a
 * word); anything else if its folded form does (a substring), or its letters and digits in a row do.
 */
function survives(p: Embedded, out: string): boolean {
  if (p.kind === 'name') {
    const words = new Set(wordsOf(out));
    return wordsOf(p.form).some((w) => w.length >= 2 && !NOT_NAMES.has(w) && words.has(w));
  }
  const alnum = (s: string): string => folded(s).replace(/[^\p{L}\p{N}]/gu, '');
  return folded(out).includes(folded(p.form)) || alnum(out).includes(alnum(p.form));
}

function measure(samples: readonly Sample[], shiftDays: number | undefined): { recall: number; retention: number; missed: string[]; lost: string[] } {
  let identities = 0;
  let removed = 0;
  let clinical = 0;
  let kept = 0;
  const missed: string[] = [];
  const lost: string[] = [];
  for (const s of samples) {
    const set = collectIdentities(jsonIdentitySource(s.dataset), shiftDays === undefined ? {} : { fixedDate: (tag) => tag === 0x00100030 });
    const out = cleanText(s.text, set, shiftDays === undefined ? { vr: s.vr } : { vr: s.vr, shiftDays });
    const outTokens = new Set(out.split(/\s+/));
    for (const p of s.parts) {
      if (p.identity) {
        identities++;
        if (!survives(p, out)) removed++;
        else missed.push(`${p.form} | ${s.text} -> ${out}`);
      } else {
        clinical++;
        if (outTokens.has(p.form) || out.includes(` ${p.form} `) || out.startsWith(`${p.form} `) || out.endsWith(` ${p.form}`)) kept++;
        else lost.push(`${p.form} | ${s.text} -> ${out}`);
      }
    }
  }
  return { recall: removed / identities, retention: kept / clinical, missed, lost };
}

const SAMPLES = Array.from({ length: 400 }, (_, i) => makeSample(prng(17_000 + i), i));

test('the generated corpus: every identity token is removed and at least 95% of clinical tokens are kept', (t) => {
  const plain = measure(SAMPLES, undefined);
  const shifted = measure(SAMPLES, -123);
  t.diagnostic(`recall ${plain.recall.toFixed(4)}, retention ${plain.retention.toFixed(4)} (dates removed)`);
  for (const l of plain.lost.slice(0, 5)) t.diagnostic(`lost: ${l}`);
  t.diagnostic(`recall ${shifted.recall.toFixed(4)}, retention ${shifted.retention.toFixed(4)} (Modified Dates: dates shifted)`);
  assert.deepEqual(plain.missed.slice(0, 10), [], 'identity tokens that survived');
  assert.deepEqual(shifted.missed.slice(0, 10), [], 'identity tokens that survived under Modified Dates');
  assert.equal(plain.recall, 1);
  assert.equal(shifted.recall, 1);
  assert.ok(plain.retention >= 0.95, `retention ${plain.retention}: ${plain.lost.slice(0, 10).join('\n')}`);
  assert.ok(shifted.retention >= 0.95, `retention ${shifted.retention}: ${shifted.lost.slice(0, 10).join('\n')}`);
  assert.ok(SAMPLES.some((s) => s.text.includes(TEXT_CLEAN_MARKER)) === false, 'the corpus does not hold the marker itself');
});

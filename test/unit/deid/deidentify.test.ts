import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import fc from 'fast-check';
import { createPolicy, createSession, deidentifyJson } from '../../../src/deid/deidentify.ts';
import type { DeidPolicyOptions, DicomJsonDataset, ElementRef } from '../../../src/deid/deidentify.ts';
import { DeidError, DeidPolicyError } from '../../../src/deid/errors.ts';

const secret = 'a-test-secret-of-enough-length!!';
const policy = (extra: Partial<DeidPolicyOptions> = {}) => createPolicy({ secret, ...extra });
const ALL_RETAIN = {
  retainSafePrivate: true, retainUIDs: true, retainDeviceIdentity: true, retainInstitutionIdentity: true,
  retainPatientCharacteristics: true, retainLongitudinalTemporalModifiedDates: true,
};

const UID = {
  study: '1.2.826.0.1.3680043.2.1125.1.33333',
  series: '1.2.826.0.1.3680043.2.1125.1.44444',
  sop: '1.2.826.0.1.3680043.2.1125.1.11111',
  referenced: '1.2.826.0.1.3680043.2.1125.1.22222',
  deep: '1.2.826.0.1.3680043.2.1125.1.55555',
  frame: '1.2.826.0.1.3680043.2.1125.1.66666',
};

/** A hand-built CT instance in DICOM JSON (PS3.18 F.2) with identity in many places. */
function sampleDataset(): DicomJsonDataset {
  return {
    '00080005': { vr: 'CS', Value: ['ISO_IR 192'] },
    '00080016': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.2'] },
    '00080018': { vr: 'UI', Value: [UID.sop] },
    '00080020': { vr: 'DA', Value: ['20200110'] },
    '00080030': { vr: 'TM', Value: ['093015'] },
    '00080050': { vr: 'SH', Value: ['ACC778899'] },
    '00080060': { vr: 'CS', Value: ['CT'] },
    '00080080': { vr: 'LO', Value: ['Saint Mercy Hospital'] },
    '00080090': { vr: 'PN', Value: [{ Alphabetic: 'Welby^Marcus' }] },
    '00080201': { vr: 'SH', Value: ['+0100'] },
    '00081030': { vr: 'LO', Value: ['CT head for Jane Roe'] },
    '00081140': {
      vr: 'SQ',
      Value: [{ '00081150': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.2'] }, '00081155': { vr: 'UI', Value: [UID.referenced] } }],
    },
    '00089999': { vr: 'LO', Value: ['Jane Roe unknown attribute'] },
    '00090010': { vr: 'LO', Value: ['ACME 1.0'] },
    '00091001': { vr: 'LO', Value: ['Jane Roe in a private block'] },
    '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Roe^Jane', Ideographic: 'ロエ^ジェーン' }] },
    '00100020': { vr: 'LO', Value: ['MRN-0042'] },
    '00100030': { vr: 'DA', Value: ['19700101'] },
    '00100040': { vr: 'CS', Value: ['F'] },
    '00101000': { vr: 'LO', Value: ['OLD-MRN-7', 'OLD-MRN-8'] },
    '00190010': { vr: 'LO', Value: ['GEMS_ACQU_01'] },
    '00191023': { vr: 'DS', Value: [1.375] },
    '00191005': { vr: 'LO', Value: ['Jane Roe under a safe creator'] },
    '00191099': { vr: 'LO', Value: ['Jane Roe unsafe offset'] },
    '00210010': { vr: 'LO', Value: ['SOME OTHER CREATOR'] },
    '00211023': { vr: 'DS', Value: [99] },
    '0020000D': { vr: 'UI', Value: [UID.study] },
    '0020000E': { vr: 'UI', Value: [UID.series] },
    '00200010': { vr: 'SH', Value: ['STUDY17'] },
    '00200052': { vr: 'UI', Value: [UID.frame] },
    '00400275': { vr: 'SQ', Value: [{ '00401001': { vr: 'SH', Value: ['RP-Jane-Roe'] } }] },
    '0040A730': { vr: 'SQ', Value: [{ '0040A160': { vr: 'UT', Value: ['Patient Jane Roe reports'] } }] },
    '52009229': {
      vr: 'SQ',
      Value: [{
        '00089124': {
          vr: 'SQ',
          Value: [{
            '00082112': {
              vr: 'SQ',
              Value: [{ '00081150': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.2'] }, '00081155': { vr: 'UI', Value: [UID.deep] } }],
            },
          }],
        },
      }],
    },
    '00880200': { vr: 'SQ', Value: [{ '7FE00010': { vr: 'OB', InlineBinary: 'AAAA' } }] },
    '7FE00010': { vr: 'OW', BulkDataURI: `https://pacs.invalid/studies/${UID.study}/series/${UID.series}/instances/${UID.sop}/bulk/7FE00010` },
    'FFFAFFFA': { vr: 'SQ', Value: [{ '04000120': { vr: 'OB', InlineBinary: 'AAAA' } }] },
  };
}

const IDENTITY = ['Roe', 'Jane', 'ロエ', 'MRN-0042', 'OLD-MRN', 'ACC778899', 'Mercy', 'Welby', '19700101', '20200110', '093015', 'STUDY17', 'RP-', '+0100',
  ...Object.values(UID).map((u) => u.slice(-5))];

const rewriteBulk = (uri: string): string => `/deid/bulk/${uri.length}`;

test('deidentifyJson under Basic leaves no original identity value anywhere in the JSON', () => {
  const session = createSession(policy());
  const out = JSON.stringify(deidentifyJson(session, sampleDataset(), { bulkDataURI: rewriteBulk }));
  for (const value of IDENTITY) assert.ok(!out.includes(value), `leaked ${value}`);
});

test('a viewer can still list and open the study: identity attributes stay present with pseudonyms or empty', () => {
  const out = deidentifyJson(policy(), sampleDataset());
  for (const key of ['00100010', '00100020', '00080020', '00080030', '0020000D', '0020000E', '00080018', '00080050', '00200010']) {
    assert.ok(out[key] !== undefined, key);
  }
  assert.match((out['00100010']!.Value![0] as { Alphabetic: string }).Alphabetic, /^ANON\^[A-Z2-7]{12}$/);
  assert.match(out['00100020']!.Value![0] as string, /^[A-Z2-7]{16}$/);
  assert.match(out['00080050']!.Value![0] as string, /^[A-Z2-7]{16}$/);
  assert.match(out['0020000D']!.Value![0] as string, /^2\.25\.\d{1,39}$/);
  assert.deepEqual(out['00080020'], { vr: 'DA' }); // Z: present, zero length
  assert.deepEqual(out['00200010'], { vr: 'SH' });
  assert.equal(out['00080080'], undefined); // X/Z/D, Type 3 in the CT Image IOD -> X (PS3.15 E.1.1)
  assert.equal(out['00080060']!.Value![0], 'CT'); // not in the table: kept
  assert.equal(out['00101000'], undefined); // OtherPatientIDs X
  assert.equal(out['00089999'], undefined); // in no dictionary: removed (Note 1)
  assert.equal(out['00880200'], undefined); // Icon Image Sequence (Note 11)
  assert.equal(out['FFFAFFFA'], undefined); // Digital Signatures (Note 8)
  assert.equal(out['00400275'], undefined);
  assert.deepEqual(out['0040A730'], { vr: 'SQ' }); // D on a sequence: zero items
  assert.equal(Object.keys(out).some((k) => /^00(09|19|21)/.test(k)), false); // private removed
  assert.equal(out['7FE00010']!.BulkDataURI, sampleDataset()['7FE00010']!.BulkDataURI); // kept, URI as is by default
});

test('UIDs in nested sequences at depth three are replaced consistently with the top level', () => {
  const session = createSession(policy());
  const out = deidentifyJson(session, sampleDataset());
  const deep = (out['52009229']!.Value![0] as DicomJsonDataset)['00089124']!.Value![0] as DicomJsonDataset;
  const item = deep['00082112']!.Value![0] as DicomJsonDataset;
  const pair = session.pairs().find((p) => p.original === UID.deep);
  assert.ok(pair !== undefined);
  assert.deepEqual(item['00081155'], { vr: 'UI', Value: [pair.pseudonym] });
  assert.deepEqual(item['00081150'], { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.2'] }); // SOP Class kept
  const ref: ElementRef = { tag: 0x00081155, vr: 'UI', path: [0x52009229, 0x00089124, 0x00082112] };
  const s2 = createSession(policy());
  s2.beginDataset('MRN-0042');
  assert.deepEqual(s2.decide(ref, [UID.deep]), { op: 'replace', value: [pair.pseudonym] });
});

test('the same secret gives identical output; another secret gives other UIDs', () => {
  const a = JSON.stringify(deidentifyJson(policy(), sampleDataset()));
  const b = JSON.stringify(deidentifyJson(policy(), sampleDataset()));
  const c = deidentifyJson(createPolicy({ secret: 'another-secret-of-enough-length!' }), sampleDataset());
  assert.equal(a, b);
  assert.notEqual(JSON.parse(a)['0020000D'].Value[0], c['0020000D']!.Value![0]);
});

test('fresh mode is consistent within one session and differs across sessions', () => {
  const p = policy({ pseudonymMode: 'fresh' });
  const s1 = createSession(p);
  const first = deidentifyJson(s1, sampleDataset());
  const again = deidentifyJson(s1, sampleDataset());
  const other = deidentifyJson(createSession(p), sampleDataset());
  assert.equal(first['0020000D']!.Value![0], again['0020000D']!.Value![0]);
  assert.notEqual(first['0020000D']!.Value![0], other['0020000D']!.Value![0]);
  assert.notEqual(first['00100020']!.Value![0], other['00100020']!.Value![0]);
  const deterministic = createSession(policy(), { fresh: false });
  assert.equal(deterministic.fresh, false);
});

test('every pseudonym made is returned as a pair for the caller to persist', () => {
  const session = createSession(policy());
  deidentifyJson(session, sampleDataset());
  const kinds = new Map(session.pairs().map((p) => [p.original, p.kind]));
  assert.equal(kinds.get(UID.study), 'uid');
  assert.equal(kinds.get(UID.referenced), undefined); // Referenced Image Sequence: X/Z/U*, Type 3 in the CT Image IOD -> X
  assert.equal(kinds.get(UID.deep), 'uid'); // Source Image Sequence in a functional group: U
  assert.equal(kinds.get('MRN-0042'), 'patientId');
  assert.equal(kinds.get('PatientID=MRN-0042'), 'patientName'); // the name's pseudonym stands for the patient
  assert.equal(kinds.get('ACC778899'), 'accessionNumber');
});

test('one patient, one name pseudonym, however a representation spells the name', () => {
  const nameOf = (out: DicomJsonDataset) => (out['00100010']!.Value![0] as { Alphabetic: string }).Alphabetic;
  const withName = (name: unknown, patientId?: string): DicomJsonDataset => {
    const ds = sampleDataset();
    ds['00100010'] = { vr: 'PN', Value: [name as string] };
    if (patientId === undefined) delete ds['00100020'];
    else ds['00100020'] = { vr: 'LO', Value: [patientId] };
    return ds;
  };
  // chrH32 as Orthanc's study-level QIDO (ISO_IR 100, characters lost), its /metadata, and as read from Part 10.
  const spellings = [
    { Alphabetic: '^', Ideographic: ';3ED^B@O:', Phonetic: '$d$^$@^$?$m$&' },
    { Alphabetic: 'ﾔﾏﾀﾞ^ﾀﾛｳ', Ideographic: ';3ED^B@O:', Phonetic: '$d$^$@^$?$m$&' },
    { Alphabetic: 'ﾔﾏﾀﾞ^ﾀﾛｳ', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' },
  ];
  const names = new Set(spellings.map((pn) => nameOf(deidentifyJson(policy(), withName(pn, 'H32EXAMPLE')))));
  assert.equal(names.size, 1);
  assert.match([...names][0]!, /^ANON\^[A-Z2-7]{12}$/);
  assert.notEqual(nameOf(deidentifyJson(policy(), withName(spellings[2], 'OTHER'))), [...names][0], 'another patient, another name');
  // Without a Patient ID: the name, normalised as PS3.5 6.2 allows, and nothing more.
  const noId = (pn: unknown) => nameOf(deidentifyJson(policy(), withName(pn)));
  assert.equal(noId('Doe^John^^='), noId(' Doe^John'));
  assert.notEqual(noId('Doe^John'), noId('DOE^JOHN'));
  assert.notEqual(noId('Doe^John'), nameOf(deidentifyJson(policy(), withName('Doe^John', 'P1'))));
  // An empty name stays empty: nothing is invented.
  assert.deepEqual(deidentifyJson(policy(), withName(null, 'P1'))['00100010'], { vr: 'PN', Value: [null] });
});

test('a PatientName inside a sequence item is keyed on its own name, never on the top-level Patient ID', () => {
  const session = createSession(policy());
  session.beginDataset('MRN-0042');
  const top = session.decide({ tag: 0x00100010, vr: 'PN', path: [] }, [{ Alphabetic: 'Someone^Else' }]);
  const nested = session.decide({ tag: 0x00100010, vr: 'PN', path: [0x0040a730] }, [{ Alphabetic: 'Someone^Else' }]);
  assert.equal(top.op, 'replace');
  assert.equal(nested.op, 'replace');
  assert.notDeepEqual(top, nested);
  const bases = session.pairs().filter((p) => p.kind === 'patientName').map((p) => p.original);
  assert.deepEqual(bases, ['PatientID=MRN-0042', 'PatientName=Someone^Else']);
});

test('Retain Safe Private keeps listed attributes by creator and offset, with their creators only', () => {
  const out = deidentifyJson(policy({ profile: { retainSafePrivate: true } }), sampleDataset());
  assert.deepEqual(out['00190010'], { vr: 'LO', Value: ['GEMS_ACQU_01'] });
  assert.deepEqual(out['00191023'], { vr: 'DS', Value: [1.375] });
  assert.equal(out['00191005'], undefined, 'offset 05 is not in Table E.3.10-1');
  assert.equal(out['00191099'], undefined);
  assert.equal(out['00211023'], undefined, 'same offset under another creator');
  assert.equal(out['00210010'], undefined);
  assert.equal(out['00090010'], undefined);
  assert.equal(out['00091001'], undefined);
});

test('key order and case change nothing: the same keys come out upper case, private creators found wherever they stand', () => {
  const p = policy({ profile: { retainSafePrivate: true } });
  const sorted = deidentifyJson(p, sampleDataset());
  const shuffled = Object.fromEntries(Object.entries(sampleDataset()).reverse().map(([k, v]) => [k.toLowerCase(), v])) as DicomJsonDataset;
  const out = deidentifyJson(p, shuffled);
  assert.equal(JSON.stringify(out), JSON.stringify(sorted));
  assert.ok(Object.keys(out).every((key) => key === key.toUpperCase()));
  assert.deepEqual(out['00191023'], { vr: 'DS', Value: [1.375] }, 'creator (0019,0010) read though it comes after its element');
  // Two blocks of one group: each element is judged by its own block's creator, asked once per block.
  const twoBlocks = deidentifyJson(p, {
    '00191123': { vr: 'DS', Value: ['2.5'] },
    '00191023': { vr: 'DS', Value: ['1.375'] },
    '00190011': { vr: 'LO', Value: ['SOMEONE ELSE'] },
    '00190010': { vr: 'LO', Value: ['GEMS_ACQU_01'] },
  });
  assert.deepEqual(twoBlocks['00191023'], { vr: 'DS', Value: ['1.375'] });
  assert.equal(twoBlocks['00191123'], undefined, 'offset 23 under an unlisted creator');
});

test('safe private attributes match whatever block the creator reserved', () => {
  const session = createSession(policy({ profile: { retainSafePrivate: true } }));
  session.beginDataset('P');
  const at = (tag: number, privateCreator?: string): ElementRef => ({ tag, vr: 'DS', path: [], ...(privateCreator ? { privateCreator } : {}) });
  assert.equal(session.decide(at(0x00194223, 'GEMS_ACQU_01'), ['1']).op, 'keep');
  assert.equal(session.decide(at(0x00194223, 'OTHER'), ['1']).op, 'remove');
  assert.equal(session.decide(at(0x00194223), ['1']).op, 'remove'); // creator unknown: fail closed
  assert.equal(session.decide({ tag: 0x00190042, vr: 'LO', path: [] }, ['GEMS_ACQU_01']).op, 'keep');
});

test('Basic plus every retain option keeps what the options name and shifts dates', () => {
  const session = createSession(policy({ profile: ALL_RETAIN }));
  const out = deidentifyJson(session, sampleDataset());
  assert.equal(out['0020000D']!.Value![0], UID.study); // Retain UIDs
  assert.equal(out['00080080']!.Value![0], 'Saint Mercy Hospital'); // Retain Institution Identity
  assert.equal(out['00100040']!.Value![0], 'F'); // Retain Patient Characteristics
  const studyDate = out['00080020']!.Value![0] as string;
  assert.match(studyDate, /^\d{8}$/);
  assert.notEqual(studyDate, '20200110');
  assert.equal(out['00080030']!.Value![0], '093015'); // TM unchanged
  assert.deepEqual(out['00080201'], { vr: 'SH', Value: ['+0000'] });
  assert.deepEqual(out['00100030'], { vr: 'DA' }); // PatientBirthDate has no option cell: Z
  assert.equal(out['00280303']!.Value![0], 'MODIFIED');
});

test('two studies of one patient keep their day interval under Modified Dates', () => {
  const p = policy({ profile: { retainLongitudinalTemporalModifiedDates: true } });
  const study = (date: string): string => {
    const ds = sampleDataset();
    ds['00080020'] = { vr: 'DA', Value: [date] };
    return deidentifyJson(p, ds)['00080020']!.Value![0] as string;
  };
  const a = study('20200110');
  const b = study('20200325');
  const ms = (d: string): number => Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8));
  assert.equal((ms(b) - ms(a)) / 86_400_000, 75);
});

test('Full Dates keeps dates and says UNMODIFIED', () => {
  const out = deidentifyJson(policy({ profile: { retainLongitudinalTemporalFullDates: true } }), sampleDataset());
  assert.equal(out['00080020']!.Value![0], '20200110');
  assert.equal(out['00280303']!.Value![0], 'UNMODIFIED');
});

test('attributesToAdd carries YES and the CID 7050 codes of the options in effect', () => {
  const session = createSession(policy({ profile: { retainUIDs: true, cleanDescriptors: true, retainLongitudinalTemporalModifiedDates: true } }));
  const added = session.attributesToAdd();
  assert.deepEqual(added['00120062'], { vr: 'CS', Value: ['YES'] });
  assert.equal(added['00120063']!.vr, 'LO');
  const items = added['00120064']!.Value as DicomJsonDataset[];
  assert.deepEqual(items.map((i) => i['00080100']!.Value![0]), ['113100', '113105', '113107', '113110']);
  assert.ok(items.every((i) => i['00080102']!.Value![0] === 'DCM'));
  assert.equal(items[0]!['00080104']!.Value![0], 'Basic Application Confidentiality Profile');
  assert.deepEqual(added['00280303'], { vr: 'CS', Value: ['MODIFIED'] });
  const basicOnly = createSession(policy()).attributesToAdd();
  assert.deepEqual((basicOnly['00120064']!.Value as DicomJsonDataset[]).map((i) => i['00080100']!.Value![0]), ['113100']);
  assert.deepEqual(basicOnly['00280303'], { vr: 'CS', Value: ['REMOVED'] });
});

test('decide gives the documented operation for each action and VR', () => {
  const session = createSession(policy({ profile: { cleanGraphics: true, cleanStructuredContent: true } }));
  session.beginDataset('P');
  const d = (tag: number, vr: string, value?: unknown[]) => session.decide({ tag, vr, path: [] }, value);
  assert.deepEqual(d(0x00100030, 'DA', ['19700101']), { op: 'replace', value: [] }); // Z
  assert.deepEqual(d(0x00081030, 'LO', ['x']), { op: 'remove' }); // X
  assert.deepEqual(d(0x00081140, 'SQ'), { op: 'recurse' }); // X/Z/U* -> U on SQ
  assert.deepEqual(d(0x00080060, 'CS', ['CT']), { op: 'keep' }); // dictionary
  assert.deepEqual(d(0x00080021, 'DA', ['20200101']), { op: 'replace', value: ['19000101'] }); // X/D -> D dummy
  assert.deepEqual(d(0x00081072, 'SQ'), { op: 'replace', value: [] }); // X/D on SQ: zero items
  assert.deepEqual(d(0x00420011, 'OB'), { op: 'replace', value: [] }); // D binary: zero length
  assert.deepEqual(d(0x0040a730, 'SQ'), { op: 'recurse' }); // C (Clean Structured Content)
  assert.deepEqual(d(0x0040a160, 'UT', ['free text']), { op: 'replace', value: ['ANONYMIZED'] }); // TextValue cleaned
  assert.deepEqual(d(0x60003000, 'OW'), { op: 'remove' }); // C on overlay bits: cannot clean
  assert.deepEqual(d(0x60004000, 'LT', ['x']), { op: 'remove' }); // its overlay is gone, so the whole group goes (profile.ts)
  assert.deepEqual(d(0x4ffe0001, 'SQ'), { op: 'remove' }); // MAC Parameters
  assert.deepEqual(d(0x0040a075, 'PN', [{ Alphabetic: 'Doc^Ver' }]), { op: 'replace', value: [{ Alphabetic: 'ANONYMIZED' }] });
  assert.deepEqual(d(0x52009229, 'UN'), { op: 'remove' }); // a standard SQ left as UN: never kept unparsed
  assert.deepEqual(d(0x52009229, 'SQ'), { op: 'recurse' });
  assert.deepEqual(d(0x00140104, 'PN', [{ Alphabetic: 'Rev^Sec' }]), { op: 'replace', value: [] }); // unlisted PN emptied
});

test('overrides replace, hash, empty and keep at decision time', () => {
  const session = createSession(policy({ overrides: { StudyDescription: 'hash', '(0010,0040)': 'replace:O', '(0008,0060)': 'empty', '(0010,1010)': 'keep', '(0018,0050)': 'replace:2.5', PatientName: 'empty' } }));
  session.beginDataset('P');
  const d = (tag: number, vr: string, value?: unknown[]) => session.decide({ tag, vr, path: [] }, value);
  const hashed = d(0x00081030, 'LO', ['CT head for Jane Roe']);
  assert.equal(hashed.op, 'replace');
  assert.match((hashed as { value: string[] }).value[0]!, /^[A-Z2-7]{16}$/);
  assert.deepEqual(d(0x00100040, 'CS', ['F']), { op: 'replace', value: ['O'] });
  assert.deepEqual(d(0x00080060, 'CS', ['CT']), { op: 'replace', value: [] });
  assert.deepEqual(d(0x00101010, 'AS', ['042Y']), { op: 'keep' });
  assert.deepEqual(d(0x00180050, 'DS', [1]), { op: 'replace', value: [2.5] });
  assert.deepEqual(d(0x00100010, 'PN', [{ Alphabetic: 'Roe^Jane' }]), { op: 'replace', value: [] });
  assert.ok(session.pairs().some((p) => p.kind === 'value'));
});

test('decide before beginDataset and values of the wrong form fail with typed errors', () => {
  const session = createSession(policy());
  assert.throws(() => session.decide({ tag: 0x00080018, vr: 'UI', path: [] }, ['1.2.3']), (e: unknown) => e instanceof DeidError && e.code === 'DEID_NO_DATASET');
  session.beginDataset(undefined);
  assert.throws(
    () => session.decide({ tag: 0x00081155, vr: 'UI', path: [0x00081140] }, [42]),
    (e: unknown) => e instanceof DeidError && e.code === 'DEID_UNSUPPORTED_VALUE' && e.message.includes('(0008,1140)>(0008,1155)') && !e.message.includes('42'),
  );
  assert.throws(() => deidentifyJson(policy(), { nonsense: { vr: 'LO' } } as DicomJsonDataset), (e: unknown) => e instanceof DeidError && e.code === 'DEID_UNSUPPORTED_VALUE');
});

test('createPolicy reports every bad option at once and hides the secret', () => {
  assert.throws(
    () => createPolicy({ secret: 'short', dateShift: { minDays: 3, maxDays: 1 }, pseudonymMode: 'random' as never, profile: { retainNothing: true } as never }),
    (e: unknown) => e instanceof DeidPolicyError && e.issues.length === 4,
  );
  const p = policy();
  assert.ok(Object.isFrozen(p));
  assert.ok(!JSON.stringify(p).includes(secret));
});

test('for any identity values, none survives Basic de-identification of the JSON', () => {
  const word = fc.stringMatching(/^[a-z]{8,16}$/);
  const uid = fc.bigInt({ min: 10n ** 11n, max: 10n ** 12n }).map((n) => `1.2.3.${n}`);
  fc.assert(
    fc.property(fc.record({ name: word, id: word, accession: word, institution: word, text: word, creator: word, study: uid, nested: uid }), (v) => {
      const ds: DicomJsonDataset = {
        '00080050': { vr: 'SH', Value: [v.accession] },
        '00080080': { vr: 'LO', Value: [v.institution] },
        '00081030': { vr: 'LO', Value: [v.text] },
        '00081140': { vr: 'SQ', Value: [{ '00081155': { vr: 'UI', Value: [v.nested] } }] },
        '00090010': { vr: 'LO', Value: [v.creator] },
        '00091001': { vr: 'LO', Value: [v.text] },
        '00100010': { vr: 'PN', Value: [{ Alphabetic: v.name }] },
        '00100020': { vr: 'LO', Value: [v.id] },
        '0020000D': { vr: 'UI', Value: [v.study] },
      };
      const out = JSON.stringify(deidentifyJson(policy(), ds));
      for (const original of Object.values(v)) assert.ok(!out.includes(original), original);
    }),
    { numRuns: 100 },
  );
});

test('under Modified Dates a DT loses its offset suffix and agrees with its DA + TM pair under Timezone Offset From UTC +0000', () => {
  // PS3.3 C.12.1.1.8: (0008,0201) is the zone of DA, TM and of DT without an explicit offset.
  const ds: DicomJsonDataset = {
    '00080022': { vr: 'DA', Value: ['20200301'] }, // AcquisitionDate
    '0008002A': { vr: 'DT', Value: ['20200301003000.25+0100'] }, // AcquisitionDateTime, 30 min after local midnight
    '00080032': { vr: 'TM', Value: ['003000.25'] }, // AcquisitionTime
    '00080201': { vr: 'SH', Value: ['+0100'] },
    '00100020': { vr: 'LO', Value: ['MRN-0042'] },
  };
  const out = deidentifyJson(policy({ profile: { retainLongitudinalTemporalModifiedDates: true } }), ds);
  const date = out['00080022']!.Value![0] as string;
  const time = out['00080032']!.Value![0] as string;
  assert.notEqual(date, '20200301');
  assert.deepEqual(out['00080201'], { vr: 'SH', Value: ['+0000'] });
  assert.deepEqual(out['0008002A'], { vr: 'DT', Value: [`${date}${time}`] });
  assert.ok(!JSON.stringify(out).includes('+0100'));
});

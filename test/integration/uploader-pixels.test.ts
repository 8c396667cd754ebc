// Issue 16 on the write side: the uploader's pixel policy (the product defaults plus a redaction rule of
// our own for the ACUSON ultrasound cine) on every door into the PACS: STOW-RS, the upload page and the
// DICOM listener. A withheld instance is refused with its reason and nothing of it reaches Orthanc; a
// redacted one reaches Orthanc with the rule's rectangle blank in every frame (a JPEG one as native
// Explicit VR Little Endian); an instance no rule or criterion touches keeps its Pixel Data byte for byte.
// Everything is read back from Orthanc's own REST API, never through the gateway.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { asciiValue, findElement, type Dataset } from '../../src/dicom/dataset.ts';
import { tagForKeyword } from '../../src/dicom/dictionary.ts';
import { readPart10Buffer, type Part10Parsed } from '../../src/dicom/part10-reader.ts';
import { storescu } from '../helpers/dcmtk.ts';
import { dimseBlock, forwarded, spoolContents } from '../helpers/dimse.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { sample, SAMPLES_DIR } from '../helpers/sample.ts';
import { parseStowAnswer, stowBody } from '../helpers/stow.ts';

/** PS3.7 Annex C: Refused: Not authorized, the Failure Reason (and C-STORE status) of a withheld instance. */
const NOT_AUTHORIZED = 0x0124;
const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';
const IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2';

/** Our rule for the ACUSON cine samples: the top banner, where such devices burn in the demographics. */
const BANNER = { x: 0, y: 0, width: 320, height: 40 };
const ACUSON_RULE = { name: 'acuson-us-banner', match: { Modality: 'US', Manufacturer: 'ACUSON' }, rectangles: [BANNER] };

const CINE_NATIVE = 'multiframe/IM00001.implicit_little_endian.dcm';
const CINE_JPEG = 'multiframe/IM00001.fragmented_no_bot_jpeg_baseline.50.dcm';
const SC_RISKY = 'charset/chrArab.dcm'; // Secondary Capture, Modality OT, no rule for it
const SR = 'sr/test-SR.dcm';
const CT = 'transfer-syntax/CT1_UNC.explicit_little_endian.dcm';

/** A tag by its PS3.6 keyword, from the dictionary. */
function kw(keyword: string): number {
  const tag = tagForKeyword(keyword);
  if (tag === undefined) throw new Error(`not a keyword: ${keyword}`);
  return tag;
}

function usValue(ds: Dataset, tag: number): number {
  const el = findElement(ds, tag);
  if (!el?.value || el.value.length < 2) throw new Error(`no US value at ${tag.toString(16)}`);
  return el.value.readUInt16LE(0);
}

/**
 * For each frame of a native 8-bit instance, the samples inside `rect` that are not the blank value
 * (0 per sample; mid-scale chroma for YBR_FULL, pixel/native-blank.ts), and the frames' bytes outside it.
 */
function inspectFrames(parsed: Part10Parsed, rect: typeof BANNER): { notBlank: number; frames: number; outside: Buffer } {
  const ds = parsed.header.dataset;
  const rows = usValue(ds, kw('Rows'));
  const columns = usValue(ds, kw('Columns'));
  const spp = usValue(ds, kw('SamplesPerPixel'));
  const planar = spp > 1 ? usValue(ds, kw('PlanarConfiguration')) : 0;
  assert.equal(usValue(ds, kw('BitsAllocated')), 8);
  const frames = Number(asciiValue(ds, kw('NumberOfFrames')) ?? '1');
  const pi = asciiValue(ds, kw('PhotometricInterpretation'))?.trim();
  const blank = pi === 'YBR_FULL' ? [0, 128, 128] : [0, 0, 0];
  const bytes = parsed.pixelDataBytes as Buffer;
  const frameBytes = rows * columns * spp;
  assert.ok(bytes.length >= frames * frameBytes, 'native Pixel Data holds every frame');
  let notBlank = 0;
  const outside: number[] = [];
  for (let f = 0; f < frames; f++) {
    const frame = bytes.subarray(f * frameBytes, (f + 1) * frameBytes);
    for (let y = 0; y < rows; y++) {
      for (let x = 0; x < columns; x++) {
        const inside = x >= rect.x && x < rect.x + rect.width && y >= rect.y && y < rect.y + rect.height;
        for (let s = 0; s < spp; s++) {
          const at = planar === 0 ? (y * columns + x) * spp + s : s * rows * columns + y * columns + x;
          const v = frame[at] as number;
          if (inside && v !== blank[s]) notBlank++;
          if (!inside) outside.push(v);
        }
      }
    }
  }
  return { notBlank, frames, outside: Buffer.from(outside) };
}

describe('uploader pixel safety: withheld parts are refused with 0x0124 and never stored; redacted ones are stored redacted', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;

  before(async () => {
    ({ orthanc } = await startTestOrthanc());
    gateway = await startTestGateway(orthanc.dicomWebUrl, {
      productPixelDefaults: true,
      deid: {
        profiles: {
          researcher: { options: ['retainLongitudinalTemporalModifiedDates'] },
          uploader: { options: ['retainLongitudinalTemporalModifiedDates'], pixels: { rules: [ACUSON_RULE] } },
        },
      },
      dimse: dimseBlock({ callers: [{ aeTitle: 'MODALITY', hosts: ['127.0.0.1'], pseudonyms: 'fresh' }] }),
    });
  });
  after(async () => {
    await gateway?.close();
    await orthanc?.stop();
  });

  const stow = async (files: string[]) => {
    const { body, contentType } = stowBody(files.map((f) => sample(f)));
    const res = await fetch(`${gateway.base}/studies`, {
      method: 'POST',
      body: new Uint8Array(body),
      headers: { authorization: `Bearer ${await gateway.token('uploader')}`, 'content-type': contentType, accept: 'application/dicom+json' },
    });
    return parseStowAnswer(res.status, (await res.json()) as never);
  };
  /** Every instance Orthanc holds, as the Part 10 file it stored, keyed by SOP Instance UID (Orthanc's REST API). */
  const held = async (): Promise<Map<string, { file: Buffer; parsed: Part10Parsed }>> => {
    const out = new Map<string, { file: Buffer; parsed: Part10Parsed }>();
    for (const id of (await (await fetch(`${orthanc.httpUrl}/instances`)).json()) as string[]) {
      const file = Buffer.from(await (await fetch(`${orthanc.httpUrl}/instances/${id}/file`)).arrayBuffer());
      const parsed = await readPart10Buffer(file);
      out.set(asciiValue(parsed.header.dataset, kw('SOPInstanceUID')) ?? id, { file, parsed });
    }
    return out;
  };
  const logLines = () =>
    gateway
      .logs()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  test('a risky Secondary Capture without a rule and an SR are refused with 0x0124 and absent from Orthanc; the log says why, naming no value', async () => {
    const before = (await held()).size;
    const answer = await stow([SC_RISKY, SR]);
    assert.equal(answer.status, 409, JSON.stringify(answer));
    assert.deepEqual(answer.failed.map((f) => f.reason), [NOT_AUTHORIZED, NOT_AUTHORIZED]);
    assert.equal((await held()).size, before, 'nothing of a withheld part reached the PACS');
    const withheld = logLines().filter((l) => l['msg'] === 'a STOW part was withheld by the pixel policy');
    assert.deepEqual(withheld.map((l) => l['withheld']).sort(), ['filtered', 'risky']);
    assert.ok(withheld.every((l) => l['reason'] === NOT_AUTHORIZED && typeof l['detail'] === 'string'));
    // The SC's own values (its patient, its UIDs) are in no log line.
    const original = (await readPart10Buffer(sample(SC_RISKY))).header.dataset;
    for (const tag of [kw('SOPInstanceUID'), kw('StudyInstanceUID'), kw('PatientID')]) {
      const value = asciiValue(original, tag)?.trim();
      if (value) assert.ok(!gateway.logs().includes(value), `a value of ${tag.toString(16)} was logged`);
    }
  });

  test('the ACUSON cine, native and JPEG, is stored with the banner blank in every frame; the JPEG one arrives native in Explicit VR Little Endian', async () => {
    const answer = await stow([CINE_NATIVE, CINE_JPEG]);
    assert.equal(answer.status, 200, JSON.stringify(answer));
    const stored = await held();
    const original = inspectFrames(await readPart10Buffer(sample(CINE_NATIVE)), BANNER);
    assert.ok(original.notBlank > 0, 'the original banner is not blank (else the test shows nothing)');
    for (const [i, s] of answer.stored.entries()) {
      const copy = stored.get(s.sopInstance);
      assert.ok(copy, `${i}: the stored instance is in Orthanc`);
      // Native pixels are blanked in the file's own transfer syntax; JPEG frames are decoded and sent native Explicit VR LE.
      assert.equal(copy.parsed.header.transferSyntaxUID, i === 0 ? IMPLICIT_VR_LITTLE_ENDIAN : EXPLICIT_VR_LITTLE_ENDIAN);
      assert.equal(copy.parsed.pixelData?.length !== undefined, true, 'native Pixel Data');
      const seen = inspectFrames(copy.parsed, BANNER);
      assert.equal(seen.frames, 8);
      assert.equal(seen.notBlank, 0, `${i}: every sample inside the rectangle is blank, in every frame`);
      if (i === 0) assert.ok(seen.outside.equals(original.outside), 'outside the rectangle the native cine is unchanged');
      // PS3.15 E.3.1: a rule cleaned it, so Burned In Annotation may now say NO.
      assert.equal(asciiValue(copy.parsed.header.dataset, kw('BurnedInAnnotation'))?.trim(), 'NO');
    }
  });

  test('a CT that no criterion or rule touches is stored with Pixel Data byte-identical to the original', async () => {
    const answer = await stow([CT]);
    assert.equal(answer.status, 200, JSON.stringify(answer));
    const copy = (await held()).get(answer.stored[0]?.sopInstance ?? '');
    assert.ok(copy);
    const original = await readPart10Buffer(sample(CT));
    assert.ok(copy.parsed.pixelDataBytes?.equals(original.pixelDataBytes as Buffer), 'Pixel Data byte for byte');
  });

  test('the upload page shows a withheld file as refused with the pixel policy’s reason and criterion', async () => {
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(sample(SC_RISKY))]), 'capture.dcm');
    const res = await fetch(`${gateway.url}/upload`, { method: 'POST', body: form, headers: { authorization: `Bearer ${await gateway.token('uploader')}` } });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { files: { outcome: string; reason: string; withheld?: { reason: string; detail: string } }[] };
    assert.equal(body.files[0]?.outcome, 'refused');
    assert.equal(body.files[0]?.withheld?.reason, 'risky');
    assert.match(body.files[0]?.reason ?? '', /^withheld by the pixel policy: .*\(.+\); not stored \(0x0124\)$/);
  });

  test('DIMSE: storescu of a withheld instance is refused with 0124 and logged with its reason, never spooled or forwarded; the cine is forwarded redacted', async () => {
    const earlier = new Set((await held()).keys());
    const run = await storescu(gateway.dimsePort as number, [join(SAMPLES_DIR, SC_RISKY), join(SAMPLES_DIR, CINE_NATIVE)]);
    assert.deepEqual(run.outcomes.map((o) => [o.file.slice(SAMPLES_DIR.length + 1), o.status]), [[SC_RISKY, NOT_AUTHORIZED], [CINE_NATIVE, 0]], run.stderr.slice(-2000));
    const settled = await forwarded(gateway.url);
    assert.equal(settled.quarantined, 0);
    assert.deepEqual(spoolContents(join(gateway.keys.dir, 'data')), { originals: [], partial: [], quarantined: [] });
    const refused = logLines().filter((l) => l['msg'] === 'DIMSE C-STORE refused');
    assert.deepEqual(refused.map((l) => [l['status'], l['err'], l['withheld']]), [['0124', 'DEID_PIXELS_WITHHELD', 'risky']]);
    const added = [...(await held()).entries()].filter(([uid]) => !earlier.has(uid)).map(([, s]) => s);
    assert.equal(added.length, 1, 'only the cine reached the PACS');
    assert.equal(asciiValue(added[0]!.parsed.header.dataset, kw('Modality'))?.trim(), 'US');
    assert.equal(inspectFrames(added[0]!.parsed, BANNER).notBlank, 0, 'forwarded redacted');
  });
});

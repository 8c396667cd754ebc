import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createCanvas } from '@napi-rs/canvas';
import type { Page } from 'playwright-core';
import { samplesDir } from '../../src/demo/samples.ts';
import { asciiValue } from '../../src/dicom/dataset.ts';
import { readPart10Buffer } from '../../src/dicom/part10-reader.ts';
import { BROWSER_DEADLINE, launchBrowser } from '../helpers/browser.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';
import { monochromeImageFile } from '../helpers/synthetic-instance.ts';

const ARTIFACTS = resolve(import.meta.dirname, '../artifacts');
const ECHO = join(samplesDir(), 'multiframe/IM00001.implicit_little_endian.dcm');
/** JPEG Baseline (decoded by the browser), and JPEG-LS (no preview in the browser). */
const ECHO_JPEG = join(samplesDir(), 'multiframe/IM00001.fragmented_no_bot_jpeg_baseline.50.dcm');
const CT_JPEG_LS = join(samplesDir(), 'multiframe/CT0012.fragmented_no_bot_jpeg_ls.80.dcm');
const BURNED_IN_ANNOTATION = 0x00280301;

interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * An MR image (not risky: the pixel policy keeps it) with a patient's name and ID burned into its top
 * bar, white on black, as a device writes them: 8-bit MONOCHROME2, Explicit VR Little Endian.
 */
function burnedInTextInstance(): { file: Buffer; words: string[] } {
  const columns = 512;
  const rows = 256;
  const canvas = createCanvas(columns, rows);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, columns, rows);
  ctx.fillStyle = '#606060';
  ctx.fillRect(96, 96, 320, 140); // "anatomy"
  ctx.fillStyle = '#fff';
  ctx.font = 'bold 22px "DejaVu Sans"';
  ctx.fillText('DOE^JANE  ID 4471203', 12, 32);
  const rgba = ctx.getImageData(0, 0, columns, rows).data;
  const pixels = Buffer.alloc(columns * rows);
  for (let i = 0; i < pixels.length; i++) pixels[i] = rgba[i * 4] as number;
  const sopClass = '1.2.840.10008.5.1.4.1.1.4';
  const sop = '2.25.918273645500112233445566778899';
  const file = monochromeImageFile({
    sopClass,
    sopInstance: sop,
    modality: 'MR',
    patientName: 'DOE^JANE',
    patientId: '4471203',
    study: '2.25.918273645500112233445566778800',
    series: '2.25.918273645500112233445566778801',
    rows,
    columns,
    bitsAllocated: 8,
    pixels,
  });
  return { file, words: ['DOE', 'JANE', '4471203'] };
}

async function instanceIds(orthanc: OrthancProcess): Promise<string[]> {
  return (await (await fetch(`${orthanc.httpUrl}/instances`)).json()) as string[];
}

async function storedFile(orthanc: OrthancProcess, id: string): Promise<Buffer> {
  return Buffer.from(await (await fetch(`${orthanc.httpUrl}/instances/${id}/file`)).arrayBuffer());
}

/** Every sample of every frame inside `rects` is 0; every other byte equals the original's. */
function assertBlankedExactly(original: Buffer, stored: Buffer, g: { rows: number; columns: number; samples: number; frames: number }, rects: Rect[]): void {
  assert.equal(stored.length, original.length, 'the Pixel Data keeps its length');
  const inside = (x: number, y: number) => rects.some((r) => x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height);
  let blanked = 0;
  let kept = 0;
  const frameBytes = g.rows * g.columns * g.samples;
  for (let f = 0; f < g.frames; f++) {
    for (let y = 0; y < g.rows; y++) {
      for (let x = 0; x < g.columns; x++) {
        for (let s = 0; s < g.samples; s++) {
          const i = f * frameBytes + (y * g.columns + x) * g.samples + s;
          if (inside(x, y)) {
            if (stored[i] !== 0) assert.fail(`frame ${f} (${x}, ${y}) sample ${s} is ${stored[i]} inside the rectangle`);
            blanked++;
          } else {
            if (stored[i] !== original[i]) assert.fail(`frame ${f} (${x}, ${y}) sample ${s} changed outside the rectangle`);
            kept++;
          }
        }
      }
    }
  }
  assert.ok(blanked > 0 && kept > 0);
  // The rest (a pad byte) is unchanged too.
  assert.deepEqual(stored.subarray(g.frames * frameBytes), original.subarray(g.frames * frameBytes));
}

/** Opens the page, picks `files` and starts the review; `proposals`: waits for the gateway's answer too. */
async function review(page: Page, gateway: TestGateway, files: string[], proposals = true): Promise<void> {
  await page.goto(`${gateway.url}/upload`);
  await page.fill('#token', await gateway.token('uploader'));
  await page.setInputFiles('#files', files);
  await page.click('#send');
  await page.waitForSelector('body[data-review="ready"]');
  if (proposals) await page.waitForSelector('section.series[data-proposals="loaded"]', { timeout: BROWSER_DEADLINE });
}

describe('manual redaction on the upload page (issue 18 part 2)', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;

  before(async () => {
    ({ orthanc } = await startTestOrthanc());
    // The product's pixel policy withholds US (a risky modality) and a manual rectangle does not lift that
    // (strictestVerdict: withhold beats redact). A site whose uploaders redact echoes by hand allows US;
    // the page's rectangles then redact it. `ocr`: the text detector that proposes regions on the review.
    gateway = await startTestGateway(orthanc.dicomWebUrl, {
      deid: { profiles: { uploader: { options: ['retainLongitudinalTemporalModifiedDates'], pixels: { risky: { modality: { US: 'allow' } } } } } },
      ocr: { workers: 1, timeoutMs: 60_000 },
    });
    browser = await launchBrowser();
    mkdirSync(ARTIFACTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await gateway?.close();
    await orthanc?.stop();
  });

  test('cancelling the review sends nothing for storage', async () => {
    const before = (await instanceIds(orthanc)).length;
    const page = await browser.browser.newPage();
    const uploads: string[] = [];
    page.on('request', (r) => {
      if (r.method() === 'POST' && new URL(r.url()).pathname === '/upload') uploads.push(r.url());
    });
    // Cancelled while the gateway is still reviewing the files (its answers are abandoned).
    await review(page, gateway, [ECHO_JPEG, CT_JPEG_LS], false);
    await page.waitForSelector('section.series[data-preview]:nth-of-type(2)');
    const shown = await page.$$eval('section.series', (sections) =>
      sections.map((s) => {
        const canvas = s.querySelector('canvas') as HTMLCanvasElement;
        const data = canvas.getContext('2d')?.getImageData(0, 0, canvas.width, canvas.height).data ?? new Uint8ClampedArray();
        const colours = new Set<number>();
        for (let i = 0; i < data.length && colours.size < 50; i += 4) colours.add(((data[i] as number) << 16) | ((data[i + 1] as number) << 8) | (data[i + 2] as number));
        return { preview: (s as HTMLElement).dataset['preview'], note: s.querySelector('p.note')?.textContent ?? '', size: `${canvas.width}x${canvas.height}`, colours: colours.size };
      }),
    );
    assert.equal(shown[0]?.preview, 'shown', 'the JPEG Baseline frame is decoded by the browser');
    assert.equal(shown[0]?.size, '320x240');
    assert.ok((shown[0]?.colours ?? 0) >= 50, 'the decoded echo is an image, not a blank');
    assert.equal(shown[1]?.preview, 'shown', 'the JPEG-LS frame is decoded by the WebAssembly codec OHIF uses (CharLS)');
    assert.match(shown[1]?.note ?? '', /^Frame 1 of \d+ · \d+ × \d+ pixels$/);
    // dcmdjpls's decode of this frame holds 132 values, 32 grey levels under the page's min–max window.
    assert.ok((shown[1]?.colours ?? 0) >= 24, `the decoded CT is an image, not a blank: ${JSON.stringify(shown[1])}`);
    // Rectangles can also be typed, with the keyboard.
    await page.fill('#s1-x', '10');
    await page.fill('#s1-y', '20');
    await page.fill('#s1-width', '30');
    await page.fill('#s1-height', '40');
    await page.focus('#s1-add');
    await page.keyboard.press('Enter');
    assert.deepEqual(await page.$$eval('section.series:nth-of-type(2) ul.rects li[data-rect]', (lis) => lis.map((li) => JSON.parse((li as HTMLElement).dataset['rect'] ?? '{}'))), [
      { x: 10, y: 20, width: 30, height: 40 },
    ]);
    await page.screenshot({ path: join(ARTIFACTS, 'upload-redaction-encodings.png'), fullPage: true });
    await page.click('#cancel');
    await page.waitForSelector('body[data-cancelled="true"]');
    assert.equal(await page.isHidden('#review'), true);
    assert.match((await page.textContent('#summary')) ?? '', /Cancelled/);
    assert.equal(await page.$$eval('section.series', (s) => s.length), 0, 'the review is discarded');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(uploads, [], 'the page made no upload request');
    assert.equal((await instanceIds(orthanc)).length, before, 'Orthanc holds nothing new');
    await page.close();
  });

  test('a rectangle drawn with the mouse on the echo is zero in every stored frame, and nothing else changed', async () => {
    const before = new Set(await instanceIds(orthanc));
    const page = await browser.browser.newPage({ viewport: { width: 1100, height: 1200 } });
    await review(page, gateway, [ECHO]);
    await page.waitForSelector('section.series[data-preview="shown"]');
    // The header that will be stored is shown, de-identified.
    const header = await page.$$eval('table.header tr', (trs) => trs.map((tr) => tr.textContent ?? ''));
    assert.ok(header.some((h) => /^PatientIdentityRemovedYES$/.test(h)), 'the de-identified header is shown');
    const canvas = await page.$('canvas.preview');
    const box = await canvas?.boundingBox();
    assert.ok(box);
    const sx = box.width / 320;
    const sy = box.height / 240;
    await page.mouse.move(box.x + 40.5 * sx, box.y + 30.5 * sy);
    await page.mouse.down();
    await page.mouse.move(box.x + 100 * sx, box.y + 60 * sy, { steps: 4 });
    await page.mouse.move(box.x + 140.5 * sx, box.y + 90.5 * sy, { steps: 4 });
    await page.mouse.up();
    const drawn = await page.$$eval('ul.rects li[data-rect]', (lis) => lis.map((li) => JSON.parse((li as HTMLElement).dataset['rect'] ?? '{}') as Rect));
    assert.equal(drawn.length, 1);
    const rect = drawn[0] as Rect;
    // Where the mouse went, in image pixels (the canvas is scaled to the page).
    for (const [k, v] of [['x', 40], ['y', 30], ['width', 100], ['height', 60]] as const) assert.ok(Math.abs(rect[k] - v) <= 1, `${k} ${rect[k]} ≈ ${v}`);
    // The redacted preview: the canvas is black there, but for the dashed outline of an OCR or rule proposal
    // drawn over it (cyan #00e5ff, magenta #e040fb), waited for (the page repaints on its next frame).
    const dark = await page
      .waitForFunction(
        (r) => {
          const c = document.querySelector('canvas.preview') as HTMLCanvasElement | null;
          const d = c?.getContext('2d')?.getImageData(r.x + 1, r.y + 1, r.width - 2, r.height - 2).data ?? [];
          // A pixel is black, or an outline colour blended with black at a dash's anti-aliased end. (No
          // named helper in here: the test loader would wrap it in a function the page does not have.)
          const outlines = [
            [0, 229, 255],
            [224, 64, 251],
          ];
          let black = 0;
          for (let i = 0; i < d.length; i += 4) {
            const p = [d[i] as number, d[i + 1] as number, d[i + 2] as number];
            if (p[0] === 0 && p[1] === 0 && p[2] === 0) {
              black++;
              continue;
            }
            let outline = false;
            for (const c of outlines) {
              let t = 0;
              for (let k = 0; k < 3; k++) if ((c[k] as number) > 0) t = Math.max(t, (p[k] as number) / (c[k] as number));
              let fits = t <= 1;
              for (let k = 0; k < 3; k++) if (Math.abs((p[k] as number) - t * (c[k] as number)) > 3) fits = false;
              if (fits) outline = true;
            }
            if (!outline) return false;
          }
          return black > (d.length / 4) * 0.5;
        },
        rect,
        { timeout: 5_000 },
      )
      .then(() => true, () => false);
    assert.ok(dark, 'the preview shows the rectangle blacked out');
    await page.screenshot({ path: join(ARTIFACTS, 'upload-redaction-review.png'), fullPage: true });
    await page.click('#confirm');
    await page.waitForSelector('body[data-done="true"]', { timeout: BROWSER_DEADLINE });
    assert.equal(await page.getAttribute('#results tbody tr', 'data-outcome'), 'stored');
    await page.screenshot({ path: join(ARTIFACTS, 'upload-redaction-done.png'), fullPage: true });
    await page.close();

    const added = (await instanceIds(orthanc)).filter((id) => !before.has(id));
    assert.equal(added.length, 1);
    const original = await readPart10Buffer(readFileSync(ECHO));
    const stored = await readPart10Buffer(await storedFile(orthanc, added[0] as string));
    assert.equal(stored.header.transferSyntaxUID, original.header.transferSyntaxUID, 'native stays native');
    assertBlankedExactly(original.pixelDataBytes as Buffer, stored.pixelDataBytes as Buffer, { rows: 240, columns: 320, samples: 3, frames: 8 }, [rect]);
    // Manual redaction is treated as a rule's: the stored header says its burned-in text is gone.
    assert.equal(asciiValue(stored.header.dataset, BURNED_IN_ANNOTATION)?.trim(), 'NO');
  });

  test('a text region proposed by OCR is shown, accepted with the keyboard, and blanked in the stored instance', async () => {
    const { file, words } = burnedInTextInstance();
    const path = join(gateway.keys.dir, 'burned-in.dcm');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(path, file);
    const page = await browser.browser.newPage({ viewport: { width: 1100, height: 1400 } });
    const previews: string[] = [];
    page.on('response', async (r) => {
      if (new URL(r.url()).pathname === '/upload/preview') previews.push(await r.text());
    });
    await review(page, gateway, [path]);
    const ocrNote = (await page.textContent('section.series p.note:last-of-type')) ?? '';
    assert.doesNotMatch(ocrNote, /no text detector is configured/, 'this gateway is configured with a text detector');
    const proposals = await page.$$eval('ul.proposals li[data-kind="ocr"]', (lis) => lis.map((li) => JSON.parse((li as HTMLElement).dataset['rect'] ?? '{}') as Rect));
    assert.ok(proposals.length >= 1, `OCR proposed a region (${ocrNote})`);
    // The proposal covers the burned-in line (x 12…~270, baseline 32, 22 px type).
    const union = proposals.reduce((u, r) => ({ x0: Math.min(u.x0, r.x), y0: Math.min(u.y0, r.y), x1: Math.max(u.x1, r.x + r.width), y1: Math.max(u.y1, r.y + r.height) }), { x0: 1e9, y0: 1e9, x1: 0, y1: 0 });
    assert.ok(union.x0 <= 14 && union.y0 <= 14 && union.y1 >= 34 && union.x1 >= 240, `the proposals cover the text: ${JSON.stringify(union)}`);
    for (const body of previews) for (const w of words) assert.ok(!body.includes(w), 'recognised text never appears in the preview answer');
    await page.screenshot({ path: join(ARTIFACTS, 'upload-redaction-ocr-proposal.png'), fullPage: true });
    // Accept every proposal with the keyboard: focus its button, press Enter.
    for (let i = 0; i < proposals.length; i++) {
      await page.focus('ul.proposals li[data-kind="ocr"] button');
      await page.keyboard.press('Enter');
    }
    const accepted = await page.$$eval('ul.rects li[data-rect]', (lis) => lis.map((li) => JSON.parse((li as HTMLElement).dataset['rect'] ?? '{}') as Rect));
    assert.deepEqual(accepted, proposals);
    await page.focus('#confirm');
    await page.keyboard.press('Enter');
    await page.waitForSelector('body[data-done="true"]', { timeout: BROWSER_DEADLINE });
    assert.equal(await page.getAttribute('#results tbody tr', 'data-outcome'), 'stored');
    await page.close();

    const study = await (await fetch(`${orthanc.httpUrl}/tools/find`, { method: 'POST', body: JSON.stringify({ Level: 'Instance', Query: { Modality: 'MR' } }) })).json() as string[];
    assert.equal(study.length, 1);
    const original = await readPart10Buffer(file);
    const stored = await readPart10Buffer(await storedFile(orthanc, study[0] as string));
    assertBlankedExactly(original.pixelDataBytes as Buffer, stored.pixelDataBytes as Buffer, { rows: 256, columns: 512, samples: 1, frames: 1 }, accepted);
  });

  test('the review endpoint stores nothing and takes only the uploader; malformed rectangles are refused with 400', async () => {
    const before = (await instanceIds(orthanc)).length;
    const echo = new Blob([readFileSync(ECHO)]);
    const preview = async (token: string | undefined) => {
      const form = new FormData();
      form.append('file', echo, 'echo.dcm');
      return fetch(`${gateway.url}/upload/preview`, { method: 'POST', body: form, headers: token ? { authorization: `Bearer ${token}` } : {} });
    };
    const res = await preview(await gateway.token('uploader'));
    assert.equal(res.status, 200);
    const body = (await res.json()) as { rules: unknown[]; ocr: object; header: { keyword: string; value: string }[]; withheld?: unknown };
    assert.deepEqual(body.rules, []);
    assert.equal(body.withheld, undefined);
    const patientName = body.header.find((h) => h.keyword === 'PatientName')?.value ?? '';
    assert.match(patientName, /^ANON\^/, 'the header is the de-identified one');
    assert.ok(body.header.some((h) => h.keyword === 'PatientIdentityRemoved' && h.value === 'YES'));
    // Audited as the upload is (an Import record, its route naming the review).
    let audited: { route: string; roleId: string; httpStatus: number; eventId: { code: string } }[] = [];
    for (let i = 0; i < 50 && audited.length === 0; i++) {
      const trail = await fetch(`${gateway.url}/audit?limit=1000`, { headers: { authorization: `Bearer ${await gateway.token('steward')}` } });
      assert.equal(trail.status, 200);
      audited = ((await trail.json()) as { events: typeof audited }).events.filter((e) => e.route === 'POST /upload/preview' && e.roleId === 'uploader');
      if (audited.length === 0) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(audited.length >= 1, 'the review is audited');
    assert.equal(audited[0]?.eventId.code, '110107');
    for (const [role, status] of [['researcher', 403], ['clinician', 501]] as const) {
      const r = await preview(await gateway.token(role));
      assert.equal(r.status, status, role);
      await r.arrayBuffer();
    }
    const none = await preview(undefined);
    assert.equal(none.status, 401);
    await none.arrayBuffer();

    const upload = async (redactions: string, order: 'before' | 'after' = 'before', file = echo) => {
      const form = new FormData();
      if (order === 'before') form.append('redactions', redactions);
      form.append('file', file, 'a.dcm');
      if (order === 'after') form.append('redactions', redactions);
      const r = await fetch(`${gateway.url}/upload`, { method: 'POST', body: form, headers: { authorization: `Bearer ${await gateway.token('uploader')}` } });
      return { status: r.status, body: (await r.json()) as { error?: { code: string; message: string } } };
    };
    const series = '1.3.6.1.4.1.25403.166563008443.732.20120418082458.2';
    const cases: [string, string][] = [
      ['not JSON', '{"files": '],
      ['a fractional coordinate', JSON.stringify({ files: { 0: [{ x: 1.5, y: 0, width: 4, height: 4 }] } })],
      ['a negative coordinate', JSON.stringify({ files: { 0: [{ x: -1, y: 0, width: 4, height: 4 }] } })],
      ['an empty rectangle', JSON.stringify({ files: { 0: [{ x: 1, y: 0, width: 0, height: 4 }] } })],
      ['an extra key', JSON.stringify({ files: { 0: [{ x: 1, y: 0, width: 2, height: 4, z: 1 }] } })],
      ['a series key that is no UID', JSON.stringify({ series: { 'not a uid': [] } })],
      ['too many rectangles', JSON.stringify({ series: { [series]: Array.from({ length: 65 }, () => ({ x: 0, y: 0, width: 1, height: 1 })) } })],
      ['a rectangle outside the 320 × 240 image', JSON.stringify({ series: { [series]: [{ x: 300, y: 10, width: 21, height: 4 }] } })],
    ];
    for (const [what, redactions] of cases) {
      const r = await upload(redactions);
      assert.equal(r.status, 400, what);
      assert.equal(r.body.error?.code, 'UPLOAD_BAD_REDACTIONS', what);
    }
    assert.equal((await instanceIds(orthanc)).length, before, 'nothing was stored');
    // A field after the file comes too late for it: refused, though the file before it was already
    // de-identified under the pixel policy alone and stored (the page always sends the field first).
    const late = await upload(JSON.stringify({ files: {} }), 'after', new Blob([readFileSync(join(samplesDir(), 'transfer-syntax/MR_small.dcm'))]));
    assert.equal(late.status, 400);
    assert.equal(late.body.error?.code, 'UPLOAD_BAD_REDACTIONS');
    assert.match(late.body.error?.message ?? '', /before the files/);
  });
});

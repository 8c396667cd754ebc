import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createContext, runInContext } from 'node:vm';
import { samplesDir } from '../../src/demo/samples.ts';
import { BROWSER_DEADLINE, launchBrowser } from '../helpers/browser.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';

const ARTIFACTS = resolve(import.meta.dirname, '../artifacts');

interface Parsed {
  attributes: Record<string, number | string>;
  pixel: { fragments?: { items: { offset: number }[] } } | null;
}
interface PageDicom {
  parse(buffer: ArrayBuffer): Parsed;
  frameImage(parsed: Parsed, k: number): Promise<{ data: Uint8ClampedArray } | string>;
}

/** The page's own dicom.js in Node (an ImageData stand-in): the reference pixels go through the page's renderer. */
function pageDicom(): PageDicom {
  class ImageData {
    readonly data: Uint8ClampedArray;
    constructor(width: number, height: number) {
      this.data = new Uint8ClampedArray(width * height * 4);
    }
  }
  const context = createContext({ ImageData });
  runInContext(readFileSync(resolve(import.meta.dirname, '../../src/http/upload-page/dicom.js'), 'utf8'), context);
  return context['DeidDicom'] as PageDicom;
}

const arrayBuffer = (b: Buffer) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

describe('the browser upload page', () => {
  let orthanc: OrthancProcess;
  let gateway: TestGateway;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;

  before(async () => {
    ({ orthanc } = await startTestOrthanc());
    gateway = await startTestGateway(orthanc.dicomWebUrl);
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await gateway?.close();
    await orthanc?.stop();
  });

  test('previews RLE, JPEG-LS, JPEG 2000, lossless JPEG and HTJ2K frames decoded in the page, as the reference decoders decode them', async () => {
    const dicom = pageDicom();
    const ts = join(samplesDir(), 'transfer-syntax');
    const work = mkdtempSync(join(tmpdir(), 'upload-codecs-'));
    try {
      /** The reference RGBA: dcmtk or GDCM decodes to a native file, which the page's renderer shows. */
      const native = async (tool: string, args: string[], name: string) => {
        const out = join(work, name);
        execFileSync(tool, [...args, join(ts, name), out], { stdio: 'ignore' });
        const image = await dicom.frameImage(dicom.parse(arrayBuffer(readFileSync(out))), 0);
        assert.equal(typeof image, 'object', `${name}: reference`);
        return Buffer.from((image as { data: Uint8ClampedArray }).data);
      };
      // Series (in the order picked) and instance within it; `tolerance` only for lossy streams, in grey levels.
      const cases = [
        { series: 0, instance: 0, name: 'MR_small_RLE.dcm', reference: () => native('dcmdrle', [], 'MR_small_RLE.dcm'), tolerance: 0 },
        { series: 0, instance: 1, name: 'MR_small_jpeg_ls_lossless.dcm', reference: () => native('dcmdjpls', [], 'MR_small_jpeg_ls_lossless.dcm'), tolerance: 0 },
        { series: 0, instance: 2, name: 'MR_small_jp2klossless.dcm', reference: () => native('gdcmconv', ['--raw'], 'MR_small_jp2klossless.dcm'), tolerance: 0 },
        { series: 1, instance: 0, name: 'JPEG-LL.dcm', reference: () => native('dcmdjpeg', [], 'JPEG-LL.dcm'), tolerance: 0 },
        { series: 1, instance: 1, name: 'JPEG2000.dcm', reference: () => native('gdcmconv', ['--raw'], 'JPEG2000.dcm'), tolerance: 1 },
        { series: 2, instance: 0, name: 'JPEGLSNearLossless_08.dcm', reference: () => native('dcmdjpls', [], 'JPEGLSNearLossless_08.dcm'), tolerance: 0 },
        // HTJ2K, which neither dcmtk nor GDCM reads here: the digest of the server-side decoder's frame (dcmjs-codecs'
        // decodeFrame) rendered by dicom.js, recorded (loading that decoder here would cost the test a second).
        { series: 3, instance: 0, name: 'HTJ2KLossless_08_RGB.dcm', reference: () => '4f3cbc4a8b4c5cd9a254eb912acdba5025d0e36fe5cb6783dc25edd26617f7d7', tolerance: 0 },
      ];
      const picked = ['MR_small_RLE.dcm', 'MR_small_jpeg_ls_lossless.dcm', 'MR_small_jp2klossless.dcm', 'JPEG-LL.dcm', 'JPEG2000.dcm', 'JPGExtended.dcm', 'JPEGLSNearLossless_08.dcm', 'HTJ2KLossless_08_RGB.dcm'];

      const page = await browser.browser.newPage();
      // The gateway's review of each file (OCR of its frame) is the first test's business: here it proposes
      // nothing, so the canvas holds the decoded frame alone and no OCR competes for the CPU.
      await page.route('**/upload/preview', (route) => route.fulfill({ json: { header: [], rules: [] } }));
      const errors: string[] = [];
      page.on('console', (m) => void (m.type() === 'error' && !m.location().url.endsWith('/favicon.ico') && errors.push(`${m.text()} ${m.location().url}`)));
      page.on('pageerror', (e) => void errors.push(e.message));
      const res = await page.goto(`${gateway.url}/upload`);
      assert.match(res?.headers()['content-security-policy'] ?? '', /script-src 'self' 'wasm-unsafe-eval';/);
      await page.fill('#token', await gateway.token('uploader'));
      await page.setInputFiles('#files', picked.map((name) => join(ts, name)));
      await page.click('#send');
      await page.waitForSelector('body[data-review="ready"]');
      for (const c of cases) {
        if (c.instance > 0) await page.selectOption(`#s${c.series}-instance`, String(c.instance));
        // The section names the instance and frame whose decode it shows (app.js), once it shows it.
        const section = `section.series:has(#s${c.series}-title)`;
        await page.waitForSelector(`${section}[data-shown="${c.instance}:0"]`);
        const shown = await page.$eval(section, async (s) => {
          const canvas = s.querySelector('canvas') as HTMLCanvasElement;
          const data = (canvas.getContext('2d') as CanvasRenderingContext2D).getImageData(0, 0, canvas.width, canvas.height).data;
          const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', data));
          return { preview: (s as HTMLElement).dataset['preview'], note: s.querySelector('.note')?.textContent ?? '', sha256: [...digest].map((b) => b.toString(16).padStart(2, '0')).join('') };
        });
        assert.equal(shown.preview, 'shown', `${c.name}: ${shown.note}`);
        const want = await c.reference();
        const wantDigest = typeof want === 'string' ? want : createHash('sha256').update(want).digest('hex');
        if (shown.sha256 === wantDigest) continue;
        // Not the same bytes: how far apart (a lossy stream may round differently by a grey level).
        assert.ok(typeof want !== 'string', `${c.name}: the decoded frame differs from the reference`);
        const got = Buffer.from(
          await page.$eval(`${section} canvas`, (canvas) => {
            const data = ((canvas as HTMLCanvasElement).getContext('2d') as CanvasRenderingContext2D).getImageData(0, 0, (canvas as HTMLCanvasElement).width, (canvas as HTMLCanvasElement).height).data;
            let binary = '';
            for (let i = 0; i < data.length; i++) binary += String.fromCharCode(data[i] as number);
            return btoa(binary);
          }),
          'base64',
        );
        assert.equal(got.length, want.length, c.name);
        let worst = 0;
        for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs((got[i] as number) - (want[i] as number)));
        assert.ok(worst <= c.tolerance, `${c.name}: a pixel differs from the reference by ${worst} grey levels`);
      }
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'upload-page-codecs.png'), fullPage: true });
      // 12-bit JPEG Extended: no decoder here; the series says so and rectangles can still be typed in.
      await page.selectOption('#s1-instance', '2');
      await page.waitForSelector('section.series:has(#s1-title)[data-shown="2:0"][data-preview="none"]');
      assert.match((await page.textContent('section.series:has(#s1-title) .note')) ?? '', /^no preview for 12-bit JPEG Extended\. Rectangles can still be typed in\.$/);
      // A frame its decoder refuses (JPEG-LS whose SOI is followed by no marker): a message, not a broken page.
      const corrupt = readFileSync(join(ts, 'MR_small_jpeg_ls_lossless.dcm'));
      const fragment = dicom.parse(arrayBuffer(corrupt)).pixel?.fragments?.items[0];
      corrupt.fill(0, (fragment?.offset ?? 0) + 2, (fragment?.offset ?? 0) + 4);
      const refused = await page.evaluate(async (base64) => {
        const bytes = Uint8Array.from(atob(base64), (ch) => ch.charCodeAt(0));
        const deid = (window as unknown as { DeidDicom: { parse(b: ArrayBuffer): unknown; frameImage(p: unknown, k: number): Promise<unknown> } }).DeidDicom;
        return deid.frameImage(deid.parse(bytes.buffer), 0);
      }, corrupt.toString('base64'));
      assert.equal(refused, 'could not decode this frame: the JPEG-LS decoder refused it');
      await page.click('#cancel');
      assert.deepEqual(errors, [], 'no script error and no Content-Security-Policy violation');
      await page.close();
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    // The codec files are an allow-list: a name not in it is not found, whatever it says.
    const wasm = await fetch(`${gateway.url}/upload/codecs/charlswasm_decode.wasm`);
    assert.equal(wasm.headers.get('content-type'), 'application/wasm');
    await wasm.arrayBuffer();
    for (const name of ['..%2F..%2Fpackage.json', 'charlswasm.wasm', 'constructor']) {
      const res = await fetch(`${gateway.url}/upload/codecs/${name}`);
      assert.equal(res.status, 404, name);
      await res.arrayBuffer();
    }
  });

  test('picks sample files, shows each result, and Orthanc holds only de-identified instances', async () => {
    const page = await browser.browser.newPage();
    const token = await gateway.token('uploader');
    await page.goto(`${gateway.url}/upload`);
    assert.equal(await page.title(), 'deid-gateway · upload');
    const scripts = await page.$$eval('script[src], link[href]', (els) => els.map((e) => e.getAttribute('src') ?? e.getAttribute('href') ?? ''));
    assert.ok(scripts.every((src) => !/^https?:/.test(src)), 'no CDN: every asset is our own');
    await page.fill('#token', token);
    await page.setInputFiles('#files', [
      join(samplesDir(), 'transfer-syntax/MR_small.dcm'),
      join(samplesDir(), 'private-tags/CT_small.dcm'),
      join(samplesDir(), 'edge-cases/MR_truncated.dcm'),
    ]);
    await page.click('#send');
    // Nothing is sent before the review is confirmed (issue 18 part 2).
    await page.waitForSelector('body[data-review="ready"]');
    await page.click('#confirm');
    await page.waitForSelector('body[data-done="true"]', { timeout: BROWSER_DEADLINE });
    const rows = await page.$$eval('#results tbody tr', (trs) =>
      trs.map((tr) => ({ outcome: (tr as HTMLElement).dataset['outcome'], study: (tr as HTMLElement).dataset['study'], text: tr.textContent ?? '' })),
    );
    assert.deepEqual(rows.map((r) => r.outcome), ['stored', 'stored', 'refused']);
    assert.match(rows[0]?.study ?? '', /^2\.25\.\d+$/);
    assert.match(rows[2]?.text ?? '', /refused: not a DICOM file the gateway can de-identify \(0xC000\)/);
    assert.match(await page.textContent('#summary') ?? '', /2 stored, 1 refused/);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'upload-page.png'), fullPage: true });

    const ids = (await (await fetch(`${orthanc.httpUrl}/instances`)).json()) as string[];
    assert.equal(ids.length, 2);
    for (const id of ids) {
      const file = Buffer.from(await (await fetch(`${orthanc.httpUrl}/instances/${id}/file`)).arrayBuffer()).toString('latin1');
      for (const canary of ['CompressedSamples', '1CT1', '4MR1', '1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457']) {
        assert.ok(!file.includes(canary), `${canary} reached the PACS`);
      }
      assert.ok(file.includes('ANON^'), 'the pseudonymous name is there');
    }
  });

  test('the upload endpoint refuses tokens of other roles', async () => {
    const form = new FormData();
    form.append('file', new Blob([readFileSync(join(samplesDir(), 'transfer-syntax/MR_small.dcm'))]), 'a.dcm');
    for (const [role, status] of [['researcher', 403], ['clinician', 501]] as const) {
      const res = await fetch(`${gateway.url}/upload`, { method: 'POST', body: form, headers: { authorization: `Bearer ${await gateway.token(role)}` } });
      assert.equal(res.status, status, role);
      await res.arrayBuffer();
    }
    const none = await fetch(`${gateway.url}/upload`, { method: 'POST', body: form });
    assert.equal(none.status, 401);
    await none.arrayBuffer();
  });
});

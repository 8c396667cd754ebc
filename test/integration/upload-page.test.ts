import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { samplesDir } from '../../src/demo/samples.ts';
import { launchBrowser } from '../helpers/browser.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startTestOrthanc, type OrthancProcess } from '../helpers/orthanc.ts';

const ARTIFACTS = resolve(import.meta.dirname, '../artifacts');

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
    await page.waitForSelector('body[data-done="true"]', { timeout: 30_000 });
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

import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

/**
 * How long a wait on the browser may take. In CI Chromium shares the two cores with the OCR and Postgres
 * files, and pages took 2.3–4 × as long as alone: OHIF's first load (some 10 MB of script) opens in 8–9 s
 * alone, 14 s beside four busy loops, and one CI run timed out on it at 20 s. Passing tests never wait it out.
 */
export const BROWSER_DEADLINE = 90_000;

/**
 * Debian's chromium, headless, driven by playwright-core. The flags keep it off the network: this
 * machine only reaches loopback.
 */
export async function launchBrowser(): Promise<{ browser: Browser; close(): Promise<void> }> {
  // playwright gives chromium a fresh, empty profile of its own (in a temp dir it removes).
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    browser,
    async close() {
      await browser.close();
    },
  };
}

// The DIMSE forwarder meeting OCR (src/dimse/forwarder.ts through stow.ts storePart): an instance accepted
// without the regions intake found (after a restart, or past the forwarder's memory) is read by OCR when it
// is forwarded. A detector that was only full or out of time is a passing state: the study is retried, and
// stored once OCR answers; a detector that failed refuses the instance, which is quarantined with the
// withhold's reason and never retried or sent raw. A real spool in a temp dir, the real engine, a fake
// detector and a fake PACS (test/helpers/ocr-stow-view.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { asciiValue } from '../../../src/dicom/dataset.ts';
import { readPart10Buffer } from '../../../src/dicom/part10-reader.ts';
import { Forwarder } from '../../../src/dimse/forwarder.ts';
import { Spool } from '../../../src/dimse/spool.ts';
import { TextDetectionError, type TextDetector } from '../../../src/pixel/text-detection.ts';
import { fakeDetector, ocrStowView } from '../../helpers/ocr-stow-view.ts';
import { sample } from '../../helpers/sample.ts';

const CINE = 'multiframe/IM00001.implicit_little_endian.dcm'; // US, RGB 8-bit, 8 frames: risky, no rule covers it
const TEXT = [{ x: 10, y: 190, width: 120, height: 24 }];
const SOP_CLASS = 0x00080016;
const SOP_INSTANCE = 0x00080018;
const STUDY = 0x0020000d;
const BURNED_IN_ANNOTATION = 0x00280301;
const silent = { info() {}, warn() {}, error() {} };

describe('the forwarder runs OCR again for an instance accepted without its regions', () => {
  const work = mkdtempSync(join(tmpdir(), 'forwarder-ocr-'));
  after(() => rmSync(work, { recursive: true, force: true }));

  /** Spools the cine as accepted at intake without regions, ends its association, and waits until it is stored or quarantined. */
  async function forward(name: string, detector: TextDetector) {
    const spool = await Spool.open(join(work, name, 'spool'), 64 * 1024 * 1024);
    const { view, record } = ocrStowView(join(work, name), { ocr: true }, detector);
    const forwarder = new Forwarder({
      spool,
      view,
      audit: { append: async () => {}, list: async () => [] },
      log: silent,
      idleTimeoutMs: 60_000,
      maxAttempts: 4,
      backoffMs: 5,
      maxBackoffMs: 5,
      concurrency: 1,
      batchInstances: 0,
    });
    try {
      const bytes = sample(CINE);
      const dataset = (await readPart10Buffer(bytes)).header.dataset;
      const id = (tag: number) => asciiValue(dataset, tag)?.replace(/\0/g, '').trim() as string;
      const writer = spool.incoming(bytes);
      writer.end();
      await writer.settled;
      const caller = { aeTitle: 'ECHO', role: 'uploader', profile: 'uploader', pseudonyms: 'keyed' } as const;
      await forwarder.accept(writer, { sopClass: id(SOP_CLASS), sopInstance: id(SOP_INSTANCE), study: id(STUDY) }, caller, 'association-1');
      forwarder.associationEnded('association-1');
      const deadline = Date.now() + 20_000;
      while (forwarder.status().instancesPending > 0) {
        if (Date.now() > deadline) throw new Error(`not settled: ${JSON.stringify(forwarder.status())}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      return { record, quarantined: await forwarder.quarantine() };
    } finally {
      await forwarder.close();
    }
  }

  test('a detector full, then out of time: the study is retried, and stored with the regions blank once OCR answers', async () => {
    const busy = [new TextDetectionError('TEXT_DETECTION_BUSY', 'busy'), new TextDetectionError('TEXT_DETECTION_TIMEOUT', 'slow')];
    const detector = fakeDetector({ errors: busy, regions: TEXT });
    const { record, quarantined } = await forward('busy', detector);
    assert.deepEqual(quarantined, []);
    assert.equal(record.sent.length, 1, 'stored once');
    assert.deepEqual(
      record.outcomes.map(([outcome, reason]) => `${outcome} ${reason}`),
      ['withheld TEXT_DETECTION_BUSY', 'withheld TEXT_DETECTION_TIMEOUT', 'redacted ocr'],
      'two tries refused for lack of resources, the third OCR-redacted',
    );
    assert.equal(detector.frames.length, 2 + 3, 'each refused try stopped at its first frame; the last read frames 1, 4 and 7');
    const stored = await readPart10Buffer(record.sent[0] as Buffer);
    assert.equal(asciiValue(stored.header.dataset, BURNED_IN_ANNOTATION)?.trim(), 'NO');
    const pixels = stored.pixelDataBytes as Buffer;
    const inText = (190 * 320 + 10) * 3; // the first sample of the region, frame 1
    assert.deepEqual([...pixels.subarray(inText, inText + 3)], [0, 0, 0]);
  });

  test('a detector that failed: the instance is quarantined at once with the withhold, never retried, nothing sent', async () => {
    const detector = fakeDetector({ error: new TextDetectionError('TEXT_DETECTION_FAILED', 'engine failed') });
    const { record, quarantined } = await forward('failed', detector);
    assert.equal(record.sent.length, 0);
    assert.equal(detector.frames.length, 1, 'asked once');
    assert.equal(quarantined.length, 1);
    assert.equal(quarantined[0]?.instances, 1);
    assert.match(JSON.stringify(quarantined[0]?.reason), /OCR failed: TEXT_DETECTION_FAILED/);
  });
});

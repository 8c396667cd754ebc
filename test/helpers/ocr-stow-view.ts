// A STOW view for unit tests of OCR on the write side (stow.ts storePart, and the DIMSE forwarder that
// calls it): a real policy and engine, a fake detector in place of tesseract, and a fake PACS that keeps the
// parts it is sent (test/integration/uploader-ocr.test.ts runs the real ones).
import { Readable } from 'node:stream';
import { createPolicy } from '../../src/deid/deidentify.ts';
import type { PixelPolicyConfig } from '../../src/deid/pixel-policy.ts';
import type { StowView } from '../../src/dicomweb/stow.ts';
import type { UpstreamRequest } from '../../src/dicomweb/upstream.ts';
import { stowFailureReason } from '../../src/http/error-mapping.ts';
import type { GrayFrame, TextDetector, TextRegion } from '../../src/pixel/text-detection.ts';
import { splitMultipart } from './multipart.ts';

/**
 * A detector that answers `regions`, or throws: `error` always, or `errors` one per call until they run out
 * (then `regions`). It records the frames it was given.
 */
export function fakeDetector(answer: { regions?: TextRegion[]; error?: Error; errors?: Error[] }): TextDetector & { frames: GrayFrame[] } {
  const frames: GrayFrame[] = [];
  const errors = [...(answer.errors ?? [])];
  return {
    frames,
    async detect(frame) {
      frames.push(frame);
      const error = answer.error ?? errors.shift();
      if (error) throw error;
      return answer.regions ?? [];
    },
    async close() {},
  };
}

/** What the view saw: the parts the PACS was sent, OCR's outcomes and the parts refused. */
export interface OcrStowRecord {
  readonly sent: Buffer[];
  readonly outcomes: [string, string, number][];
  readonly refusals: unknown[];
}

/** The uploader's view under `pixels`, OCR by `detector` (sampling frames 1, 4 and 7), parts kept in `record`. */
export function ocrStowView(tempDir: string, pixels: PixelPolicyConfig, detector: TextDetector | undefined): { view: StowView; record: OcrStowRecord } {
  const record: OcrStowRecord = { sent: [], outcomes: [], refusals: [] };
  const view: StowView = {
    policy: createPolicy({ secret: 'stow-ocr-test-secret-0123456789abcdef', pixels }),
    store: { scope: 'upload', save: async (mappings) => mappings.length, sync: async () => {}, originalOf: async () => undefined },
    upstream: {
      async send(req: UpstreamRequest) {
        const chunks: Buffer[] = [];
        for await (const chunk of req.body as Readable) chunks.push(Buffer.from(chunk));
        const part = splitMultipart(Buffer.concat(chunks), String(req.headers?.['content-type']))[0];
        record.sent.push(part?.body as Buffer);
        return { statusCode: 200, headers: {}, body: Readable.from([]) };
      },
      async close() {},
    },
    maxHeaderBytes: 1 << 20,
    maxPartBytes: 64 << 20,
    maxBodyBytes: 64 << 20,
    tempDir,
    failureReason: stowFailureReason,
    observeRefusal: (error) => record.refusals.push(error),
    ...(detector
      ? { ocr: { detector, settings: { sampleEvery: 3, maxSampledFrames: 3 }, observe: { outcome: (o, r, n) => record.outcomes.push([o, r, n]) } } }
      : {}),
  };
  return { view, record };
}

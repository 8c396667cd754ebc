// Per codec: median decode and blank ms per frame over the shared samples; and native blanking MB/s.
// Callable from bench/run.ts (benchPixelCodecs) or alone: node --import tsx bench/pixel-codecs.ts
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { characterSetOf, findElement } from '../src/dicom/dataset.ts';
import { elementToJsonValue } from '../src/dicom/json-model.ts';
import { readPart10Buffer } from '../src/dicom/part10-reader.ts';
import { decodedPhotometricInterpretation } from '../src/dicom/photometric.ts';
import { decodeFrameSync, initializeCodecs, requireCodec, type CodecName } from '../src/pixel/codecs.ts';
import { FrameSplitter } from '../src/pixel/encapsulated.ts';
import { frameGeometry, type FrameGeometry } from '../src/pixel/geometry.ts';
import { NativeBlanker, blankFrameInPlace } from '../src/pixel/native-blank.ts';
import { median } from './stats.ts';

const SAMPLES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../shared/dicom-samples');
const ENCAPSULATED = [
  'transfer-syntax/MR_small_RLE.dcm',
  'multiframe/CT0012.not_fragmented_bot_rle.dcm',
  'transfer-syntax/SC_rgb_jpeg_dcmtk.dcm',
  'multiframe/IM00001.fragmented_no_bot_jpeg_baseline.50.dcm',
  'transfer-syntax/JPGExtended.dcm',
  'transfer-syntax/JPEG-LL.dcm',
  'transfer-syntax/MR_small_jpeg_ls_lossless.dcm',
  'multiframe/CT0012.fragmented_no_bot_jpeg_ls.80.dcm',
  'transfer-syntax/MR_small_jp2klossless.dcm',
  'transfer-syntax/JPEG2000.dcm',
  'transfer-syntax/HTJ2KLossless_08_RGB.dcm',
  'transfer-syntax/liver_deflate.dcm',
];

export interface PixelCodecRow {
  readonly sample: string;
  readonly codec: CodecName;
  readonly frameBytes: number;
  readonly frames: number;
  readonly decodeMsMedian: number;
  readonly blankMsMedian: number;
}


async function frames(rel: string): Promise<{ g: FrameGeometry; uid: string; encoded: Buffer[] }> {
  const parsed = await readPart10Buffer(readFileSync(path.join(SAMPLES, rel)));
  const charset = characterSetOf(parsed.header.dataset, []);
  const g = frameGeometry((tag) => {
    const el = findElement(parsed.header.dataset, tag);
    return el && !el.items && !el.fragments ? elementToJsonValue(el, charset, true).Value : undefined;
  });
  const uid = parsed.header.transferSyntaxUID.replace(/[\0 ]+$/, '');
  const splitter = new FrameSplitter(g, requireCodec(uid));
  return { g, uid, encoded: [...splitter.push(parsed.pixelDataBytes ?? Buffer.alloc(0)), ...splitter.end()] };
}

/** Decode and blank cost per frame, per sample (each frame decoded `rounds` times). */
export async function benchPixelCodecs(rounds = 5): Promise<PixelCodecRow[]> {
  await initializeCodecs();
  const rows: PixelCodecRow[] = [];
  for (const rel of ENCAPSULATED) {
    const { g, uid, encoded } = await frames(rel);
    const codec = requireCodec(uid);
    const decodedGeometry = { ...g, photometricInterpretation: decodedPhotometricInterpretation(g.photometricInterpretation) };
    const rect = [{ x: 0, y: 0, width: Math.ceil(g.columns / 2), height: Math.ceil(g.rows / 4) }];
    const decodeMs: number[] = [];
    const blankMs: number[] = [];
    let frameBytes = 0;
    for (let r = 0; r < rounds; r++) {
      for (const [i, f] of encoded.entries()) {
        const t0 = performance.now();
        const frame = decodeFrameSync(codec, f, g, i);
        const t1 = performance.now();
        blankFrameInPlace(frame, decodedGeometry, rect);
        blankMs.push(performance.now() - t1);
        decodeMs.push(t1 - t0);
        frameBytes = frame.length;
      }
    }
    rows.push({ sample: rel, codec, frameBytes, frames: encoded.length, decodeMsMedian: median(decodeMs), blankMsMedian: median(blankMs) });
  }
  return rows;
}

/** Native blanking throughput: a 512 × 512 16-bit cine streamed in 64 KiB chunks, a top band blanked. */
export function benchNativeBlanking(totalMiB = 512): { mbPerSecond: number } {
  const g: FrameGeometry = { rows: 512, columns: 512, samplesPerPixel: 1, bitsAllocated: 16, bitsStored: 12, pixelRepresentation: 0, planarConfiguration: 0, photometricInterpretation: 'MONOCHROME2', numberOfFrames: Math.ceil((totalMiB * 2 ** 20) / (512 * 512 * 2)) };
  const blanker = new NativeBlanker(g, [{ x: 0, y: 0, width: 512, height: 48 }, { x: 400, y: 460, width: 100, height: 40 }]);
  const chunk = Buffer.alloc(64 * 1024, 7);
  const total = g.numberOfFrames * 512 * 512 * 2;
  const t0 = performance.now();
  for (let sent = 0; sent < total; sent += chunk.length) blanker.push(chunk);
  const seconds = (performance.now() - t0) / 1000;
  return { mbPerSecond: total / 1e6 / seconds };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const rows = await benchPixelCodecs();
  console.table(rows.map((r) => ({ ...r, decodeMsMedian: r.decodeMsMedian.toFixed(2), blankMsMedian: r.blankMsMedian.toFixed(3) })));
  console.log(`native blanking: ${benchNativeBlanking().mbPerSecond.toFixed(0)} MB/s`);
}

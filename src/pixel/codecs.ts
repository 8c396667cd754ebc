// Decoding one encapsulated frame (PS3.5 8.2) to native pixels with dcmjs-codecs (WebAssembly builds of
// libjpeg-turbo/ljpeg, CharLS, OpenJPEG, OpenJPH and an RLE decoder), or node:zlib for Deflated Image
// Frame Compression (PS3.5 8.2.15). Decoding is CPU work done in-thread behind an async API, so a
// worker pool can replace it without changing callers.
//
// What the decoders return (measured on 0.0.8): RLE honours the requested Planar Configuration; JPEG,
// JPEG 2000 and HTJ2K always return interleaved samples; JPEG-LS returns the layout of the stream's
// interleave mode (ILV none: planar). The library logs only through its loglevel logger, and only when
// logCodecsInfo/Trace is set: both are off and the logger is silenced, so nothing reaches stdout.
//
// The library is loaded on first use, not at start (about 7 MB of resident memory that a gateway whose
// policy never decodes a frame does not spend: issue 20's idle memory).
import { inflateRawSync } from 'node:zlib';
import type dcmjsCodecs from 'dcmjs-codecs';
import { PixelDecodeError, PixelUnsupportedError } from './errors.ts';
import { frameByteLength, type FrameGeometry } from './geometry.ts';

type Codecs = typeof dcmjsCodecs;
/** The library once `initializeCodecs()` has loaded it. */
let codecs: Codecs | undefined;

export type CodecName = 'rle' | 'jpeg' | 'jpeg-ls' | 'jpeg2000' | 'htj2k' | 'deflate';

// PS3.6 Table A-1 (PS3.5 A.4.1–A.4.11, A.4.14): the encapsulated transfer syntaxes we decode.
const CODEC_BY_TRANSFER_SYNTAX: Readonly<Record<string, CodecName>> = Object.freeze({
  '1.2.840.10008.1.2.5': 'rle',
  '1.2.840.10008.1.2.4.50': 'jpeg',
  '1.2.840.10008.1.2.4.51': 'jpeg',
  '1.2.840.10008.1.2.4.57': 'jpeg',
  '1.2.840.10008.1.2.4.70': 'jpeg',
  '1.2.840.10008.1.2.4.80': 'jpeg-ls',
  '1.2.840.10008.1.2.4.81': 'jpeg-ls',
  '1.2.840.10008.1.2.4.90': 'jpeg2000',
  '1.2.840.10008.1.2.4.91': 'jpeg2000',
  '1.2.840.10008.1.2.4.201': 'htj2k',
  '1.2.840.10008.1.2.4.202': 'htj2k',
  '1.2.840.10008.1.2.4.203': 'htj2k',
  '1.2.840.10008.1.2.8.1': 'deflate',
});

/** The codec for an encapsulated transfer syntax, or undefined when we cannot decode it (video, JPIP …). */
export function codecFor(transferSyntaxUid: string): CodecName | undefined {
  return CODEC_BY_TRANSFER_SYNTAX[transferSyntaxUid.replace(/[\0 ]+$/, '')];
}

/** The codec, or PixelUnsupportedError naming the transfer syntax. */
export function requireCodec(transferSyntaxUid: string): CodecName {
  const codec = codecFor(transferSyntaxUid);
  if (!codec) throw new PixelUnsupportedError(`transfer syntax ${transferSyntaxUid.replace(/[\0 ]+$/, '')} cannot be decoded`);
  return codec;
}

let ready: Promise<void> | undefined;

/** Loads the WebAssembly module once per thread. */
export function initializeCodecs(): Promise<void> {
  ready ??= (async () => {
    const loaded = (await import('dcmjs-codecs')).default;
    loaded.log.setLevel('silent');
    await loaded.NativeCodecs.initializeAsync({ logCodecsInfo: false, logCodecsTrace: false });
    codecs = loaded;
  })();
  ready.catch(() => {
    ready = undefined;
  });
  return ready;
}

/**
 * Between interleaved (R1G1B1…) and planar (R…G…B…) sample order, 1-, 2- or 4-byte samples:
 * `toPlanar` true reads interleaved and writes planar, false the reverse.
 */
function reorderSamples(src: Buffer, g: FrameGeometry, toPlanar: boolean): Buffer {
  const bps = g.bitsAllocated / 8;
  const pixels = g.rows * g.columns;
  const out = Buffer.allocUnsafe(src.length);
  for (let s = 0; s < g.samplesPerPixel; s++) {
    for (let p = 0; p < pixels; p++) {
      const planar = (s * pixels + p) * bps;
      const interleaved = (p * g.samplesPerPixel + s) * bps;
      const from = toPlanar ? interleaved : planar;
      src.copy(out, toPlanar ? planar : interleaved, from, from + bps);
    }
  }
  return out;
}

/** JPEG-LS (ITU-T T.87 C.2.3): the interleave mode ILV of the first SOS (FFDA); 0 means one component per scan. */
function jpegLsInterleave(encoded: Uint8Array): number | undefined {
  for (let i = 2; i + 3 < encoded.length; ) {
    if (encoded[i] !== 0xff) return undefined;
    const marker = encoded[i + 1] as number;
    const length = ((encoded[i + 2] as number) << 8) | (encoded[i + 3] as number);
    if (marker === 0xda) {
      const components = encoded[i + 4] as number;
      return encoded[i + 5 + components * 2 + 1];
    }
    i += 2 + length;
  }
  return undefined;
}

/** PS3.5 G.5: the RLE header names one segment per byte of each sample, at increasing offsets. */
function checkRleHeader(encoded: Uint8Array, g: FrameGeometry, frame: number): void {
  if (g.bitsAllocated === 1) throw new PixelUnsupportedError('RLE with BitsAllocated 1');
  if (encoded.length < 64) throw new PixelDecodeError('RLE frame shorter than its header', frame);
  const view = Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength);
  const segments = view.readUInt32LE(0);
  if (segments !== g.samplesPerPixel * (g.bitsAllocated / 8)) throw new PixelDecodeError('RLE segment count does not match the geometry', frame);
  let previous = 63;
  for (let i = 0; i < segments; i++) {
    const offset = view.readUInt32LE(4 + i * 4);
    if (offset <= previous || offset >= encoded.length) throw new PixelDecodeError('RLE segment offsets out of order', frame);
    previous = offset;
  }
}

/** The loaded library; a decode before `initializeCodecs()` has resolved is a programming error. */
function loaded(): Codecs {
  if (!codecs) throw new Error('initializeCodecs() must be awaited before a frame is decoded');
  return codecs;
}

function contextFor(encoded: Uint8Array, g: FrameGeometry): InstanceType<Codecs['Context']> {
  return new (loaded().Context)({
    width: g.columns,
    height: g.rows,
    bitsAllocated: g.bitsAllocated,
    bitsStored: g.bitsStored,
    samplesPerPixel: g.samplesPerPixel,
    pixelRepresentation: g.pixelRepresentation,
    planarConfiguration: g.planarConfiguration,
    photometricInterpretation: g.photometricInterpretation,
    encodedBuffer: encoded,
  });
}

/**
 * The width and height a JPEG (ITU-T T.81 B.2.2 SOFn) or JPEG-LS (ITU-T T.87 C.2.2 SOF55, FFF7) stream
 * declares in its frame header, found by walking the marker segments after SOI; undefined when there is
 * none before the first scan.
 */
function jpegFrameSize(encoded: Uint8Array): { width: number; height: number } | undefined {
  if (encoded[0] !== 0xff || encoded[1] !== 0xd8) return undefined;
  let i = 2;
  while (i + 1 < encoded.length) {
    if (encoded[i] !== 0xff) return undefined;
    const marker = encoded[i + 1] as number;
    if (marker === 0xff) {
      i++; // a fill byte (T.81 B.1.1.2)
      continue;
    }
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      i += 2;
      continue;
    }
    if (marker === 0xda || marker === 0xd9 || i + 3 >= encoded.length) return undefined;
    const length = ((encoded[i + 2] as number) << 8) | (encoded[i + 3] as number);
    const sof = (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) || marker === 0xf7;
    if (sof) {
      if (i + 8 >= encoded.length) return undefined;
      const height = ((encoded[i + 5] as number) << 8) | (encoded[i + 6] as number);
      const width = ((encoded[i + 7] as number) << 8) | (encoded[i + 8] as number);
      return { width, height };
    }
    if (length < 2) return undefined;
    i += 2 + length;
  }
  return undefined;
}

/**
 * The image size a JPEG 2000 / HTJ2K codestream declares (ITU-T T.800 A.5.1 SIZ, FF51, right after SOC
 * FF4F): Xsiz - XOsiz by Ysiz - YOsiz. The SOC may follow a JP2 header some encoders add, so it is
 * looked for in the first 4 KiB.
 */
function j2kImageSize(encoded: Uint8Array): { width: number; height: number } | undefined {
  const limit = Math.min(encoded.length - 22, 4096);
  for (let i = 0; i < limit; i++) {
    if (encoded[i] === 0xff && encoded[i + 1] === 0x4f && encoded[i + 2] === 0xff && encoded[i + 3] === 0x51) {
      // After the marker: Lsiz (2), Rsiz (2), Xsiz, Ysiz, XOsiz, YOsiz (4 each).
      const v = Buffer.from(encoded.buffer, encoded.byteOffset + i + 4, 20);
      const width = v.readUInt32BE(4) - v.readUInt32BE(12);
      const height = v.readUInt32BE(8) - v.readUInt32BE(16);
      return { width, height };
    }
  }
  return undefined;
}

/**
 * Before decoding: the size the codestream declares must be the header's, so that a frame cannot make
 * the decoder allocate or compute for a larger image than the cap was checked against, and so that what
 * is blanked is the image the header describes.
 */
function checkCodestreamSize(codec: CodecName, encoded: Uint8Array, g: FrameGeometry, frame: number): void {
  let size: { width: number; height: number } | undefined;
  if (codec === 'jpeg' || codec === 'jpeg-ls') size = jpegFrameSize(encoded);
  else if (codec === 'jpeg2000' || codec === 'htj2k') size = j2kImageSize(encoded);
  else return;
  if (size === undefined) throw new PixelDecodeError(`${codec} frame ${frame} has no frame header`, frame);
  if (size.width !== g.columns || size.height !== g.rows) throw new PixelDecodeError(`${codec} frame ${frame} size does not match Rows (0028,0010) and Columns (0028,0011)`, frame);
}

/** Decodes synchronously (the codecs must be initialized). */
function decodeNow(codec: CodecName, encoded: Uint8Array, g: FrameGeometry, frame: number): { bytes: Buffer; planar: boolean } {
  const multi = g.samplesPerPixel > 1;
  checkCodestreamSize(codec, encoded, g, frame);
  if (codec === 'deflate') {
    const bytes = inflateRawSync(encoded, { maxOutputLength: frameByteLength(g) + 1 });
    return { bytes, planar: multi && g.planarConfiguration === 1 };
  }
  const native = loaded().NativeCodecs;
  switch (codec) {
    case 'rle':
      checkRleHeader(encoded, g, frame);
      return { bytes: toBuffer(native.decodeRle(contextFor(encoded, g), {}).getDecodedBuffer()), planar: multi && g.planarConfiguration === 1 };
    case 'jpeg':
      return { bytes: toBuffer(native.decodeJpeg(contextFor(encoded, g), { convertColorspaceToRgb: false }).getDecodedBuffer()), planar: false };
    case 'jpeg-ls':
      return { bytes: toBuffer(native.decodeJpegLs(contextFor(encoded, g), {}).getDecodedBuffer()), planar: multi && jpegLsInterleave(encoded) === 0 };
    case 'jpeg2000':
      return { bytes: toBuffer(native.decodeJpeg2000(contextFor(encoded, g), {}).getDecodedBuffer()), planar: false };
    case 'htj2k':
      return { bytes: toBuffer(native.decodeHtJpeg2000(contextFor(encoded, g), {}).getDecodedBuffer()), planar: false };
  }
}

function toBuffer(u8: Uint8Array | undefined): Buffer {
  if (!u8) return Buffer.alloc(0);
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

/**
 * Decodes one frame to native little-endian samples in the header's Planar Configuration, frame bytes
 * exactly. Any codec failure or a wrong decoded size is PixelDecodeError (fail closed).
 */
export async function decodeFrame(encoded: Uint8Array, transferSyntaxUid: string, geometry: FrameGeometry, frame = 0): Promise<Buffer> {
  const codec = requireCodec(transferSyntaxUid);
  if (codec !== 'deflate') await initializeCodecs();
  // The decode itself is synchronous (dcmjs-codecs in this thread): nothing else runs while it does, so no
  // limit on concurrent decodes is needed here; a worker pool (issue 18) would bring one.
  return decodeFrameSync(codec, encoded, geometry, frame);
}

/** decodeFrame for callers that already awaited initializeCodecs() (the streaming splitter, benches). */
export function decodeFrameSync(codec: CodecName, encoded: Uint8Array, geometry: FrameGeometry, frame = 0): Buffer {
  let decoded: { bytes: Buffer; planar: boolean };
  try {
    decoded = decodeNow(codec, encoded, geometry, frame);
  } catch (err) {
    if (err instanceof PixelUnsupportedError || err instanceof PixelDecodeError) throw err;
    throw new PixelDecodeError(`${codec} frame ${frame} could not be decoded`, frame, { cause: err });
  }
  const expected = frameByteLength(geometry);
  if (decoded.bytes.length !== expected) throw new PixelDecodeError(`${codec} frame ${frame} decoded to ${decoded.bytes.length} bytes, expected ${expected}`, frame);
  const wantPlanar = geometry.samplesPerPixel > 1 && geometry.planarConfiguration === 1;
  if (wantPlanar !== decoded.planar) return reorderSamples(decoded.bytes, geometry, wantPlanar);
  return decoded.bytes;
}

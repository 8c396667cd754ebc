// Encapsulated Pixel Data (PS3.5 A.4) split into frames as it streams, one frame buffered at a time under
// a byte cap, each decoded (codecs.ts), blanked (native-blank.ts) and emitted as native little-endian
// bytes: the value of a native Pixel Data element in Explicit VR Little Endian (PS3.5 8.1.1, A.2).
import { decodedPhotometricInterpretation } from '../dicom/photometric.ts';
import type { Rectangle } from '../deid/pixel-policy.ts';
import { decodeFrameSync, initializeCodecs, requireCodec, type CodecName } from './codecs.ts';
import { PixelFrameTooLargeError, PixelMalformedError } from './errors.ts';
import { DEFAULT_MAX_FRAME_BYTES, assertBlankable, nativePixelDataLength, type FrameGeometry } from './geometry.ts';
import { blankFrameInPlace } from './native-blank.ts';

const ITEM = 0xfffee000;
const SEQUENCE_DELIMITER = 0xfffee0dd;

export interface FrameSplitterOptions {
  /** Cap on one encoded frame while it is assembled (PIXEL_FRAME_TOO_LARGE). */
  readonly maxFrameBytes?: number;
  /** The Extended Offset Table (7FE0,0001) value as stored: 64-bit little-endian offsets (PS3.3 C.7.6.3.1.8). */
  readonly extendedOffsetTable?: Buffer;
}

/** How frame boundaries are found, in order of preference (PS3.5 A.4 and its Notes). */
type Boundaries = 'single' | 'offsets' | 'marker' | 'fragment';

/**
 * PS3.5 A.4: the value of encapsulated Pixel Data, including item headers, fed in order; returns each
 * encoded frame once it is complete. Frame starts come from, in order:
 *   1. one frame only: every fragment belongs to it;
 *   2. the Extended Offset Table, else a non-empty Basic Offset Table (offsets from the first fragment's item tag);
 *   3. the codec's start marker at the start of a fragment: JPEG/JPEG-LS SOI FFD8, JPEG 2000/HTJ2K SOC FF4F,
 *      an RLE header (PS3.5 G.5) – these cannot occur at the start of a continuation fragment;
 *   4. otherwise one frame per fragment (Deflated Image Frame Compression, PS3.5 A.4.11), checked at the end.
 * The frame count must equal Number of Frames, else PixelMalformedError.
 */
export class FrameSplitter {
  private readonly geometry: FrameGeometry;
  private readonly codec: CodecName;
  private readonly maxFrameBytes: number;
  private mode: Boundaries;
  private offsets: number[] = [];
  private nextOffset = 0;
  private readonly head: Buffer[] = [];
  private headLength = 0;
  private itemIndex = 0;
  private remaining = 0;
  private inValue = false;
  private done = false;
  private botParts: Buffer[] = [];
  /** Offset of the current fragment's item tag from the first fragment's item tag. */
  private fragmentOffset = 0;
  private fragmentHeadPending: Buffer[] = [];
  private fragmentHeadDecided = true;
  private currentFragmentLength = 0;
  private frame: Buffer[] = [];
  private frameLength = 0;
  private framesOut = 0;
  private started = false;

  constructor(geometry: FrameGeometry, codec: CodecName, options: FrameSplitterOptions = {}) {
    this.geometry = geometry;
    this.codec = codec;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.mode = geometry.numberOfFrames === 1 ? 'single' : codec === 'deflate' ? 'fragment' : 'marker';
    if (geometry.numberOfFrames > 1 && options.extendedOffsetTable && options.extendedOffsetTable.length > 0) {
      const eot = options.extendedOffsetTable;
      if (eot.length !== geometry.numberOfFrames * 8) throw new PixelMalformedError('Extended Offset Table (7FE0,0001) length does not match Number of Frames');
      for (let i = 0; i < eot.length; i += 8) this.offsets.push(Number(eot.readBigUInt64LE(i)));
      this.useOffsets();
    }
  }

  get framesEmitted(): number {
    return this.framesOut;
  }

  private useOffsets(): void {
    for (let i = 0; i < this.offsets.length; i++) {
      const o = this.offsets[i] as number;
      if ((i === 0 && o !== 0) || (i > 0 && o <= (this.offsets[i - 1] as number))) throw new PixelMalformedError('offset table not increasing from 0');
    }
    this.mode = 'offsets';
  }

  /** Feeds bytes of the value; returns the frames completed by them. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.done) throw new PixelMalformedError('bytes after the Sequence Delimitation Item');
      if (!this.inValue) {
        const take = Math.min(8 - this.headLength, chunk.length - pos);
        this.head.push(chunk.subarray(pos, pos + take));
        this.headLength += take;
        pos += take;
        if (this.headLength === 8) this.onItemHeader(Buffer.concat(this.head), out);
        continue;
      }
      const take = Math.min(this.remaining, chunk.length - pos);
      this.onValue(chunk.subarray(pos, pos + take), out);
      this.remaining -= take;
      pos += take;
      if (this.remaining === 0) this.onItemEnd(out);
    }
    return out;
  }

  /** The input ended after the Sequence Delimitation Item: returns the last frame. */
  end(): Buffer[] {
    if (!this.done) throw new PixelMalformedError('encapsulated Pixel Data ended without a Sequence Delimitation Item');
    const out: Buffer[] = [];
    this.flushFrame(out);
    if (this.framesOut !== this.geometry.numberOfFrames) throw new PixelMalformedError(`found ${this.framesOut} frames, Number of Frames says ${this.geometry.numberOfFrames}`);
    if (this.mode === 'offsets' && this.nextOffset !== this.offsets.length) throw new PixelMalformedError('an offset table entry is not at a fragment start');
    return out;
  }

  private onItemHeader(h: Buffer, out: Buffer[]): void {
    this.head.length = 0;
    this.headLength = 0;
    const tag = ((h.readUInt16LE(0) << 16) | h.readUInt16LE(2)) >>> 0;
    const length = h.readUInt32LE(4);
    if (tag === SEQUENCE_DELIMITER) {
      if (this.itemIndex === 0) throw new PixelMalformedError('no Basic Offset Table item');
      this.done = true;
      return;
    }
    if (tag !== ITEM || length === 0xffffffff) throw new PixelMalformedError('invalid item in encapsulated Pixel Data');
    this.remaining = length;
    this.inValue = true;
    if (this.itemIndex > 0) {
      this.currentFragmentLength = length;
      this.fragmentHeadDecided = false;
      this.fragmentHeadPending = [];
      if (this.mode === 'single' && !this.started) this.startFrame(out);
      else if (this.mode === 'fragment') this.startFrame(out);
      else if (this.mode === 'offsets') {
        if (this.offsets[this.nextOffset] === this.fragmentOffset) {
          this.nextOffset++;
          this.startFrame(out);
        } else if (!this.started) throw new PixelMalformedError('first offset is not the first fragment');
      }
    } else if (length > this.geometry.numberOfFrames * 4 + 8) throw new PixelMalformedError('Basic Offset Table longer than Number of Frames allows');
    if (length === 0) this.onItemEnd(out);
  }

  private onValue(bytes: Buffer, out: Buffer[]): void {
    if (this.itemIndex === 0) {
      this.botParts.push(Buffer.from(bytes));
      return;
    }
    if (this.mode === 'marker' && !this.fragmentHeadDecided) {
      this.fragmentHeadPending.push(bytes);
      const have = this.fragmentHeadPending.reduce((n, b) => n + b.length, 0);
      if (have >= Math.min(8, this.currentFragmentLength)) this.decideMarker(out);
      return;
    }
    this.append(bytes);
  }

  private decideMarker(out: Buffer[]): void {
    const head = Buffer.concat(this.fragmentHeadPending);
    this.fragmentHeadPending = [];
    this.fragmentHeadDecided = true;
    if (!this.started || this.startsFrame(head)) this.startFrame(out);
    this.append(head);
  }

  private startsFrame(b: Buffer): boolean {
    switch (this.codec) {
      case 'jpeg':
      case 'jpeg-ls':
        return b.length >= 2 && b[0] === 0xff && b[1] === 0xd8;
      case 'jpeg2000':
      case 'htj2k':
        return b.length >= 2 && b[0] === 0xff && b[1] === 0x4f;
      case 'rle':
        return b.length >= 8 && b.readUInt32LE(0) === this.geometry.samplesPerPixel * Math.ceil(this.geometry.bitsAllocated / 8) && b.readUInt32LE(4) === 64;
      case 'deflate':
        return true;
    }
  }

  private onItemEnd(out: Buffer[]): void {
    this.inValue = false;
    if (this.itemIndex === 0) {
      const bot = Buffer.concat(this.botParts);
      this.botParts = [];
      if (bot.length % 4 !== 0) throw new PixelMalformedError('Basic Offset Table length is not a multiple of 4');
      if (this.mode !== 'offsets' && this.geometry.numberOfFrames > 1 && bot.length > 0) {
        if (bot.length !== this.geometry.numberOfFrames * 4) throw new PixelMalformedError('Basic Offset Table entries do not match Number of Frames');
        for (let i = 0; i < bot.length; i += 4) this.offsets.push(bot.readUInt32LE(i));
        this.useOffsets();
      }
    } else {
      if (this.mode === 'marker' && !this.fragmentHeadDecided) this.decideMarker(out);
      this.fragmentOffset += 8 + this.currentFragmentLength;
    }
    this.itemIndex++;
  }

  private startFrame(out: Buffer[]): void {
    if (this.started) this.flushFrame(out);
    this.started = true;
  }

  private append(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.frameLength += bytes.length;
    if (this.frameLength > this.maxFrameBytes) throw new PixelFrameTooLargeError(this.maxFrameBytes);
    this.frame.push(Buffer.from(bytes));
  }

  private flushFrame(out: Buffer[]): void {
    if (!this.started) return;
    if (this.framesOut >= this.geometry.numberOfFrames) throw new PixelMalformedError('more frames than Number of Frames');
    out.push(this.frame.length === 1 ? (this.frame[0] as Buffer) : Buffer.concat(this.frame, this.frameLength));
    this.frame = [];
    this.frameLength = 0;
    this.framesOut++;
    this.started = false;
  }
}

export interface EncapsulatedRedactionOptions extends FrameSplitterOptions {
  readonly transferSyntaxUid: string;
  readonly rectangles: readonly Rectangle[];
}

/**
 * Encapsulated value bytes in, native Explicit VR Little Endian Pixel Data value bytes out (every frame
 * decoded and blanked, then the even-length pad): push() chunks as they arrive, end() after the last.
 * Holds one encoded and one decoded frame at a time.
 */
export class EncapsulatedRedactor {
  readonly geometry: FrameGeometry;
  /** The native value length written: frames × frame size, padded to even (PS3.5 7.1.1). */
  readonly nativeLength: number;
  private readonly splitter: FrameSplitter;
  private readonly codec: CodecName;
  private readonly rectangles: readonly Rectangle[];
  private readonly decodedGeometry: FrameGeometry;
  private written = 0;

  constructor(geometry: FrameGeometry, options: EncapsulatedRedactionOptions) {
    this.codec = requireCodec(options.transferSyntaxUid);
    assertBlankable(geometry, { encapsulated: true, ...(options.maxFrameBytes === undefined ? {} : { maxFrameBytes: options.maxFrameBytes }) });
    this.geometry = geometry;
    this.rectangles = options.rectangles;
    this.decodedGeometry = { ...geometry, photometricInterpretation: decodedPhotometricInterpretation(geometry.photometricInterpretation) };
    this.splitter = new FrameSplitter(geometry, this.codec, options);
    const raw = nativePixelDataLength(geometry);
    this.nativeLength = raw + (raw % 2);
  }

  /** Loads the codecs (call once before push). */
  async ready(): Promise<void> {
    if (this.codec !== 'deflate') await initializeCodecs();
  }

  /** Native bytes for the frames completed by this chunk. */
  push(chunk: Buffer): Buffer[] {
    return this.redactAll(this.splitter.push(chunk));
  }

  /** The last frame and the pad byte. */
  end(): Buffer[] {
    const out = this.redactAll(this.splitter.end());
    if (this.written < this.nativeLength) {
      out.push(Buffer.alloc(this.nativeLength - this.written));
      this.written = this.nativeLength;
    }
    return out;
  }

  /** `frames` are the last ones the splitter emitted, in order: the first is frame framesEmitted - frames.length. */
  private redactAll(frames: readonly Buffer[]): Buffer[] {
    const first = this.splitter.framesEmitted - frames.length;
    return frames.map((f, i) => this.redact(f, first + i));
  }

  private redact(encoded: Buffer, index: number): Buffer {
    const frame = decodeFrameSync(this.codec, encoded, this.geometry, index);
    blankFrameInPlace(frame, this.decodedGeometry, this.rectangles);
    this.written += frame.length;
    return frame;
  }
}

// Streaming Part 10 reader: preamble and File Meta (PS3.10 7.1), the dataset up to Pixel Data as a tree
// (PS3.5 7.1, 7.5), Pixel Data passed on in chunks (PS3.5 A.4 for encapsulation), then the trailer.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createInflateRaw } from 'node:zlib';
import { asciiValue, type DataElement, type Dataset, type DatasetEncoding } from './dataset.ts';
import { implicitVr, lookup, unambiguousVr } from './dictionary.ts';
import {
  DicomDepthExceededError,
  DicomError,
  DicomHeaderTooLargeError,
  DicomInvalidLengthError,
  DicomInvalidSequenceError,
  DicomInvalidVrError,
  DicomNotDicomError,
  DicomTruncatedError,
  DicomUnterminatedSequenceError,
} from './errors.ts';
import { groupOf, isGroupLength, isPrivate, type Tag } from './tag.ts';
import { TAG } from './tags.ts';
import { transferSyntax, uidForEncoding, type TransferSyntax } from './transfer-syntax.ts';
import { hasLongHeader, isVr, swapBytes, swapUnit, vrFromBytes } from './vr.ts';

const UNDEFINED_LENGTH = 0xffffffff;
const DEFAULT_MAX_HEADER_BYTES = 64 * 1024 * 1024;
const DEFAULT_MAX_DEPTH = 32;

const IMPLICIT_LE: DatasetEncoding = { explicitVr: false, littleEndian: true };

export interface Part10ReaderOptions {
  /** Cap on File Meta + dataset bytes before Pixel Data, and separately on the trailer (DICOM_HEADER_TOO_LARGE). */
  readonly maxHeaderBytes?: number;
  /** Maximum sequence nesting depth (DICOM_DEPTH_EXCEEDED). */
  readonly maxDepth?: number;
}

export interface Part10Header {
  /** Whether the input had the 128-byte preamble and "DICM" (PS3.10 7.1). The writer never copies the preamble. */
  readonly hadPreamble: boolean;
  /** The File Meta elements as read; undefined when the input had none. */
  readonly meta: Dataset | undefined;
  readonly transferSyntaxUID: string;
  /** True when the transfer syntax was sniffed (no File Meta, or File Meta without (0002,0010)). */
  readonly transferSyntaxInferred: boolean;
  /** Encoding of the dataset (after inflation); values in the tree are in this byte order. */
  readonly encoding: DatasetEncoding;
  readonly deflated: boolean;
  readonly dataset: Dataset;
}

export interface PixelDataInfo {
  readonly tag: Tag;
  readonly vr: string;
  /** Byte length of a native value; undefined for encapsulated Pixel Data (PS3.5 A.4). */
  readonly length: number | undefined;
}

export type Part10Event =
  | { readonly type: 'header'; readonly header: Part10Header }
  | { readonly type: 'pixel-data-start'; readonly pixelData: PixelDataInfo }
  /** The value field bytes as encoded; for encapsulated Pixel Data this includes item and delimiter headers. */
  | { readonly type: 'pixel-data-chunk'; readonly chunk: Buffer }
  | { readonly type: 'pixel-data-end' }
  | { readonly type: 'trailer'; readonly dataset: Dataset };

/** A queue of received chunks that never concatenates more than it is asked for. */
class ChunkQueue {
  private chunks: Buffer[] = [];
  private head = 0;
  available = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.available += chunk.length;
  }

  /** A copy (or view, when it lies in one chunk) of the next n bytes without consuming them. */
  peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length - this.head >= n) return first.subarray(this.head, this.head + n);
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    let pos = this.head;
    for (const c of this.chunks) {
      const take = Math.min(n - filled, c.length - pos);
      c.copy(out, filled, pos, pos + take);
      filled += take;
      pos = 0;
      if (filled === n) break;
    }
    return out;
  }

  /**
   * Consumes n bytes: a view when they lie in one chunk (no copy; a header value then pins its input
   * chunk only while the header is being rewritten), a copy when they span chunks.
   */
  read(n: number): Buffer {
    const out = this.peek(n);
    this.skip(n);
    return out;
  }

  /** Consumes up to max bytes as a view of the first chunk (zero copy, for Pixel Data passthrough). */
  readView(max: number): Buffer {
    const first = this.chunks[0];
    if (!first) return Buffer.alloc(0);
    const n = Math.min(max, first.length - this.head);
    const out = first.subarray(this.head, this.head + n);
    this.skip(n);
    return out;
  }

  skip(n: number): void {
    this.available -= n;
    while (n > 0) {
      const first = this.chunks[0];
      if (!first) break;
      const rest = first.length - this.head;
      if (n < rest) {
        this.head += n;
        return;
      }
      n -= rest;
      this.chunks.shift();
      this.head = 0;
    }
  }

  drain(): Buffer[] {
    const out = this.chunks.map((c, i) => (i === 0 ? c.subarray(this.head) : c));
    this.chunks = [];
    this.head = 0;
    this.available = 0;
    return out;
  }
}

function readTag(b: Buffer, off: number, le: boolean): Tag {
  return le ? ((b.readUInt16LE(off) << 16) | b.readUInt16LE(off + 2)) >>> 0 : ((b.readUInt16BE(off) << 16) | b.readUInt16BE(off + 2)) >>> 0;
}

function isPixelDataTag(tag: Tag): boolean {
  return tag === TAG.PixelData || tag === TAG.FloatPixelData || tag === TAG.DoubleFloatPixelData;
}

interface ElementHeader {
  readonly tag: Tag;
  readonly vr: string;
  readonly length: number;
  readonly headerLength: number;
}

/** Decodes an element header at the start of b (PS3.5 7.1.2 explicit, 7.1.3 implicit); undefined if b is too short. */
function decodeElementHeader(b: Buffer, enc: DatasetEncoding): ElementHeader | undefined {
  if (b.length < 8) return undefined;
  const tag = readTag(b, 0, enc.littleEndian);
  if (!enc.explicitVr) {
    const length = enc.littleEndian ? b.readUInt32LE(4) : b.readUInt32BE(4);
    return { tag, vr: implicitVr(tag), length, headerLength: 8 };
  }
  const vr = vrFromBytes(b[4] as number, b[5] as number);
  if (vr === undefined) throw new DicomInvalidVrError('explicit VR is not a DICOM VR', { tag });
  if (hasLongHeader(vr)) {
    if (b.length < 12) return undefined;
    return { tag, vr, length: enc.littleEndian ? b.readUInt32LE(8) : b.readUInt32BE(8), headerLength: 12 };
  }
  return { tag, vr, length: enc.littleEndian ? b.readUInt16LE(6) : b.readUInt16BE(6), headerLength: 8 };
}

interface Frame {
  readonly kind: 'item' | 'sequence' | 'fragments';
  readonly dataset: Dataset;
  readonly element: DataElement | undefined;
  /** Absolute offset in the dataset stream where a defined-length frame ends. */
  readonly end: number | undefined;
  readonly enc: DatasetEncoding;
}

type StepResult = 'need' | 'ok' | 'pixel';

/**
 * Synchronous, resumable element walker over a ChunkQueue: each step consumes one header or value
 * or returns 'need' without consuming anything, so any chunking gives the same tree.
 */
class DatasetWalker {
  readonly root: Dataset = [];
  private readonly stack: Frame[];
  offset = 0;
  pixel: PixelDataInfo | undefined;

  constructor(
    private readonly q: ChunkQueue,
    private readonly enc: DatasetEncoding,
    private readonly cap: number,
    private readonly maxDepth: number,
    private readonly stopAtPixelData: boolean,
  ) {
    this.stack = [{ kind: 'item', dataset: this.root, element: undefined, end: undefined, enc }];
  }

  get depth(): number {
    return this.stack.length - 1;
  }

  private checkCap(extra: number, tag: Tag): void {
    if (this.offset + extra > this.cap) throw new DicomHeaderTooLargeError(undefined, { tag });
  }

  private push(frame: Frame, tag: Tag): void {
    const parent = this.stack[this.stack.length - 1];
    if (frame.end !== undefined && parent?.end !== undefined && frame.end > parent.end) {
      throw new DicomInvalidLengthError('length overruns the enclosing item', { tag });
    }
    if (this.stack.length > this.maxDepth * 2) throw new DicomDepthExceededError(undefined, { tag });
    this.stack.push(frame);
  }

  run(): 'need' | 'pixel' {
    for (;;) {
      const r = this.step();
      if (r !== 'ok') return r;
    }
  }

  /** Throws unless the walker stopped at an element boundary of the root dataset. */
  finish(): void {
    const top = this.stack[this.stack.length - 1];
    if (this.stack.length > 1) {
      const tag = top?.element?.tag;
      if (top?.end === undefined && this.q.available === 0) throw new DicomUnterminatedSequenceError(undefined, tag === undefined ? {} : { tag });
      throw new DicomTruncatedError(undefined, tag === undefined ? {} : { tag });
    }
    if (this.q.available > 0) throw new DicomTruncatedError('input ended inside a data element');
  }

  /**
   * One step: consumes one header or value, or returns 'need' having consumed nothing.
   *   1. A defined-length frame whose end is reached is closed.
   *   2. In a sequence or an encapsulated value: the next Item or the Sequence Delimitation Item.
   *   3. In an item (or the root dataset): the next data element.
   */
  private step(): StepResult {
    const top = this.stack[this.stack.length - 1];
    if (!top) throw new DicomInvalidSequenceError();
    if (top.end !== undefined) {
      if (this.offset === top.end) {
        this.stack.pop();
        return 'ok';
      }
      if (this.offset > top.end) throw new DicomInvalidLengthError('element overruns its enclosing item', top.element ? { tag: top.element.tag } : {});
    }
    return top.kind === 'item' ? this.elementStep(top) : this.itemStep(top);
  }

  /** PS3.5 7.5: a sequence holds Items (FFFE,E000) and ends at its length or a Sequence Delimitation Item. */
  private itemStep(top: Frame): StepResult {
    const q = this.q;
    const le = top.enc.littleEndian;
    const element = top.element as DataElement;
    if (q.available < 8) return 'need';
    const h = q.peek(8);
    const tag = readTag(h, 0, le);
    const length = le ? h.readUInt32LE(4) : h.readUInt32BE(4);
    if (tag === TAG.Item) return top.kind === 'fragments' ? this.fragment(top, element, length) : this.openItem(top, element, length);
    if (tag === TAG.SequenceDelimitationItem) {
      if (top.end !== undefined) throw new DicomInvalidSequenceError('sequence delimiter in a defined-length sequence', { tag: element.tag });
      q.skip(8);
      this.offset += 8;
      this.stack.pop();
      return 'ok';
    }
    throw new DicomInvalidSequenceError('expected an item in a sequence', { tag: element.tag });
  }

  /** PS3.5 A.4: one fragment of an encapsulated value; fragments have defined length. */
  private fragment(top: Frame, element: DataElement, length: number): StepResult {
    const q = this.q;
    if (length === UNDEFINED_LENGTH) throw new DicomInvalidLengthError('fragment with undefined length', { tag: element.tag });
    this.checkCap(8 + length, element.tag);
    if (top.end !== undefined && this.offset + 8 + length > top.end) throw new DicomInvalidLengthError(undefined, { tag: element.tag });
    if (q.available < 8 + length) return 'need';
    q.skip(8);
    element.fragments?.push(q.read(length));
    this.offset += 8 + length;
    return 'ok';
  }

  /** PS3.5 7.5.1: an Item of defined or undefined length; its elements follow as a dataset. */
  private openItem(top: Frame, element: DataElement, length: number): StepResult {
    this.q.skip(8);
    this.offset += 8;
    const item: Dataset = [];
    element.items?.push(item);
    const end = length === UNDEFINED_LENGTH ? undefined : this.offset + length;
    this.push({ kind: 'item', dataset: item, element, end, enc: top.enc }, element.tag);
    return 'ok';
  }

  /**
   * The next data element of an item or the root dataset (PS3.5 7.1):
   *   1. an Item Delimitation Item closes an item of undefined length; other delimiters are refused here;
   *   2. at the root, Pixel Data stops the header (the walker was asked to);
   *   3. a sequence (SQ, a UN holding one, or an undefined length under Implicit VR) opens a frame;
   *   4. an encapsulated value inside the header opens a fragments frame;
   *   5. anything else is read whole, under the cap and within the enclosing item.
   */
  private elementStep(top: Frame): StepResult {
    const q = this.q;
    const isRoot = this.stack.length === 1;
    if (q.available < 4) return 'need';
    const head = q.peek(Math.min(q.available, 12)); // one view for the tag and the element header
    const tag = readTag(head, 0, top.enc.littleEndian);
    if (tag === TAG.ItemDelimitationItem) {
      if (isRoot || top.end !== undefined) throw new DicomInvalidSequenceError('unexpected item delimiter', { tag });
      if (q.available < 8) return 'need';
      q.skip(8);
      this.offset += 8;
      this.stack.pop();
      return 'ok';
    }
    if (tag === TAG.Item || tag === TAG.SequenceDelimitationItem) {
      throw new DicomInvalidSequenceError('item or sequence delimiter outside a sequence', top.element ? { tag: top.element.tag } : { tag });
    }
    const header = decodeElementHeader(head, top.enc);
    if (!header) return 'need';
    if (isRoot && this.stopAtPixelData && isPixelDataTag(tag)) {
      q.skip(header.headerLength);
      this.offset += header.headerLength;
      this.pixel = { tag, vr: header.vr, length: header.length === UNDEFINED_LENGTH ? undefined : header.length };
      return 'pixel';
    }
    // The dictionary is consulted only for UN (PS3.5 6.2.2); an explicit VR stands as written.
    const dictVr = header.vr === 'UN' ? unambiguousVr(tag) : undefined;
    const sequence = sequenceEncoding(header, top.enc, dictVr);
    if (sequence) return this.openSequence(top, header, sequence.enc, sequence.sourceVr);
    if (header.length === UNDEFINED_LENGTH) return this.openFragments(top, header);
    return this.value(top, header, dictVr);
  }

  private openSequence(top: Frame, header: ElementHeader, enc: DatasetEncoding, sourceVr: string | undefined): StepResult {
    const { tag, length, headerLength } = header;
    this.checkCap(headerLength, tag);
    if (length !== UNDEFINED_LENGTH) this.checkCap(headerLength + length, tag);
    this.q.skip(headerLength);
    this.offset += headerLength;
    const element: DataElement = { tag, vr: 'SQ', items: [], undefinedLength: length === UNDEFINED_LENGTH };
    if (sourceVr) element.sourceVr = sourceVr;
    top.dataset.push(element);
    const end = length === UNDEFINED_LENGTH ? undefined : this.offset + length;
    this.push({ kind: 'sequence', dataset: top.dataset, element, end, enc }, tag);
    return 'ok';
  }

  /** Encapsulated value inside the header, e.g. Icon Image Sequence Pixel Data (PS3.5 A.4): held as fragments. */
  private openFragments(top: Frame, header: ElementHeader): StepResult {
    const { tag, vr, headerLength } = header;
    if (vr !== 'OB' && vr !== 'OW' && vr !== 'UN') throw new DicomInvalidLengthError('undefined length on a non-sequence element', { tag });
    this.q.skip(headerLength);
    this.offset += headerLength;
    const element: DataElement = { tag, vr: vr === 'UN' ? 'OB' : vr, fragments: [], undefinedLength: true };
    top.dataset.push(element);
    this.push({ kind: 'fragments', dataset: top.dataset, element, end: undefined, enc: top.enc }, tag);
    return 'ok';
  }

  private value(top: Frame, header: ElementHeader, dictVr: string | undefined): StepResult {
    const q = this.q;
    const { tag, length, headerLength } = header;
    // Never wait for (or allocate) bytes the cap or the enclosing item would refuse anyway.
    this.checkCap(headerLength + length, tag);
    if (top.end !== undefined && this.offset + headerLength + length > top.end) {
      throw new DicomInvalidLengthError('length overruns the enclosing item', { tag });
    }
    if (q.available < headerLength + length) return 'need';
    q.skip(headerLength);
    const value = q.read(length);
    this.offset += headerLength + length;
    let vr = header.vr;
    let sourceVr: string | undefined;
    if (vr === 'UN' && top.enc.explicitVr && dictVr && dictVr !== 'UN') {
      // A UN the dictionary knows: expose the real VR so policy sees e.g. PatientName as PN (PS3.5 6.2.2).
      sourceVr = 'UN';
      vr = dictVr;
    }
    // Swapped in a copy: the value may be a view of the caller's input.
    const element: DataElement = { tag, vr, value: top.enc.littleEndian !== this.enc.littleEndian ? swapBytes(Buffer.from(value), swapUnit(vr)) : value };
    if (sourceVr) element.sourceVr = sourceVr;
    top.dataset.push(element);
    return 'ok';
  }
}

/**
 * Whether an element opens a sequence, and in which encoding its items are; undefined when it does not.
 * `sourceVr` is the VR found in the stream when it was not SQ.
 */
function sequenceEncoding(header: ElementHeader, enc: DatasetEncoding, dictVr: string | undefined): { enc: DatasetEncoding; sourceVr: string | undefined } | undefined {
  const { tag, vr, length } = header;
  if (vr === 'SQ') return { enc, sourceVr: undefined };
  // PS3.5 6.2.2 (CP-246): a UN holding a sequence is encoded as Implicit VR Little Endian.
  if (vr === 'UN' && enc.explicitVr && (length === UNDEFINED_LENGTH || dictVr === 'SQ')) return { enc: IMPLICIT_LE, sourceVr: 'UN' };
  // Implicit VR: only a sequence (or encapsulated Pixel Data) can have undefined length (PS3.5 7.1.3).
  if (!enc.explicitVr && length === UNDEFINED_LENGTH && !isPixelDataTag(tag)) return { enc, sourceVr: vr };
  return undefined;
}

// ---- Sniffing a dataset without File Meta (or without (0002,0010)) ----

const SNIFF_BYTES = 1024;

function plausibleTag(tag: Tag, previous: Tag): boolean {
  if (previous >= 0 && tag <= previous) return false;
  if (groupOf(tag) === 0xfffe) return false;
  return lookup(tag) !== undefined || isPrivate(tag) || isGroupLength(tag);
}

/** Parses up to three elements under one candidate encoding; true when they look like DICOM. */
function plausibleUnder(b: Buffer, enc: DatasetEncoding, atEnd: boolean): boolean {
  let off = 0;
  let previous = -1;
  for (let k = 0; k < 3; k++) {
    if (off >= b.length) return atEnd && k > 0;
    let h: ElementHeader | undefined;
    try {
      h = decodeElementHeader(b.subarray(off), enc);
    } catch {
      return false;
    }
    if (!h) return !atEnd && k > 0;
    if (!plausibleTag(h.tag, previous)) return false;
    const dictVr = unambiguousVr(h.tag);
    if (enc.explicitVr && dictVr && h.vr !== dictVr && h.vr !== 'UN') return false;
    if (h.length === UNDEFINED_LENGTH) {
      if (enc.explicitVr && h.vr !== 'SQ' && h.vr !== 'UN') return false;
      const next = off + h.headerLength;
      if (next + 4 > b.length) return !atEnd;
      const t = readTag(b, next, enc.littleEndian);
      return t === TAG.Item || t === TAG.SequenceDelimitationItem;
    }
    const end = off + h.headerLength + h.length;
    if (end > b.length) return !atEnd && k > 0;
    off = end;
    previous = h.tag;
  }
  return true;
}

const CANDIDATES: readonly DatasetEncoding[] = [
  { explicitVr: true, littleEndian: true },
  { explicitVr: false, littleEndian: true },
  { explicitVr: true, littleEndian: false },
];

/** The one encoding under which the bytes parse plausibly; undefined when none or several do (fail closed). */
function sniffEncoding(b: Buffer, atEnd: boolean): DatasetEncoding | undefined {
  const ok = CANDIDATES.filter((c) => plausibleUnder(b, c, atEnd));
  return ok.length === 1 ? ok[0] : undefined;
}

// ---- The reader ----

/** PS3.10 7.1: File Meta elements are group 0002. */
const FILE_META_GROUP = 0x0002;

function toBuffer(chunk: Uint8Array | string): Buffer {
  if (typeof chunk === 'string') throw new TypeError('Part 10 reader expects binary chunks');
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

function mapZlibError(err: unknown): DicomError {
  if (err instanceof DicomError) return err;
  const code = (err as { code?: string } | null)?.code;
  if (code === 'Z_BUF_ERROR') return new DicomTruncatedError('deflated dataset ended early', { cause: err });
  return new DicomNotDicomError('deflated dataset is corrupt', { cause: err });
}

/**
 * The input side of one read: pulls a chunk from the source into the queue only when asked, so the
 * reader never runs ahead of its consumer (back-pressure).
 */
class Input {
  ended = false;
  #it: AsyncIterator<Uint8Array> | Iterator<Uint8Array>;
  #inflater: ReturnType<typeof createInflateRaw> | undefined;

  constructor(
    readonly q: ChunkQueue,
    source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    private readonly onHeld: (bytes: number) => void,
  ) {
    this.#it = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : (source as Iterable<Uint8Array>)[Symbol.iterator]();
  }

  /** One more chunk into the queue; false at the end of the input. */
  async pull(): Promise<boolean> {
    if (this.ended) return false;
    let r: IteratorResult<Uint8Array>;
    try {
      r = await this.#it.next();
    } catch (err) {
      throw this.#inflater ? mapZlibError(err) : err;
    }
    if (r.done) {
      this.ended = true;
      return false;
    }
    this.q.push(toBuffer(r.value));
    this.onHeld(this.q.available);
    return true;
  }

  /** Pulls until n bytes are queued; false when the input ends first. */
  async ensure(n: number): Promise<boolean> {
    while (this.q.available < n) if (!(await this.pull())) return false;
    return true;
  }

  /** PS3.5 A.5: everything after File Meta is one raw deflate stream; read on through an inflater. */
  inflateRest(): void {
    const raw = this.q.drain();
    const rest = this.#it;
    const inf = createInflateRaw();
    this.#inflater = inf;
    const rawSource = (async function* () {
      for (const b of raw) yield b;
      for (;;) {
        const r = await rest.next();
        if (r.done) return;
        yield r.value;
      }
    })();
    pipeline(Readable.from(rawSource), inf).catch(() => undefined); // errors surface through the iterator below
    this.#it = inf[Symbol.asyncIterator]();
  }

  destroy(): void {
    this.#inflater?.destroy();
  }
}

/** Step 1: preamble and "DICM" (PS3.10 7.1); a raw dataset has neither. */
async function readPreamble(input: Input): Promise<{ hadPreamble: boolean; hasMeta: boolean }> {
  const q = input.q;
  await input.ensure(132);
  if (q.available >= 132 && q.peek(132).toString('latin1', 128, 132) === 'DICM') {
    q.skip(132);
    return { hadPreamble: true, hasMeta: true };
  }
  if (q.available >= 4 && q.peek(4).toString('latin1') === 'DICM') {
    q.skip(4);
    return { hadPreamble: false, hasMeta: true };
  }
  // File Meta without preamble, as pydicom accepts.
  const hasMeta = q.available >= 6 && q.peek(2).readUInt16LE(0) === FILE_META_GROUP && isVr(q.peek(6).toString('latin1', 4, 6));
  return { hadPreamble: false, hasMeta };
}

/** Step 2: File Meta, group 0002, always Explicit VR Little Endian (PS3.10 7.1), under the header cap. */
async function readFileMeta(input: Input, maxHeaderBytes: number): Promise<{ meta: Dataset; metaBytes: number }> {
  const q = input.q;
  const meta: Dataset = [];
  let metaBytes = 0;
  for (;;) {
    if (!(await input.ensure(2)) && q.available === 0) break;
    if (q.available < 2 || q.peek(2).readUInt16LE(0) !== FILE_META_GROUP) break;
    await input.ensure(12);
    const h = decodeElementHeader(q.peek(Math.min(q.available, 12)), { explicitVr: true, littleEndian: true });
    if (!h) throw new DicomTruncatedError('input ended inside File Meta');
    if (h.length === UNDEFINED_LENGTH) throw new DicomInvalidLengthError('undefined length in File Meta', { tag: h.tag });
    metaBytes += h.headerLength + h.length;
    if (metaBytes > maxHeaderBytes) throw new DicomHeaderTooLargeError(undefined, { tag: h.tag });
    if (!(await input.ensure(h.headerLength + h.length))) throw new DicomTruncatedError('input ended inside File Meta', { tag: h.tag });
    q.skip(h.headerLength);
    meta.push({ tag: h.tag, vr: h.vr, value: q.read(h.length) });
  }
  return { meta, metaBytes };
}

/** Step 3: the transfer syntax from (0002,0010), else sniffed; ambiguity is refused. */
async function resolveEncoding(input: Input, meta: Dataset | undefined): Promise<{ ts: TransferSyntax; enc: DatasetEncoding; inferred: boolean }> {
  const q = input.q;
  const tsUid = meta ? asciiValue(meta, TAG.TransferSyntaxUID) : undefined;
  const ts = tsUid ? transferSyntax(tsUid) : undefined;
  if (ts) {
    if (ts.deflated) input.inflateRest();
    return { ts, enc: ts, inferred: false };
  }
  await input.ensure(SNIFF_BYTES);
  const sniffed = q.available === 0 && meta ? undefined : sniffEncoding(q.peek(Math.min(q.available, SNIFF_BYTES)), input.ended);
  let enc: DatasetEncoding;
  if (sniffed) enc = sniffed;
  else if (meta && q.available === 0) enc = { explicitVr: true, littleEndian: true };
  else throw new DicomNotDicomError('cannot determine the dataset encoding unambiguously');
  return { ts: transferSyntax(uidForEncoding(enc)), enc, inferred: true };
}

/** Steps 4 and 6: walks a dataset until Pixel Data (when the walker stops there) or the end of the input. */
async function walk(input: Input, walker: DatasetWalker): Promise<void> {
  for (;;) {
    if (walker.run() === 'pixel') return;
    if (!(await input.pull())) {
      walker.finish();
      return;
    }
  }
}

/** Step 5: Pixel Data, passed on as it arrives: a native value, or items of fragments (PS3.5 A.4). */
async function* pixelDataEvents(input: Input, pixel: PixelDataInfo, le: boolean): AsyncGenerator<Part10Event> {
  const q = input.q;
  const stream = async function* (n: number): AsyncGenerator<Part10Event> {
    let remaining = n;
    while (remaining > 0) {
      if (q.available === 0 && !(await input.pull())) throw new DicomTruncatedError('input ended inside Pixel Data', { tag: pixel.tag });
      const chunk = q.readView(remaining);
      remaining -= chunk.length;
      yield { type: 'pixel-data-chunk', chunk };
    }
  };
  yield { type: 'pixel-data-start', pixelData: pixel };
  if (pixel.length !== undefined) yield* stream(pixel.length);
  else {
    // PS3.5 A.4: items of fragments, then a Sequence Delimitation Item.
    for (;;) {
      if (!(await input.ensure(8))) throw new DicomTruncatedError('input ended inside encapsulated Pixel Data', { tag: pixel.tag });
      const h = q.read(8);
      const tag = readTag(h, 0, le);
      const length = le ? h.readUInt32LE(4) : h.readUInt32BE(4);
      yield { type: 'pixel-data-chunk', chunk: h };
      if (tag === TAG.SequenceDelimitationItem) break;
      if (tag !== TAG.Item || length === UNDEFINED_LENGTH) throw new DicomInvalidSequenceError('invalid encapsulated Pixel Data item', { tag: pixel.tag });
      yield* stream(length);
    }
  }
  yield { type: 'pixel-data-end' };
}

export class Part10Reader {
  private readonly maxHeaderBytes: number;
  private readonly maxDepth: number;
  private held = 0;
  private q = new ChunkQueue();

  constructor(options: Part10ReaderOptions = {}) {
    this.maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
    this.maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  }

  /** The largest number of bytes the reader ever held unconsumed at once (input buffering, not the header tree). */
  get maxHeldBytes(): number {
    return this.held;
  }

  /**
   * Reads a Part 10 stream. The generator pulls from `source` only as the consumer pulls events, so a
   * slow consumer slows the producer (back-pressure). Errors are DicomError subclasses.
   *   1. Preamble and "DICM" (PS3.10 7.1).
   *   2. File Meta (PS3.10 7.1).
   *   3. Transfer syntax, and inflation of a deflated dataset (PS3.5 A.5).
   *   4. Dataset up to Pixel Data, under the header cap: the `header` event.
   *   5. Pixel Data, passed on as it arrives.
   *   6. Trailer: elements after Pixel Data (e.g. Digital Signatures, PS3.10 7.1 / PS3.15 C), same rules.
   */
  async *read(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<Part10Event, void, undefined> {
    const input = new Input(this.q, source, (bytes) => {
      if (bytes > this.held) this.held = bytes;
    });
    try {
      const { hadPreamble, hasMeta } = await readPreamble(input);
      const { meta, metaBytes } = hasMeta ? await readFileMeta(input, this.maxHeaderBytes) : { meta: undefined, metaBytes: 0 };
      const { ts, enc, inferred } = await resolveEncoding(input, meta);
      const walker = new DatasetWalker(this.q, enc, this.maxHeaderBytes - metaBytes, this.maxDepth, true);
      await walk(input, walker);
      yield {
        type: 'header',
        header: {
          hadPreamble,
          meta,
          transferSyntaxUID: ts.uid,
          transferSyntaxInferred: inferred,
          encoding: { explicitVr: enc.explicitVr, littleEndian: enc.littleEndian },
          deflated: ts.deflated,
          dataset: walker.root,
        },
      };
      if (!walker.pixel) return;
      yield* pixelDataEvents(input, walker.pixel, enc.littleEndian);
      const trailer = new DatasetWalker(this.q, enc, this.maxHeaderBytes, this.maxDepth, false);
      await walk(input, trailer);
      yield { type: 'trailer', dataset: trailer.root };
    } finally {
      input.destroy();
    }
  }
}

export interface Part10Parsed {
  readonly header: Part10Header;
  readonly pixelData: PixelDataInfo | undefined;
  /** All Pixel Data value bytes (for tests and small files only). */
  readonly pixelDataBytes: Buffer | undefined;
  readonly trailer: Dataset;
}

/** Whole-buffer convenience over Part10Reader (tests, CLI); chunkSize splits the input. */
export async function readPart10Buffer(buf: Buffer, options: Part10ReaderOptions & { chunkSize?: number } = {}): Promise<Part10Parsed> {
  const size = options.chunkSize ?? 64 * 1024;
  const chunks = function* (): Generator<Buffer> {
    for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
  };
  let header: Part10Header | undefined;
  let pixelData: PixelDataInfo | undefined;
  const pixels: Buffer[] = [];
  let trailer: Dataset = [];
  for await (const ev of new Part10Reader(options).read(chunks())) {
    if (ev.type === 'header') header = ev.header;
    else if (ev.type === 'pixel-data-start') pixelData = ev.pixelData;
    else if (ev.type === 'pixel-data-chunk') pixels.push(ev.chunk);
    else if (ev.type === 'trailer') trailer = ev.dataset;
  }
  if (!header) throw new DicomTruncatedError('no dataset');
  return { header, pixelData, pixelDataBytes: pixelData ? Buffer.concat(pixels) : undefined, trailer };
}

// Part 10 writer: 128 zero bytes, "DICM", File Meta (PS3.10 7.1), then the dataset (PS3.5 7.1, 7.5),
// Pixel Data passed through in chunks, and the trailer. Deflated output is re-deflated as a stream (PS3.5 A.5).
//
// Sequences and items are always written with undefined length and delimitation items (PS3.5 7.5.2):
// one pass, no length bookkeeping after values change. Group Length elements (gggg,0000) other than
// group 0002 are dropped (retired, PS3.5 7.2) because rewritten values would make them wrong.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDeflateRaw } from 'node:zlib';
import { asciiValue, findElement, type DataElement, type DatasetEncoding } from './dataset.ts';
import { DicomInvalidSequenceError, DicomInvalidValueError } from './errors.ts';
import type { Part10Event, PixelDataInfo } from './part10-reader.ts';
import { isGroupLength, type Tag } from './tag.ts';
import { TAG } from './tags.ts';
import { transferSyntax } from './transfer-syntax.ts';
import { hasInvalidControlBytes, hasLongHeader, isVr, padValue } from './vr.ts';

/** Implementation Class UID of deid-gateway (PS3.7 D.3.3.2; a UUID-derived UID, PS3.5 B.2). */
export const IMPLEMENTATION_CLASS_UID = '2.25.44162006074406719072761764642669780365';
const IMPLEMENTATION_VERSION_NAME = 'DEID_GATEWAY_01';

const UNDEFINED = 0xffffffff;
const EXPLICIT_LE: DatasetEncoding = { explicitVr: true, littleEndian: true };

function writeTag(b: Buffer, off: number, tag: Tag, le: boolean): void {
  if (le) {
    b.writeUInt16LE(tag >>> 16, off);
    b.writeUInt16LE(tag & 0xffff, off + 2);
  } else {
    b.writeUInt16BE(tag >>> 16, off);
    b.writeUInt16BE(tag & 0xffff, off + 2);
  }
}

/** An element header (PS3.5 7.1.2 / 7.1.3). A short-header VR whose value outgrows 16 bits is written as UN. */
export function encodeElementHeader(tag: Tag, vr: string, length: number, enc: DatasetEncoding): Buffer {
  const le = enc.littleEndian;
  if (!enc.explicitVr) {
    const b = Buffer.alloc(8);
    writeTag(b, 0, tag, le);
    if (le) b.writeUInt32LE(length, 4);
    else b.writeUInt32BE(length, 4);
    return b;
  }
  const outVr = !isVr(vr) ? 'UN' : !hasLongHeader(vr) && length > 0xffff ? 'UN' : vr;
  // PS3.5 7.1.2: tag, two VR characters, then a 2-byte length, or 2 reserved zero bytes and a 4-byte length.
  if (hasLongHeader(outVr)) {
    const b = Buffer.allocUnsafe(12);
    writeTag(b, 0, tag, le);
    b[4] = outVr.charCodeAt(0);
    b[5] = outVr.charCodeAt(1);
    b[6] = 0;
    b[7] = 0;
    if (le) b.writeUInt32LE(length, 8);
    else b.writeUInt32BE(length, 8);
    return b;
  }
  const b = Buffer.allocUnsafe(8);
  writeTag(b, 0, tag, le);
  b[4] = outVr.charCodeAt(0);
  b[5] = outVr.charCodeAt(1);
  if (le) b.writeUInt16LE(length, 6);
  else b.writeUInt16BE(length, 6);
  return b;
}

function delimiter(tag: Tag, length: number, enc: DatasetEncoding): Buffer {
  const b = Buffer.alloc(8);
  writeTag(b, 0, tag, enc.littleEndian);
  if (enc.littleEndian) b.writeUInt32LE(length, 4);
  else b.writeUInt32BE(length, 4);
  return b;
}


/** Appends the encoding of one element to out. */
function encodeElement(el: DataElement, enc: DatasetEncoding, out: Buffer[]): void {
  if (el.vr === 'SQ' || el.items) {
    // PS3.5 7.5.2: undefined-length sequence of undefined-length items.
    out.push(encodeElementHeader(el.tag, 'SQ', UNDEFINED, enc));
    for (const item of el.items ?? []) {
      out.push(delimiter(TAG.Item, UNDEFINED, enc));
      encodeElements(item, enc, out);
      out.push(delimiter(TAG.ItemDelimitationItem, 0, enc));
    }
    out.push(delimiter(TAG.SequenceDelimitationItem, 0, enc));
    return;
  }
  if (el.fragments) {
    // PS3.5 A.4: encapsulated value, items of fragments then a sequence delimiter.
    if (!enc.explicitVr || !enc.littleEndian) throw new DicomInvalidSequenceError('encapsulated value needs Explicit VR Little Endian', { tag: el.tag });
    out.push(encodeElementHeader(el.tag, el.vr, UNDEFINED, enc));
    for (const f of el.fragments) {
      const padded = padValue(f, 'OB');
      out.push(delimiter(TAG.Item, padded.length, enc), padded);
    }
    out.push(delimiter(TAG.SequenceDelimitationItem, 0, enc));
    return;
  }
  const value = padValue(el.value ?? Buffer.alloc(0), el.vr);
  out.push(encodeElementHeader(el.tag, el.vr, value.length, enc), value);
}

function encodeElements(dataset: readonly DataElement[], enc: DatasetEncoding, out: Buffer[]): void {
  for (const el of dataset) {
    if (isGroupLength(el.tag)) continue;
    encodeElement(el, enc, out);
  }
}

export function encodeDataset(dataset: readonly DataElement[], enc: DatasetEncoding): Buffer {
  const out: Buffer[] = [];
  encodeElements(dataset, enc, out);
  return Buffer.concat(out);
}

function uiValue(uid: string): Buffer {
  return padValue(Buffer.from(uid, 'latin1'), 'UI');
}

export interface FileMetaInput {
  readonly transferSyntaxUID: string;
  readonly mediaStorageSOPClassUID: string;
  readonly mediaStorageSOPInstanceUID: string;
}

/**
 * Preamble (128 zero bytes: a preamble can carry data, PS3.10 7.5), "DICM" and File Meta (PS3.10 7.1),
 * naming this implementation. Nothing else from the source File Meta is copied (Source AE Title etc.).
 */
export function encodeFileMeta(input: FileMetaInput): Buffer {
  const elements: DataElement[] = [
    { tag: TAG.FileMetaInformationVersion, vr: 'OB', value: Buffer.of(0x00, 0x01) },
    { tag: TAG.MediaStorageSOPClassUID, vr: 'UI', value: uiValue(input.mediaStorageSOPClassUID) },
    { tag: TAG.MediaStorageSOPInstanceUID, vr: 'UI', value: uiValue(input.mediaStorageSOPInstanceUID) },
    { tag: TAG.TransferSyntaxUID, vr: 'UI', value: uiValue(input.transferSyntaxUID) },
    { tag: TAG.ImplementationClassUID, vr: 'UI', value: uiValue(IMPLEMENTATION_CLASS_UID) },
    { tag: TAG.ImplementationVersionName, vr: 'SH', value: padValue(Buffer.from(IMPLEMENTATION_VERSION_NAME, 'latin1'), 'SH') },
  ];
  const body = encodeDataset(elements, EXPLICIT_LE);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(body.length, 0);
  const head = Buffer.alloc(132);
  head.write('DICM', 128, 'latin1');
  return Buffer.concat([head, encodeElementHeader(TAG.FileMetaInformationGroupLength, 'UL', 4, EXPLICIT_LE), groupLength, body]);
}

/** File Meta for a header: MediaStorageSOP*UID follow the dataset's SOPClassUID/SOPInstanceUID (PS3.10 7.1). */
function fileMetaFor(dataset: readonly DataElement[], sourceMeta: readonly DataElement[] | undefined, transferSyntaxUID: string): Buffer {
  const pick = (datasetTag: Tag, metaTag: Tag): string => {
    if (findElement(dataset, datasetTag)) return asciiValue(dataset, datasetTag) ?? '';
    // The source File Meta's value is copied only when it is text (PS3.5 6.1.2): a misframed source
    // element can hold the bytes of the elements after it (found by test/unit/fuzz).
    const source = sourceMeta ? findElement(sourceMeta, metaTag) : undefined;
    if (source?.value && hasInvalidControlBytes('UI', source.value)) throw new DicomInvalidValueError('File Meta UID holds control characters', { tag: metaTag });
    return (sourceMeta ? asciiValue(sourceMeta, metaTag) : undefined) ?? '';
  };
  return encodeFileMeta({
    transferSyntaxUID,
    mediaStorageSOPClassUID: pick(TAG.SOPClassUID, TAG.MediaStorageSOPClassUID),
    mediaStorageSOPInstanceUID: pick(TAG.SOPInstanceUID, TAG.MediaStorageSOPInstanceUID),
  });
}

async function* deflateRaw(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const deflater = createDeflateRaw();
  const done = pipeline(Readable.from(source), deflater);
  done.catch(() => undefined);
  try {
    for await (const chunk of deflater) yield chunk as Buffer;
    await done;
  } finally {
    deflater.destroy();
  }
}

/**
 * Turns reader events (with a possibly rewritten header and trailer) into Part 10 bytes in the same
 * transfer syntax. A pull-based generator: it encodes only as fast as its consumer reads.
 */
export async function* writePart10(events: AsyncIterable<Part10Event>): AsyncGenerator<Buffer, void, undefined> {
  const it = events[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done) return;
  if (first.value.type !== 'header') throw new TypeError('writePart10 expects the header event first');
  const header = first.value.header;
  const enc = header.encoding;
  const ts = transferSyntax(header.transferSyntaxUID);
  yield fileMetaFor(header.dataset, header.meta, header.transferSyntaxUID);

  const body = async function* (): AsyncGenerator<Buffer> {
    yield encodeDataset(header.dataset, enc);
    let pixel: PixelDataInfo | undefined;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      const ev = r.value;
      if (ev.type === 'pixel-data-start') {
        pixel = ev.pixelData;
        yield encodeElementHeader(pixel.tag, pixel.vr, pixel.length ?? UNDEFINED, enc);
      } else if (ev.type === 'pixel-data-chunk') yield ev.chunk;
      else if (ev.type === 'pixel-data-end') {
        // Pixel Data is passed through exactly as declared (an odd source length stays odd, as read).
        pixel = undefined;
      } else if (ev.type === 'trailer') {
        if (ev.dataset.length > 0) yield encodeDataset(ev.dataset, enc);
      } else throw new TypeError('unexpected second header event');
    }
  };
  if (ts.deflated) yield* deflateRaw(body());
  else yield* body();
}

/** Whole-buffer convenience: concatenates writePart10's output. */
export async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of chunks) out.push(c);
  return Buffer.concat(out);
}

// A Part 10 stream split into its File Meta and its dataset (PS3.10 7.1): the preamble, "DICM" and group
// 0002 are read and checked; the dataset bytes after them stream on untouched, as a C-STORE sends them
// (PS3.7 9.3.1.1: the dataset of a DIMSE message carries no File Meta). Only the File Meta is held.
import { isVr, hasLongHeader } from '../dicom/vr.ts';
import { FileMetaError } from './errors.ts';

/** PS3.10 7.1: 128-byte preamble, "DICM", then (0002,0000) File Meta Information Group Length (UL). */
const PREAMBLE = 128;
const PREFIX = 'DICM';
const GROUP_LENGTH_ELEMENT = 12;
const HEAD = PREAMBLE + PREFIX.length + GROUP_LENGTH_ELEMENT;
/** File Meta longer than this is refused: the gateway's own writer makes a few hundred bytes. */
export const MAX_FILE_META_BYTES = 64 * 1024;

/** What the File Meta says of the dataset after it (PS3.10 Table 7.1-1). */
export interface FileMeta {
  /** (0002,0002) Media Storage SOP Class UID. */
  readonly sopClassUid: string;
  /** (0002,0003) Media Storage SOP Instance UID. */
  readonly sopInstanceUid: string;
  /** (0002,0010) Transfer Syntax UID: the encoding of every dataset byte that follows. */
  readonly transferSyntaxUid: string;
}

export interface SplitPart10 {
  readonly meta: FileMeta;
  /** The dataset, from its first byte, in the source's chunks (each read only when asked for). */
  readonly dataset: AsyncIterable<Buffer>;
}

/**
 * Reads the File Meta of a Part 10 `source` and hands back the rest as the dataset. Refuses
 * (FileMetaError) a stream without preamble and "DICM", without a group length first, with group 0002
 * elements that do not end exactly at that length, past MAX_FILE_META_BYTES, or without the three UIDs.
 */
export async function splitFileMeta(source: AsyncIterable<Buffer>): Promise<SplitPart10> {
  const iterator = source[Symbol.asyncIterator]();
  let held: Buffer = Buffer.alloc(0);
  const fill = async (n: number): Promise<void> => {
    while (held.length < n) {
      const next = await iterator.next();
      if (next.done) throw new FileMetaError('the stream ended inside the File Meta');
      held = held.length === 0 ? next.value : Buffer.concat([held, next.value]);
    }
  };
  try {
    await fill(HEAD);
    if (held.toString('latin1', PREAMBLE, PREAMBLE + PREFIX.length) !== PREFIX) throw new FileMetaError('no "DICM" after the preamble');
    const at = PREAMBLE + PREFIX.length;
    if (held.readUInt16LE(at) !== 0x0002 || held.readUInt16LE(at + 2) !== 0x0000 || held.toString('latin1', at + 4, at + 6) !== 'UL' || held.readUInt16LE(at + 6) !== 4) {
      throw new FileMetaError('the File Meta does not open with its group length');
    }
    const groupLength = held.readUInt32LE(at + 8);
    if (groupLength > MAX_FILE_META_BYTES) throw new FileMetaError(`the File Meta is longer than ${MAX_FILE_META_BYTES} bytes`);
    await fill(HEAD + groupLength);
    const meta = parseFileMeta(held.subarray(HEAD, HEAD + groupLength));
    const rest = held.subarray(HEAD + groupLength);
    held = Buffer.alloc(0);
    return { meta, dataset: remainder(rest, iterator) };
  } catch (error) {
    await iterator.return?.();
    throw error;
  }
}

async function* remainder(first: Buffer, iterator: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  let done = false;
  try {
    if (first.length > 0) yield first;
    for (;;) {
      const next = await iterator.next();
      if (next.done) {
        done = true;
        return;
      }
      if (next.value.length > 0) yield next.value;
    }
  } finally {
    if (!done) await iterator.return?.();
  }
}

/** The group 0002 elements after the group length (Explicit VR Little Endian, PS3.10 7.1), exactly to their end. */
function parseFileMeta(group: Buffer): FileMeta {
  const values = new Map<number, string>();
  let at = 0;
  while (at < group.length) {
    if (at + 8 > group.length) throw new FileMetaError('a File Meta element crosses the group length');
    const tagGroup = group.readUInt16LE(at);
    const element = group.readUInt16LE(at + 2);
    const vr = group.toString('latin1', at + 4, at + 6);
    if (tagGroup !== 0x0002) throw new FileMetaError('an element of another group inside the File Meta');
    if (!isVr(vr)) throw new FileMetaError('a File Meta element has no valid VR');
    const long = hasLongHeader(vr);
    if (long && at + 12 > group.length) throw new FileMetaError('a File Meta element crosses the group length');
    const length = long ? group.readUInt32LE(at + 8) : group.readUInt16LE(at + 6);
    const start = at + (long ? 12 : 8);
    if (start + length > group.length) throw new FileMetaError('a File Meta element crosses the group length');
    if (vr === 'UI') values.set(element, group.toString('latin1', start, start + length).replace(/[\0 ]+$/, ''));
    at = start + length;
  }
  const sopClassUid = values.get(0x0002);
  const sopInstanceUid = values.get(0x0003);
  const transferSyntaxUid = values.get(0x0010);
  if (!sopClassUid || !sopInstanceUid || !transferSyntaxUid) throw new FileMetaError('the File Meta lacks a SOP Class, SOP Instance or Transfer Syntax UID');
  return { sopClassUid, sopInstanceUid, transferSyntaxUid };
}

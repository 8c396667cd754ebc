import type { Readable } from 'node:stream';
import { DicomwebError } from './errors.ts';

/** An upstream DICOM JSON body that is not a JSON array of objects, or an item over the cap. */
export class UpstreamJsonError extends DicomwebError {
  override name = 'UpstreamJsonError';
  constructor(reason: string) {
    super('UPSTREAM_BAD_JSON', `the PACS sent DICOM JSON the gateway cannot read (${reason})`);
  }
}

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;

const isSpace = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;

/**
 * Yields each element of a top-level JSON array of objects (PS3.18 F.2: a QIDO result or a metadata
 * document is an array of datasets) as its own parsed object, holding at most one element in memory.
 * Anything that is not such an array (or is truncated) throws `UpstreamJsonError`: never passed on.
 */
export async function* jsonArrayItems(body: Readable, maxItemBytes: number): AsyncGenerator<Record<string, unknown>> {
  let state: 'start' | 'between' | 'afterItem' | 'item' | 'end' = 'start';
  let depth = 0;
  let inString = false;
  let escaped = false;
  let parts: Buffer[] = [];
  let itemBytes = 0;

  for await (const chunk of body as AsyncIterable<Buffer>) {
    let itemStart = -1;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i] as number;
      if (state === 'item') {
        if (inString) {
          if (escaped) escaped = false;
          else if (b === BACKSLASH) escaped = true;
          else if (b === QUOTE) inString = false;
          continue;
        }
        if (b === QUOTE) inString = true;
        else if (b === OPEN_BRACE || b === OPEN_BRACKET) depth++;
        else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
          depth--;
          if (depth === 0) {
            parts.push(chunk.subarray(itemStart < 0 ? 0 : itemStart, i + 1));
            itemBytes += i + 1 - (itemStart < 0 ? 0 : itemStart);
            if (itemBytes > maxItemBytes) throw new UpstreamJsonError('a dataset exceeds the size cap');
            yield parse(Buffer.concat(parts));
            parts = [];
            itemBytes = 0;
            itemStart = -1;
            state = 'afterItem';
          }
        }
        continue;
      }
      if (isSpace(b)) continue;
      if (state === 'start') {
        if (b !== OPEN_BRACKET) throw new UpstreamJsonError('not a JSON array');
        state = 'between';
      } else if (state === 'between' || state === 'afterItem') {
        if (state === 'afterItem' && b === COMMA) {
          state = 'between';
        } else if (b === CLOSE_BRACKET) {
          state = 'end';
        } else if (state === 'between' && b === OPEN_BRACE) {
          state = 'item';
          depth = 1;
          itemStart = i;
        } else {
          throw new UpstreamJsonError('unexpected content between datasets');
        }
      } else {
        throw new UpstreamJsonError('content after the closing bracket');
      }
    }
    if (state === 'item') {
      const from = itemStart < 0 ? 0 : itemStart;
      parts.push(chunk.subarray(from));
      itemBytes += chunk.length - from;
      if (itemBytes > maxItemBytes) throw new UpstreamJsonError('a dataset exceeds the size cap');
    }
  }
  if ((state as string) !== 'end') throw new UpstreamJsonError('truncated');
}

function parse(bytes: Buffer): Record<string, unknown> {
  try {
    return JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new UpstreamJsonError('malformed dataset');
  }
}

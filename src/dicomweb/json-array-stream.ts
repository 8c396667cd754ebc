import type { Readable } from 'node:stream';
import { UpstreamJsonError } from './errors.ts';

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;

const isSpace = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;

interface ItemScan {
  depth: number;
  inString: boolean;
  escaped: boolean;
}

/**
 * Scans one dataset's bytes from `from`: the index just past the brace that closes it, or -1 when the
 * chunk ends first (the state carries over). A plain function, so the hot loop is optimised on its
 * own rather than inside the async generator.
 */
function itemEnd(chunk: Buffer, from: number, scan: ItemScan): number {
  let { depth, inString, escaped } = scan;
  let end = -1;
  for (let i = from; i < chunk.length; i++) {
    const b = chunk[i] as number;
    if (inString) {
      if (escaped) escaped = false;
      else if (b === BACKSLASH) escaped = true;
      else if (b === QUOTE) inString = false;
    } else if (b === QUOTE) inString = true;
    else if (b === OPEN_BRACE || b === OPEN_BRACKET) depth++;
    else if ((b === CLOSE_BRACE || b === CLOSE_BRACKET) && --depth === 0) {
      end = i + 1;
      break;
    }
  }
  scan.depth = depth;
  scan.inString = inString;
  scan.escaped = escaped;
  return end;
}

/**
 * Yields each element of a top-level JSON array of objects (PS3.18 F.2: a QIDO result or a metadata
 * document is an array of datasets) as its own parsed object, holding at most one element in memory.
 * Anything that is not such an array (or is truncated) throws `UpstreamJsonError`: never passed on.
 */
export async function* jsonArrayItems(body: Readable, maxItemBytes: number): AsyncGenerator<Record<string, unknown>> {
  let state: 'start' | 'between' | 'afterItem' | 'item' | 'end' = 'start';
  const scan: ItemScan = { depth: 0, inString: false, escaped: false };
  let parts: Buffer[] = [];
  let itemBytes = 0;

  for await (const chunk of body as AsyncIterable<Buffer>) {
    let i = 0;
    while (i < chunk.length) {
      if (state === 'item') {
        const end = itemEnd(chunk, i, scan);
        const stop = end < 0 ? chunk.length : end;
        parts.push(chunk.subarray(i, stop));
        itemBytes += stop - i;
        if (itemBytes > maxItemBytes) throw new UpstreamJsonError('a dataset exceeds the size cap');
        i = stop;
        if (end < 0) break;
        yield parse(parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts));
        parts = [];
        itemBytes = 0;
        state = 'afterItem';
        continue;
      }
      const b = chunk[i] as number;
      if (isSpace(b)) {
        i++;
        continue;
      }
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
          scan.depth = 0; // the brace is scanned again by itemEnd, which counts it
          continue;
        } else {
          throw new UpstreamJsonError('unexpected content between datasets');
        }
      } else {
        throw new UpstreamJsonError('content after the closing bracket');
      }
      i++;
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

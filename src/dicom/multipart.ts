// PS3.18 8.7.1 / RFC 2046 5.1: multipart/related bodies, read and written as streams. A part's body is
// handed on in chunks as it arrives; only the delimiter-sized tail and the part headers are held.
import { randomBytes } from 'node:crypto';
import { MultipartError } from './errors.ts';

/**
 * The longest boundary read. RFC 2046 5.1.1 allows 70 characters, but Orthanc's DICOMweb client sends
 * 73 (`<uuid>-<uuid>`) and Orthanc itself accepts any length, so a strict 70 refuses a real PACS.
 * 200 leaves room for any generator seen (UUID-, hash- or timestamp-based, under 100) while keeping the
 * delimiter that every chunk is searched for, and the tail held back between chunks, small and bounded.
 */
export const MAX_BOUNDARY_LENGTH = 200;

export interface MultipartLimits {
  /** Cap on one part's header block. */
  maxHeaderBytes?: number;
  /** Cap on the number of parts. */
  maxParts?: number;
  /** Cap on one part's body (0: none). */
  maxPartBytes?: number;
}

export interface MultipartPart {
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string>>;
  /** The body, streamed; must be read to the end before the next part is asked for. */
  readonly body: AsyncIterable<Buffer>;
}

/**
 * Reads `boundary` from a `multipart/related; …; boundary=…` content type (RFC 2046 5.1.1, quoted or
 * not); throws if it is absent or empty, or longer than `MAX_BOUNDARY_LENGTH` (never cut short: a
 * shortened boundary matches no delimiter of the body).
 */
export function boundaryFrom(contentType: string | undefined): string {
  const match = /;\s*boundary=(?:"([^"]*)"|([^";\s]*))/i.exec(contentType ?? '');
  const boundary = match?.[1] ?? match?.[2];
  if (!boundary) throw new MultipartError('MULTIPART_NO_BOUNDARY', 'the content type has no usable boundary');
  if (boundary.length > MAX_BOUNDARY_LENGTH) {
    throw new MultipartError('MULTIPART_BOUNDARY_TOO_LONG', `the boundary is longer than ${MAX_BOUNDARY_LENGTH} characters`);
  }
  return boundary;
}

/** A media-type parameter (`type`, `transfer-syntax`) from a content type, unquoted. */
export function mediaTypeParameter(contentType: string | undefined, name: string): string | undefined {
  const re = new RegExp(`;\\s*${name}=(?:"([^"]*)"|([^";\\s]*))`, 'i');
  const match = re.exec(contentType ?? '');
  return match?.[1] ?? match?.[2];
}

const CRLF = Buffer.from('\r\n');

/**
 * Splits a multipart body into parts. Fails with `MultipartError` on a missing or malformed delimiter,
 * an oversized header block, too many parts, or an end before the closing delimiter — a truncated body
 * is never reported as complete.
 */
export async function* readMultipart(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  boundary: string,
  limits: MultipartLimits = {},
): AsyncGenerator<MultipartPart> {
  const maxHeaderBytes = limits.maxHeaderBytes ?? 16 * 1024;
  const maxParts = limits.maxParts ?? 100_000;
  const maxPartBytes = limits.maxPartBytes ?? 0;
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  const iterator: AsyncIterator<Uint8Array> | Iterator<Uint8Array> =
    Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
  // A leading CRLF lets the first delimiter match the same pattern as later ones (RFC 2046 5.1.1).
  let buffer: Buffer = Buffer.from(CRLF);
  let ended = false;

  // Appends the next chunk. Part bodies leave at most a delimiter prefix behind (see `heldTail`), so
  // a chunk is almost always taken as it is, without a copy.
  const more = async (): Promise<boolean> => {
    if (ended) return false;
    const next = await iterator.next();
    if (next.done) {
      ended = true;
      return false;
    }
    const chunk = asBuffer(next.value);
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
    return true;
  };

  let closed = false;
  try {
    yield* parts();
  } finally {
    // Stopped early (an error, or the consumer gave up): release the source. After the
    // close-delimiter the source is left as it is; its epilogue is ignored (RFC 2046 5.1.1).
    if (!closed && !ended) await iterator.return?.();
  }

  async function* parts(): AsyncGenerator<MultipartPart> {
    // 1. Preamble: skip to the first delimiter.
    for (;;) {
      const at = buffer.indexOf(delimiter);
      if (at >= 0) {
        buffer = buffer.subarray(at + delimiter.length);
        break;
      }
      if (buffer.length > maxHeaderBytes + delimiter.length) {
        throw new MultipartError('MULTIPART_NO_DELIMITER', 'no multipart delimiter where one was expected');
      }
      if (!(await more())) throw new MultipartError('MULTIPART_TRUNCATED', 'the body ended before the first part');
    }

    for (let count = 0; ; count++) {
      // 2. After a delimiter: `--` closes the body; otherwise optional padding, CRLF, headers.
      while (buffer.length < 2) {
        if (!(await more())) throw new MultipartError('MULTIPART_TRUNCATED', 'the body ended after a delimiter');
      }
      if (buffer[0] === 0x2d && buffer[1] === 0x2d) {
        closed = true; // close-delimiter; the epilogue is ignored
        return;
      }
      // RFC 2046 5.1.1: a delimiter line ends in CRLF; `--boundaryX` is not a delimiter (test/integration/multipart-abuse).
      if (buffer[0] !== 0x0d || buffer[1] !== 0x0a) throw new MultipartError('MULTIPART_BAD_DELIMITER', 'a delimiter is not followed by CRLF');
      if (count >= maxParts) throw new MultipartError('MULTIPART_TOO_MANY_PARTS', 'too many parts');
      let headerEnd: number;
      for (;;) {
        headerEnd = buffer.indexOf('\r\n\r\n');
        if (headerEnd >= 0) break;
        if (buffer.length > maxHeaderBytes) throw new MultipartError('MULTIPART_HEADER_TOO_LARGE', 'a part header block is too large');
        if (!(await more())) throw new MultipartError('MULTIPART_TRUNCATED', 'the body ended inside part headers');
      }
      const headers = parseHeaders(buffer.subarray(0, headerEnd));
      buffer = buffer.subarray(headerEnd + 4);

      // 3. The body: everything up to the next delimiter, streamed; only a possible delimiter prefix is held.
      let done = false;
      let size = 0;
      const body = async function* (): AsyncGenerator<Buffer> {
        for (;;) {
          const at = buffer.indexOf(delimiter);
          if (at >= 0) {
            const chunk = buffer.subarray(0, at);
            buffer = buffer.subarray(at + delimiter.length);
            size += chunk.length;
            if (maxPartBytes && size > maxPartBytes) throw new MultipartError('MULTIPART_PART_TOO_LARGE', 'a part is too large');
            if (chunk.length > 0) yield chunk;
            done = true;
            return;
          }
          const safe = buffer.length - heldTail(buffer, delimiter);
          if (safe > 0) {
            const chunk = buffer.subarray(0, safe);
            buffer = buffer.subarray(safe);
            size += chunk.length;
            if (maxPartBytes && size > maxPartBytes) throw new MultipartError('MULTIPART_PART_TOO_LARGE', 'a part is too large');
            yield chunk;
          }
          if (!(await more())) throw new MultipartError('MULTIPART_TRUNCATED', 'the body ended inside a part');
        }
      };
      yield { headers, body: body() };
      if (!done) throw new MultipartError('MULTIPART_PART_UNREAD', 'a part body was not read to its end');
    }
  }
}

function asBuffer(chunk: Uint8Array): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/**
 * How many bytes at the end of `buffer` could be the start of `delimiter` (which begins with CR) and
 * must be held until more input arrives; usually none, so a body chunk passes on whole.
 */
function heldTail(buffer: Buffer, delimiter: Buffer): number {
  for (let at = buffer.indexOf(0x0d, Math.max(0, buffer.length - (delimiter.length - 1))); at >= 0; at = buffer.indexOf(0x0d, at + 1)) {
    const tail = buffer.length - at;
    if (buffer.compare(delimiter, 0, tail, at) === 0) return tail;
  }
  return 0;
}

function parseHeaders(block: Buffer): Record<string, string> {
  const headers: Record<string, string> = {};
  const text = block.toString('latin1');
  for (const line of text.split('\r\n')) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new MultipartError('MULTIPART_BAD_HEADER', 'a part header line is malformed');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/** A fresh boundary for a response we write (RFC 2046 5.1.1: at most 70 characters). */
export function newBoundary(): string {
  return `deid-${randomBytes(18).toString('hex')}`;
}

/** The delimiter and headers that open a part. */
export function partHead(boundary: string, headers: Readonly<Record<string, string>>): Buffer {
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`);
  return Buffer.from(`--${boundary}\r\n${lines.join('')}\r\n`);
}

/** The CRLF that ends a part body; the next `partHead` or `closeDelimiter` follows. */
export const PART_END = CRLF;

export function closeDelimiter(boundary: string): Buffer {
  return Buffer.from(`--${boundary}--\r\n`);
}

// The rectangles an uploader drew on the /upload page (issue 18 part 2): the `redactions` form field,
// checked in full before any file of the request is read. Anything malformed is refused (400
// UPLOAD_BAD_REDACTIONS): a redaction the gateway cannot read must never become "no redaction".
import type { AttributeReader, Rectangle } from '../deid/pixel-verdict.ts';
import { isUid } from '../dicom/uid.ts';
import { TAG } from '../dicom/tags.ts';
import { PIXEL_TAG } from '../pixel/geometry.ts';
import { HttpRequestError } from './errors.ts';

/** The most rectangles one series (or one file) may carry. */
export const MAX_RECTANGLES = 64;
/** The longest `redactions` field multer accepts (bytes). */
export const MAX_REDACTIONS_BYTES = 256 * 1024;
/** Rows and Columns are US (PS3.3 C.7.6.3): no rectangle can lie beyond 65535. */
const MAX_COORDINATE = 0xffff;

/**
 * `{ "series": { <SeriesInstanceUID>: [rect…] }, "files": { <index of the file in this request>: [rect…] } }`,
 * each rect `{ "x", "y", "width", "height" }` in image pixels (columns x..x+width-1, rows y..y+height-1).
 * A file gets its own rectangles and its series'.
 */
export interface UploadRedactions {
  readonly series: ReadonlyMap<string, readonly Rectangle[]>;
  readonly files: ReadonlyMap<number, readonly Rectangle[]>;
}

export const NO_REDACTIONS: UploadRedactions = { series: new Map(), files: new Map() };

function bad(message: string): never {
  throw new HttpRequestError('UPLOAD_BAD_REDACTIONS', message);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function coordinate(value: unknown, min: number, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > MAX_COORDINATE) {
    bad(`a rectangle's ${name} must be an integer from ${min} to ${MAX_COORDINATE}`);
  }
  return value;
}

function rectangles(value: unknown): Rectangle[] {
  if (!Array.isArray(value)) bad('each entry must be a list of rectangles');
  if (value.length > MAX_RECTANGLES) bad(`at most ${MAX_RECTANGLES} rectangles per series or file`);
  return value.map((r: unknown) => {
    if (!isPlainObject(r)) bad('a rectangle must be an object');
    const keys = Object.keys(r).sort().join(',');
    if (keys !== 'height,width,x,y') bad('a rectangle has exactly x, y, width and height');
    return { x: coordinate(r['x'], 0, 'x'), y: coordinate(r['y'], 0, 'y'), width: coordinate(r['width'], 1, 'width'), height: coordinate(r['height'], 1, 'height') };
  });
}

/** Parses the `redactions` field; undefined (no field) is no redaction. */
export function parseRedactions(field: unknown): UploadRedactions {
  if (field === undefined) return NO_REDACTIONS;
  if (typeof field !== 'string') bad('the redactions field must appear once');
  let json: unknown;
  try {
    json = JSON.parse(field);
  } catch {
    bad('the redactions field is not JSON');
  }
  if (!isPlainObject(json)) bad('the redactions field must be a JSON object');
  for (const key of Object.keys(json)) if (key !== 'series' && key !== 'files') bad('the redactions object has only "series" and "files"');
  const series = new Map<string, Rectangle[]>();
  const files = new Map<number, Rectangle[]>();
  const seriesIn = json['series'] ?? {};
  const filesIn = json['files'] ?? {};
  if (!isPlainObject(seriesIn) || !isPlainObject(filesIn)) bad('"series" and "files" must be objects');
  for (const [uid, list] of Object.entries(seriesIn)) {
    if (!isUid(uid)) bad('a "series" key is not a UID');
    series.set(uid, rectangles(list));
  }
  for (const [index, list] of Object.entries(filesIn)) {
    if (!/^(0|[1-9]\d{0,5})$/.test(index)) bad('a "files" key is not the index of a file');
    files.set(Number(index), rectangles(list));
  }
  return { series, files };
}

/**
 * The rectangles for the file at `index`, once its header is read: its own and its series', each checked
 * to lie inside Rows × Columns (else 400: a rectangle drawn for another image is refused, not clipped).
 */
export function rectanglesFor(redactions: UploadRedactions, index: number): ((read: AttributeReader) => readonly Rectangle[]) | undefined {
  if (redactions.series.size === 0 && !redactions.files.has(index)) return undefined;
  return (read) => {
    const series = read(TAG.SeriesInstanceUID)?.[0];
    const list = [...(redactions.files.get(index) ?? []), ...(typeof series === 'string' ? (redactions.series.get(series.trim()) ?? []) : [])];
    if (list.length === 0) return list;
    const rows = read(PIXEL_TAG.Rows)?.[0];
    const columns = read(PIXEL_TAG.Columns)?.[0];
    if (typeof rows !== 'number' || typeof columns !== 'number') bad('a redaction was given for a file without Rows and Columns');
    for (const r of list) {
      if (r.x + r.width > columns || r.y + r.height > rows) bad('a redaction rectangle lies outside the image (Rows × Columns)');
    }
    return list;
  };
}

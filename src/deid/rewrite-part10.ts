// The streaming Part 10 rewriter: reader -> policy on the header tree and the trailer -> writer, with
// Pixel Data passed through in chunks. The policy sees DICOM JSON values only (PS3.18 F.2), so the
// Part 10 and JSON paths share one decision function (deidentify.ts).
import { Duplex } from 'node:stream';
import { UTF8_CHARACTER_SET, decodeText, encodeText, type CharacterSet } from '../dicom/charset.ts';
import { asciiValue, characterSetOf, findElement, setElement, type DataElement, type Dataset } from '../dicom/dataset.ts';
import { DicomInvalidValueError, DicomUnsupportedCharsetError } from '../dicom/errors.ts';
import { elementToJsonValue, jsonToDataset, jsonValueToElementBytes, type JsonDataset, type JsonValue } from '../dicom/json-model.ts';
import { Part10Reader, type Part10Event, type Part10Header, type Part10ReaderOptions, type PixelDataInfo } from '../dicom/part10-reader.ts';
import { collect, writePart10 } from '../dicom/part10-writer.ts';
import { parseTag } from '../dicom/tag.ts';
import { TAG } from '../dicom/tags.ts';
import { maxBinaryValueBytes } from '../dicom/dictionary.ts';
import { EXPLICIT_VR_LITTLE_ENDIAN, transferSyntax } from '../dicom/transfer-syntax.ts';
import { hasInvalidControlBytes, isVr, padValue, vrInfo } from '../dicom/vr.ts';
import { requireCodec } from '../pixel/codecs.ts';
import { EncapsulatedRedactor } from '../pixel/encapsulated.ts';
import { PixelError } from '../pixel/errors.ts';
import { PIXEL_TAG, assertBlankable, frameGeometry, nativePixelDataLength, type FrameGeometry } from '../pixel/geometry.ts';
import { NativeBlanker } from '../pixel/native-blank.ts';
import type { Decision, ElementRef, ElementValue } from './deidentify.ts';
import { PixelWithheldError } from './errors.ts';
import { KEEP, type AttributeReader, type PixelVerdict, type Rectangle } from './pixel-policy.ts';
import { privateCreatorLookup } from './profile.ts';
import type { IdentitySource } from './text-clean.ts';

/** What the rewriter needs from a policy session; DeidSession (deidentify.ts) satisfies it. */
export interface Part10Policy {
  /**
   * `verdict` is the instance's pixel verdict (KEEP when the policy has no pixelVerdict); `sopClassUid` its
   * SOP Class UID (0008,0016), which chooses compound actions by the IOD (PS3.15 E.1.1).
   */
  beginDataset(originalPatientId: string | undefined, verdict?: PixelVerdict, sopClassUid?: string): void;
  /** The pixel policy's decision for this instance from its top-level header (pixel-policy.ts); absent: keep. */
  pixelVerdict?(read: AttributeReader): PixelVerdict;
  decide(ref: ElementRef, value: ElementValue): Decision;
  attributesToAdd(): Record<string, { vr: string; Value?: unknown[] }>;
  /**
   * The identity values of the dataset just begun, from its whole parsed header (text-clean.ts; the
   * Clean options' text cleaning). Absent: that text gets the VR's dummy (deidentify.ts, fail closed).
   */
  setIdentities?(source: IdentitySource): void;
}

export interface RewriteOptions extends Part10ReaderOptions {
  /** Add PatientIdentityRemoved etc. (attributesToAdd) to the top-level dataset. Default true. */
  readonly addMethodAttributes?: boolean;
  /**
   * Told the original Study Instance UID of each instance before anything of it is written; throwing
   * refuses the instance (a caller serving one study checks that every instance belongs to it).
   */
  readonly admitStudy?: (originalStudyUid: string | undefined) => void;
}

function jsonValues(el: DataElement, charset: CharacterSet, le: boolean): unknown[] | undefined {
  if (el.vr === 'SQ' || el.items || el.fragments) return undefined;
  return elementToJsonValue(el, charset, le).Value;
}

/**
 * The identity values of a whole header, at every depth, each item in its own character set: the header
 * is parsed (under maxHeaderBytes) before any element of it is decided, so text that precedes Patient
 * Name in tag order (Study Description) is still cleaned of it. Only the elements asked for are decoded.
 * Elements after Pixel Data (the trailer: Digital Signatures, padding, private groups) are not read.
 */
function headerIdentities(dataset: readonly DataElement[], le: boolean): IdentitySource {
  return (visit, wants) => {
    const walk = (level: readonly DataElement[], inherited: CharacterSet): void => {
      const charset = characterSetOf(level, inherited);
      for (const el of level) {
        if (el.items) for (const item of el.items) walk(item, charset);
        else if (el.value && wants(el.tag, el.vr)) {
          const values = jsonValues(el, charset, le);
          if (values) visit(el.tag, el.vr, values);
        }
      }
    };
    walk(dataset, []);
  };
}

/** Re-encodes this level's text values (and items that inherit its character set) in UTF-8. */
function transcodeToUtf8(dataset: readonly DataElement[], charset: CharacterSet): Dataset {
  return dataset.map((el) => {
    if (el.items) return { ...el, items: el.items.map((item) => (findElement(item, TAG.SpecificCharacterSet) ? item : transcodeToUtf8(item, charset))) };
    if (!el.value || !isVr(el.vr) || !vrInfo(el.vr).charsetApplies) return el;
    const text = decodeText(el.value, charset, el.vr);
    return { ...el, value: padValue(encodeText(text, UTF8_CHARACTER_SET) ?? Buffer.alloc(0), el.vr) };
  });
}

/** Applies the policy to one dataset level; sequences recurse with their items' own character sets. */
function applyPolicy(dataset: readonly DataElement[], inherited: CharacterSet, le: boolean, policy: Part10Policy, path: readonly number[]): Dataset {
  const charset = characterSetOf(dataset, inherited);
  try {
    return applyLevel(dataset, charset, le, policy, path);
  } catch (err) {
    if (!(err instanceof DicomUnsupportedCharsetError)) throw err;
    // A replacement the current character set cannot hold: switch this level to ISO_IR 192 and retry.
    const utf8 = transcodeToUtf8(dataset, charset);
    setElement(utf8, { tag: TAG.SpecificCharacterSet, vr: 'CS', value: padValue(Buffer.from('ISO_IR 192'), 'CS') });
    return applyLevel(utf8, UTF8_CHARACTER_SET, le, policy, path);
  }
}

function applyLevel(dataset: readonly DataElement[], charset: CharacterSet, le: boolean, policy: Part10Policy, path: readonly number[]): Dataset {
  const out: Dataset = [];
  const creatorOf = privateCreatorLookup((creatorTag) => {
    const creatorEl = findElement(dataset, creatorTag);
    return creatorEl?.value ? decodeText(creatorEl.value, charset, 'LO') : undefined;
  });
  for (const el of dataset) {
    const ref: { -readonly [K in keyof ElementRef]: ElementRef[K] } = { tag: el.tag, vr: el.vr, path };
    const creator = creatorOf(el.tag);
    if (creator !== undefined) ref.privateCreator = creator;
    const decision = policy.decide(ref, () => jsonValues(el, charset, le));
    switch (decision.op) {
      case 'remove':
        break;
      case 'keep':
        // Fail closed: a kept text value with control bytes is a misframed element that swallowed its
        // neighbours (found by test/unit/fuzz: a corrupted length kept PatientName inside SOPClassUID).
        if (el.value && hasInvalidControlBytes(el.vr, el.value)) throw new DicomInvalidValueError('kept value holds control characters', { tag: el.tag });
        // The same for binary numbers: more bytes than the VM allows means a length that swallowed the
        // elements after it (e.g. Rows holding RequestingPhysician); refused, never passed on.
        if (el.value && el.value.length > (maxBinaryValueBytes(el.tag, el.vr) ?? Infinity)) {
          throw new DicomInvalidValueError('kept binary value is longer than its VM allows', { tag: el.tag });
        }
        out.push(el);
        break;
      case 'recurse':
        if (el.items) out.push({ ...el, items: el.items.map((item) => applyPolicy(item, charset, le, policy, [...path, el.tag])) });
        else out.push(el);
        break;
      case 'replace':
        out.push(replaced(el, decision.value, charset, le));
        break;
    }
  }
  return out;
}

function replaced(el: DataElement, values: unknown[], charset: CharacterSet, le: boolean): DataElement {
  if (el.vr === 'SQ' || el.items) {
    return { tag: el.tag, vr: 'SQ', items: values.map((item) => jsonToDataset(item as JsonDataset, charset, le)) };
  }
  return { tag: el.tag, vr: el.fragments ? 'OB' : el.vr, value: jsonValueToElementBytes(el.vr, values as JsonValue[], charset, le, el.tag) };
}

/** The meta UIDs the writer falls back on when the dataset has no SOP Instance UID (e.g. DICOMDIR). */
function rewriteMeta(header: Part10Header, dataset: Dataset, policy: Part10Policy): Dataset | undefined {
  if (!header.meta) return undefined;
  const meta: Dataset = [];
  const sopClass = findElement(header.meta, TAG.MediaStorageSOPClassUID);
  if (sopClass) meta.push(sopClass);
  const original = asciiValue(header.meta, TAG.MediaStorageSOPInstanceUID);
  if (original !== undefined && !findElement(dataset, TAG.SOPInstanceUID)) {
    // Treated as the SOP Instance UID it stands for, so it gets the same pseudonym.
    const d = policy.decide({ tag: TAG.SOPInstanceUID, vr: 'UI', path: [] }, [original]);
    const uid = d.op === 'keep' ? original : d.op === 'replace' && typeof d.value[0] === 'string' ? d.value[0] : '';
    meta.push({ tag: TAG.MediaStorageSOPInstanceUID, vr: 'UI', value: padValue(Buffer.from(uid, 'latin1'), 'UI') });
  }
  return meta;
}

function addAttributes(dataset: Dataset, policy: Part10Policy, charset: CharacterSet, le: boolean): void {
  for (const [key, element] of Object.entries(policy.attributesToAdd())) {
    const tag = parseTag(key);
    if (tag === undefined) throw new DicomInvalidValueError('an attribute to add has no tag key');
    if (element.vr === 'SQ') {
      const items = (element.Value ?? []).map((item) => jsonToDataset(item as JsonDataset, charset, le));
      setElement(dataset, { tag, vr: 'SQ', items });
    } else setElement(dataset, { tag, vr: element.vr, value: jsonValueToElementBytes(element.vr, element.Value as JsonValue[] | undefined, charset, le, tag) });
  }
}

/** How a redact verdict is carried out on this instance, checked before anything of it is written. */
interface PixelRedaction {
  readonly geometry: FrameGeometry;
  readonly rectangles: readonly Rectangle[];
  /** The stored transfer syntax when it is encapsulated (decoded to Explicit VR Little Endian). */
  readonly encapsulatedTransferSyntax: string | undefined;
  readonly littleEndian: boolean;
  readonly extendedOffsetTable: Buffer | undefined;
}

function unredactable(err: unknown): never {
  if (err instanceof PixelError) throw new PixelWithheldError('unredactable', err.code);
  throw err;
}

/** Steps 1–3 of a redact verdict: the geometry, the transfer syntax and the layout must all be redactable. */
function planRedaction(read: AttributeReader, header: Part10Header, rectangles: readonly Rectangle[]): PixelRedaction {
  try {
    const ts = transferSyntax(header.transferSyntaxUID);
    // Planar Configuration may be absent only where the decoder fixes the layout (not native, not
    // Deflate, whose bytes are the native layout).
    const codec = ts.encapsulated ? requireCodec(ts.uid) : undefined;
    const geometry = frameGeometry(read, { allowMissingPlanarConfiguration: codec !== undefined && codec !== 'deflate' });
    assertBlankable(geometry, { encapsulated: ts.encapsulated });
    const eot = findElement(header.dataset, PIXEL_TAG.ExtendedOffsetTable)?.value;
    return { geometry, rectangles, encapsulatedTransferSyntax: ts.encapsulated ? ts.uid : undefined, littleEndian: header.encoding.littleEndian, extendedOffsetTable: eot };
  } catch (err) {
    return unredactable(err);
  }
}

/** The Pixel Data element as written after redaction; refuses Pixel Data the plan cannot blank. */
function redactedPixelData(info: PixelDataInfo, plan: PixelRedaction): PixelDataInfo {
  if (info.tag !== PIXEL_TAG.PixelData) throw new PixelWithheldError('unredactable', 'FloatPixelData');
  const needed = nativePixelDataLength(plan.geometry);
  if (plan.encapsulatedTransferSyntax === undefined) {
    // Native: exactly the frames Number of Frames declares, plus the pad byte when that is odd (PS3.5
    // 8.1.1). Shorter is not blankable; longer holds bytes past the last frame the blanker would pass on
    // unblanked (extra frames): both refused before any byte.
    if (info.length === undefined || (info.length !== needed && !(needed % 2 === 1 && info.length === needed + 1))) {
      throw new PixelWithheldError('unredactable', 'PIXEL_INVALID_GEOMETRY');
    }
    // Big endian OW swaps bytes in 16-bit words (PS3.5 7.3): 8- or 1-bit samples are then not where the
    // blanker looks (a column at each rectangle edge would stay), so that layout is refused.
    if (!plan.littleEndian && plan.geometry.bitsAllocated < 16 && info.vr === 'OW') throw new PixelWithheldError('unredactable', 'PIXEL_UNSUPPORTED');
    return info;
  }
  if (info.length !== undefined) throw new PixelWithheldError('unredactable', 'PIXEL_MALFORMED');
  // PS3.5 8.1.1 and 8.2: decoded frames are written native, OB up to 8 bits allocated, else OW.
  return { tag: info.tag, vr: plan.geometry.bitsAllocated <= 8 ? 'OB' : 'OW', length: needed + (needed % 2) };
}

/**
 * Reader events with the header and trailer de-identified. Pixel Data, by the pixel verdict:
 *   - keep: events pass unchanged (Pixel Data byte-identical);
 *   - withhold: PixelWithheldError before anything of the instance is yielded;
 *   - redact: the header is held until Pixel Data starts and the plan is checked (else PixelWithheldError
 *     'unredactable', still before anything is yielded); native chunks are blanked as they stream;
 *     encapsulated frames are decoded one at a time, blanked and written native in Explicit VR Little
 *     Endian (the File Meta Transfer Syntax changes; the dataset already was explicit little endian).
 */
async function* deidentifyEvents(events: AsyncIterable<Part10Event>, policy: Part10Policy, options: RewriteOptions = {}): AsyncGenerator<Part10Event> {
  let rootCharset: CharacterSet = [];
  let le = true;
  let plan: PixelRedaction | undefined;
  let held: Part10Event | undefined;
  let blanker: NativeBlanker | undefined;
  let redactor: EncapsulatedRedactor | undefined;
  for await (const ev of events) {
    if (ev.type === 'header') {
      const { header } = ev;
      le = header.encoding.littleEndian;
      rootCharset = characterSetOf(header.dataset, []);
      options.admitStudy?.(asciiValue(header.dataset, TAG.StudyInstanceUID)?.trim());
      const read: AttributeReader = (tag) => {
        const el = findElement(header.dataset, tag);
        return el ? jsonValues(el, rootCharset, le) : undefined;
      };
      const verdict = policy.pixelVerdict?.(read) ?? KEEP;
      if (verdict.action === 'withhold') throw new PixelWithheldError(verdict.reason, verdict.detail);
      if (verdict.action === 'redact') plan = planRedaction(read, header, verdict.rectangles);
      policy.beginDataset(asciiValueOrUndefined(header.dataset, rootCharset), verdict, asciiValue(header.dataset, TAG.SOPClassUID));
      policy.setIdentities?.(headerIdentities(header.dataset, le));
      const dataset = applyPolicy(header.dataset, [], le, policy, []);
      if (options.addMethodAttributes !== false) addAttributes(dataset, policy, characterSetOf(dataset, []), le);
      const meta = rewriteMeta(header, dataset, policy);
      if (plan === undefined) {
        yield { type: 'header', header: { ...header, dataset, meta } };
        continue;
      }
      if (plan.encapsulatedTransferSyntax === undefined) {
        held = { type: 'header', header: { ...header, dataset, meta } };
        continue;
      }
      // The offset tables index fragments that are no longer written (PS3.3 C.7.6.3.1.8).
      const native = dataset.filter((el) => el.tag !== PIXEL_TAG.ExtendedOffsetTable && el.tag !== PIXEL_TAG.ExtendedOffsetTableLengths);
      held = { type: 'header', header: { ...header, dataset: native, meta, transferSyntaxUID: EXPLICIT_VR_LITTLE_ENDIAN } };
      continue;
    }
    if (held) {
      if (ev.type === 'pixel-data-start' && plan) {
        const pixelData = redactedPixelData(ev.pixelData, plan);
        if (plan.encapsulatedTransferSyntax === undefined) blanker = new NativeBlanker(plan.geometry, plan.rectangles, { littleEndian: plan.littleEndian });
        else {
          redactor = new EncapsulatedRedactor(plan.geometry, {
            transferSyntaxUid: plan.encapsulatedTransferSyntax,
            rectangles: plan.rectangles,
            ...(plan.extendedOffsetTable ? { extendedOffsetTable: plan.extendedOffsetTable } : {}),
          });
          await redactor.ready();
        }
        yield held;
        held = undefined;
        yield { type: 'pixel-data-start', pixelData };
        continue;
      }
      // No Pixel Data in this instance: nothing to blank.
      yield held;
      held = undefined;
    }
    if (ev.type === 'trailer') {
      yield { type: 'trailer', dataset: applyPolicy(ev.dataset, rootCharset, le, policy, []) };
    } else if (ev.type === 'pixel-data-chunk' && blanker) {
      yield { type: 'pixel-data-chunk', chunk: blanker.push(ev.chunk) };
    } else if (ev.type === 'pixel-data-chunk' && redactor) {
      for (const chunk of redactor.push(ev.chunk)) yield { type: 'pixel-data-chunk', chunk };
    } else if (ev.type === 'pixel-data-end' && redactor) {
      for (const chunk of redactor.end()) yield { type: 'pixel-data-chunk', chunk };
      redactor = undefined;
      yield ev;
    } else if (ev.type === 'pixel-data-end') {
      blanker = undefined;
      yield ev;
    } else yield ev;
  }
  if (held) yield held;
}

function asciiValueOrUndefined(dataset: Dataset, charset: CharacterSet): string | undefined {
  const el = findElement(dataset, TAG.PatientID);
  if (!el?.value) return undefined;
  const v = elementToJsonValue(el, charset, true).Value?.[0];
  return typeof v === 'string' ? v : undefined;
}

export interface Part10Rewrite {
  /** The rewritten Part 10 bytes, pulled as the consumer reads. */
  readonly output: AsyncGenerator<Buffer, void, undefined>;
  readonly reader: Part10Reader;
}

/** Reader -> policy -> writer over any chunked source. Errors are DicomError / DeidError subclasses. */
export function rewritePart10(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, policy: Part10Policy, options: RewriteOptions = {}): Part10Rewrite {
  const reader = new Part10Reader(options);
  return { reader, output: writePart10(deidentifyEvents(reader.read(source), policy, options)) };
}

/**
 * A Duplex for stream.pipeline: write Part 10 bytes in, read de-identified Part 10 bytes out, with
 * back-pressure end to end. `maxHeldBytes` reports the reader's largest input buffering.
 */
export function createPart10Rewriter(policy: Part10Policy, options: RewriteOptions = {}): Duplex & { readonly maxHeldBytes: number } {
  const reader = new Part10Reader(options);
  const duplex = Duplex.from(async function* (source: AsyncIterable<Uint8Array>) {
    yield* writePart10(deidentifyEvents(reader.read(source), policy, options));
  });
  Object.defineProperty(duplex, 'maxHeldBytes', { get: () => reader.maxHeldBytes });
  return duplex as Duplex & { readonly maxHeldBytes: number };
}

/** Whole-buffer convenience (tests, CLI): nothing is returned unless the whole input rewrote cleanly. */
export async function rewritePart10Buffer(input: Buffer, policy: Part10Policy, options: RewriteOptions & { chunkSize?: number } = {}): Promise<{ output: Buffer; maxHeldBytes: number }> {
  const size = options.chunkSize ?? 64 * 1024;
  const chunks = function* (): Generator<Buffer> {
    for (let i = 0; i < input.length; i += size) yield input.subarray(i, i + size);
  };
  const { reader, output } = rewritePart10(chunks(), policy, options);
  const bytes = await collect(output);
  return { output: bytes, maxHeldBytes: reader.maxHeldBytes };
}

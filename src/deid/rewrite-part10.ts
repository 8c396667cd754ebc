// The streaming Part 10 rewriter: reader -> policy on the header tree and the trailer -> writer, with
// Pixel Data passed through in chunks. The policy sees DICOM JSON values only (PS3.18 F.2), so the
// Part 10 and JSON paths share one decision function (deidentify.ts).
import { Duplex } from 'node:stream';
import { UTF8_CHARACTER_SET, decodeText, encodeText, type CharacterSet } from '../dicom/charset.ts';
import { asciiValue, characterSetOf, findElement, setElement, type DataElement, type Dataset } from '../dicom/dataset.ts';
import { DicomInvalidValueError, DicomUnsupportedCharsetError } from '../dicom/errors.ts';
import { elementToJsonValue, jsonToDataset, jsonValueToElementBytes, type JsonDataset, type JsonValue } from '../dicom/json-model.ts';
import { Part10Reader, type Part10Event, type Part10Header, type Part10ReaderOptions } from '../dicom/part10-reader.ts';
import { collect, writePart10 } from '../dicom/part10-writer.ts';
import { isPrivateDataElement, parseTag, privateCreatorTagFor } from '../dicom/tag.ts';
import { TAG } from '../dicom/tags.ts';
import { maxBinaryValueBytes } from '../dicom/dictionary.ts';
import { hasInvalidControlBytes, isVr, padValue, vrInfo } from '../dicom/vr.ts';
import type { Decision, ElementRef, ElementValue } from './deidentify.ts';
import { normalizeCreator } from './profile.ts';

/** What the rewriter needs from a policy session; DeidSession (deidentify.ts) satisfies it. */
export interface Part10Policy {
  beginDataset(originalPatientId: string | undefined): void;
  decide(ref: ElementRef, value: ElementValue): Decision;
  attributesToAdd(): Record<string, { vr: string; Value?: unknown[] }>;
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
  const creators = new Map<number, string | undefined>(); // per block, decoded once per level
  for (const el of dataset) {
    const ref: { -readonly [K in keyof ElementRef]: ElementRef[K] } = { tag: el.tag, vr: el.vr, path };
    if (isPrivateDataElement(el.tag)) {
      // PS3.5 7.8.1: the block's creator is (gggg,00xx) of the same dataset.
      const creatorTag = privateCreatorTagFor(el.tag);
      if (creatorTag !== undefined) {
        if (!creators.has(creatorTag)) {
          const creatorEl = findElement(dataset, creatorTag);
          creators.set(creatorTag, creatorEl?.value ? normalizeCreator(decodeText(creatorEl.value, charset, 'LO')) : undefined);
        }
        const creator = creators.get(creatorTag);
        if (creator !== undefined) ref.privateCreator = creator;
      }
    }
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

/** Reader events with the header and trailer de-identified; Pixel Data events pass unchanged. */
async function* deidentifyEvents(events: AsyncIterable<Part10Event>, policy: Part10Policy, options: RewriteOptions = {}): AsyncGenerator<Part10Event> {
  let rootCharset: CharacterSet = [];
  let le = true;
  for await (const ev of events) {
    if (ev.type === 'header') {
      const { header } = ev;
      le = header.encoding.littleEndian;
      rootCharset = characterSetOf(header.dataset, []);
      options.admitStudy?.(asciiValue(header.dataset, TAG.StudyInstanceUID)?.trim());
      policy.beginDataset(asciiValueOrUndefined(header.dataset, rootCharset));
      const dataset = applyPolicy(header.dataset, [], le, policy, []);
      if (options.addMethodAttributes !== false) addAttributes(dataset, policy, characterSetOf(dataset, []), le);
      const meta = rewriteMeta(header, dataset, policy);
      yield { type: 'header', header: { ...header, dataset, meta } };
    } else if (ev.type === 'trailer') {
      yield { type: 'trailer', dataset: applyPolicy(ev.dataset, rootCharset, le, policy, []) };
    } else yield ev;
  }
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

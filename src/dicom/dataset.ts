// The in-memory header model: a Dataset is the list of its Data Elements in ascending tag order (PS3.5 7.1).
import { parseSpecificCharacterSet, type CharacterSet } from './charset.ts';
import type { Tag } from './tag.ts';
import { TAG } from './tags.ts';

export interface DataElement {
  readonly tag: Tag;
  /** The VR as resolved by the reader: explicit VR, dictionary VR for Implicit VR, or the dictionary VR for a UN it could resolve. */
  vr: string;
  /** Raw value bytes in the dataset's byte order (padding included). Absent for SQ and encapsulated values. */
  value?: Buffer;
  /** Items of a sequence (SQ, including UN that holds a sequence, PS3.5 6.2.2 / CP-246). */
  items?: Dataset[];
  /** Fragments of an encapsulated value held in the header (e.g. Icon Image Sequence Pixel Data, PS3.5 A.4). */
  fragments?: Buffer[];
  /** Whether the source used undefined length (informational: the writer always writes sequences with undefined length). */
  undefinedLength?: boolean;
  /** The VR found in the stream when the reader replaced it (UN resolved through the dictionary). */
  sourceVr?: string;
}

export type Dataset = DataElement[];

/** Transfer-syntax-level encoding of a dataset (PS3.5 10). */
export interface DatasetEncoding {
  readonly explicitVr: boolean;
  readonly littleEndian: boolean;
}

export function findElement(dataset: readonly DataElement[], tag: Tag): DataElement | undefined {
  // Datasets are small and sorted; binary search keeps this O(log n) for the large ones.
  let lo = 0;
  let hi = dataset.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const el = dataset[mid];
    if (!el) break;
    if (el.tag === tag) return el;
    if (el.tag >>> 0 < tag >>> 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return dataset.find((e) => e.tag === tag);
}

/** Inserts or replaces an element, keeping ascending tag order. */
export function setElement(dataset: Dataset, element: DataElement): void {
  const i = dataset.findIndex((e) => e.tag >>> 0 >= element.tag >>> 0);
  if (i === -1) dataset.push(element);
  else if (dataset[i]?.tag === element.tag) dataset[i] = element;
  else dataset.splice(i, 0, element);
}

/** The value of an ASCII string element (UI, CS, ...) without padding; undefined when absent. */
export function asciiValue(dataset: readonly DataElement[], tag: Tag): string | undefined {
  const el = findElement(dataset, tag);
  if (!el?.value) return el ? '' : undefined;
  return el.value.toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
}

/**
 * The character set in effect for a dataset: its own (0008,0005) if present, else the enclosing one
 * (PS3.5 6.1.2.3: an item may carry its own Specific Character Set).
 */
export function characterSetOf(dataset: readonly DataElement[], inherited: CharacterSet): CharacterSet {
  const el = findElement(dataset, TAG.SpecificCharacterSet);
  if (!el) return inherited;
  return parseSpecificCharacterSet(el.value ? el.value.toString('latin1').replace(/[\0 ]+$/, '') : '');
}

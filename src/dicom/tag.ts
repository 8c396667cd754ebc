// A tag is a uint32 number: (group << 16) | element. PS3.5 7.1.1.

export type Tag = number;

export const ITEM = 0xfffee000;
export const ITEM_DELIMITATION = 0xfffee00d;
export const SEQUENCE_DELIMITATION = 0xfffee0dd;
export const SPECIFIC_CHARACTER_SET = 0x00080005;
export const SOP_CLASS_UID = 0x00080016;
export const SOP_INSTANCE_UID = 0x00080018;
export const PIXEL_DATA = 0x7fe00010;
export const FLOAT_PIXEL_DATA = 0x7fe00008;
export const DOUBLE_FLOAT_PIXEL_DATA = 0x7fe00009;

export function makeTag(group: number, element: number): Tag {
  return (((group & 0xffff) << 16) | (element & 0xffff)) >>> 0;
}

export function groupOf(tag: Tag): number {
  return tag >>> 16;
}

export function elementOf(tag: Tag): number {
  return tag & 0xffff;
}

const TAG_PATTERN = /^\(?([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})\)?$/;

/** Parses "(0010,0010)", "0010,0010" or "00100010". Throws on anything else. */
export function parseTag(text: string): Tag {
  const m = TAG_PATTERN.exec(text.trim());
  if (!m || !m[1] || !m[2]) throw new TypeError('not a DICOM tag: expected (gggg,eeee) or ggggeeee');
  return makeTag(parseInt(m[1], 16), parseInt(m[2], 16));
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

/** "(0010,0010)" */
export function formatTag(tag: Tag): string {
  return `(${hex4(groupOf(tag))},${hex4(elementOf(tag))})`;
}

/** "00100010", the key form of DICOM JSON (PS3.18 F.2.1.1). */
export function tagToHex(tag: Tag): string {
  return (tag >>> 0).toString(16).toUpperCase().padStart(8, '0');
}

/** PS3.5 7.8: any odd group is private (groups 0001-0007 and FFFF are not allowed but are still not standard). */
export function isPrivate(tag: Tag): boolean {
  return (groupOf(tag) & 1) === 1;
}

/** PS3.5 7.8.1: (gggg,0010-00FF) in an odd group reserves a private block. */
export function isPrivateCreator(tag: Tag): boolean {
  const e = elementOf(tag);
  return isPrivate(tag) && e >= 0x0010 && e <= 0x00ff;
}

/** Group length (gggg,0000), PS3.5 7.2. */
export function isGroupLength(tag: Tag): boolean {
  return elementOf(tag) === 0;
}

/** PS3.5 7.8.1: a private data element (gggg,xxee) with xx in 10-FF lives in block xx. */
export function isPrivateDataElement(tag: Tag): boolean {
  return isPrivate(tag) && elementOf(tag) >= 0x1000;
}

/** The block number xx of (gggg,xxee); undefined when the tag is not a private data element. */
export function privateBlock(tag: Tag): number | undefined {
  return isPrivateDataElement(tag) ? elementOf(tag) >>> 8 : undefined;
}

/** The creator tag (gggg,00xx) that reserves the block of (gggg,xxee). */
export function privateCreatorTagFor(tag: Tag): Tag | undefined {
  const block = privateBlock(tag);
  return block === undefined ? undefined : makeTag(groupOf(tag), block);
}

/** The element offset ee within the private block, as the safe-private table writes it (gggg,xxee). */
export function privateElementOffset(tag: Tag): number | undefined {
  return isPrivateDataElement(tag) ? elementOf(tag) & 0xff : undefined;
}

/** Item, Item Delimitation and Sequence Delimitation (PS3.5 7.5). */
export function isDelimiter(tag: Tag): boolean {
  return tag === ITEM || tag === ITEM_DELIMITATION || tag === SEQUENCE_DELIMITATION;
}

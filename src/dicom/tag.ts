// A tag is a uint32 number: (group << 16) | element. PS3.5 7.1.1. Named tags are in tags.ts.

export type Tag = number;

export function makeTag(group: number, element: number): Tag {
  return (((group & 0xffff) << 16) | (element & 0xffff)) >>> 0;
}

export function groupOf(tag: Tag): number {
  return tag >>> 16;
}

export function elementOf(tag: Tag): number {
  return tag & 0xffff;
}

const GROUP_ELEMENT = /^(\(?)([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})(\)?)$/;

/**
 * Parses "ggggeeee" (the DICOM JSON key, PS3.18 F.2.1.1), "(gggg,eeee)" or "gggg,eeee" (PS3.6 as
 * printed); undefined for anything else, so a caller handed text from outside (a path segment, a JSON
 * key, a config key) decides itself what a non-tag means. Nothing is trimmed.
 */
export function parseTag(text: string): Tag | undefined {
  const key = hexKeyTag(text);
  if (key !== undefined) return key;
  const m = GROUP_ELEMENT.exec(text);
  if (!m || m[1] !== (m[4] === ')' ? '(' : '')) return undefined; // both parentheses or neither
  return makeTag(Number.parseInt(m[2]!, 16), Number.parseInt(m[3]!, 16));
}

/**
 * "ggggeeee" (PS3.18 F.2.1.1, either case) as a tag; undefined for anything else. A loop over the eight
 * characters, not a regular expression: every key of every DICOM JSON dataset passes here.
 */
export function hexKeyTag(text: string): Tag | undefined {
  if (text.length !== 8) return undefined;
  let tag = 0;
  for (let i = 0; i < 8; i++) {
    const c = text.charCodeAt(i);
    const digit = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x41 && c <= 0x46 ? c - 0x37 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
    if (digit < 0) return undefined;
    tag = tag * 16 + digit;
  }
  return tag;
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

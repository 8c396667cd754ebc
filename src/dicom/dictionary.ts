// PS3.6 data dictionary lookups over the generated table (scripts/generate-dictionary.ts).
import { DICTIONARY_TABLE } from './dictionary.generated.ts';
import { groupOf, isGroupLength, isPrivate, isPrivateCreator, parseTag, type Tag } from './tag.ts';
import { binaryValueSize } from './vr.ts';

export interface DictionaryEntry {
  /** As printed in PS3.6, e.g. "(0010,0010)" or "(60xx,3000)". */
  readonly pattern: string;
  readonly keyword: string | undefined;
  /** All VRs PS3.6 allows ("OB or OW" gives ['OB','OW']); empty for Item and delimitation tags. */
  readonly vrs: readonly string[];
  readonly vm: string | undefined;
  readonly retired: boolean;
}

interface RepeatingEntry {
  readonly mask: number;
  readonly value: number;
  /** PS3.5 7.6: a repeating "xx" group means the even groups gg00-gg1E only. */
  readonly evenGroupRange: boolean;
  readonly entry: DictionaryEntry;
}

const exact = new Map<Tag, DictionaryEntry>();
const repeating: RepeatingEntry[] = [];
const byKeyword = new Map<string, DictionaryEntry & { readonly tag?: Tag }>();

function load(): void {
  for (const line of DICTIONARY_TABLE.split('\n')) {
    if (line.length === 0) continue;
    const [t = '', vr = '-', vm = '-', keyword = '-', retired] = line.split(' ');
    const entry: DictionaryEntry = {
      pattern: `(${t.slice(0, 4)},${t.slice(4, 8)})`,
      keyword: keyword === '-' ? undefined : keyword,
      vrs: vr === '-' ? [] : vr.split('/'),
      vm: vm === '-' ? undefined : vm.split('/').join(' or '),
      retired: retired === 'R',
    };
    if (!t.includes('x')) {
      const tag = parseInt(t, 16) >>> 0;
      exact.set(tag, entry);
      if (entry.keyword) byKeyword.set(entry.keyword, { ...entry, tag });
      continue;
    }
    let mask = 0;
    let value = 0;
    for (let i = 0; i < 8; i++) {
      const c = t[i] ?? 'x';
      mask = mask * 16 + (c === 'x' ? 0 : 0xf);
      value = value * 16 + (c === 'x' ? 0 : parseInt(c, 16));
    }
    repeating.push({ mask: mask >>> 0, value: value >>> 0, evenGroupRange: t.slice(2, 4) === 'xx', entry });
    if (entry.keyword) byKeyword.set(entry.keyword, entry);
  }
}
load();

/** The PS3.6 entry of a tag, including repeating groups ((60xx,3000), (0028,04x0), ...); undefined if none. */
export function lookup(tag: Tag): DictionaryEntry | undefined {
  const hit = exact.get(tag >>> 0);
  if (hit) return hit;
  if (isPrivate(tag)) return undefined;
  for (const r of repeating) {
    if (((tag & r.mask) >>> 0) !== r.value) continue;
    if (r.evenGroupRange) {
      const low = groupOf(tag) & 0xff;
      if (low % 2 !== 0 || low > 0x1e) continue;
    }
    return r.entry;
  }
  return undefined;
}

/** The tag of a keyword (exact entries only); undefined for unknown or repeating-group keywords. */
export function tagForKeyword(keyword: string): Tag | undefined {
  return byKeyword.get(keyword)?.tag;
}

/** PS3.18 8.3.4.1 {attributeID}: a keyword or eight hex digits, as a tag; undefined for anything else. */
export function tagForAttributeId(id: string): Tag | undefined {
  return /^[0-9A-Fa-f]{8}$/.test(id) ? parseTag(id) : tagForKeyword(id);
}

/**
 * The VR to use when the stream does not say (Implicit VR, PS3.5 A.1), or 'UN' when unknown.
 * Ambiguous "OB or OW" becomes OW (Implicit VR encodes these as OW, PS3.5 A.1 / 8.1.2);
 * "US or SS" becomes US.
 */
export function implicitVr(tag: Tag): string {
  if (isGroupLength(tag)) return 'UL';
  if (isPrivateCreator(tag)) return 'LO';
  const e = lookup(tag);
  if (!e || e.vrs.length === 0) return 'UN';
  if (e.vrs.includes('OW')) return 'OW';
  return e.vrs[0] ?? 'UN';
}

/**
 * The most bytes a standard attribute of a fixed-size binary VR may hold: PS3.6 VM (its upper bound)
 * times the PS3.5 6.2 value size. Undefined when the VM is unbounded ("1-n") or the tag is not in the
 * dictionary.
 */
export function maxBinaryValueBytes(tag: Tag, vr: string): number | undefined {
  const size = binaryValueSize(vr);
  if (size === undefined) return undefined;
  const vm = lookup(tag)?.vm;
  const bound = vm === undefined ? undefined : /^(?:\d+-)?(\d+)$/.exec(vm)?.[1];
  return bound === undefined ? undefined : Number(bound) * size;
}

/** The single VR the dictionary gives, or undefined when unknown or ambiguous. */
export function unambiguousVr(tag: Tag): string | undefined {
  if (isPrivateCreator(tag)) return 'LO';
  const e = lookup(tag);
  return e && e.vrs.length === 1 ? e.vrs[0] : undefined;
}

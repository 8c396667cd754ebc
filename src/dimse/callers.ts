// Who may associate (PS3.8 7.1.1.3/7.1.1.4 Calling and Called AE Title): an allow-list of calling AE
// titles, each bound to the addresses it may come from, and the policy its studies get.
import { addressMatcher, parseAddressRange, type AddressRange } from '../config/address-range.ts';
import type { GatewayConfig } from '../config/schema.ts';

type DimseConfig = GatewayConfig['dimse'];
export type PseudonymMode = 'keyed' | 'fresh';

/** A caller the listener accepts, as its studies are processed. */
export type Caller = Uploader | Researcher;

/** A caller that stores (C-STORE): its studies are de-identified and forwarded. */
export interface Uploader {
  /** The calling AE title as configured (PS3.5 6.2: leading and trailing spaces are not significant). */
  readonly aeTitle: string;
  readonly role: 'uploader';
  /** The de-identification profile its studies get. */
  readonly profile: 'uploader';
  readonly pseudonyms: PseudonymMode;
}

/** A caller of the research face (C-FIND, C-GET, C-MOVE): served the de-identified view of one project. */
export interface Researcher {
  readonly aeTitle: string;
  readonly role: 'researcher';
  readonly project: string;
  /** The C-MOVE destinations (AE titles of `dimse.moveDestinations`) this caller may name; none by default. */
  readonly moveDestinations: readonly string[];
}

/** Why an association is rejected (PS3.8 9.3.4 A-ASSOCIATE-RJ reasons 3 and 7 of source 1). */
export type Refusal = 'calling-ae-not-recognized' | 'called-ae-not-recognized';

export type CallerCheck = { readonly caller: Caller } | { readonly refusal: Refusal };

/** PS3.5 6.2: an AE value is compared without its leading and trailing spaces, case kept. */
export function normalizeAeTitle(title: string): string {
  return title.trim();
}

/**
 * The listener's check of an A-ASSOCIATE-RQ: the called AE must be ours, the calling AE listed, and the
 * peer address (the socket's own, never anything the peer says) in that caller's ranges. An unknown AE
 * and a known AE from an address not listed get the same answer, so the reply does not tell which AE
 * titles exist.
 */
export function callerCheck(config: Pick<DimseConfig, 'aeTitle' | 'callers' | 'pseudonyms'>): (calledAe: string, callingAe: string, peer: string | undefined) => CallerCheck {
  const own = normalizeAeTitle(config.aeTitle);
  const rules = new Map(
    config.callers.map((c) => [
      normalizeAeTitle(c.aeTitle),
      {
        caller: callerOf(c, config.pseudonyms),
        from: addressMatcher(c.hosts.map((h) => parseAddressRange(h) as AddressRange)),
      },
    ]),
  );
  return (calledAe, callingAe, peer) => {
    if (normalizeAeTitle(calledAe) !== own) return { refusal: 'called-ae-not-recognized' };
    const rule = rules.get(normalizeAeTitle(callingAe));
    if (!rule?.from(peer)) return { refusal: 'calling-ae-not-recognized' };
    return { caller: rule.caller };
  };
}

function callerOf(c: DimseConfig['callers'][number], pseudonyms: PseudonymMode): Caller {
  const aeTitle = normalizeAeTitle(c.aeTitle);
  if (c.role === 'researcher') return { aeTitle, role: 'researcher', project: c.project as string, moveDestinations: (c.moveDestinations ?? []).map(normalizeAeTitle) };
  return { aeTitle, role: 'uploader', profile: c.profile, pseudonyms: c.pseudonyms ?? pseudonyms };
}

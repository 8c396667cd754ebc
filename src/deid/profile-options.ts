// A profile named on a command line: `basic` or a comma-separated list of PS3.15 option names
// (the Table E.1-1 column names, PROFILE_OPTIONS). Pure, so the CLI and tests share one parser.
import { PROFILE_OPTIONS, type ProfileOption, type ProfileOptions } from './profile.ts';

export interface ParsedProfileList {
  readonly options: ProfileOptions;
  /** Every name that is neither `basic` nor a PS3.15 option, reported at once. */
  readonly unknown: readonly string[];
}

/**
 * `basic` (or an empty list) is the Basic Profile alone (PS3.15 E.2); each other name switches on one
 * option (PS3.15 E.3). Mutually exclusive options are left to createPolicy, which reports them.
 */
export function parseProfileList(text: string): ParsedProfileList {
  const known = new Set<string>(PROFILE_OPTIONS);
  const options: Partial<Record<ProfileOption, boolean>> = {};
  const unknown: string[] = [];
  for (const raw of text.split(',')) {
    const name = raw.trim();
    if (name === '' || name === 'basic') continue;
    if (known.has(name)) options[name as ProfileOption] = true;
    else unknown.push(name);
  }
  return { options, unknown };
}

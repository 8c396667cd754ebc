// PS3.5 9.1: a UID is numeric components separated by `.`, each without a leading zero unless it is
// the single digit 0, at most 64 characters in all. The leading-zero rule is not enforced here: real
// archives hold such UIDs (badVR.dcm), and they are still unambiguous digits and dots.

/** PS3.5 9.1: the most characters a UID may have. */
const UID_MAX_LENGTH = 64;

const UID = /^[0-9]+(\.[0-9]+)*$/;

/** A UID as PS3.5 9.1 writes it: digits separated by single dots, at most 64 characters. */
export function isUid(value: string): boolean {
  return value.length <= UID_MAX_LENGTH && UID.test(value);
}

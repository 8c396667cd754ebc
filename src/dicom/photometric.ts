// PS3.3 C.7.6.3.1.2 Photometric Interpretation of pixels the gateway decoded and wrote native (a
// redacted encapsulated frame, PS3.5 8.2): what the header must then say. A function of the stored
// Photometric Interpretation alone, so the metadata path (which never sees the transfer syntax) and
// the Part 10 and frames paths agree.
//   - YBR_FULL_422 (JPEG, chroma subsampled): decoded to full-resolution YCbCr -> YBR_FULL.
//   - YBR_ICT / YBR_RCT (JPEG 2000 with a multi-component transform): decoded to RGB.
//   - Everything else is decoded in its own colour space and keeps its name.
// A native YBR_FULL_422 instance cannot be blanked in place under this rule: pixel/ refuses it (withheld).
export function decodedPhotometricInterpretation(stored: string): string {
  const pi = stored.trim();
  if (pi === 'YBR_FULL_422') return 'YBR_FULL';
  if (pi === 'YBR_ICT' || pi === 'YBR_RCT') return 'RGB';
  return pi;
}

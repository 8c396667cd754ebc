import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

export const SAMPLES_DIR = path.resolve(import.meta.dirname, '../../../shared/dicom-samples');

/** The bytes of a shared sample, e.g. sample('edge-cases/MR_truncated.dcm'). */
export function sample(rel: string): Buffer {
  return readFileSync(path.resolve(SAMPLES_DIR, rel));
}

/** Every .dcm sample, as paths relative to the samples folder, sorted. */
export function listSamples(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.dcm')) out.push(path.relative(SAMPLES_DIR, full).split(path.sep).join('/'));
    }
  };
  walk(SAMPLES_DIR);
  return out.sort();
}

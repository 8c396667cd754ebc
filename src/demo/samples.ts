import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

/** Where the shared sample files live: `DEID_GATEWAY_SAMPLES`, or `../shared/dicom-samples` beside the repo. */
export function samplesDir(): string {
  return process.env['DEID_GATEWAY_SAMPLES'] ?? resolve(import.meta.dirname, '../../../shared/dicom-samples');
}

/** Every `.dcm` file under a folder, as names relative to it, sorted. */
export function listDicomFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const full = join(d, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (name.toLowerCase().endsWith('.dcm')) out.push(relative(dir, full));
    }
  };
  walk(dir);
  return out;
}

export function* readDicomFiles(dir: string): Iterable<{ name: string; bytes: Buffer }> {
  for (const name of listDicomFiles(dir)) yield { name, bytes: readFileSync(join(dir, name)) };
}

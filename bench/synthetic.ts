import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { samplesDir } from '../src/demo/samples.ts';

const CT = 'transfer-syntax/CT1_UNC.explicit_little_endian.dcm';
const SOP = '1.3.6.1.4.1.5962.1.1.1.1.1.20040826185059.5457';
const STUDY = '1.3.6.1.4.1.5962.1.2.1.20040826185059.5457';
const SERIES = '1.3.6.1.4.1.5962.1.3.1.1.20040826185059.5457';

/** Replaces every occurrence of a UID by another of the same length (so no length field changes). */
function patch(buf: Buffer, from: string, to: string): void {
  if (from.length !== to.length) throw new Error('UIDs must keep their length');
  const needle = Buffer.from(from);
  for (let at = buf.indexOf(needle); at >= 0; at = buf.indexOf(needle, at + 1)) buf.write(to, at, 'latin1');
}

/** The 14-digit component of the sample's UIDs, made unique: no leading zero (PS3.5 9.1). */
const unique = (uid: string, n: number) => uid.replace('20040826185059', `9${String(n).padStart(13, '0')}`);

/** CT-size (530 KB) instances of one synthetic study, each with fresh UIDs: `count` of them. */
export function* syntheticCtStudy(count: number, study: number): Generator<Buffer> {
  const template = readFileSync(join(samplesDir(), CT));
  for (let i = 0; i < count; i++) {
    const file = Buffer.from(template);
    patch(file, SOP, unique(SOP, study * 1_000_000 + i));
    patch(file, STUDY, unique(STUDY, study));
    patch(file, SERIES, unique(SERIES, study));
    yield file;
  }
}

export const syntheticStudyUid = (study: number) => unique(STUDY, study);
export const syntheticSeriesUid = (study: number) => unique(SERIES, study);
/** The size of one synthetic instance (the CT template's), for sizing a study in MB. */
export const CT_INSTANCE_BYTES = 530 * 1024;

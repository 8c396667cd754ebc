import { randomBytes } from 'node:crypto';

/** A multipart/related STOW-RS body (PS3.18 10.5.1.2) from Part 10 files. */
export function stowBody(files: Uint8Array[], boundary = `stow-${randomBytes(8).toString('hex')}`) {
  const chunks: Buffer[] = [];
  for (const file of files) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), Buffer.from(file), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/related; type="application/dicom"; boundary=${boundary}` };
}

export interface StowAnswer {
  status: number;
  stored: { sopClass: string; sopInstance: string; url: string }[];
  failed: { sopClass?: string; sopInstance?: string; reason: number }[];
  retrieveUrl?: string;
}

type Item = Record<string, { Value?: unknown[] }>;

export function parseStowAnswer(status: number, json: Item): StowAnswer {
  const items = (tag: string) => (json[tag]?.Value ?? []) as Item[];
  return {
    status,
    retrieveUrl: json['00081190']?.Value?.[0] as string | undefined,
    stored: items('00081199').map((i) => ({
      sopClass: i['00081150']?.Value?.[0] as string,
      sopInstance: i['00081155']?.Value?.[0] as string,
      url: i['00081190']?.Value?.[0] as string,
    })),
    failed: items('00081198').map((i) => ({
      sopClass: i['00081150']?.Value?.[0] as string | undefined,
      sopInstance: i['00081155']?.Value?.[0] as string | undefined,
      reason: i['00081197']?.Value?.[0] as number,
    })),
  };
}

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * dicomweb-client, as OHIF uses it. On Node it needs an XMLHttpRequest implementation
 * (ECOSYSTEM.md): xhr2 provides one.
 */
export function dicomwebClient(url: string, token: string) {
  const g = globalThis as { XMLHttpRequest?: unknown };
  g.XMLHttpRequest ??= require('xhr2');
  const { api } = require('dicomweb-client') as {
    api: { DICOMwebClient: new (options: { url: string; headers: Record<string, string> }) => DicomwebClient };
  };
  return new api.DICOMwebClient({ url, headers: { Authorization: `Bearer ${token}` } });
}

type Json = Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string }>;

export interface DicomwebClient {
  searchForStudies(o?: { queryParams?: Record<string, unknown> }): Promise<Json[]>;
  searchForSeries(o: { studyInstanceUID?: string; queryParams?: Record<string, unknown> }): Promise<Json[]>;
  searchForInstances(o: { studyInstanceUID?: string; seriesInstanceUID?: string; queryParams?: Record<string, unknown> }): Promise<Json[]>;
  retrieveStudyMetadata(o: { studyInstanceUID: string }): Promise<Json[]>;
  retrieveSeriesMetadata(o: { studyInstanceUID: string; seriesInstanceUID: string }): Promise<Json[]>;
  retrieveInstance(o: { studyInstanceUID: string; seriesInstanceUID: string; sopInstanceUID: string }): Promise<ArrayBuffer>;
  retrieveInstanceFrames(o: {
    studyInstanceUID: string;
    seriesInstanceUID: string;
    sopInstanceUID: string;
    frameNumbers: number[];
    mediaTypes?: { mediaType: string; transferSyntaxUID?: string }[];
  }): Promise<ArrayBuffer[]>;
}

export const first = (dataset: Json | undefined, tag: string): string => {
  const value = dataset?.[tag]?.Value?.[0];
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && 'Alphabetic' in value) return String((value as { Alphabetic: unknown }).Alphabetic);
  return String(value);
};

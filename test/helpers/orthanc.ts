import { loadIntoOrthanc, startOrthanc, type OrthancOptions, type OrthancProcess } from '../../src/demo/orthanc-process.ts';
import { readDicomFiles, samplesDir } from '../../src/demo/samples.ts';

export type { OrthancProcess };

/**
 * A real Orthanc on loopback with a temp store, optionally loaded with every shared sample; `extraConfig`
 * is merged into its configuration (see `OrthancOptions`).
 */
export async function startTestOrthanc(options: { loadSamples?: boolean; extraConfig?: OrthancOptions['extraConfig'] } = {}) {
  const orthanc = await startOrthanc({ extraConfig: options.extraConfig });
  const loaded = options.loadSamples
    ? await loadIntoOrthanc(orthanc.httpUrl, readDicomFiles(samplesDir()))
    : { stored: [], refused: [] };
  return { orthanc, loaded };
}

export interface InstanceRef {
  study: string;
  series: string;
  instance: string;
}

/** Every instance Orthanc holds, read through its own DICOMweb QIDO. */
export async function listInstances(dicomWebUrl: string): Promise<InstanceRef[]> {
  const res = await fetch(`${dicomWebUrl}/instances?includefield=0020000D&includefield=0020000E`, {
    headers: { accept: 'application/dicom+json' },
  });
  const body = (await res.json()) as Array<Record<string, { Value?: string[] }>>;
  return body.map((item) => ({
    study: item['0020000D']?.Value?.[0] as string,
    series: item['0020000E']?.Value?.[0] as string,
    instance: item['00080018']?.Value?.[0] as string,
  }));
}

/** The 1.8 MB uncompressed US cine sample (`multiframe/IM00001.implicit_little_endian.dcm`). */
export const CINE_SOP_INSTANCE_UID = '1.3.6.1.4.1.25403.166563008443.732.20120418082458.3';

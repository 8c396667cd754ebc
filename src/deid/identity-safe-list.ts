// The reviewed safe list for standard attributes outside PS3.15 Table E.1-1 (issue 13, finding 5).
//
// PS3.15 E.1.1, Table E.1-1 Note 1: the table is not exhaustive; new or retired standard attributes, and
// attributes outside the Standard IODs, can identify too. So a standard attribute the table does not list
// is removed when its VR can carry identity (IDENTITY_VRS: by its PS3.6 VR or by the VR it is encoded
// with), unless it is on this list (profile.ts `outsideTableRule`). Person names are emptied instead (Z),
// and dates follow the temporal options (Note 4: dates may be treated by VR): shifted with Modified Dates,
// kept with Full Dates, removed otherwise.
//
// Written and reviewed by hand, not generated: each entry is an attribute of PS3.6 2026c absent from
// Table E.1-1 2026d that holds a technical, coded or equipment value, not a person, place, organisation
// of care, identifier, date, address, URL, AE title or text written by people. Anything doubtful stays
// off the list (removed); a site that needs one back uses a `keep` override, which the gateway warns
// about at start. test/unit/deid/identity-safe-list.test.ts checks every entry against
// ../shared/standard (tag, keyword and VR in ps3.6-dictionary.json; tag absent from ps3.15-table-e1-1.json),
// so the list cannot drift from the standard.
//
// Where the table itself removes an attribute of a kind, its siblings stay off the list: the table
// removes Source Manufacturer (300A,0216) and Lens Model (0016,0050) (device identity) and everything
// EXIF/GPS, so brachytherapy and NDE accessory manufacturers and model numbers, EXIF Version and implant
// manufacturers are removed too; only the equipment's own manufacturer, model and software are kept.
//
// The options keep only what their Table E.1-1 column names (E.1.1: an option's cell overrides the Basic
// Profile for that row). Retain Device Identity therefore does not keep Device ID (0018,1003), Grid ID,
// Radiation Machine Name or the RT accessory IDs, which the table does not list: they identify one unit,
// as Device Serial Number does, and are removed under every option set. Only dates are treated by VR.

import { parseTag, type Tag } from '../dicom/tag.ts';

/** VRs that can carry identity (names, free text, identifiers, addresses, dates, URLs, AE titles). */
export const IDENTITY_VRS: ReadonlySet<string> = new Set(['PN', 'LO', 'SH', 'ST', 'LT', 'UT', 'UC', 'UR', 'AE', 'DA', 'DT']);

/** Why an attribute is safe: one sentence per category, printed with the list by the conformance statement. */
export const SAFE_CATEGORIES = {
  coded: 'coded entry or coding scheme identification (PS3.3 8.8): vocabulary, not data about the patient; SR and every code sequence depend on it',
  equipment: 'manufacturer, model or software version of a product, not of the unit (serial number, station name and Device ID identify the unit and are not on this list)',
  technique: 'acquisition or processing technique set by the equipment (sequence, kernel, coil, filter, route, reconstruction method)',
  pixel: 'meaning of pixel values: rescale, LUT and window explanations',
  geometry: 'frame of reference landmark or an object-internal label that organises frames (stack, dimension, optical path)',
  private: 'reference to a private creator or private data element definition (vendor dictionary text; the private values themselves are removed)',
  encoding: 'encoding of a value or document (MIME types)',
  rendering: 'font used to render graphics',
  workflow: 'enumerated priority (PS3.3 Enumerated Values)',
} as const;
export type SafeCategory = keyof typeof SAFE_CATEGORIES;

/** One reviewed entry: tag as printed in PS3.6, keyword, PS3.6 VR, category, and a note where the call was close. */
export type SafeEntry = readonly [tag: string, keyword: string, vr: string, category: SafeCategory, note?: string];

export const IDENTITY_SAFE_LIST: readonly SafeEntry[] = [
  // Code Sequence Macro (PS3.3 Table 8.8-1) and coding scheme identification (PS3.3 C.12.1.1.2).
  ['(0008,0100)', 'CodeValue', 'SH', 'coded'],
  ['(0008,0102)', 'CodingSchemeDesignator', 'SH', 'coded'],
  ['(0008,0103)', 'CodingSchemeVersion', 'SH', 'coded'],
  ['(0008,0104)', 'CodeMeaning', 'LO', 'coded'],
  ['(0008,0112)', 'CodingSchemeRegistry', 'LO', 'coded'],
  ['(0008,0114)', 'CodingSchemeExternalID', 'ST', 'coded', 'identifies a coding scheme in an external registry (e.g. an ISO OID), not a patient, person or site'],
  ['(0008,0115)', 'CodingSchemeName', 'ST', 'coded'],
  ['(0008,0119)', 'LongCodeValue', 'UC', 'coded'],
  ['(0008,0120)', 'URNCodeValue', 'UR', 'coded', 'a URN naming a code, one of the three Type 1C code values of the macro; not a locator'],
  ['(0008,0122)', 'MappingResourceName', 'LO', 'coded'],
  // Equipment and software products.
  ['(0008,0070)', 'Manufacturer', 'LO', 'equipment', 'Type 2 in the General Equipment Module'],
  ['(0008,0222)', 'ManufacturerRelatedModelGroup', 'LO', 'equipment'],
  ['(0008,1090)', 'ManufacturerModelName', 'LO', 'equipment'],
  ['(0018,1016)', 'SecondaryCaptureDeviceManufacturer', 'LO', 'equipment'],
  ['(0018,1017)', 'HardcopyDeviceManufacturer', 'LO', 'equipment'],
  ['(0018,1018)', 'SecondaryCaptureDeviceManufacturerModelName', 'LO', 'equipment'],
  ['(0018,1019)', 'SecondaryCaptureDeviceSoftwareVersions', 'LO', 'equipment'],
  ['(0018,101A)', 'HardcopyDeviceSoftwareVersion', 'LO', 'equipment'],
  ['(0018,101B)', 'HardcopyDeviceManufacturerModelName', 'LO', 'equipment'],
  ['(0018,1020)', 'SoftwareVersions', 'LO', 'equipment'],
  ['(0018,702A)', 'DetectorManufacturerName', 'LO', 'equipment'],
  ['(0018,702B)', 'DetectorManufacturerModelName', 'LO', 'equipment'],
  ['(0018,9041)', 'ReceiveCoilManufacturerName', 'LO', 'equipment'],
  ['(0018,9050)', 'TransmitCoilManufacturerName', 'LO', 'equipment'],
  ['(0018,9524)', 'ApplicationName', 'LO', 'equipment'],
  ['(0018,9525)', 'ApplicationVersion', 'LO', 'equipment'],
  ['(0018,9526)', 'ApplicationManufacturer', 'LO', 'equipment'],
  ['(0020,3404)', 'ModifyingDeviceManufacturer', 'LO', 'equipment'],
  ['(0062,0009)', 'SegmentAlgorithmName', 'LO', 'equipment', 'the segmentation software, Type 1C for automatic segments'],
  ['(0066,0031)', 'AlgorithmVersion', 'LO', 'equipment'],
  ['(0066,0036)', 'AlgorithmName', 'LO', 'equipment'],
  ['(3010,001A)', 'ManufacturerModelVersion', 'LO', 'equipment'],
  // Acquisition and processing technique.
  ['(0018,0024)', 'SequenceName', 'SH', 'technique'],
  ['(0018,0085)', 'ImagedNucleus', 'SH', 'technique'],
  ['(0018,1022)', 'VideoImageFormatAcquired', 'SH', 'technique'],
  ['(0018,1023)', 'DigitalImageFormatAcquired', 'LO', 'technique'],
  ['(0018,1040)', 'ContrastBolusRoute', 'LO', 'technique'],
  ['(0018,1061)', 'TriggerSourceOrType', 'LO', 'technique'],
  ['(0018,1064)', 'CardiacFramingType', 'LO', 'technique'],
  ['(0018,1070)', 'RadiopharmaceuticalRoute', 'LO', 'technique'],
  ['(0018,1085)', 'PVCRejection', 'LO', 'technique'],
  ['(0018,1160)', 'FilterType', 'SH', 'technique'],
  ['(0018,1161)', 'TypeOfFilters', 'LO', 'technique'],
  ['(0018,1180)', 'CollimatorGridName', 'SH', 'technique'],
  ['(0018,11A4)', 'PaddleDescription', 'LO', 'technique'],
  ['(0018,11B0)', 'AcquisitionMode', 'LO', 'technique'],
  ['(0018,11B1)', 'DoseModeName', 'LO', 'technique'],
  ['(0018,1210)', 'ConvolutionKernel', 'SH', 'technique', 'Type 1 in the CT Reconstruction Macro'],
  ['(0018,1250)', 'ReceiveCoilName', 'SH', 'technique', 'Type 1 in the MR Receive Coil Macro'],
  ['(0018,1251)', 'TransmitCoilName', 'SH', 'technique', 'Type 1 in the MR Transmit Coil Macro'],
  ['(0018,1260)', 'PlateType', 'SH', 'technique'],
  ['(0018,1261)', 'PhosphorType', 'LO', 'technique'],
  ['(0018,1401)', 'AcquisitionDeviceProcessingCode', 'LO', 'technique'],
  ['(0018,5000)', 'OutputPower', 'SH', 'technique'],
  ['(0018,5020)', 'ProcessingFunction', 'LO', 'technique'],
  ['(0018,5021)', 'PostprocessingFunction', 'LO', 'technique'],
  ['(0018,7040)', 'GridAbsorbingMaterial', 'LT', 'technique'],
  ['(0018,7041)', 'GridSpacingMaterial', 'LT', 'technique'],
  ['(0018,9005)', 'PulseSequenceName', 'SH', 'technique', 'Type 1 in the MR Pulse Sequence Module'],
  ['(0018,9046)', 'MultiCoilConfiguration', 'LO', 'technique'],
  ['(0018,9047)', 'MultiCoilElementName', 'SH', 'technique'],
  ['(0018,9080)', 'MetaboliteMapDescription', 'ST', 'technique', 'names the metabolite mapped (Type 1 in MR spectroscopy)'],
  ['(0018,9175)', 'ApplicableSafetyStandardDescription', 'LO', 'technique'],
  ['(0018,9252)', 'ASLTechniqueDescription', 'LO', 'technique'],
  ['(0018,925B)', 'ASLCrusherDescription', 'LO', 'technique'],
  ['(0018,925E)', 'ASLBolusCutoffTechnique', 'LO', 'technique'],
  ['(0018,9320)', 'ImageFilter', 'SH', 'technique'],
  ['(0020,0070)', 'ImageGeometryType', 'LO', 'technique'],
  ['(0054,0018)', 'EnergyWindowName', 'SH', 'technique'],
  ['(0054,1101)', 'AttenuationCorrectionMethod', 'LO', 'technique'],
  ['(0054,1103)', 'ReconstructionMethod', 'LO', 'technique'],
  ['(0054,1104)', 'DetectorLinesOfResponseUsed', 'LO', 'technique'],
  ['(0054,1105)', 'ScatterCorrectionMethod', 'LO', 'technique'],
  ['(300A,00CC)', 'ImagingDeviceSpecificAcquisitionParameters', 'LO', 'technique'],
  ['(300A,0226)', 'SourceIsotopeName', 'LO', 'technique'],
  ['(300A,0362)', 'RangeShifterSetting', 'LO', 'technique', 'Type 1 in ion control points'],
  ['(300A,0372)', 'LateralSpreadingDeviceSetting', 'LO', 'technique', 'Type 1 in ion control points'],
  ['(3002,0052)', 'FluenceModeID', 'SH', 'technique', 'a fluence mode (e.g. FFF, SRS) defined by the machine, not an identifier of anything'],
  // Pixel values.
  ['(0022,1454)', 'PixelValueMappingExplanation', 'LO', 'pixel'],
  ['(0028,1054)', 'RescaleType', 'LO', 'pixel', 'Type 1 in several Modality LUT modules'],
  ['(0028,1055)', 'WindowCenterWidthExplanation', 'LO', 'pixel'],
  ['(0028,3003)', 'LUTExplanation', 'LO', 'pixel'],
  ['(0028,3004)', 'ModalityLUTType', 'LO', 'pixel'],
  ['(0040,9210)', 'LUTLabel', 'SH', 'pixel', 'Type 1 in the Real World Value Mapping Item'],
  ['(0060,3010)', 'HistogramExplanation', 'LO', 'pixel'],
  // Geometry and multi-frame organisation.
  ['(0020,1040)', 'PositionReferenceIndicator', 'LO', 'geometry', 'Type 2 in the Frame of Reference Module; an anatomical or fiducial landmark (PS3.3 C.7.4.1.1.2)'],
  ['(0020,103F)', 'TargetPositionReferenceIndicator', 'LO', 'geometry'],
  ['(0020,9056)', 'StackID', 'SH', 'geometry', 'labels a stack of frames within the object (Frame Content Macro), assigned by the equipment'],
  ['(0020,9421)', 'DimensionDescriptionLabel', 'LO', 'geometry'],
  ['(0048,0106)', 'OpticalPathIdentifier', 'SH', 'geometry', 'links frames to an optical path within the object (Type 1, WSI)'],
  ['(006A,000E)', 'ReferencedOpticalPathIdentifier', 'SH', 'geometry', 'a reference to an Optical Path Identifier of the same object'],
  // Private creators and private data element definitions.
  ['(0008,0302)', 'PrivateCreatorReference', 'LO', 'private'],
  ['(0008,030C)', 'PrivateDataElementName', 'UC', 'private'],
  ['(0008,030D)', 'PrivateDataElementKeyword', 'UC', 'private'],
  ['(0020,9213)', 'DimensionIndexPrivateCreator', 'LO', 'private'],
  ['(0020,9238)', 'FunctionalGroupPrivateCreator', 'LO', 'private'],
  ['(0072,0054)', 'SelectorSequencePointerPrivateCreator', 'LO', 'private'],
  ['(0072,0056)', 'SelectorAttributePrivateCreator', 'LO', 'private'],
  ['(0074,1056)', 'AttributeOccurrencePrivateCreator', 'LO', 'private'],
  // Encodings, rendering, workflow.
  ['(0042,0012)', 'MIMETypeOfEncapsulatedDocument', 'LO', 'encoding', 'Type 1 in the Encapsulated Document Module'],
  ['(0042,0014)', 'ListOfMIMETypes', 'LO', 'encoding'],
  ['(0070,0227)', 'FontName', 'LO', 'rendering'],
  ['(0070,0229)', 'CSSFontName', 'LO', 'rendering'],
  ['(0040,1003)', 'RequestedProcedurePriority', 'SH', 'workflow'],
  ['(0040,1009)', 'ReportingPriority', 'SH', 'workflow'],
];

/** An entry's tag, read by the one tag parser; a malformed entry is a bug, found at load. */
function tagOf(text: string): Tag {
  const tag = parseTag(text);
  if (tag === undefined) throw new Error(`identity safe list: ${text} is not a tag`);
  return tag;
}

const byTag = new Map<number, SafeEntry>(IDENTITY_SAFE_LIST.map((entry) => [tagOf(entry[0]), entry]));

/** The safe list entry of a tag, if any. */
export function identitySafeEntry(tag: number): SafeEntry | undefined {
  return byTag.get(tag >>> 0);
}

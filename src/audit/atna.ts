import type { RouteClass } from '../auth/role.ts';
import type { CodedValue, EventActionCode, EventOutcomeIndicator } from '../store/audit-trail.ts';

/** PS3.16 CID 400 Audit Event ID (DCM), the ones the gateway records (PS3.15 A.5.3). */
export const EVENT_ID = {
  auditLogUsed: { code: '110101', codingScheme: 'DCM', meaning: 'Audit Log Used' },
  instancesTransferred: { code: '110104', codingScheme: 'DCM', meaning: 'DICOM Instances Transferred' },
  export: { code: '110106', codingScheme: 'DCM', meaning: 'Export' },
  import: { code: '110107', codingScheme: 'DCM', meaning: 'Import' },
  patientRecord: { code: '110110', codingScheme: 'DCM', meaning: 'Patient Record' },
  query: { code: '110112', codingScheme: 'DCM', meaning: 'Query' },
} as const satisfies Record<string, CodedValue>;

/**
 * CID 400 has no re-identification event: it is recorded as a Patient Record read (PS3.15 A.5.3.9,
 * EventActionCode R) with this local EventTypeCode (a `99` private coding scheme, PS3.16 8.2).
 */
export const REIDENTIFICATION: CodedValue = { code: 'REIDENTIFY', codingScheme: '99DEIDGW', meaning: 'Re-identification' };

/**
 * CID 400 has no event for a research project (who may see which studies, under which profile): the
 * steward's project events carry this local EventID (a `99` private coding scheme, PS3.16 8.2, as
 * REIDENTIFICATION is), with EventActionCode C (created), U (its explicit study list changed) or R (read).
 */
export const PROJECT_EVENT: CodedValue = { code: 'PROJECT', codingScheme: '99DEIDGW', meaning: 'Research Project' };

/**
 * A withdrawal of consent changes what is recorded of the patient: a Patient Record update (PS3.15
 * A.5.3.9, EventActionCode U) with this local EventTypeCode; the participant is the patient, named by
 * the pseudonymous PatientID the steward gave, never by the original.
 */
export const CONSENT_WITHDRAWAL: CodedValue = { code: 'WITHDRAW_CONSENT', codingScheme: '99DEIDGW', meaning: 'Withdrawal of Consent' };

/**
 * A DICOMweb transaction as an audit event: search → Query (E); retrieve → Export (R), the de-identified
 * copy leaves the PACS's domain; store → Import (C).
 */
export function eventForTransaction(routeClass: RouteClass): { eventId: CodedValue; eventActionCode: EventActionCode } {
  switch (routeClass) {
    case 'search':
      return { eventId: EVENT_ID.query, eventActionCode: 'E' };
    case 'retrieve':
      return { eventId: EVENT_ID.export, eventActionCode: 'R' };
    case 'store':
      return { eventId: EVENT_ID.import, eventActionCode: 'C' };
  }
}

/** EventOutcomeIndicator from the HTTP outcome: 2xx/3xx complete → 0; refused (4xx) → 4; failed or cut off → 8. */
export function outcomeOf(status: number, complete = true): EventOutcomeIndicator {
  if (!complete || status >= 500) return 8;
  if (status >= 400) return 4;
  return 0;
}

import type { AuditEvent } from '../../src/store/audit-trail.ts';

/** A researcher's QIDO-RS record with every field the first release did not have (for the store migrations). */
export const QUERY_EVENT: AuditEvent = {
  eventDateTime: new Date('2024-01-02T00:00:00.000Z'),
  eventId: { code: '110112', codingScheme: 'DCM', meaning: 'Query' },
  eventActionCode: 'E',
  eventOutcomeIndicator: 0,
  userId: 'r-1',
  roleId: 'researcher',
  route: 'GET /studies/:study/series',
  httpStatus: 200,
  participantObjectId: '2.25.1',
  participantObjectIdTypeCode: 'StudyInstanceUID',
  seriesInstanceUid: '2.25.2',
  participantObjectQuery: {
    keys: [
      { keyword: 'SeriesInstanceUID', mode: 'single', values: ['2.25.2'] },
      { keyword: 'SeriesDate', mode: 'range' },
    ],
    limit: 5,
  },
};

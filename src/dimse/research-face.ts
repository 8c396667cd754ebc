// The research face's contract (issue 19 part 2): the listener (listener.ts) hands each C-FIND, C-GET and
// C-MOVE of a researcher caller to these operations, which are served by this gateway's own DICOMweb
// routes through view-client.ts, so a DICOM query takes the path a researcher's QIDO-RS or WADO-RS
// request takes (project membership, reverse mapping, no oracle, the pixel policy, the audit trail).
import type dimse from 'dcmjs-dimse';
import type { GatewayConfig } from '../config/schema.ts';
import type { AuditTrail } from '../store/audit-trail.ts';
import type { Researcher } from './callers.ts';
import type { DimseLog } from './forwarder.ts';
import type { ViewClient } from './view-client.ts';

type Request = InstanceType<typeof dimse.requests.CFindRequest> | InstanceType<typeof dimse.requests.CGetRequest> | InstanceType<typeof dimse.requests.CMoveRequest>;
type Response = InstanceType<typeof dimse.responses.CFindResponse> | InstanceType<typeof dimse.responses.CGetResponse> | InstanceType<typeof dimse.responses.CMoveResponse>;

/** PS3.4 C.3.1 / C.6.2.1: the Query/Retrieve Information Models the research face serves. */
export const QUERY_RETRIEVE = Object.freeze({
  studyRootFind: '1.2.840.10008.5.1.4.1.2.2.1',
  studyRootMove: '1.2.840.10008.5.1.4.1.2.2.2',
  studyRootGet: '1.2.840.10008.5.1.4.1.2.2.3',
  patientRootFind: '1.2.840.10008.5.1.4.1.2.1.1',
  patientRootMove: '1.2.840.10008.5.1.4.1.2.1.2',
  patientRootGet: '1.2.840.10008.5.1.4.1.2.1.3',
});
const MODELS: ReadonlySet<string> = new Set(Object.values(QUERY_RETRIEVE));

export function isQueryRetrieveModel(uid: string): boolean {
  return MODELS.has(uid);
}

/** The DIMSE operations of the research face. */
export type QueryRetrieveCommand = 'C-FIND' | 'C-GET' | 'C-MOVE';

/** PS3.4 C.4: the operation a Query/Retrieve SOP Class (FIND, MOVE or GET of its model) is for; undefined for any other UID. */
export function commandOfModel(uid: string): QueryRetrieveCommand | undefined {
  switch (uid) {
    case QUERY_RETRIEVE.studyRootFind:
    case QUERY_RETRIEVE.patientRootFind:
      return 'C-FIND';
    case QUERY_RETRIEVE.studyRootGet:
    case QUERY_RETRIEVE.patientRootGet:
      return 'C-GET';
    case QUERY_RETRIEVE.studyRootMove:
    case QUERY_RETRIEVE.patientRootMove:
      return 'C-MOVE';
    default:
      return undefined;
  }
}

/** One C-FIND, C-GET or C-MOVE of a researcher caller. */
export interface Operation<R extends Request = Request> {
  readonly caller: Researcher;
  /** The listener's association id (logs). */
  readonly association: string;
  readonly request: R;
  /**
   * Sends responses on the request's presentation context, in the order given: pending ones (FF00, FF01;
   * PS3.7 9.1.2.1.6), then exactly one final one. Nothing is sent once the association is gone.
   */
  respond(responses: Response | readonly Response[]): void;
  /**
   * Resolves once the association's socket has room again (its 'drain') after responses filled its buffer,
   * at once when it has room; also when the association ends or the operation is aborted. An operation
   * that sends many responses (C-FIND matches) waits for it before reading the next, so a peer that stops
   * reading holds the view's answer back instead of filling memory (back-pressure).
   */
  drained(): Promise<void>;
  /** Aborted by a C-CANCEL of this request (PS3.7 9.3.2.3) or by the end of the association. */
  readonly signal: AbortSignal;
}

/**
 * A C-GET's association, for its C-STORE sub-operations (PS3.4 C.4.3.3): sent on the same association,
 * on a storage context the caller proposed with the SCP role (PS3.7 D.3.3.4). The listener's Scp itself.
 */
export type GetChannel = InstanceType<typeof dimse.Scp>;

export interface ResearchFace {
  /** PS3.4 C.4.1 C-FIND. */
  find(op: Operation<InstanceType<typeof dimse.requests.CFindRequest>>): Promise<void>;
  /** PS3.4 C.4.3 C-GET: the instances go back on `channel`. */
  get(op: Operation<InstanceType<typeof dimse.requests.CGetRequest>>, channel: GetChannel): Promise<void>;
  /** PS3.4 C.4.2 C-MOVE: the instances go to a destination of `dimse.moveDestinations` the caller may name (`callers[].moveDestinations`). */
  move(op: Operation<InstanceType<typeof dimse.requests.CMoveRequest>>): Promise<void>;
}

/** What every operation of the research face is given. */
export interface ResearchFaceOptions {
  readonly config: GatewayConfig['dimse'];
  /** The caller's de-identified view, through this gateway's own DICOMweb routes. */
  readonly client: ViewClient;
  readonly log: DimseLog;
  /** One record per C-GET and C-MOVE (PS3.15 A.5.3.2 DICOM Instances Transferred), beside the view's own per request. */
  readonly audit: AuditTrail;
  /** The clock of the audit records (tests pass their own). */
  readonly now?: () => Date;
}

// What the gateway knows about one request while it is served, typed, in one place: who is calling
// (set once the token is verified), the route pattern, the request id and its logger, and the audit
// outcome a handler may worsen. It is kept beside the response (a WeakMap, gone with it) and read and
// written only through the accessors below, never through express's untyped `res.locals`.
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import type { Role } from '../config/schema.ts';
import type { EventOutcomeIndicator } from '../store/audit-trail.ts';
import type { Logger } from './logging.ts';

/** The verified caller: the gateway role the token resolved to, its `sub` if it names one, the projects it grants. */
export interface Caller {
  readonly role: Role;
  readonly subject: string | undefined;
  readonly projects: readonly string[];
  /**
   * A token this process minted for its DIMSE research face (subject `dimse:<calling AE>`), not an IdP's;
   * an IdP token with such a subject is refused (http/auth.ts), so the audit trail's `dimse:` users are these.
   */
  readonly internal?: boolean;
}

export interface RequestState {
  /** The gateway's own id for the request (joins the log and the audit trail); none outside `requestContext`. */
  readonly requestId: string | undefined;
  /** The request's child logger; none outside `requestContext`. */
  readonly log: Logger | undefined;
  /** The route pattern that served the request (never the concrete URL: URLs carry UIDs). */
  route: string | undefined;
  /** Set by `authenticate`; undefined until the token is verified (and for routes without one). */
  caller: Caller | undefined;
  /** The researcher's project for this request (http/project-choice.ts), or the one a steward's call concerns (http/projects.ts); the audit record names it. */
  project: string | undefined;
  /** An outcome worse than the HTTP status says (the upload page answers 200 when it stored nothing). */
  auditOutcome: EventOutcomeIndicator | undefined;
  /** A steward endpoint already wrote this request's audit record, so a refusal hook adds none. */
  audited: boolean;
  /**
   * Instances the response withheld or redacted under an active pixel policy (issue 16; the audit record
   * carries them); undefined when no pixel policy was in force for the request.
   */
  pixels: PixelCounts | undefined;
}

/** How many instances a response withheld and redacted (dicomweb/pixel-census.ts PixelObserver). */
export interface PixelCounts {
  withheld: number;
  redacted: number;
}

const STATES = new WeakMap<ServerResponse, RequestState>();
const SAFE_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** The request's state, created empty on first use (e.g. on the separate metrics listener). */
export function requestState(res: ServerResponse): RequestState {
  let state = STATES.get(res);
  if (!state) {
    state = {
      requestId: undefined,
      log: undefined,
      route: undefined,
      caller: undefined,
      project: undefined,
      auditOutcome: undefined,
      audited: false,
      pixels: undefined,
    };
    STATES.set(res, state);
  }
  return state;
}

/** Names the route pattern that serves this request, for logs, metrics and the audit record. */
export function setRoute(res: ServerResponse, route: string): void {
  requestState(res).route = route;
}

/** The verified caller's role, or undefined before authentication. */
export function roleOf(res: ServerResponse): Role | undefined {
  return requestState(res).caller?.role;
}

/** The verified caller; a handler behind `authenticate` may rely on it (an error here is a wiring bug). */
export function callerOf(res: ServerResponse): Caller {
  const caller = requestState(res).caller;
  if (!caller) throw new Error('the request was not authenticated');
  return caller;
}

/**
 * Gives each request an id of the gateway's own (it joins the log and the audit trail, so a caller
 * cannot choose it) and a child logger; a sane caller `X-Request-Id` is logged beside it. Logs completion.
 */
export function requestContext(logger: Logger) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const incoming = req.headers['x-request-id'];
    const requestId = randomUUID();
    const started = process.hrtime.bigint();
    const log = logger.child(typeof incoming === 'string' && SAFE_ID.test(incoming) ? { requestId, callerRequestId: incoming } : { requestId });
    const state: RequestState = { ...requestState(res), requestId, log };
    STATES.set(res, state);
    res.setHeader('x-request-id', requestId);
    res.once('close', () => {
      log.info(
        {
          method: req.method,
          route: state.route ?? 'unmatched',
          role: state.caller?.role,
          status: res.statusCode,
          complete: res.writableFinished,
          ms: Number(process.hrtime.bigint() - started) / 1e6,
        },
        'request',
      );
    });
    next();
  };
}

import express, { Router, type NextFunction, type Request, type Response } from 'express';
import type { RoleOptions } from '../auth/role.ts';
import type { TokenVerifier } from '../auth/token.ts';
import { CONSENT_WITHDRAWAL, EVENT_ID, PROJECT_EVENT } from '../audit/atna.ts';
import { PatientPseudonymUnknownError, ProjectExistsError, ProjectNotFoundError, ProjectRequestError } from '../projects/errors.ts';
import { PROJECT_NAME, projectScope } from '../projects/project.ts';
import {
  parseProjectCreation,
  parseStudyChange,
  parseStudyPage,
  parseWithdrawal,
  type PolicyBuilder,
  type WithdrawalSubject,
} from '../projects/steward-request.ts';
import type { AuditEvent, AuditTrail } from '../store/audit-trail.ts';
import type { ProjectRecord, ProjectStore } from '../store/project-store.ts';
import { scopedPseudonyms, type PseudonymStore } from '../store/pseudonym-store.ts';
import { actorOf, auditRefusal, stewardOnly } from './audit.ts';
import { requestState, setRoute } from './request-context.ts';
import { rawQueryOf } from './request-target.ts';

export interface ProjectRoutesOptions {
  verify: TokenVerifier;
  roles: RoleOptions;
  audit: AuditTrail;
  projects: ProjectStore;
  /** A withdrawal by pseudonym maps it back in the project's scope; `sync` makes each record durable before the answer. */
  store: PseudonymStore;
  /** Builds a project's policy (config/resolve.ts `scopedPolicy`): a profile that does not build is refused. */
  scopedPolicy: PolicyBuilder;
}

/** The audit record's `project` for a withdrawal from every project by the original PatientID (no project name has parentheses). */
export const EVERY_PROJECT = '(every project)';
/** ParticipantObjectID of a withdrawal by the original PatientID: the trail never holds an original. */
export const ORIGINAL_PATIENT_ID = '(original PatientID)';

type Event = Pick<AuditEvent, 'eventId' | 'eventActionCode' | 'route'> & Partial<AuditEvent>;

/** What a handler answers, and what it adds to the request's audit record. */
interface Outcome {
  readonly status: number;
  readonly body: unknown;
}

/** Fields of the request's record a handler learns on its way (the patient named), kept for a refusal too. */
const RECORD = new WeakMap<Response, Partial<AuditEvent>>();

const withdrawal = (route: string): Event => ({
  eventId: EVENT_ID.patientRecord,
  eventTypeCode: CONSENT_WITHDRAWAL,
  eventActionCode: 'U',
  route,
  participantObjectIdTypeCode: 'PatientID',
});

/**
 * The steward's project API (steward only, JSON):
 * - `GET /projects`: every project with its study count;
 * - `POST /projects`: creates one (201), its profile checked by building its policy; 409 if the name is taken;
 * - `GET /projects/{project}?limit&offset`: the project and a page of its explicit study list;
 * - `POST /projects/{project}/studies`: `{ add, remove }` original StudyInstanceUIDs;
 * - `POST /projects/{project}/withdrawals`: `{ patientId }` or `{ pseudonym }`, from this project;
 * - `POST /withdrawals`: `{ patientId }` or `{ project, pseudonym }`, from every project.
 * Each call, answered or refused, leaves one audit record naming the project (never an original
 * PatientID), written and made durable before the answer. Only these exact paths match: DICOMweb below
 * `/projects/{project}/dicom-web` goes on to its own router.
 */
export function projectRoutes(options: ProjectRoutesOptions): Router {
  const { audit, projects, store } = options;
  const router = Router({ caseSensitive: true });
  const guard = stewardOnly(options.verify, options.roles, 'projects');
  const json = express.json({ limit: '256kb' });

  /** One steward route: the project of the path (when it is a name) on the record, the guard, the handler, the refusal hook. */
  const route = (method: 'get' | 'post', path: string, event: Event, handler: (req: Request, res: Response) => Promise<Outcome>) => {
    router[method](
      path,
      (req: Request, res: Response, next: NextFunction) => {
        setRoute(res, path);
        const named = req.params['project'];
        if (typeof named === 'string' && PROJECT_NAME.test(named)) requestState(res).project = named;
        next();
      },
      ...guard,
      ...(method === 'post' ? [json] : []),
      async (req: Request, res: Response, next: NextFunction) => {
        try {
          const { status, body } = await handler(req, res);
          await audit.append({ ...actorOf(res), ...event, ...RECORD.get(res), eventOutcomeIndicator: 0, httpStatus: status });
          // The trail lives in the store's database: one flush makes the change and its record durable before the answer.
          await store.sync();
          requestState(res).audited = true;
          res.setHeader('cache-control', 'no-store');
          res.status(status).json(body);
        } catch (error) {
          next(error);
        }
      },
      (error: unknown, req: Request, res: Response, next: NextFunction) => auditRefusal(audit, { ...event, ...RECORD.get(res) })(error, req, res, next),
    );
  };

  /** The project the path names, as the store holds it; 404 for the steward when there is none. */
  const projectOf = async (req: Request): Promise<ProjectRecord> => {
    const name = req.params['project'];
    const record = typeof name === 'string' && PROJECT_NAME.test(name) ? await projects.project(name) : undefined;
    if (!record) throw new ProjectNotFoundError();
    return record;
  };

  /** The original PatientID a withdrawal names: given, or mapped back from the project's pseudonym (404 if never issued there). */
  const patientOf = async (subject: WithdrawalSubject, res: Response): Promise<string> => {
    if ('patientId' in subject) {
      RECORD.set(res, { participantObjectId: ORIGINAL_PATIENT_ID });
      return subject.patientId;
    }
    RECORD.set(res, { participantObjectId: subject.pseudonym });
    const original = await scopedPseudonyms(store, projectScope(subject.project)).originalOf('patientId', subject.pseudonym);
    // PS3.5 6.2: leading and trailing spaces of an LO are not significant (membership compares it trimmed).
    const trimmed = original?.trim();
    if (!trimmed) throw new PatientPseudonymUnknownError();
    return trimmed;
  };

  route('get', '/projects', { eventId: PROJECT_EVENT, eventActionCode: 'R', route: 'GET /projects' }, async () => {
    const list = await projects.projects();
    const out = [];
    for (const p of list) out.push(projectJson(p, await projects.studyCount(p.name)));
    return { status: 200, body: { projects: out } };
  });

  route('post', '/projects', { eventId: PROJECT_EVENT, eventActionCode: 'C', route: 'POST /projects' }, async (req, res) => {
    const name = (req.body as { name?: unknown } | undefined)?.name;
    if (typeof name === 'string' && PROJECT_NAME.test(name)) requestState(res).project = name;
    const { project, studies } = parseProjectCreation(req.body, options.scopedPolicy);
    if (!(await projects.createProject(project, studies))) throw new ProjectExistsError();
    const created = await projects.project(project.name);
    if (!created) throw new ProjectNotFoundError();
    return { status: 201, body: projectJson(created, await projects.studyCount(project.name)) };
  });

  route('get', '/projects/:project', { eventId: PROJECT_EVENT, eventActionCode: 'R', route: 'GET /projects/:project' }, async (req) => {
    const project = await projectOf(req);
    const page = parseStudyPage(new URLSearchParams(rawQueryOf(req)));
    const studies = await projects.studies(project.name, page);
    return { status: 200, body: { ...projectJson(project, await projects.studyCount(project.name)), studies, ...page } };
  });

  route('post', '/projects/:project/studies', { eventId: PROJECT_EVENT, eventActionCode: 'U', route: 'POST /projects/:project/studies' }, async (req) => {
    const project = await projectOf(req);
    const { add, remove } = parseStudyChange(req.body);
    if (project.allStudies) throw new ProjectRequestError('the project admits every study (membership.all): it has no study list to change');
    const added = add.length > 0 ? await projects.addStudies(project.name, add) : 0;
    const removed = remove.length > 0 ? await projects.removeStudies(project.name, remove) : 0;
    return { status: 200, body: { added, removed, studyCount: await projects.studyCount(project.name) } };
  });

  route('post', '/projects/:project/withdrawals', withdrawal('POST /projects/:project/withdrawals'), async (req, res) => {
    const project = await projectOf(req);
    const patientId = await patientOf(parseWithdrawal(req.body, project.name), res);
    // Withdrawn from every project already counts: the patient is out of this one too.
    const before = (await projects.withdrawnPatients(project.name)).has(patientId);
    const recorded = await projects.withdraw(project.name, patientId);
    return { status: 200, body: { withdrawn: true, alreadyWithdrawn: before || !recorded } };
  });

  route('post', '/withdrawals', withdrawal('POST /withdrawals'), async (req, res) => {
    const subject = parseWithdrawal(req.body, undefined);
    if ('project' in subject) {
      requestState(res).project = subject.project;
      if (!(await projects.project(subject.project))) throw new ProjectNotFoundError();
    } else requestState(res).project = EVERY_PROJECT;
    const patientId = await patientOf(subject, res);
    const recorded = await projects.withdraw(undefined, patientId);
    return { status: 200, body: { withdrawn: true, alreadyWithdrawn: !recorded } };
  });

  return router;
}

/** A project as the steward API shows it. */
function projectJson(p: ProjectRecord, studyCount: number) {
  return {
    name: p.name,
    description: p.description,
    profile: p.profile ?? null,
    membership: { all: p.allStudies, query: p.query ?? null },
    studyCount,
    createdAt: p.createdAt,
  };
}

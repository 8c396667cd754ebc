// Generates openapi/openapi.json from src/dicomweb/routes.ts. Run: node --import tsx scripts/generate-openapi.ts
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX } from '../src/audit/audit-query.ts';
import { REIDENTIFIABLE } from '../src/audit/reidentify.ts';
import { PACS_ID_MAX_LENGTH, ROUTES } from '../src/dicomweb/routes.ts';
import { PROJECT_NAME } from '../src/projects/project.ts';
import { MAX_STUDIES_PER_REQUEST, STUDY_PAGE_DEFAULT, STUDY_PAGE_MAX } from '../src/projects/steward-request.ts';

const IDENTIFIER = (name: string) =>
  `${name}: for restricted roles a PS3.5 9.1 UID of at most 64 characters (the researcher's are pseudonyms the gateway issued); for the clinician the identifier the PACS lists, not \`.\` or \`..\``;

const PARAMS: Record<string, { description: string; pattern: string }> = {
  // The clinician's identifiers are relayed as the PACS lists them (safe segments); the researcher's are
  // PS3.5 9.1 UIDs, the pseudonyms the gateway issued (src/dicomweb/routes.ts `isPathIdentifier`).
  study: { description: IDENTIFIER('Study Instance UID'), pattern: '^[A-Za-z0-9._~-]+$' },
  series: { description: IDENTIFIER('Series Instance UID'), pattern: '^[A-Za-z0-9._~-]+$' },
  instance: { description: IDENTIFIER('SOP Instance UID'), pattern: '^[A-Za-z0-9._~-]+$' },
  frames: { description: 'Comma-separated 1-based frame numbers', pattern: '^[1-9][0-9]*(,[1-9][0-9]*)*$' },
  bulk: { description: 'Bulkdata path as issued in a BulkDataURI', pattern: '^[A-Za-z0-9._/-]+$' },
};

const error = { $ref: '#/components/responses/Error' };

export function buildOpenApi(basePath = '/dicom-web'): object {
  const paths: Record<string, Record<string, object>> = {};
  for (const route of ROUTES) {
    const names = [...route.path.matchAll(/[:*]([a-z]+)/g)].map((m) => m[1] as string);
    const path = basePath + route.path.replace(/[:*]([a-z]+)/g, '{$1}');
    const responses: Record<string, object> = {
      '401': error,
      '403': error,
      '404': error,
      '400': error,
      '502': error,
      '504': error,
    };
    if (route.routeClass === 'store') {
      responses['200'] = { description: 'All instances stored (PS3.18 10.5.3)', content: { 'application/dicom+json': {} } };
      responses['202'] = { description: 'Some instances stored', content: { 'application/dicom+json': {} } };
      responses['409'] = { description: 'No instance stored', content: { 'application/dicom+json': {} } };
    } else if (route.routeClass === 'search') {
      responses['200'] = { description: 'Matches (PS3.18 10.6.3)', content: { 'application/dicom+json': {} } };
      responses['204'] = { description: 'No matches' };
      responses['429'] = { ...error, description: 'Researcher only, when qido.rateLimit is set: rate limit reached (RFC 6585 4); see Retry-After' };
    } else {
      responses['200'] = {
        description: 'The resource (PS3.18 10.4.3)',
        content: { 'multipart/related': {}, 'application/dicom+json': {}, 'image/jpeg': {}, 'image/png': {} },
      };
    }
    const operations = paths[path] ?? {};
    paths[path] = operations;
    operations[route.method.toLowerCase()] = {
      operationId: `${route.transaction}_${path.replace(/[^A-Za-z]+/g, '_')}`,
      summary: route.transaction,
      tags: [route.routeClass === 'search' ? 'QIDO-RS' : route.routeClass === 'store' ? 'STOW-RS' : 'WADO-RS'],
      security: [{ bearer: [] }],
      parameters: names.map((name) => ({
        name,
        in: 'path',
        required: true,
        description: PARAMS[name]?.description,
        schema: { type: 'string', maxLength: name === 'bulk' || name === 'frames' ? 1024 : PACS_ID_MAX_LENGTH, pattern: PARAMS[name]?.pattern },
      })),
      ...(route.method === 'POST'
        ? { requestBody: { required: true, content: { 'multipart/related; type="application/dicom"': {} } } }
        : {}),
      responses,
    };
  }
  paths['/healthz'] = { get: { operationId: 'healthz', summary: 'Liveness', responses: { '200': { description: 'alive' } } } };
  paths['/readyz'] = {
    get: {
      operationId: 'readyz',
      summary: 'Readiness: the PACS answers',
      responses: { '200': { description: 'ready' }, '503': { description: 'the PACS does not answer' } },
    },
  };
  paths['/conformance'] = {
    get: {
      operationId: 'conformance',
      summary: 'De-identification conformance statement (PS3.15 E.3.10): what the configured profile does to each attribute for a role',
      parameters: [
        { name: 'role', in: 'query', required: false, schema: { type: 'string', enum: ['researcher', 'uploader'], default: 'researcher' } },
        { name: 'format', in: 'query', required: false, schema: { type: 'string', enum: ['json', 'markdown'], default: 'json' } },
      ],
      responses: {
        '200': { description: 'The statement', content: { 'application/json': {}, 'text/markdown': {} } },
        '400': error,
        '501': error,
      },
    },
  };
  paths['/metrics'] = {
    get: {
      operationId: 'metrics',
      summary: 'Prometheus metrics (text format); a bearer token when metrics.auth is bearer; absent here when metrics.port is set',
      responses: { '200': { description: 'Prometheus text exposition format', content: { 'text/plain': {} } }, '401': error },
    },
  };
  const code = { type: 'string', minLength: 1, maxLength: 64 };
  const reidentifyItem = {
    type: 'object',
    required: ['kind', 'pseudonym'],
    properties: { kind: { type: 'string', enum: [...REIDENTIFIABLE] }, pseudonym: code },
    additionalProperties: false,
  };
  paths['/reidentify'] = {
    post: {
      operationId: 'reidentify',
      summary:
        'Steward only: maps gateway-issued pseudonyms back to the originals. Each pseudonym costs one token of the caller\'s rate limit and leaves one audit record (PS3.15 A.5.3.9 Patient Record, EventActionCode R), written before the answer',
      tags: ['Steward'],
      security: [{ bearer: [] }],
      requestBody: {
        required: true,
        content: {
          'application/json': {
            schema: {
              description:
                'Pseudonyms are per scope: name the project (`project`) or the uploads (`uploads: true`), and one `{ kind, pseudonym }` or `items` of them',
              type: 'object',
              properties: {
                project: { type: 'string', pattern: PROJECT_NAME.source },
                uploads: { const: true },
                kind: reidentifyItem.properties.kind,
                pseudonym: code,
                items: { type: 'array', minItems: 1, items: reidentifyItem },
              },
              oneOf: [{ required: ['project'] }, { required: ['uploads'] }],
            },
          },
        },
      },
      responses: {
        '200': {
          description: 'One object asked: the object with its original; a list asked: `results`, with `original: null` where unknown',
          content: {
            'application/json': {
              schema: {
                oneOf: [
                  { type: 'object', properties: { kind: { type: 'string' }, pseudonym: { type: 'string' }, original: { type: 'string' } } },
                  {
                    type: 'object',
                    properties: {
                      results: {
                        type: 'array',
                        items: { type: 'object', properties: { kind: { type: 'string' }, pseudonym: { type: 'string' }, original: { type: ['string', 'null'] } } },
                      },
                    },
                  },
                ],
              },
            },
          },
        },
        '400': error,
        '401': error,
        '403': error,
        '404': error,
        '429': { ...error, description: 'Rate limit reached (RFC 6585 4); see Retry-After' },
        '503': error,
      },
    },
  };
  paths['/audit'] = {
    get: {
      operationId: 'readAuditTrail',
      summary: 'Steward only: the audit trail (PS3.15 A.5), filtered by who, what, when and outcome, oldest first unless asked otherwise; reading it is itself recorded (A.5.3.2 Audit Log Used)',
      tags: ['Steward'],
      security: [{ bearer: [] }],
      parameters: [
        { name: 'since', in: 'query', required: false, description: 'Records at or after this EventDateTime', schema: { type: 'string', format: 'date-time' } },
        { name: 'until', in: 'query', required: false, description: 'Records before this EventDateTime', schema: { type: 'string', format: 'date-time' } },
        { name: 'after', in: 'query', required: false, description: 'Records after this id in the order asked (paging: pass `next`)', schema: { type: 'string', pattern: '^[0-9]{1,18}$' } },
        {
          name: 'limit',
          in: 'query',
          required: false,
          schema: { type: 'integer', minimum: 1, maximum: AUDIT_PAGE_MAX, default: AUDIT_PAGE_DEFAULT },
        },
        { name: 'order', in: 'query', required: false, description: 'asc: oldest first; desc: newest first', schema: { type: 'string', enum: ['asc', 'desc'], default: 'asc' } },
        { name: 'user', in: 'query', required: false, description: 'Who: the ActiveParticipant UserID (the token `sub`), exactly', schema: { type: 'string', maxLength: 256 } },
        { name: 'role', in: 'query', required: false, description: 'The RoleIDCode, exactly', schema: { type: 'string', pattern: '^[a-z][a-z0-9_-]{0,31}$' } },
        { name: 'event', in: 'query', required: false, description: 'What: an EventID code (PS3.16 CID 400, e.g. 110112) or EventTypeCode code (e.g. REIDENTIFY)', schema: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' } },
        { name: 'object', in: 'query', required: false, description: 'The ParticipantObjectID (a pseudonym or pseudonymous UID), exactly', schema: { type: 'string', maxLength: 256 } },
        { name: 'project', in: 'query', required: false, description: 'The project (or `upload`) the event concerns', schema: { type: 'string' } },
        { name: 'outcome', in: 'query', required: false, description: 'EventOutcomeIndicator', schema: { type: 'integer', enum: [0, 4, 8, 12] } },
      ],
      responses: {
        '200': {
          description: 'The records; `next` is the id to pass as `after` when the page is full',
          content: {
            'application/json': {
              schema: {
                type: 'object',
                properties: { events: { type: 'array', items: { $ref: '#/components/schemas/AuditRecord' } }, next: { type: 'string' } },
              },
            },
          },
        },
        '400': error,
        '401': error,
        '403': error,
        '503': error,
      },
    },
  };
  Object.assign(paths, stewardProjectPaths());
  Object.assign(paths, dimseOperatorPaths());
  return {
    openapi: '3.1.0',
    info: {
      title: 'deid-gateway',
      version: '0.1.0',
      description:
        'A de-identifying DICOMweb (PS3.18) gateway. The role in the caller\'s JWT decides the view: clinician (original), researcher (de-identified per PS3.15 Annex E), uploader (STOW-RS de-identified on the way in). A researcher is served within a project the token grants (claim `auth.projectClaim`): every DICOMweb path below is also served at `/projects/{project}` + the same path, for that project; the plain path serves the token\'s only project (403 PROJECT_AMBIGUOUS for several, PROJECT_REQUIRED for none).',
    },
    servers: [{ url: '/' }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      schemas: {
        AuditRecord: {
          description: 'One audit record; field names follow PS3.15 A.5 (IHE ATNA, RFC 3881)',
          type: 'object',
          properties: {
            id: { type: 'string' },
            eventDateTime: { type: 'string', format: 'date-time' },
            eventId: { type: 'object', properties: { code: { type: 'string' }, codingScheme: { type: 'string' }, meaning: { type: 'string' } } },
            eventTypeCode: { type: 'object', properties: { code: { type: 'string' }, codingScheme: { type: 'string' }, meaning: { type: 'string' } } },
            eventActionCode: { type: 'string', enum: ['C', 'R', 'U', 'D', 'E'] },
            eventOutcomeIndicator: { type: 'integer', enum: [0, 4, 8, 12] },
            userId: { type: 'string' },
            roleId: { type: 'string' },
            route: { type: 'string' },
            httpStatus: { type: 'integer' },
            participantObjectId: { type: 'string' },
            participantObjectIdTypeCode: { type: 'string' },
            seriesInstanceUid: { type: 'string', description: 'The pseudonymous SeriesInstanceUID targeted' },
            participantObjectQuery: {
              description:
                'ParticipantObjectQuery of a QIDO-RS request (PS3.15 A.5.3.12), described: the keys as keywords with their PS3.4 C.2.2.2 matching mode and the control parameters; no value the caller sent, but UIDs the gateway issued as pseudonyms',
              type: 'object',
              properties: {
                keys: {
                  type: 'array',
                  items: {
                    type: 'object',
                    properties: {
                      keyword: { type: 'string', description: 'A PS3.6 keyword (a sequence path dotted), or (invalid)' },
                      mode: { type: 'string', enum: ['universal', 'single', 'list', 'wildcard', 'range'] },
                      values: { type: 'array', items: { type: 'string' }, description: 'StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID only: issued pseudonyms, or (not issued) / (invalid)' },
                      valuesOmitted: { type: 'integer' },
                    },
                  },
                },
                keysOmitted: { type: 'integer' },
                limit: { oneOf: [{ type: 'integer' }, { const: '(invalid)' }] },
                offset: { oneOf: [{ type: 'integer' }, { const: '(invalid)' }] },
                fuzzymatching: { oneOf: [{ type: 'boolean' }, { const: '(invalid)' }] },
                includefield: { type: 'array', items: { type: 'string' } },
              },
            },
            requestId: { type: 'string' },
            project: {
              type: 'string',
              description: 'The project (pseudonym scope) the event concerns: the researcher\'s, the one a steward changed, read or re-identified within; `upload` for the uploader\'s; `(every project)` for a withdrawal from every project by the original PatientID',
            },
            numberOfInstances: { type: 'integer', description: 'How many instances the event moved (PS3.15 A.5.3.2): a DIMSE study forwarded' },
          },
        },
        Project: {
          description: 'A research project: its membership, its own PS3.15 profile (null: the configured researcher profile) and the size of its explicit study list',
          type: 'object',
          properties: {
            name: { type: 'string', pattern: PROJECT_NAME.source },
            description: { type: 'string' },
            profile: { oneOf: [{ type: 'null' }, { $ref: '#/components/schemas/Profile' }] },
            membership: {
              type: 'object',
              properties: {
                all: { type: 'boolean', description: 'Every study of the PACS is a member' },
                query: { type: ['object', 'null'], additionalProperties: { type: 'string' }, description: 'Attribute keyword → PS3.4 C.2.2.2 matching value' },
              },
            },
            studyCount: { type: 'integer', description: 'Studies on the explicit list' },
            createdAt: { type: 'string', format: 'date-time' },
          },
        },
        Profile: {
          type: 'object',
          properties: {
            options: { type: 'array', items: { type: 'string' }, description: 'PS3.15 Table E.1-1 option columns (e.g. retainLongitudinalTemporalModifiedDates)' },
            overrides: { type: 'object', additionalProperties: { type: 'string' }, description: 'Tag or keyword → keep | remove | empty | replace:<value> | hash' },
          },
          additionalProperties: false,
        },
      },
      responses: {
        Error: {
          description: 'An error with a stable code',
          content: {
            'application/json': {
              schema: {
                type: 'object',
                properties: {
                  error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } },
                  requestId: { type: 'string' },
                },
              },
            },
          },
        },
      },
    },
    paths,
  };
}

/**
 * The DIMSE ingress's operator routes (src/http/dimse-status.ts; served when `dimse.enabled`): the metrics
 * bearer token when `metrics.auth` sets one, else loopback callers not behind a proxy; the quarantine's two
 * routes also take a steward's JWT, and the retry never the loopback fallback.
 */
function dimseOperatorPaths(): Record<string, Record<string, object>> {
  const loopback =
    'else loopback callers only, and never a request with a Forwarded, X-Forwarded-*, X-Real-IP or Via header or from a server.trustedProxies peer (403 AUTH_LOOPBACK_ONLY)';
  const guard = `Guarded as /metrics is: the metrics bearer token when metrics.auth sets one, ${loopback}`;
  const quarantineGuard = `The metrics bearer token when metrics.auth sets one, or a steward's JWT (403 AUTH_ROLE_FORBIDDEN for another role), ${loopback}`;
  const retryGuard =
    "The metrics bearer token when metrics.auth sets one, or a steward's JWT (403 AUTH_ROLE_FORBIDDEN for another role; the audit record's userId is its subject); never the loopback fallback (401 without a credential)";
  const operator = (operationId: string, summary: string, rest: object, rule = guard) => ({ operationId, summary: `${summary}. ${rule}`, tags: ['DIMSE'], security: [{ bearer: [] }, {}], ...rest });
  const json = (description: string, schema: object) => ({ description, content: { 'application/json': { schema } } });
  const count = { type: 'integer', minimum: 0 };
  const id = { type: 'string', pattern: '^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{24}$', description: 'A quarantine folder: the time and 96 random bits (nothing of the study or the caller)' };
  return {
    '/dimse/status': {
      get: operator('dimseStatus', 'The DIMSE ingress queue, counts only (no UID, AE title or path)', {
        responses: {
          '200': json('The queue', {
            type: 'object',
            properties: { queued: count, inFlight: count, quarantined: count, instancesPending: count, spoolBytes: count, quotaBytes: count },
          }),
          '401': error,
          '403': error,
        },
      }),
    },
    '/dimse/quarantine': {
      get: operator('listDimseQuarantine', 'The quarantined DIMSE studies, oldest first: id, reason (codes and counts from reason.json), originals held, when', {
        responses: {
          '200': json('The quarantine folders', {
            type: 'object',
            properties: {
              quarantine: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    id,
                    quarantinedAt: { type: 'string', format: 'date-time' },
                    instances: count,
                    reason: {
                      type: 'object',
                      description:
                        '`code`: DIMSE_FORWARD_FAILED (with `cause`, e.g. DIMSE_DESTINATION_TOKEN_REFUSED, `causeDetail` and `attempts`), DIMSE_INSTANCES_REFUSED (with `refused`: code and Failure Reason per instance), DIMSE_SPOOL_STATE_INVALID or DIMSE_SPOOL_JOURNAL_UNREADABLE (with `file` and `err`)',
                      properties: { code: { type: 'string' }, cause: { type: 'string' }, causeDetail: { type: 'object' }, attempts: count, refused: { type: 'array' }, file: { type: 'string' }, err: { type: 'string' } },
                    },
                  },
                },
              },
            },
          }),
          '401': error,
          '403': error,
        },
      }, quarantineGuard),
    },
    '/dimse/quarantine/{id}/retry': {
      post: operator(
        'retryDimseQuarantine',
        'Sends a quarantined study again once its cause is fixed: its originals go back to the queue with the pseudonyms they had (the quarantined state), the folder is removed, and each original is forwarded once (or quarantined again with a new reason). Every call that names a folder leaves an audit record (local EventID DIMSE_QUARANTINE_RETRY: who, when, which folder, how many, the outcome); the forwarded batch leaves its own (110104)',
        {
          parameters: [{ name: 'id', in: 'path', required: true, schema: id }],
          responses: {
            '202': json('Queued', { type: 'object', properties: { id, instances: count, status: { const: 'queued' } } }),
            '401': error,
            '403': error,
            '404': { ...error, description: 'DIMSE_QUARANTINE_NOT_FOUND: no quarantine folder has this id' },
            '409': {
              ...error,
              description:
                'DIMSE_QUARANTINE_STATE_INVALID (its state file cannot be read: the pseudonym mode is unknown; send it again from the source), DIMSE_QUARANTINE_STUDY_OPEN (the study is open under another fresh salt; retry once it closes), DIMSE_QUARANTINE_BUSY (being retried, or the ingress is stopping)',
            },
          },
        },
        retryGuard,
      ),
    },
  };
}

/** The steward's project API (src/http/projects.ts) and page (src/http/steward.ts). */
function stewardProjectPaths(): Record<string, Record<string, object>> {
  const project = { $ref: '#/components/schemas/Project' };
  const projectParam = { name: 'project', in: 'path', required: true, schema: { type: 'string', pattern: PROJECT_NAME.source } };
  const steward = (operationId: string, summary: string, rest: object) => ({ operationId, summary, tags: ['Steward'], security: [{ bearer: [] }], ...rest });
  const json = (schema: object) => ({ required: true, content: { 'application/json': { schema } } });
  const refusals = { '400': error, '401': error, '403': error, '503': error };
  const code = { type: 'string', minLength: 1, maxLength: 64, description: 'PS3.5 LO: no control characters or backslash' };
  const withdrawn = {
    description: 'Withdrawn: from now on the patient\'s studies are invisible to the project(s); the original PatientID is never echoed',
    content: { 'application/json': { schema: { type: 'object', properties: { withdrawn: { const: true }, alreadyWithdrawn: { type: 'boolean' } } } } },
  };
  const audited = 'Every call, answered or refused, leaves one audit record naming the project, written before the answer';
  return {
    '/projects': {
      get: steward('listProjects', `Steward only: every project with the size of its explicit study list. ${audited} (EventActionCode R)`, {
        responses: {
          '200': { description: 'The projects', content: { 'application/json': { schema: { type: 'object', properties: { projects: { type: 'array', items: project } } } } } },
          ...refusals,
        },
      }),
      post: steward('createProject', `Steward only: creates a project; its profile is checked by building its policy. ${audited} (EventActionCode C)`, {
        requestBody: json({
          type: 'object',
          required: ['name'],
          additionalProperties: false,
          properties: {
            name: { type: 'string', pattern: PROJECT_NAME.source },
            description: { type: 'string', maxLength: 1024 },
            profile: { $ref: '#/components/schemas/Profile' },
            membership: {
              type: 'object',
              additionalProperties: false,
              description: 'all; or a query, explicit studies, or both (either admits); none: no member until studies are added',
              properties: {
                all: { type: 'boolean' },
                query: { type: 'object', additionalProperties: { type: 'string' }, description: 'Study-level attribute keyword → PS3.4 C.2.2.2 matching value' },
                studies: { type: 'array', maxItems: MAX_STUDIES_PER_REQUEST, items: { type: 'string' }, description: 'Original StudyInstanceUIDs' },
              },
            },
          },
        }),
        responses: {
          '201': { description: 'Created', content: { 'application/json': { schema: project } } },
          ...refusals,
          '400': { ...error, description: 'PROJECT_BAD_DEFINITION: every issue, each naming its key (name, membership.…, profile.…)' },
          '409': { ...error, description: 'PROJECT_EXISTS: the name is taken' },
        },
      }),
    },
    '/projects/{project}': {
      get: steward('readProject', `Steward only: a project and a page of its explicit study list (original StudyInstanceUIDs, in UID order). ${audited} (EventActionCode R)`, {
        parameters: [
          projectParam,
          { name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: STUDY_PAGE_MAX, default: STUDY_PAGE_DEFAULT } },
          { name: 'offset', in: 'query', required: false, schema: { type: 'integer', minimum: 0, default: 0 } },
        ],
        responses: {
          '200': {
            description: 'The project and the page',
            content: {
              'application/json': {
                schema: {
                  allOf: [
                    project,
                    { type: 'object', properties: { studies: { type: 'array', items: { type: 'string' } }, limit: { type: 'integer' }, offset: { type: 'integer' } } },
                  ],
                },
              },
            },
          },
          ...refusals,
          '404': { ...error, description: 'PROJECT_NOT_FOUND' },
        },
      }),
    },
    '/projects/{project}/studies': {
      post: steward('changeProjectStudies', `Steward only: adds and removes original StudyInstanceUIDs on the explicit list, in force on the next researcher request. ${audited} (EventActionCode U)`, {
        parameters: [projectParam],
        requestBody: json({
          type: 'object',
          additionalProperties: false,
          description: `At most ${MAX_STUDIES_PER_REQUEST} studies in all; not for a project of every study (membership.all)`,
          properties: { add: { type: 'array', items: { type: 'string' } }, remove: { type: 'array', items: { type: 'string' } } },
        }),
        responses: {
          '200': {
            description: 'How many were added (not there yet) and removed (there), and the list\'s size now',
            content: { 'application/json': { schema: { type: 'object', properties: { added: { type: 'integer' }, removed: { type: 'integer' }, studyCount: { type: 'integer' } } } } },
          },
          ...refusals,
          '404': { ...error, description: 'PROJECT_NOT_FOUND' },
        },
      }),
    },
    '/projects/{project}/withdrawals': {
      post: steward('withdrawFromProject', `Steward only: withdrawal of consent from this project, by the original PatientID or by the project's pseudonymous PatientID. ${audited} (PS3.15 A.5.3.9 Patient Record, EventActionCode U), naming the pseudonym or \`(original PatientID)\``, {
        parameters: [projectParam],
        requestBody: json({
          oneOf: [
            { type: 'object', required: ['patientId'], additionalProperties: false, properties: { patientId: code } },
            { type: 'object', required: ['pseudonym'], additionalProperties: false, properties: { pseudonym: code } },
          ],
        }),
        responses: { '200': withdrawn, ...refusals, '404': { ...error, description: 'PROJECT_NOT_FOUND, or PROJECT_PATIENT_UNKNOWN: the project never issued the pseudonym' } },
      }),
    },
    '/withdrawals': {
      post: steward('withdrawFromEveryProject', `Steward only: withdrawal of consent from every project, by the original PatientID or by a project's pseudonymous PatientID (naming the project whose it is). ${audited}`, {
        requestBody: json({
          oneOf: [
            { type: 'object', required: ['patientId'], additionalProperties: false, properties: { patientId: code } },
            {
              type: 'object',
              required: ['project', 'pseudonym'],
              additionalProperties: false,
              properties: { project: { type: 'string', pattern: PROJECT_NAME.source }, pseudonym: code },
            },
          ],
        }),
        responses: { '200': withdrawn, ...refusals, '404': { ...error, description: 'PROJECT_NOT_FOUND, or PROJECT_PATIENT_UNKNOWN' } },
      }),
    },
    '/steward': {
      get: {
        operationId: 'stewardPage',
        summary: 'The steward\'s page (HTML, our own scripts, no inline script) over the steward API; it holds no authority: the steward pastes a token',
        tags: ['Steward'],
        responses: { '200': { description: 'The page', content: { 'text/html': {} } } },
      },
    },
  };
}

export const OPENAPI_FILE = resolve(import.meta.dirname, '../openapi/openapi.json');

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(OPENAPI_FILE, `${JSON.stringify(buildOpenApi(), null, 2)}\n`);
}

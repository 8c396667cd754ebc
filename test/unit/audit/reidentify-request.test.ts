import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseAuditQuery } from '../../../src/audit/audit-query.ts';
import { AuditRequestError } from '../../../src/audit/errors.ts';
import { parseReidentifyRequest } from '../../../src/audit/reidentify.ts';
import { resolveRole, treatmentFor } from '../../../src/auth/role.ts';
import { RoleForbiddenError } from '../../../src/auth/errors.ts';
import { validateConfig } from '../../../src/config/load.ts';

const refused = (code: string) => (e: unknown) => e instanceof AuditRequestError && e.code === code;

describe('re-identification requests and audit queries', () => {
  test('one object or { items } are accepted, with the scope named; kinds, UIDs and codes are checked', () => {
    assert.deepEqual(parseReidentifyRequest({ project: 'lung', kind: 'uid', pseudonym: '2.25.7' }, 5), {
      single: true,
      items: [{ kind: 'uid', pseudonym: '2.25.7' }],
      scope: { project: 'lung' },
    });
    const uploads = parseReidentifyRequest({ uploads: true, items: [{ kind: 'accessionNumber', pseudonym: 'Q1' }] }, 5);
    assert.equal(uploads.items.length, 1);
    assert.equal(uploads.single, false);
    assert.deepEqual(uploads.scope, { uploads: true });
    const p = { project: 'lung' };
    // Pseudonyms are per scope: a request that names none, both, or a bad project name is refused.
    for (const scope of [{}, { project: 'lung', uploads: true }, { project: '../x' }, { project: 7 }, { uploads: 'yes' }]) {
      assert.throws(() => parseReidentifyRequest({ ...scope, kind: 'uid', pseudonym: '2.25.7' }, 5), refused('REID_BAD_REQUEST'), JSON.stringify(scope));
    }
    assert.throws(() => parseReidentifyRequest([{ ...p, kind: 'patientId', pseudonym: 'ABC' }], 5), refused('REID_BAD_REQUEST'));
    assert.throws(() => parseReidentifyRequest({ ...p, kind: 'patientName', pseudonym: 'X' }, 5), refused('REID_BAD_REQUEST'));
    assert.throws(() => parseReidentifyRequest({ ...p, kind: 'uid', pseudonym: '2.25.x' }, 5), refused('REID_BAD_REQUEST'));
    assert.throws(() => parseReidentifyRequest({ ...p, kind: 'uid', pseudonym: `2.25.${'1'.repeat(70)}` }, 5), refused('REID_BAD_REQUEST'));
    assert.throws(() => parseReidentifyRequest({ ...p, kind: 'patientId', pseudonym: 'a\nb' }, 5), refused('REID_BAD_REQUEST'));
    assert.throws(() => parseReidentifyRequest(null, 5), refused('REID_BAD_REQUEST'));
    assert.throws(() => parseReidentifyRequest({ ...p, items: [] }, 5), refused('REID_BAD_REQUEST'));
    const six = Array.from({ length: 6 }, () => ({ kind: 'uid', pseudonym: '1.2' }));
    assert.throws(() => parseReidentifyRequest({ ...p, items: six }, 5), refused('REID_TOO_MANY'));
  });

  test('audit queries: since is ISO 8601, after an id, limit 1–1000, nothing else', () => {
    const q = (s: string) => parseAuditQuery(new URLSearchParams(s));
    assert.deepEqual(q(''), { limit: 100 });
    assert.deepEqual(q('since=2026-11-25T10:00:00Z&after=42&limit=5'), { since: new Date('2026-11-25T10:00:00Z'), afterId: '42', limit: 5 });
    for (const bad of ['since=yesterday', 'since=2026-13-45T99:00:00Z', 'after=-1', 'limit=0', 'limit=1001', 'limit=2.5', 'sort=desc']) {
      assert.throws(() => q(bad), refused('AUDIT_BAD_QUERY'), bad);
    }
  });

  test('audit queries filter by who, what, when and outcome, newest first if asked; each once, each checked', () => {
    const q = (s: string) => parseAuditQuery(new URLSearchParams(s));
    assert.deepEqual(q('user=steward-1&role=steward&event=REIDENTIFY&object=2.25.12&project=trial&outcome=4&until=2026-11-26&order=desc&after=9'), {
      userId: 'steward-1',
      roleId: 'steward',
      eventCode: 'REIDENTIFY',
      participantObjectId: '2.25.12',
      project: 'trial',
      outcome: 4,
      until: new Date('2026-11-26'),
      newestFirst: true,
      afterId: '9',
      limit: 100,
    });
    for (const bad of ['outcome=2', 'outcome=', 'role=Steward', 'event=110112%5E', 'user=a%0Ab', 'object=', 'project=Trial', 'order=up', 'until=soon', 'user=a&user=b']) {
      assert.throws(() => q(bad), refused('AUDIT_BAD_QUERY'), bad);
    }
    assert.throws(() => q('patientName=DOE'), (e: Error) => !e.message.includes('patientName'), 'an unknown name is not echoed');
  });

  test('the steward: no DICOMweb, and by default never chosen over researcher or uploader', () => {
    for (const c of ['search', 'retrieve', 'store'] as const) assert.throws(() => treatmentFor('steward', c), RoleForbiddenError);
    const { auth } = validateConfig({ upstream: { url: 'http://pacs/dicom-web' }, auth: { issuer: 'i', audience: 'a', publicKeyFiles: ['k'] } });
    assert.equal(resolveRole({ roles: ['steward', 'researcher'] }, auth), 'researcher');
    assert.equal(resolveRole({ roles: ['uploader', 'steward'] }, auth), 'uploader');
    assert.equal(resolveRole({ roles: ['clinician', 'steward'] }, auth), 'steward');
    assert.equal(resolveRole({ roles: ['steward'] }, auth), 'steward');
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { NoRoleError, RoleForbiddenError } from '../../../src/auth/errors.ts';
import { claimValues, resolveRole, treatmentFor } from '../../../src/auth/role.ts';

const options = {
  roleClaim: 'roles',
  roleMap: { clinician: 'clinician', researcher: 'researcher', uploader: 'uploader' } as const,
  rolePrecedence: ['researcher', 'uploader', 'clinician'] as const,
  projectClaim: 'project',
  projectPrefix: '',
};

describe('roles from claims', () => {
  test('claim values are read from arrays, space-separated scopes and dot paths', () => {
    assert.deepEqual(claimValues({ roles: ['a', 'b', 3] } as never, 'roles'), ['a', 'b']);
    assert.deepEqual(claimValues({ scope: 'openid dicom:read' }, 'scope'), ['openid', 'dicom:read']);
    assert.deepEqual(claimValues({ realm_access: { roles: ['x'] } }, 'realm_access.roles'), ['x']);
    assert.deepEqual(claimValues({ roles: { nested: true } }, 'roles'), []);
    assert.deepEqual(claimValues({}, 'a.b.c'), []);
  });

  test('several roles resolve to the most restrictive by default, or as the precedence says', () => {
    assert.equal(resolveRole({ roles: ['clinician', 'researcher'] }, options), 'researcher');
    assert.equal(resolveRole({ roles: ['clinician', 'uploader'] }, options), 'uploader');
    assert.equal(
      resolveRole({ roles: ['clinician', 'researcher'] }, { ...options, rolePrecedence: ['clinician', 'researcher'] }),
      'clinician',
    );
  });

  test('unknown values, and prototype keys, map to no role', () => {
    assert.throws(() => resolveRole({ roles: ['nurse', 'constructor', '__proto__'] }, options), NoRoleError);
  });

  test('the route matrix: clinician all, researcher reads de-identified, uploader stores de-identified', () => {
    assert.equal(treatmentFor('clinician', 'store'), 'original');
    assert.equal(treatmentFor('researcher', 'search'), 'deidentified');
    assert.equal(treatmentFor('researcher', 'retrieve'), 'deidentified');
    assert.throws(() => treatmentFor('researcher', 'store'), RoleForbiddenError);
    assert.equal(treatmentFor('uploader', 'store'), 'deidentified');
    assert.throws(() => treatmentFor('uploader', 'retrieve'), RoleForbiddenError);
    assert.throws(() => treatmentFor('uploader', 'search'), RoleForbiddenError);
  });
});

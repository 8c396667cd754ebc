import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { originForm } from '../../../src/http/request-target.ts';

describe('request-target origin-form (RFC 9112 3.2)', () => {
  test('an origin-form target is kept byte for byte', () => {
    assert.equal(originForm('/dicom-web/studies?PatientName=a%0d%0a'), '/dicom-web/studies?PatientName=a%0d%0a');
  });

  test('an absolute-form target keeps only its path and query, never its authority', () => {
    assert.equal(originForm('http://xyz@evil.example:8042/dicom-web/studies?limit=1'), '/dicom-web/studies?limit=1');
    assert.equal(originForm('HTTPS://gateway/dicom-web/studies'), '/dicom-web/studies');
    assert.equal(originForm('http://gateway'), '/');
  });

  test('authority-form, asterisk-form, other schemes and garbage have no origin-form', () => {
    for (const target of ['*', 'example.com:443', 'ftp://x/dicom-web/studies', 'javascript:alert(1)', 'http://[::1', '', undefined]) {
      assert.equal(originForm(target), undefined, String(target));
    }
  });
});

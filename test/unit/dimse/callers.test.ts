import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ConfigError } from '../../../src/config/errors.ts';
import { validateConfig } from '../../../src/config/load.ts';
import { callerCheck } from '../../../src/dimse/callers.ts';
import { DatasetMismatchError, InstanceIdentifiersError, SopClassNotAcceptedError, SpoolFullError } from '../../../src/dimse/errors.ts';
import { StoreStatus, storeStatusOf } from '../../../src/dimse/store-status.ts';
import { DicomTruncatedError } from '../../../src/dicom/errors.ts';

describe('who may associate, and the C-STORE status of each refusal', () => {
  const check = callerCheck({
    aeTitle: 'DEID_GATEWAY',
    pseudonyms: 'keyed',
    callers: [
      { aeTitle: 'CT_SCANNER', hosts: ['10.1.2.0/24'], role: 'uploader', profile: 'uploader' },
      { aeTitle: 'RESEARCH_WS', hosts: ['10.1.2.0/24'], role: 'researcher', profile: 'uploader', project: 'alpha' },
      { aeTitle: 'MOVER', hosts: ['10.1.2.0/24'], role: 'researcher', profile: 'uploader', project: 'alpha', moveDestinations: [' RESEARCH_PACS '] },
      { aeTitle: 'PACS', hosts: ['192.0.2.7', '::1'], role: 'uploader', profile: 'uploader', pseudonyms: 'fresh' },
    ],
  });

  test('a listed AE from a listed address is accepted with its pseudonym mode; spaces around an AE title do not count (PS3.5 6.2)', () => {
    assert.deepEqual(check('DEID_GATEWAY', 'CT_SCANNER', '10.1.2.30'), { caller: { aeTitle: 'CT_SCANNER', role: 'uploader', profile: 'uploader', pseudonyms: 'keyed' } });
    assert.deepEqual(check(' DEID_GATEWAY ', 'PACS      ', '::ffff:192.0.2.7'), { caller: { aeTitle: 'PACS', role: 'uploader', profile: 'uploader', pseudonyms: 'fresh' } });
    assert.ok('caller' in check('DEID_GATEWAY', 'PACS', '::1'));
    // A researcher may name no C-MOVE destination unless its entry lists some.
    assert.deepEqual(check('DEID_GATEWAY', 'RESEARCH_WS', '10.1.2.9'), { caller: { aeTitle: 'RESEARCH_WS', role: 'researcher', project: 'alpha', moveDestinations: [] } });
    assert.deepEqual(check('DEID_GATEWAY', 'MOVER', '10.1.2.9'), { caller: { aeTitle: 'MOVER', role: 'researcher', project: 'alpha', moveDestinations: ['RESEARCH_PACS'] } });
  });

  test('an unknown AE, a known AE from another address, a case variant and another called AE are rejected', () => {
    assert.deepEqual(check('DEID_GATEWAY', 'INTRUDER', '10.1.2.30'), { refusal: 'calling-ae-not-recognized' });
    assert.deepEqual(check('DEID_GATEWAY', 'CT_SCANNER', '10.1.3.30'), { refusal: 'calling-ae-not-recognized' });
    assert.deepEqual(check('DEID_GATEWAY', 'ct_scanner', '10.1.2.30'), { refusal: 'calling-ae-not-recognized' });
    assert.deepEqual(check('DEID_GATEWAY', 'CT_SCANNER', undefined), { refusal: 'calling-ae-not-recognized' });
    assert.deepEqual(check('ORTHANC', 'CT_SCANNER', '10.1.2.30'), { refusal: 'called-ae-not-recognized' });
  });

  test('PS3.4 B.2.3: A700 out of resources, A900 dataset does not match, C000 cannot understand, 0122 SOP class not accepted, 0110 otherwise', () => {
    assert.equal(storeStatusOf(new SpoolFullError()), StoreStatus.outOfResources);
    assert.equal(storeStatusOf(Object.assign(new Error('disk'), { code: 'ENOSPC' })), StoreStatus.outOfResources);
    assert.equal(storeStatusOf(new DatasetMismatchError('SOPInstanceUID')), 0xa900);
    assert.equal(storeStatusOf(new InstanceIdentifiersError('StudyInstanceUID')), 0xa900);
    assert.equal(storeStatusOf(new Error('wrapped', { cause: new DicomTruncatedError('cut short') })), 0xc000);
    assert.equal(storeStatusOf(new SopClassNotAcceptedError()), 0x0122);
    assert.equal(storeStatusOf(new Error('anything else')), 0x0110);
    assert.equal(storeStatusOf(undefined), 0x0110);
  });
});

describe('the dimse config block', () => {
  const base = { upstream: { url: 'http://127.0.0.1:8042/dicom-web' }, auth: { issuer: 'i', audience: 'a', publicKeyFiles: ['k.pem'] } };

  test('is off by default, and when on needs the deid section and at least one caller, each AE title valid and listed once', () => {
    assert.equal(validateConfig(base).dimse.enabled, false);
    const problems = (raw: unknown): string[] => {
      try {
        validateConfig(raw);
        return [];
      } catch (error) {
        return [...(error as ConfigError).problems];
      }
    };
    assert.deepEqual(problems({ ...base, dimse: { enabled: true } }), [
      'dimse.callers: list at least one caller when dimse.enabled',
      'dimse.enabled: needs the deid section (the uploader policy de-identifies what DIMSE callers send)',
    ]);
    const deid = { secret: { env: 'X' } };
    const bad = problems({
      ...base,
      deid,
      dimse: { enabled: true, callers: [{ aeTitle: 'A\\B', hosts: ['10.0.0.0/8'] }, { aeTitle: 'OK', hosts: ['pacs.example.org'] }, { aeTitle: 'OK', hosts: ['10.0.0.1'] }] },
    });
    assert.equal(bad.length, 3, bad.join('\n'));
    assert.ok(bad.some((p) => p.startsWith('dimse.callers.0.aeTitle')));
    assert.ok(bad.some((p) => p.startsWith('dimse.callers.1.hosts.0')));
    assert.ok(bad.some((p) => p.startsWith('dimse.callers:') && p.includes('listed once')));
  });

  const problems = (raw: unknown): string[] => {
    try {
      validateConfig(raw);
      return [];
    } catch (error) {
      return [...(error as ConfigError).problems];
    }
  };

  test('a researcher caller\'s move destinations each name an entry of dimse.moveDestinations; an uploader names none', () => {
    const moveDestinations = [{ aeTitle: 'RESEARCH_PACS', host: '10.0.0.9', port: 104 }];
    const researcher = { aeTitle: 'WS', hosts: ['10.0.0.1'], role: 'researcher', project: 'alpha' };
    assert.deepEqual(problems({ ...base, dimse: { moveDestinations, callers: [{ ...researcher, moveDestinations: ['RESEARCH_PACS '] }] } }), []);
    assert.equal(validateConfig({ ...base, dimse: { moveDestinations, callers: [researcher] } }).dimse.callers[0]?.moveDestinations, undefined, 'none by default');
    assert.deepEqual(problems({ ...base, dimse: { moveDestinations, callers: [{ ...researcher, moveDestinations: ['RESEARCH_PACS', 'ELSEWHERE'] }] } }), [
      'dimse.callers.0.moveDestinations.1: not an AE title of dimse.moveDestinations',
    ]);
    assert.deepEqual(problems({ ...base, dimse: { moveDestinations, callers: [{ aeTitle: 'CT', hosts: ['10.0.0.2'], moveDestinations: ['RESEARCH_PACS'] }] } }), [
      'dimse.callers.0.moveDestinations: only a researcher caller names move destinations',
    ]);
  });

  test('the forward destination and its token endpoint: http(s) without credentials, query or fragment; plain http to loopback only', () => {
    const forward = (url: string, tokenUrl = 'https://idp.example.org/token') => ({
      ...base,
      dimse: { forward: { destination: { url, auth: { type: 'oauth2', tokenUrl, clientId: 'gw', clientSecret: { env: 'S' } } } } },
    });
    for (const ok of ['https://platform.example.org/dicom-web', 'http://127.0.0.1:8042/dicom-web', 'http://localhost/dicom-web', 'http://[::1]:8080/x', 'http://127.1/x']) {
      assert.deepEqual(problems(forward(ok)), [], ok);
    }
    assert.deepEqual(problems(forward('https://platform.example.org/dicom-web', 'http://127.0.0.1:9000/token')), []);
    for (const bad of [
      'http://platform.example.org/dicom-web',
      'http://10.0.0.5/dicom-web',
      'http://127.0.0.1.example.org/dicom-web',
      'https://user:pass@platform.example.org/dicom-web',
      'https://platform.example.org/dicom-web?token=x',
      'https://platform.example.org/dicom-web#x',
      'ftp://platform.example.org/x',
      'file:///etc/passwd',
    ]) {
      const found = problems(forward(bad));
      assert.equal(found.length, 1, `${bad}: ${found.join('; ')}`);
      assert.ok(found[0]?.startsWith('dimse.forward.destination.url'), found[0]);
    }
    const token = problems(forward('https://platform.example.org/dicom-web', 'http://idp.example.org/token'));
    assert.deepEqual(token.length, 1);
    assert.ok(token[0]?.startsWith('dimse.forward.destination.auth.tokenUrl'), token[0]);
  });
});

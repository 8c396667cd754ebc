import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { DeidUnsupportedValueError } from '../../../src/deid/errors.ts';
import { DicomTruncatedError, MultipartError } from '../../../src/dicom/errors.ts';
import { unusable } from '../../../src/dicomweb/deidentified-view.ts';
import { ClientGoneError, StowPartError, StowRequestError, UpstreamStoreFailedError } from '../../../src/dicomweb/errors.ts';
import { FailureReason } from '../../../src/dicomweb/stow.ts';
import { errorHandler, mapError, stowFailureReason } from '../../../src/http/error-mapping.ts';
import { createLogger } from '../../../src/http/logging.ts';
import { createMetrics } from '../../../src/http/metrics.ts';
import { StoreError } from '../../../src/store/errors.ts';

const errno = (code: string) => Object.assign(new Error(`${code}: a system call failed`), { code, syscall: 'write' });

test('a STOW request refused before its body is read answers by its code: 415 for the media type, 413 for the size', () => {
  assert.equal(mapError(new StowRequestError('STOW_UNSUPPORTED_MEDIA_TYPE', 'x')).status, 415);
  assert.equal(mapError(new StowRequestError('STOW_TOO_LARGE', 'x')).status, 413);
});

test('each refused STOW part gets the PS3.18 I.2.2 Failure Reason of its error’s class', () => {
  const cases: [unknown, number][] = [
    // The gateway's own refusals.
    [new StowPartError('STOW_PART_NOT_DICOM', 'x'), FailureReason.sopClassNotSupported],
    [new StowPartError('STOW_PART_NO_IDENTIFIERS', 'x'), FailureReason.dataSetDoesNotMatchSopClass],
    [new StowPartError('STOW_PART_STUDY_MISMATCH', 'x'), FailureReason.studyInstanceUidMismatch],
    // Data that cannot be read or de-identified, however deep in the cause chain.
    [new DicomTruncatedError(), FailureReason.cannotUnderstand],
    [new DeidUnsupportedValueError('(0020,000D)', 'not a string'), FailureReason.cannotUnderstand],
    [new Error('rewrite failed', { cause: new DicomTruncatedError() }), FailureReason.cannotUnderstand],
    // The gateway out of resources: disk, quota, memory, descriptors, SQLite's and PostgreSQL's own.
    [errno('ENOSPC'), FailureReason.outOfResources],
    [errno('EDQUOT'), FailureReason.outOfResources],
    [errno('EMFILE'), FailureReason.outOfResources],
    [new StoreError('STORE_WRITE_FAILED', 'x', { cause: Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' }) }), FailureReason.outOfResources],
    [new StoreError('STORE_WRITE_FAILED', 'x', { cause: Object.assign(new Error('could not extend file'), { code: '53100' }) }), FailureReason.outOfResources],
    // The store, any other disk error, a fault of ours: the part may be fine, the processing failed.
    [new StoreError('STORE_WRITE_FAILED', 'x', { cause: Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' }) }), FailureReason.processingFailure],
    [new StoreError('STORE_PSEUDONYM_COLLISION', 'x'), FailureReason.processingFailure],
    [errno('EACCES'), FailureReason.processingFailure],
    [errno('ENOTDIR'), FailureReason.processingFailure],
    [errno('EIO'), FailureReason.processingFailure],
    [new TypeError('a bug'), FailureReason.processingFailure],
    // The PACS: its own reason when it gives one, else by the class of its status.
    [new UpstreamStoreFailedError(409, 0xa900), 0xa900],
    [new UpstreamStoreFailedError(400, undefined), FailureReason.cannotUnderstand],
    [new UpstreamStoreFailedError(500, undefined), FailureReason.processingFailure],
  ];
  for (const [error, reason] of cases) {
    const name = `${(error as Error).name} ${String((error as { code?: unknown }).code)}`;
    assert.equal(stowFailureReason(error).toString(16), reason.toString(16), name);
  }
});

test('a caller that went away is its own class: never UPSTREAM_UNUSABLE nor a de-identification failure, logged at info, the response only destroyed', async () => {
  const gone = new ClientGoneError();
  assert.equal(unusable(gone), gone, 'unusable() keeps it as it is');
  assert.equal(mapError(gone).code, 'CLIENT_GONE');
  assert.equal(mapError(unusable(new MultipartError('MULTIPART_TRUNCATED', 'x'))).code, 'UPSTREAM_UNUSABLE');
  const metrics = createMetrics();
  metrics.observeError(unusable(gone), mapError(unusable(gone)), true);
  metrics.observeStowRefusal(gone);
  const counted = await metrics.registry.getSingleMetric('deid_gateway_deid_errors_total')?.get();
  assert.deepEqual(counted?.values, [], 'not counted');

  const lines: string[] = [];
  const logger = createLogger(
    'info',
    new Writable({
      write: (chunk, _enc, done) => {
        lines.push(String(chunk));
        done();
      },
    }),
  );
  for (const headersSent of [false, true]) {
    lines.length = 0;
    let destroyed = false;
    let answered = false;
    const res = {
      headersSent,
      locals: {},
      destroy: () => {
        destroyed = true;
      },
      status: () => {
        answered = true;
        return res;
      },
      json: () => {
        answered = true;
      },
      setHeader: () => undefined,
    };
    errorHandler(logger)(gone, { complete: true } as never, res as never, () => undefined);
    assert.ok(destroyed, 'the socket is released');
    assert.ok(!answered, 'nobody is there to answer');
    const entries = lines.map((l) => JSON.parse(l) as { level: number; code?: string });
    assert.deepEqual(entries.map((e) => [e.level, e.code]), [[30, 'CLIENT_GONE']], 'one info line, not an error');
  }
});

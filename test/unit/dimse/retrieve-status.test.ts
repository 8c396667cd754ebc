import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RetrieveStatus, SubOperations, subOutcomeOf } from '../../../src/dimse/retrieve-status.ts';

describe('retrieve statuses: sub-operation outcomes and the final status (PS3.4 C.4.2.3.1, C.4.3.3.1)', () => {
  test('a C-STORE-RSP status is a completed, warning or failed sub-operation (PS3.7 C)', () => {
    assert.equal(subOutcomeOf(0x0000), 'completed');
    for (const s of [0xb000, 0xb006, 0xb007, 0x0001]) assert.equal(subOutcomeOf(s), 'warning');
    for (const s of [0xa700, 0xa900, 0xc000, 0x0110, 0x0122, 0x0124, 0xff00]) assert.equal(subOutcomeOf(s), 'failed');
  });

  test('success when all completed or none matched; warning when some failed or warned; refused (A702) when all failed', () => {
    const final = (outcomes: ('completed' | 'warning' | 'failed')[]) => {
      const ops = new SubOperations(outcomes.length);
      outcomes.forEach((o, i) => {
        ops.count(o, `2.25.${i + 1}`);
      });
      return { status: ops.finalStatus(), remaining: ops.remaining, failedUids: ops.failedUids };
    };
    assert.deepEqual(final([]), { status: RetrieveStatus.success, remaining: 0, failedUids: [] });
    assert.equal(final(['completed', 'completed']).status, RetrieveStatus.success);
    assert.deepEqual(final(['completed', 'failed']), { status: RetrieveStatus.someFailed, remaining: 0, failedUids: ['2.25.2'] });
    assert.equal(final(['warning']).status, RetrieveStatus.someFailed);
    assert.equal(final(['warning', 'failed']).status, RetrieveStatus.someFailed);
    assert.deepEqual(final(['failed', 'failed']), { status: RetrieveStatus.unableToPerformSubOperations, remaining: 0, failedUids: ['2.25.1', '2.25.2'] });
    const partway = new SubOperations(5);
    partway.count('completed', '2.25.1');
    assert.equal(partway.remaining, 4);
  });
});

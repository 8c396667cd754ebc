// The forwarder meeting a spooled study it cannot read at start (src/dimse/forwarder.ts, spool.ts): a state
// file that is not one, or a forwarding journal that cannot be read. Nothing is guessed or sent: the
// originals go to quarantine with the reason, the audit trail records the batch as not transferred, and
// an operator's retry of a folder without a readable state is refused and audited too. A real spool in a
// temp dir; the destination is never reached (the view is never used).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { StowView } from '../../../src/dicomweb/stow.ts';
import { QuarantineError } from '../../../src/dimse/errors.ts';
import { Forwarder } from '../../../src/dimse/forwarder.ts';
import { Spool, studyKey } from '../../../src/dimse/spool.ts';
import type { AuditEvent, AuditTrail } from '../../../src/store/audit-trail.ts';

const NOW = new Date('2026-03-04T05:06:07.089Z');

function memoryAudit(): AuditTrail & { events: AuditEvent[] } {
  const events: AuditEvent[] = [];
  return { events, append: async (e) => void events.push(e), list: async () => [] };
}

function memoryLog(): { log: { info(e: object, m: string): void; warn(e: object, m: string): void; error(e: object, m: string): void }; lines: string[] } {
  const lines: string[] = [];
  const write = (entry: object, message: string) => lines.push(JSON.stringify({ ...entry, message }));
  return { log: { info: write, warn: write, error: write }, lines };
}

/** A study as a previous run left it: `state` (text) and `count` originals, and optionally a journal that is a directory. */
function leftBehind(root: string, key: string, state: string, count: number, options: { journalUnreadable?: boolean } = {}): string[] {
  const dir = join(root, 'studies', key);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, 'state.json'), state, { mode: 0o600 });
  const names = Array.from({ length: count }, (_, i) => `${String(i).padStart(24, '0')}.dcm`);
  for (const name of names) writeFileSync(join(dir, name), `original ${name}`, { mode: 0o600 });
  // A directory where the journal should be: readFile fails with EISDIR, as with an I/O error.
  if (options.journalUnreadable) mkdirSync(join(dir, 'forwarded.log'));
  return names;
}

/** Until the batch is over: its originals quarantined and its audit record written (the last step). */
async function settle(forwarder: Forwarder, audit: { events: unknown[] }): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (forwarder.status().quarantined < 1 || forwarder.status().instancesPending > 0 || audit.events.length === 0) {
    if (Date.now() > deadline) throw new Error(`not settled: ${JSON.stringify(forwarder.status())}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('a spooled study whose state or journal cannot be read at start', () => {
  const work = mkdtempSync(join(tmpdir(), 'forwarder-recovery-'));
  after(() => rmSync(work, { recursive: true, force: true }));

  const start = async (root: string) => {
    const spool = await Spool.open(root, 10 * 1024 * 1024);
    const audit = memoryAudit();
    const { log, lines } = memoryLog();
    const forwarder = new Forwarder({
      spool,
      // Never reached: nothing here may be forwarded.
      view: {} as StowView,
      audit,
      log,
      idleTimeoutMs: 60_000,
      maxAttempts: 3,
      backoffMs: 10,
      maxBackoffMs: 10,
      concurrency: 2,
      batchInstances: 0,
      now: () => NOW,
    });
    return { spool, audit, lines, forwarder };
  };

  test('a state file that is not one: the originals are quarantined with the reason, the trail records the batch (outcome 8), and an operator retry is refused (409) and audited', async () => {
    const root = join(work, 'state');
    const key = studyKey('MODALITY', '1.2.826.0.1.3680043.10.9001');
    const names = leftBehind(root, key, '{"version":1,"callingAe":"MODA', 3);
    const { audit, lines, forwarder } = await start(root);
    try {
      await forwarder.recover();
      await settle(forwarder, audit);
      const [folder, ...others] = readdirSync(join(root, 'quarantine'));
      assert.deepEqual(others, []);
      // The id is the time and random bits: nothing of the study (no hash of its AE title and UID to confirm a guess by).
      assert.match(folder as string, /^20260304T050607089Z-[0-9a-f]{24}$/);
      const held = join(root, 'quarantine', folder as string);
      assert.equal(readFileSync(join(held, 'study.key'), 'utf8').trim(), key, 'the study it goes back to is kept inside');
      assert.deepEqual(readdirSync(held).filter((n) => n.endsWith('.dcm')).sort(), names);
      const reason = JSON.parse(readFileSync(join(held, 'reason.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(reason, { code: 'DIMSE_SPOOL_STATE_INVALID', file: 'state', err: 'SyntaxError', quarantinedAt: NOW.toISOString(), instances: 3 });
      // The unreadable state went with them: the next instance of the study opens it anew.
      assert.equal(existsSync(join(root, 'studies', key, 'state.json')), false);

      assert.equal(audit.events.length, 1);
      const [event] = audit.events;
      assert.equal(event?.eventId.code, '110104');
      assert.equal(event?.eventOutcomeIndicator, 8);
      assert.equal(event?.httpStatus, 409);
      assert.equal(event?.numberOfInstances, 0);
      assert.equal(event?.userId, '(unknown: state unreadable)');
      assert.equal(event?.participantObjectId, folder);
      assert.equal(event?.participantObjectIdTypeCode, 'DimseQuarantineId');
      assert.ok(lines.some((l) => l.includes('DIMSE originals quarantined') && l.includes('DIMSE_SPOOL_STATE_INVALID')));

      const listed = await forwarder.quarantine();
      assert.deepEqual(listed, [{ id: folder, quarantinedAt: NOW.toISOString(), instances: 3, reason: { code: 'DIMSE_SPOOL_STATE_INVALID', file: 'state', err: 'SyntaxError' } }]);
      // The pseudonym mode is in the state that cannot be read: a retry would have to guess it. Refused.
      await assert.rejects(forwarder.retryQuarantined(folder as string, { userId: 'loopback 127.0.0.1', requestId: 'r-1' }), (e: unknown) => e instanceof QuarantineError && e.code === 'DIMSE_QUARANTINE_STATE_INVALID');
      const retry = audit.events[1];
      assert.equal(retry?.eventId.code, 'DIMSE_QUARANTINE_RETRY');
      assert.deepEqual(
        { outcome: retry?.eventOutcomeIndicator, status: retry?.httpStatus, user: retry?.userId, id: retry?.participantObjectId, requestId: retry?.requestId },
        { outcome: 4, status: 409, user: 'loopback 127.0.0.1', id: folder, requestId: 'r-1' },
      );
      assert.equal(readdirSync(held).filter((n) => n.endsWith('.dcm')).length, 3, 'the originals stay in quarantine');
      // An id that is not one, or names no folder: 404, nothing to audit.
      for (const id of ['../studies', `${key}-20260304T050607089Z-000000`, `20260304T050607089Z-${'0'.repeat(24)}`]) {
        await assert.rejects(forwarder.retryQuarantined(id, { userId: 'x' }), (e: unknown) => e instanceof QuarantineError && e.code === 'DIMSE_QUARANTINE_NOT_FOUND');
      }
      assert.equal(audit.events.length, 2);
    } finally {
      await forwarder.close();
    }
  });

  test('a quarantine folder of the earlier form (named by its study key) takes a random id when the spool opens, and is restored into its study', async () => {
    const root = join(work, 'legacy');
    const key = studyKey('MODALITY', '1.2.826.0.1.3680043.10.9003');
    const legacy = join(root, 'quarantine', `${key}-20260304T050607089Z-abcdef`);
    mkdirSync(legacy, { recursive: true, mode: 0o700 });
    const state = { version: 1, callingAe: 'MODALITY', profile: 'uploader', pseudonyms: 'keyed', openedAt: NOW.toISOString(), attempts: 0 } as const;
    writeFileSync(join(legacy, 'state.json'), JSON.stringify(state));
    writeFileSync(join(legacy, 'reason.json'), JSON.stringify({ code: 'DIMSE_FORWARD_FAILED', quarantinedAt: NOW.toISOString(), instances: 2 }));
    for (const name of ['a'.repeat(24), 'b'.repeat(24)]) writeFileSync(join(legacy, `${name}.dcm`), 'original');
    const spool = await Spool.open(root, 10 * 1024 * 1024);
    const [listed, ...others] = await spool.listQuarantine();
    assert.deepEqual(others, []);
    const id = listed?.id as string;
    assert.match(id, /^20260304T050607089Z-[0-9a-f]{24}$/);
    assert.ok(!id.includes(key) && !readdirSync(join(root, 'quarantine')).some((n) => n.includes(key)), 'the key is no longer a name');
    assert.deepEqual({ instances: listed?.instances, reason: listed?.reason }, { instances: 2, reason: { code: 'DIMSE_FORWARD_FAILED' } });
    const held = await spool.quarantined(id);
    assert.equal(held?.key, key);
    await assert.rejects(spool.restore(id, studyKey('OTHER', '1.2.3'), state), /not a quarantine id of this study/);
    assert.equal(await spool.restore(id, key, state), 2);
    assert.deepEqual(await spool.instances(key), ['a'.repeat(24), 'b'.repeat(24)].map((n) => `${n}.dcm`));
    assert.deepEqual(await spool.listQuarantine(), []);
  });

  test('a journal that cannot be read: not taken for empty (which would send again what was confirmed); quarantined with its reason and the caller named in the trail', async () => {
    const root = join(work, 'journal');
    const key = studyKey('SCANNER', '1.2.826.0.1.3680043.10.9002');
    const state = { version: 1, callingAe: 'SCANNER', profile: 'uploader', pseudonyms: 'keyed', openedAt: NOW.toISOString(), attempts: 1 };
    leftBehind(root, key, JSON.stringify(state), 2, { journalUnreadable: true });
    const { audit, forwarder } = await start(root);
    try {
      await forwarder.recover();
      await settle(forwarder, audit);
      const [folder] = readdirSync(join(root, 'quarantine'));
      const held = join(root, 'quarantine', folder as string);
      const reason = JSON.parse(readFileSync(join(held, 'reason.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual({ code: reason['code'], file: reason['file'], err: reason['err'], instances: reason['instances'] }, { code: 'DIMSE_SPOOL_JOURNAL_UNREADABLE', file: 'journal', err: 'EISDIR', instances: 2 });
      // The state is kept beside them, so an operator can send them again once the disk is fixed.
      assert.deepEqual(JSON.parse(readFileSync(join(held, 'state.json'), 'utf8')), state);
      assert.equal(existsSync(join(root, 'studies', key, 'forwarded.log')), false, 'the unreadable journal is gone');
      assert.equal(audit.events.length, 1);
      assert.deepEqual(
        { id: audit.events[0]?.eventId.code, outcome: audit.events[0]?.eventOutcomeIndicator, user: audit.events[0]?.userId, object: audit.events[0]?.participantObjectId },
        { id: '110104', outcome: 8, user: 'SCANNER', object: folder },
      );
    } finally {
      await forwarder.close();
    }
  });
});

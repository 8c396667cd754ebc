import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PduGuardError } from '../../../src/dimse/errors.ts';
import { PduGuard } from '../../../src/dimse/pdu-guard.ts';

/** PS3.8 9.3.1: a PDU of `type` with `body`. */
function pdu(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head.writeUInt8(type, 0);
  head.writeUInt32BE(body.length, 2);
  return Buffer.concat([head, body]);
}

/** PS3.8 9.3.5.1: one PDV item; `command` and `last` set the message control header. */
function pdv(contextId: number, fragment: Buffer, command: boolean, last: boolean): Buffer {
  const head = Buffer.alloc(6);
  head.writeUInt32BE(fragment.length + 2, 0);
  head.writeUInt8(contextId, 4);
  head.writeUInt8((command ? 1 : 0) | (last ? 2 : 0), 5);
  return Buffer.concat([head, fragment]);
}

/** A command set (PS3.7 6.3.1, Implicit VR LE) with CommandField and CommandDataSetType. */
function command(field: number, hasDataset: boolean): Buffer {
  const element = (el: number, value: number) => {
    const b = Buffer.alloc(10);
    b.writeUInt16LE(0x0000, 0);
    b.writeUInt16LE(el, 2);
    b.writeUInt32LE(2, 4);
    b.writeUInt16LE(value, 8);
    return b;
  };
  return Buffer.concat([element(0x0100, field), element(0x0800, hasDataset ? 0x0000 : 0x0101)]);
}

/** Feeds `bytes` one byte at a time, then whole: the guard must not depend on how TCP cut them. */
function feedBoth(make: () => PduGuard, bytes: Buffer): void {
  const byByte = make();
  for (const b of bytes) byByte.feed(Buffer.of(b));
  make().feed(bytes);
}

const CODE = (code: string) => (error: unknown) => error instanceof PduGuardError && error.code === code;

describe('the PDU guard reads only the framing and refuses what the library would buffer without bound', () => {
  const limits = { maxPduBytes: 16_384, maxCommandBytes: 256, maxOtherDatasetBytes: 1_024 };

  test('a C-STORE with a large dataset over many PDUs passes, however the bytes are cut', () => {
    const stream = Buffer.concat([
      pdu(1, Buffer.alloc(200)),
      pdu(4, pdv(1, command(0x0001, true), true, true)),
      ...Array.from({ length: 20 }, (_, i) => pdu(4, pdv(1, Buffer.alloc(16_000), false, i === 19))),
      pdu(4, pdv(1, command(0x0001, true), true, true)),
      pdu(4, Buffer.concat([pdv(1, Buffer.alloc(100), false, false), pdv(1, Buffer.alloc(100), false, true)])),
      pdu(5, Buffer.alloc(4)),
    ]);
    feedBoth(() => new PduGuard(limits), stream);
  });

  test('a PDU longer than the cap is refused from its header alone', () => {
    const head = pdu(4, Buffer.alloc(0));
    head.writeUInt32BE(4 * 1024 ** 3 - 1, 2);
    assert.throws(() => new PduGuard(limits).feed(head), CODE('DIMSE_PDU_TOO_LARGE'));
    const rq = pdu(1, Buffer.alloc(0));
    rq.writeUInt32BE(2 * 1024 * 1024, 2);
    assert.throws(() => new PduGuard(limits).feed(rq), CODE('DIMSE_PDU_TOO_LARGE'));
  });

  test('a command set over its cap, a dataset without a command and an unknown PDU type are refused', () => {
    assert.throws(() => feedBoth(() => new PduGuard(limits), pdu(4, pdv(1, Buffer.alloc(300), true, true))), CODE('DIMSE_COMMAND_TOO_LARGE'));
    assert.throws(() => feedBoth(() => new PduGuard(limits), pdu(4, pdv(1, Buffer.alloc(10), false, true))), CODE('DIMSE_PDU_UNEXPECTED'));
    assert.throws(() => new PduGuard(limits).feed(pdu(9, Buffer.alloc(2))), CODE('DIMSE_PDU_UNEXPECTED'));
  });

  test('the dataset of a command other than C-STORE-RQ is capped (it would be held in memory)', () => {
    const find = [pdu(4, pdv(1, command(0x0020, true), true, true)), pdu(4, pdv(1, Buffer.alloc(900), false, false))];
    feedBoth(() => new PduGuard(limits), Buffer.concat([...find, pdu(4, pdv(1, Buffer.alloc(10), false, true))]));
    assert.throws(() => feedBoth(() => new PduGuard(limits), Buffer.concat([...find, pdu(4, pdv(1, Buffer.alloc(200), false, true))])), CODE('DIMSE_PDU_TOO_LARGE'));
    // A command without a dataset (C-ECHO-RQ) expects the next command, not data.
    assert.throws(() => new PduGuard(limits).feed(Buffer.concat([pdu(4, pdv(1, command(0x0030, false), true, true)), pdu(4, pdv(1, Buffer.alloc(4), false, true))])), CODE('DIMSE_PDU_UNEXPECTED'));
  });

  test('P-DATA before the association is accepted, and a PDV crossing its PDU, are refused', () => {
    let accepted = false;
    const guard = new PduGuard({ ...limits, dataAllowed: () => accepted });
    assert.throws(() => guard.feed(pdu(4, pdv(1, command(0x0030, false), true, true))), CODE('DIMSE_PDU_UNEXPECTED'));
    accepted = true;
    const crossing = pdu(4, pdv(1, Buffer.alloc(10), true, true));
    crossing.writeUInt32BE(100, 6); // the item claims more than its PDU holds
    assert.throws(() => new PduGuard(limits).feed(crossing), CODE('DIMSE_PDU_UNEXPECTED'));
  });
});

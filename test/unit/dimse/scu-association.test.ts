// The association this gateway opens to a C-MOVE destination (scu-association.ts): the destination's
// Maximum Length (PS3.8 D.1) from its A-ASSOCIATE-AC decides what the gateway sends with, and one below the
// floor is not used at all. A dcmjs-dimse Scp on loopback plays the destination.
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import dimse from 'dcmjs-dimse';
import { DestinationUnavailableError } from '../../../src/dimse/errors.ts';
import { EXPLICIT_VR_LITTLE_ENDIAN } from '../../../src/dicom/transfer-syntax.ts';
import { openStorageAssociation } from '../../../src/dimse/scu-association.ts';
import { MAX_PDU_SENT } from '../../../src/dimse/store-sender.ts';

dimse.log.setLevel('silent');

const CT = '1.2.840.10008.5.1.4.1.1.2';
type Association = InstanceType<typeof dimse.association.Association>;

describe('the association to a C-MOVE destination', () => {
  let server: Server;
  /** The Maximum Length the destination answers with. */
  let answered = 16_384;
  const sockets: Socket[] = [];

  before(async () => {
    class Destination extends dimse.Scp {
      override associationRequested(association: Association): void {
        for (const { id } of association.getPresentationContexts() as { id: number }[]) {
          association.getPresentationContext(id).setResult(dimse.constants.PresentationContextResult.Accept, EXPLICIT_VR_LITTLE_ENDIAN);
        }
        association.setMaxPduLength(answered);
        this.sendAssociationAccept();
      }
      override associationReleaseRequested(): void {
        this.sendAssociationReleaseResponse();
      }
    }
    server = createServer((socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
      const scp = new Destination(socket, { pduTimeout: 5_000, associationTimeout: 5_000, connectTimeout: 5_000 });
      (scp as unknown as { connected: boolean }).connected = true;
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const open = () =>
    openStorageAssociation({
      host: '127.0.0.1',
      port: (server.address() as AddressInfo).port,
      callingAeTitle: 'DEID_GATEWAY',
      calledAeTitle: 'RESEARCH_PACS',
      sopClassUids: [CT],
      transferSyntaxUids: [EXPLICIT_VR_LITTLE_ENDIAN],
      maxPduBytes: 16_384,
      timeoutMs: 5_000,
    });

  test('a destination whose Maximum Length is below 4 KiB is unavailable (nothing is sent); at or above it the gateway sends within it, never past 1 MiB', async () => {
    // dcmjs-dimse writes at most its Implementation's Maximum Length (256 KiB) into an A-ASSOCIATE-AC: raised here, so the destination can offer more.
    const implementation = dimse.Implementation as unknown as { getMaxPduLength(): number; setMaxPduLength(n: number): void };
    const before = implementation.getMaxPduLength();
    implementation.setMaxPduLength(0xffffffff);
    try {
      await cases();
    } finally {
      implementation.setMaxPduLength(before);
    }
  });

  async function cases(): Promise<void> {
    answered = 1_024;
    await assert.rejects(open(), (e: unknown) => e instanceof DestinationUnavailableError && e.reason === 'max-length');
    for (const [peer, sending] of [
      [4_096, 4_096],
      [16_385, 16_384],
      [2_000_000, MAX_PDU_SENT],
      [0xffffffff, MAX_PDU_SENT],
    ] as const) {
      answered = peer;
      const association = await open();
      assert.equal(association.channel.association.getMaxPduLength(), sending, `peer ${peer}`);
      assert.deepEqual([...association.contexts.keys()], [CT]);
      await association.release();
    }
  }
});

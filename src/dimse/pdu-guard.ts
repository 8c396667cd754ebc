// A byte-level watch over what a DIMSE peer sends, beside dcmjs-dimse's own parser, which buffers each
// PDU whole and each command set and non-C-STORE dataset in memory. The guard reads only the framing
// (PS3.8 9.3.1 PDU headers, 9.3.5.1 PDV items, PS3.7 6.3.1 command sets) and refuses, before the
// library would buffer it: a PDU over the cap, a command set over its cap, a dataset that follows no
// command, and a dataset of any command but C-STORE-RQ over a small cap. C-STORE datasets stream to the
// spool, which enforces its own quota. Pure: fed Buffers, throws PduGuardError.
import { PduGuardError } from './errors.ts';

/** PS3.8 9.3.1 PDU types. */
const PDU = { associateRq: 0x01, associateAc: 0x02, associateRj: 0x03, pData: 0x04, releaseRq: 0x05, releaseRp: 0x06, abort: 0x07 } as const;
/** PS3.7 E.1 CommandField of C-STORE-RQ, and the CommandDataSetType meaning "no dataset" (PS3.7 E.1). */
const C_STORE_RQ = 0x0001;
const NO_DATASET = 0x0101;
const COMMAND_FIELD = 0x00000100;
const COMMAND_DATA_SET_TYPE = 0x00000800;

export interface PduGuardLimits {
  /** P-DATA-TF PDUs: the Maximum Length the listener offers (PS3.8 D.1). */
  readonly maxPduBytes: number;
  /** Any other PDU (an A-ASSOCIATE-RQ with many presentation contexts is a few KiB). */
  readonly maxControlPduBytes?: number;
  /** One command set (PS3.7 6.3.1): a few hundred bytes in practice. */
  readonly maxCommandBytes?: number;
  /** The dataset of a command other than C-STORE-RQ (this listener serves only C-ECHO and C-STORE). */
  readonly maxOtherDatasetBytes?: number;
  /** Whether P-DATA may come yet (PS3.8 9.2: only once the association is accepted). */
  readonly dataAllowed?: () => boolean;
}

type Expecting = 'command' | 'store-dataset' | 'other-dataset';

export class PduGuard {
  readonly #maxPdu: number;
  readonly #maxControl: number;
  readonly #maxCommand: number;
  readonly #maxOther: number;
  readonly #dataAllowed: () => boolean;
  /** The 6-byte PDU header (or PDV item header) being collected. */
  #head = Buffer.alloc(6);
  #headFilled = 0;
  #pduType = 0;
  /** Bytes of the current PDU body still to come; -1 while its header is collected. */
  #pduLeft = -1;
  /** Inside a P-DATA-TF body: bytes of the current PDV fragment still to come; -1 while its item header is collected. */
  #pdvLeft = -1;
  #pdvCommand = false;
  #pdvLast = false;
  #expecting: Expecting = 'command';
  #command: Buffer[] = [];
  #commandBytes = 0;
  #otherBytes = 0;

  constructor(limits: PduGuardLimits) {
    this.#maxPdu = limits.maxPduBytes;
    this.#maxControl = limits.maxControlPduBytes ?? 1024 * 1024;
    this.#maxCommand = limits.maxCommandBytes ?? 64 * 1024;
    this.#maxOther = limits.maxOtherDatasetBytes ?? 64 * 1024;
    this.#dataAllowed = limits.dataAllowed ?? (() => true);
  }

  /** Reads the next bytes the peer sent, in order; throws PduGuardError at the first thing refused. */
  feed(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.#pduLeft < 0) {
        at = this.#collectHead(chunk, at);
        if (this.#headFilled < 6) return;
        this.#startPdu();
        continue;
      }
      if (this.#pduType !== PDU.pData) {
        const take = Math.min(this.#pduLeft, chunk.length - at);
        at += take;
        this.#pduLeft -= take;
      } else {
        at = this.#readPdvs(chunk, at);
      }
      if (this.#pduLeft === 0) this.#pduLeft = -1;
    }
  }

  #collectHead(chunk: Buffer, at: number, limit = Number.POSITIVE_INFINITY): number {
    const take = Math.min(6 - this.#headFilled, chunk.length - at, limit);
    chunk.copy(this.#head, this.#headFilled, at, at + take);
    this.#headFilled += take;
    return at + take;
  }

  /** PS3.8 9.3.1: type (1), reserved (1), length (4, big endian). */
  #startPdu(): void {
    this.#headFilled = 0;
    this.#pduType = this.#head.readUInt8(0);
    const length = this.#head.readUInt32BE(2);
    if (this.#pduType < PDU.associateRq || this.#pduType > PDU.abort) throw new PduGuardError('DIMSE_PDU_UNEXPECTED', 'an unknown PDU type');
    const cap = this.#pduType === PDU.pData ? this.#maxPdu : this.#maxControl;
    if (length > cap) throw new PduGuardError('DIMSE_PDU_TOO_LARGE', `a PDU longer than ${cap} bytes`);
    if (this.#pduType === PDU.pData && !this.#dataAllowed()) throw new PduGuardError('DIMSE_PDU_UNEXPECTED', 'P-DATA before the association was accepted');
    this.#pduLeft = length;
    this.#pdvLeft = -1;
    if (length === 0) this.#pduLeft = -1;
  }

  /** PS3.8 9.3.5.1: PDV items, each length (4), presentation context ID (1), message control header (1), fragment. */
  #readPdvs(chunk: Buffer, at: number): number {
    while (at < chunk.length && this.#pduLeft > 0) {
      if (this.#pdvLeft < 0) {
        const before = at;
        at = this.#collectHead(chunk, at, this.#pduLeft);
        this.#pduLeft -= at - before;
        if (this.#headFilled < 6) {
          if (this.#pduLeft <= 0) throw new PduGuardError('DIMSE_PDU_UNEXPECTED', 'a PDV item crosses its PDU');
          return at;
        }
        this.#headFilled = 0;
        const itemLength = this.#head.readUInt32BE(0);
        const control = this.#head.readUInt8(5);
        if (itemLength < 2 || itemLength - 2 > this.#pduLeft) throw new PduGuardError('DIMSE_PDU_UNEXPECTED', 'a PDV item crosses its PDU');
        this.#pdvLeft = itemLength - 2;
        this.#pdvCommand = (control & 0x01) !== 0;
        this.#pdvLast = (control & 0x02) !== 0;
        this.#startFragment();
        if (this.#pdvLeft === 0) this.#endFragment();
        continue;
      }
      const take = Math.min(this.#pdvLeft, this.#pduLeft, chunk.length - at);
      this.#fragmentBytes(chunk.subarray(at, at + take));
      at += take;
      this.#pdvLeft -= take;
      this.#pduLeft -= take;
      if (this.#pdvLeft === 0) this.#endFragment();
    }
    return at;
  }

  #startFragment(): void {
    if (this.#pdvCommand && this.#expecting !== 'command') throw new PduGuardError('DIMSE_PDU_UNEXPECTED', 'a command before the dataset of the previous one ended');
    if (!this.#pdvCommand && this.#expecting === 'command') throw new PduGuardError('DIMSE_PDU_UNEXPECTED', 'a dataset fragment without a command');
  }

  #fragmentBytes(bytes: Buffer): void {
    if (this.#pdvCommand) {
      this.#commandBytes += bytes.length;
      if (this.#commandBytes > this.#maxCommand) throw new PduGuardError('DIMSE_COMMAND_TOO_LARGE', `a command set longer than ${this.#maxCommand} bytes`);
      this.#command.push(Buffer.from(bytes));
    } else if (this.#expecting === 'other-dataset') {
      this.#otherBytes += bytes.length;
      if (this.#otherBytes > this.#maxOther) throw new PduGuardError('DIMSE_PDU_TOO_LARGE', `a dataset of a command other than C-STORE longer than ${this.#maxOther} bytes`);
    }
  }

  #endFragment(): void {
    this.#pdvLeft = -1;
    if (!this.#pdvLast) return;
    if (!this.#pdvCommand) {
      this.#expecting = 'command';
      this.#otherBytes = 0;
      return;
    }
    const command = Buffer.concat(this.#command);
    this.#command = [];
    this.#commandBytes = 0;
    const field = commandValue(command, COMMAND_FIELD);
    const dataSetType = commandValue(command, COMMAND_DATA_SET_TYPE);
    if (dataSetType === undefined || dataSetType === NO_DATASET) this.#expecting = 'command';
    else this.#expecting = field === C_STORE_RQ ? 'store-dataset' : 'other-dataset';
  }
}

/** A US value of a command set (PS3.7 6.3.1: Implicit VR Little Endian, group 0000). */
function commandValue(command: Buffer, tag: number): number | undefined {
  let at = 0;
  while (at + 8 <= command.length) {
    const group = command.readUInt16LE(at);
    const element = command.readUInt16LE(at + 2);
    const length = command.readUInt32LE(at + 4);
    const value = at + 8;
    if (((group << 16) | element) >>> 0 === tag) return length >= 2 && value + 2 <= command.length ? command.readUInt16LE(value) : undefined;
    at = value + length;
  }
  return undefined;
}

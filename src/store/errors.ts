/** Store failures; the gateway refuses the response rather than show an unpersisted pseudonym. */
export type StoreErrorCode =
  | 'STORE_OPEN_FAILED'
  | 'STORE_READ_FAILED'
  | 'STORE_WRITE_FAILED'
  | 'STORE_AUDIT_WRITE_FAILED'
  | 'STORE_PSEUDONYM_COLLISION';

export class StoreError extends Error {
  override name = 'StoreError';
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

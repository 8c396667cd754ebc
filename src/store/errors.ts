/** Store failures; the gateway refuses the response rather than show an unpersisted pseudonym. */
export class StoreError extends Error {
  override name = 'StoreError';
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

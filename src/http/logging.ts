import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * Structured JSON logs. Never log a token, a body, a query string or a concrete URL: URLs carry
 * UIDs and queries carry patient names. Routes are logged as their pattern.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'deid-gateway' },
      redact: { paths: ['req.headers.authorization', 'authorization', 'token'], censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
export type { Logger };

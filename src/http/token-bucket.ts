/**
 * A token bucket per key (the token's subject), in process: `burst` tokens, refilled at `perMinute`.
 * With several replicas each keeps its own buckets, so the effective limit is per replica.
 */
export interface RateLimiter {
  /** Takes `cost` tokens for `key`; when there are not enough, says how long until there will be. */
  take(key: string, cost: number): { ok: true } | { ok: false; retryAfterSeconds: number };
}

export function createRateLimiter(options: {
  burst: number;
  perMinute: number;
  /** Milliseconds; passed in so tests control time. */
  now?: () => number;
  /** Buckets kept before full (idle) ones are dropped; a full bucket is the same as none. */
  maxKeys?: number;
}): RateLimiter {
  const now = options.now ?? Date.now;
  const perMs = options.perMinute / 60_000;
  const maxKeys = options.maxKeys ?? 10_000;
  const buckets = new Map<string, { tokens: number; at: number }>();
  const level = (b: { tokens: number; at: number }, t: number) => Math.min(options.burst, b.tokens + (t - b.at) * perMs);
  return {
    take(key, cost) {
      const t = now();
      if (buckets.size >= maxKeys && !buckets.has(key)) {
        for (const [k, b] of buckets) if (level(b, t) >= options.burst) buckets.delete(k);
      }
      const bucket = buckets.get(key) ?? { tokens: options.burst, at: t };
      const tokens = level(bucket, t);
      if (tokens < cost) {
        buckets.set(key, { tokens, at: t });
        return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((cost - tokens) / perMs / 1000)) };
      }
      buckets.set(key, { tokens: tokens - cost, at: t });
      return { ok: true };
    },
  };
}

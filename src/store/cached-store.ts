import NodeCache from 'node-cache';
import type { Mapping, PseudonymStore } from './pseudonym-store.ts';

/** A TTL cache of at most `maxKeys` keys (node-cache): one that is full starts over, never refuses. */
export interface BoundedCache<T> {
  get(key: string): T | undefined;
  set(key: string, value: T): void;
  close(): void;
}

export function boundedCache<T>(options: { maxKeys: number; ttlSeconds: number }): BoundedCache<T> {
  const cache = new NodeCache({ stdTTL: options.ttlSeconds, checkperiod: 0, useClones: false, maxKeys: options.maxKeys });
  return {
    get: (key) => cache.get<T>(key),
    set(key, value) {
      try {
        cache.set(key, value);
      } catch {
        // Full (maxKeys): dropping the oldest-expiring keys is not offered by node-cache; start over instead.
        cache.flushAll();
        cache.set(key, value);
      }
    },
    close: () => cache.close(),
  };
}

/** A cache whose misses are computed once however many ask at the same time (single flight); failures are not kept. */
export interface SingleFlightCache<T> {
  /**
   * `hit`: the value was cached, or computed by a call already under way. `fresh`: neither is used (the
   * caller knows the cached value may be stale); the value computed replaces it.
   */
  get(key: string, compute: () => Promise<T>, options?: { readonly fresh?: boolean }): Promise<{ value: T; hit: boolean }>;
}

export function singleFlightCache<T>(options: { ttlSeconds: number; maxKeys: number }): SingleFlightCache<T> {
  const cache = options.ttlSeconds > 0 ? boundedCache<T>({ ttlSeconds: options.ttlSeconds, maxKeys: options.maxKeys }) : undefined;
  const inFlight = new Map<string, Promise<T>>();
  return {
    async get(key, compute, { fresh = false } = {}) {
      if (fresh) {
        const value = await compute();
        cache?.set(key, value);
        return { value, hit: false };
      }
      const cached = cache?.get(key);
      if (cached !== undefined) return { value: cached, hit: true };
      const pending = inFlight.get(key);
      if (pending) {
        try {
          return { value: await pending, hit: true };
        } catch {
          // The computation belonged to another request, which may simply have left (its PACS requests
          // go with it): this one computes for itself, once, single-flight again with the others waiting.
        }
      }
      const again = inFlight.get(key);
      if (again) return { value: await again, hit: true };
      const started = (async () => {
        try {
          const value = await compute();
          cache?.set(key, value);
          return value;
        } finally {
          inFlight.delete(key);
        }
      })();
      inFlight.set(key, started);
      return { value: await started, hit: false };
    },
  };
}

const MAX_UNSYNCED = 100_000;

/**
 * A bounded read-through cache in front of any store (node-cache: a TTL cache with a key cap).
 * Mappings never change once written, so a cached hit is always right; misses are not cached, so a
 * pseudonym issued by another replica is found on the next look-up. A save of mappings all cached and
 * synced since resolves to 0, so a response that shows only known pseudonyms costs no disk flush.
 */
export function withCache<T extends PseudonymStore>(store: T, options: { maxKeys: number; ttlSeconds: number }): T {
  const cache = boundedCache<string>(options);
  const keyOf = (scope: string, kind: string, pseudonym: string) => `${scope}\u0000${kind}\u0000${pseudonym}`;
  // Keys written since the last sync began: cached, but not yet durable against power loss. Past
  // MAX_UNSYNCED (saves whose response failed before its sync), every mapping counts until the next sync.
  let unsynced = new Set<string>();
  let overflow = false;
  const cached: PseudonymStore = {
    async save(scope, mappings: readonly Mapping[]) {
      const keyed = mappings.map((m) => ({ m, key: keyOf(scope, m.kind, m.pseudonym) }));
      const fresh = keyed.filter(({ m, key }) => cache.get(key) !== m.original);
      await store.save(scope, fresh.map(({ m }) => m));
      for (const { m, key } of fresh) {
        cache.set(key, m.original);
        if (!overflow) unsynced.add(key);
      }
      if (unsynced.size > MAX_UNSYNCED) {
        overflow = true;
        unsynced = new Set();
      }
      return overflow ? mappings.length : keyed.filter(({ key }) => unsynced.has(key)).length;
    },
    async originalOf(scope, kind, pseudonym) {
      const key = keyOf(scope, kind, pseudonym);
      const hit = cache.get(key);
      if (hit !== undefined) return hit;
      const original = await store.originalOf(scope, kind, pseudonym);
      if (original !== undefined) cache.set(key, original);
      return original;
    },
    async sync() {
      const [syncing, wasOverflow] = [unsynced, overflow];
      [unsynced, overflow] = [new Set(), false];
      try {
        await store.sync();
      } catch (error) {
        for (const key of syncing) unsynced.add(key);
        overflow ||= wasOverflow;
        throw error;
      }
    },
    count: () => store.count(),
    async close() {
      cache.close();
      await store.close();
    },
  };
  // Everything else the backend offers (the audit trail, projects) is passed through uncached.
  return new Proxy(store, {
    get(target, property, receiver) {
      if (Object.hasOwn(cached, property)) return cached[property as keyof PseudonymStore];
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

import NodeCache from 'node-cache';
import type { Mapping, PseudonymStore } from './pseudonym-store.ts';

/**
 * A bounded read-through cache in front of any store (node-cache: a TTL cache with a key cap).
 * Mappings never change once written, so a cached hit is always right; misses are not cached, so a
 * pseudonym issued by another replica is found on the next look-up.
 */
export function withCache<T extends PseudonymStore>(store: T, options: { maxKeys: number; ttlSeconds: number }): T {
  const cache = new NodeCache({ stdTTL: options.ttlSeconds, checkperiod: 0, useClones: false, maxKeys: options.maxKeys });
  const remember = (key: string, value: string) => {
    try {
      cache.set(key, value);
    } catch {
      // Full (maxKeys): drop the oldest-expiring keys is not offered by node-cache; start over instead.
      cache.flushAll();
      cache.set(key, value);
    }
  };
  const keyOf = (scope: string, kind: string, pseudonym: string) => `${scope}\u0000${kind}\u0000${pseudonym}`;
  const cached: PseudonymStore = {
    async save(scope, mappings: readonly Mapping[]) {
      const fresh = mappings.filter((m) => cache.get(keyOf(scope, m.kind, m.pseudonym)) !== m.original);
      await store.save(scope, fresh);
      for (const m of fresh) remember(keyOf(scope, m.kind, m.pseudonym), m.original);
    },
    async originalOf(scope, kind, pseudonym) {
      const key = keyOf(scope, kind, pseudonym);
      const hit = cache.get<string>(key);
      if (hit !== undefined) return hit;
      const original = await store.originalOf(scope, kind, pseudonym);
      if (original !== undefined) remember(key, original);
      return original;
    },
    sync: () => store.sync(),
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

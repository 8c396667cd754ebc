import NodeCache from 'node-cache';
import type { Mapping, PseudonymStore } from './pseudonym-store.ts';

/**
 * A bounded read-through cache in front of any store (node-cache: a TTL cache with a key cap).
 * Mappings never change once written, so a cached hit is always right; misses are not cached, so a
 * pseudonym issued by another replica is found on the next look-up.
 */
export function withCache(store: PseudonymStore, options: { maxKeys: number; ttlSeconds: number }): PseudonymStore {
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
  return {
    async save(mappings: readonly Mapping[]) {
      const fresh = mappings.filter((m) => cache.get(`${m.kind}\u0000${m.pseudonym}`) !== m.original);
      await store.save(fresh);
      for (const m of fresh) remember(`${m.kind}\u0000${m.pseudonym}`, m.original);
    },
    async originalOf(kind, pseudonym) {
      const key = `${kind}\u0000${pseudonym}`;
      const hit = cache.get<string>(key);
      if (hit !== undefined) return hit;
      const original = await store.originalOf(kind, pseudonym);
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
}

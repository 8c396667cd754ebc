import type { PseudonymStore } from './pseudonym-store.ts';

/** Told how long one store call took; `operation` is the method's name, never an argument. */
export type StoreObserver = (operation: string, outcome: 'ok' | 'error', seconds: number) => void;

/**
 * Times every method of a store (whatever the backend, cache included) and reports it to `observe`.
 * A Proxy rather than a hand-written forwarder, so that a method added to the store interface is
 * timed too instead of being silently dropped by the decorator. `close` is not timed.
 */
export function withTiming<T extends PseudonymStore>(store: T, observe: StoreObserver): T {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || typeof property !== 'string' || property === 'close') return value;
      const method = value as (...args: unknown[]) => unknown;
      return (...args: unknown[]): unknown => {
        const started = process.hrtime.bigint();
        const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
        let result: unknown;
        try {
          result = method.apply(target, args);
        } catch (error) {
          observe(property, 'error', seconds());
          throw error;
        }
        if (!(result instanceof Promise)) {
          observe(property, 'ok', seconds());
          return result;
        }
        return result.then(
          (v: unknown) => {
            observe(property, 'ok', seconds());
            return v;
          },
          (error: unknown) => {
            observe(property, 'error', seconds());
            throw error;
          },
        );
      };
    },
  });
}

import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { UpstreamJsonError } from '../../../src/dicomweb/errors.ts';
import { jsonArrayItems } from '../../../src/dicomweb/json-array-stream.ts';

async function collect(text: string | Buffer, chunk: number, cap = 1 << 20) {
  const bytes = Buffer.from(text);
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunk) chunks.push(bytes.subarray(i, i + chunk));
  const out: unknown[] = [];
  for await (const item of jsonArrayItems(Readable.from(chunks), cap)) out.push(item);
  return out;
}

describe('streaming a JSON array of datasets', () => {
  test('any chunking yields the same items as JSON.parse', async () => {
    const item = fc.dictionary(
      fc.string({ maxLength: 6 }),
      fc.oneof(fc.string(), fc.integer(), fc.array(fc.oneof(fc.string(), fc.dictionary(fc.string(), fc.string())))),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(item, { maxLength: 5 }), fc.integer({ min: 1, max: 40 }), async (items, size) => {
        const text = JSON.stringify(items, null, size % 3 === 0 ? 2 : undefined);
        assert.deepEqual(await collect(text, size), JSON.parse(text));
      }),
      { numRuns: 200 },
    );
  });

  test('strings holding brackets, braces and escaped quotes do not confuse it', async () => {
    const items = [{ a: '}]{["\\"' }, { b: ['\\', '"]'] }];
    assert.deepEqual(await collect(JSON.stringify(items), 3), items);
  });

  test('truncated, non-array, trailing garbage and oversize items are refused', async () => {
    for (const bad of ['[{"a":1}', '{"a":1}', '[{"a":1}] x', '[{"a":1} {"b":2}]', '[1,2]', '']) {
      await assert.rejects(collect(bad, 2), UpstreamJsonError, bad);
    }
    await assert.rejects(collect(JSON.stringify([{ a: 'x'.repeat(100) }]), 7, 50), /size cap/);
  });

  test('an empty array yields nothing', async () => {
    assert.deepEqual(await collect('[ ]', 1), []);
  });
});

test('any array of objects, cut anywhere, yields exactly what JSON.parse reads (strings are skipped by indexOf)', async () => {
  const text = fc.string({ unit: fc.constantFrom('a', '"', '\\', '{', '}', '[', ']', ',', 'é', ' ') });
  const item = fc.dictionary(fc.string(), fc.oneof(text, fc.integer(), fc.array(text)));
  await fc.assert(
    fc.asyncProperty(fc.array(item, { maxLength: 6 }), fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1 }), async (items, cuts) => {
      const bytes = Buffer.from(JSON.stringify(items));
      const chunks: Buffer[] = [];
      for (let at = 0, k = 0; at < bytes.length; k++) {
        const n = cuts[k % cuts.length] as number;
        chunks.push(bytes.subarray(at, at + n));
        at += n;
      }
      const out: unknown[] = [];
      for await (const parsed of jsonArrayItems(Readable.from(chunks), 1e9)) out.push(parsed);
      assert.equal(JSON.stringify(out), JSON.stringify(items)); // by text: keys like __proto__ survive
    }),
    { numRuns: 1000 },
  );
});

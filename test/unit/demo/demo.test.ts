// The demo reads its config as `serve` does, so its keys and secret follow DEID_GATEWAY__DATADIR.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readDemoConfig } from '../../../src/demo/demo.ts';

describe('demo config', () => {
  let dir: string;
  let file: string;
  const root = '/checkout';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'deid-demo-config-'));
    file = join(dir, 'gateway.yaml');
    await writeFile(file, 'server: { port: 8080 }\ndataDir: ./data\n');
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("without an override the keys are in the checkout's data dir", () => {
    const demo = readDemoConfig(root, { DEID_GATEWAY_CONFIG: file });
    assert.equal(demo.dataDir, '/checkout/data');
    assert.equal(demo.keyDir, '/checkout/data/demo-keys');
  });

  test('DEID_GATEWAY__DATADIR moves the data dir and the demo keys and secret with it', () => {
    const demo = readDemoConfig(root, { DEID_GATEWAY_CONFIG: file, DEID_GATEWAY__DATADIR: '/srv/demo-2' });
    assert.equal(demo.dataDir, '/srv/demo-2');
    assert.equal(demo.keyDir, '/srv/demo-2/demo-keys');
    assert.equal(demo.raw['dataDir'], '/srv/demo-2');
  });

  test('a relative DEID_GATEWAY__DATADIR is read from the checkout, like the default', () => {
    const demo = readDemoConfig(root, { DEID_GATEWAY_CONFIG: file, DEID_GATEWAY__DATADIR: 'data-b' });
    assert.equal(demo.keyDir, '/checkout/data-b/demo-keys');
  });

  test('the other environment overrides are already in the config the demo starts from', () => {
    const demo = readDemoConfig(root, { DEID_GATEWAY_CONFIG: file, DEID_GATEWAY__SERVER__PORT: '0' });
    assert.deepEqual(demo.raw['server'], { port: 0 });
  });
});

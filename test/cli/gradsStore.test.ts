import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GradientStore } from '../../src/gradients/store';
import { SafetensorsFile } from '../../src/io/safetensors';
import { FIXTURE_DIR, fixtureExpectations, tmpDir } from '../helpers/fixtures';

const LAUNCHER = path.join(__dirname, 'tdaLabFromSources.ts');
const cli = (args: string[]) => spawnSync(process.execPath, ['--require', 'tsx/cjs', LAUNCHER, '--backend', 'wasm', ...args], { encoding: 'utf8', cwd: path.join(__dirname, '..', '..') });

describe('tda-lab grads --store (command line)', function () {
  this.timeout(120000);
  let work: string;
  let data: string;
  const common = () => ['grads', '--model', FIXTURE_DIR, '--adapter', path.join(FIXTURE_DIR, 'adapter'), '--data', data, '--batch-size', '2'];
  before(() => {
    work = tmpDir();
    const e = fixtureExpectations();
    data = path.join(work, 'fixture.jsonl');
    fs.writeFileSync(data, e.input_ids.map((ids, j) => JSON.stringify({ input_ids: ids, prompt_length: e.prompt_lengths[j] })).join('\n'));
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it('streams the same gradients as --out into a store, and a re-run reuses every shard', () => {
    const out = path.join(work, 'grads.safetensors');
    const storeDir = path.join(work, 'store');
    assert.equal(cli([...common(), '--out', out]).status, 0);
    const r = cli([...common(), '--store', storeDir, '--store-shard-size', '2']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /3 examples; 2 shards computed, 0 reused/);
    const store = GradientStore.openExisting(storeDir);
    const set = store.readAll();
    const file = SafetensorsFile.open(out);
    try {
      assert.deepEqual([...set.losses!], [...file.readFloat32('loss')]);
      assert.equal(set.blocks.length, file.names().length - 1);
      // Same batches (2 + 1 examples) through the same code: bit-identical.
      for (const b of set.blocks) assert.deepEqual([...b.data], [...file.readFloat32(b.name)], b.name);
    } finally {
      file.close();
    }
    const again = cli([...common(), '--store', storeDir, '--store-shard-size', '2']);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /0 shards computed, 2 reused/);
  });

  it('projects and stores in half precision when asked', () => {
    const storeDir = path.join(work, 'projected');
    const r = cli([...common(), '--store', storeDir, '--project', '16', '--store-dtype', 'BF16']);
    assert.equal(r.status, 0, r.stderr);
    const store = GradientStore.openExisting(storeDir);
    assert.deepEqual(store.settings.projection, { kind: 'gaussian', dim: 16, seed: 0 });
    assert.equal(store.settings.dtype, 'BF16');
    assert.ok(store.readAll().blocks.every((b) => b.dim === 16));
  });

  it('refuses a store made with other settings, and unclear options', () => {
    const storeDir = path.join(work, 'store-mask');
    assert.equal(cli([...common(), '--store', storeDir]).status, 0);
    const other = cli([...common(), '--store', storeDir, '--mask', 'full']);
    assert.notEqual(other.status, 0);
    assert.match(other.stderr, /mask/);
    const both = cli([...common(), '--store', storeDir, '--out', path.join(work, 'x.safetensors')]);
    assert.match(both.stderr, /exactly one of --out <file> and --store <dir>/);
    const neither = cli(common());
    assert.match(neither.stderr, /exactly one of --out <file> and --store <dir>/);
    const project = cli([...common(), '--out', path.join(work, 'y.safetensors'), '--project', '8']);
    assert.match(project.stderr, /--project needs --store/);
  });
});

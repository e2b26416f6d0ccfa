import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EkfacInfluence } from '../../src/attribution/ekfac';
import { readEkfacFactors } from '../../src/attribution/ekfacFile';
import { readScoreFile } from '../../src/attribution/scoreFile';
import { readGradientFile } from '../../src/gradients/file';
import { hashAdapterDir } from '../../src/gradients/store';
import { inMemorySource } from '../../src/gradients/types';
import { saveAdapter } from '../../src/model/adapter';
import { randomAdapter } from '../../src/model/randomAdapter';
import { EkfacFixture, makeEkfacFixture, randomSequences } from '../attribution/ekfacFixture';
import { maxRelativeError } from '../attribution/helpers';

const LAUNCHER = path.join(__dirname, 'tdaLabFromSources.ts');
const cli = (args: string[]) => spawnSync(process.execPath, ['--require', 'tsx/cjs', LAUNCHER, '--backend', 'wasm', ...args], { encoding: 'utf8', cwd: path.join(__dirname, '..', '..') });

describe('tda-lab ekfac-factors and score --method ekfac (command line)', function () {
  this.timeout(300000);
  let fx: EkfacFixture;
  const p = (name: string) => path.join(fx.dir, name);
  const jsonl = (file: string, seqs: { inputIds: number[]; promptLength: number }[]) =>
    fs.writeFileSync(file, seqs.map((s) => JSON.stringify({ input_ids: s.inputIds, prompt_length: s.promptLength })).join('\n'));
  before(() => {
    fx = makeEkfacFixture({ hiddenSize: 32, intermediateSize: 48, numLayers: 1, numHeads: 4, numKvHeads: 2, vocabSize: 61 }, { n: 9, r: 4, targetModules: ['q_proj', 'v_proj'] });
    jsonl(p('train.jsonl'), fx.examples);
    jsonl(p('test.jsonl'), randomSequences(3, 61, 77));
    // Another checkpoint of the same adapter layout.
    saveAdapter(p('adapter2'), randomAdapter(fx.config, { r: 4, targetModules: ['q_proj', 'v_proj'], seed: 50, bStd: 0.05 }));
    for (const [adapter, data, out] of [
      [fx.adapterDir, 'train.jsonl', 'train-grads.safetensors'],
      [fx.adapterDir, 'test.jsonl', 'test-grads.safetensors'],
      [p('adapter2'), 'train.jsonl', 'train2-grads.safetensors'],
      [p('adapter2'), 'test.jsonl', 'test2-grads.safetensors'],
    ]) {
      const r = cli(['grads', '--model', fx.modelDir, '--adapter', adapter, '--data', p(data), '--out', p(out), '--batch-size', '4']);
      assert.equal(r.status, 0, r.stderr);
    }
  });
  after(() => fx.cleanup());

  it('writes factors recording their inputs, and score --method ekfac scores with them as the library does', () => {
    const r = cli(['ekfac-factors', '--model', fx.modelDir, '--adapter', fx.adapterDir, '--data', p('train.jsonl'), '--out', p('factors.safetensors'), '--batch-size', '4']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /factors of 4 LoRA tensors from 9 examples/);
    const factors = readEkfacFactors(p('factors.safetensors'));
    assert.equal(factors.settings.fisher, 'empirical');
    assert.equal(factors.settings.adapter, path.resolve(fx.adapterDir));
    assert.equal(factors.settings.adapterHash, hashAdapterDir(fx.adapterDir));
    const s = cli(['score', '--method', 'ekfac', '--factors', p('factors.safetensors'), '--train', p('train-grads.safetensors'), '--test', p('test-grads.safetensors'), '--out', p('scores.safetensors'), '--workers', '0']);
    assert.equal(s.status, 0, s.stderr);
    const got = readScoreFile(p('scores.safetensors'));
    const settings = JSON.parse(got.metadata.settings);
    assert.equal(settings.method, 'ekfac');
    assert.equal(settings.factors.file, path.resolve(p('factors.safetensors')));
    const ekfac = new EkfacInfluence({ workers: 0 });
    const train = readGradientFile(p('train-grads.safetensors')).set;
    ekfac.cache({ train: inMemorySource(train), factors });
    const test = readGradientFile(p('test-grads.safetensors')).set;
    const want = ekfac.attribute(test);
    assert.ok(maxRelativeError(got.scores.data, want.data) < 1e-6);
  });

  it('refuses factors of another adapter, a missing --factors, and --factors for a method that reads none', () => {
    const args = ['--train', p('train2-grads.safetensors'), '--test', p('test2-grads.safetensors'), '--out', p('x.safetensors')];
    const other = cli(['score', '--method', 'ekfac', '--factors', p('factors.safetensors'), ...args]);
    assert.notEqual(other.status, 0);
    assert.match(other.stderr, /factors were computed at adapter/);
    assert.ok(other.stderr.includes('factors.safetensors') && other.stderr.includes('settings.adapter'), other.stderr);
    const none = cli(['score', '--method', 'ekfac', '--train', p('train-grads.safetensors'), '--test', p('test-grads.safetensors'), '--out', p('y.safetensors')]);
    assert.notEqual(none.status, 0);
    assert.match(none.stderr, /--factors/);
    assert.match(none.stderr, /ekfac-factors/);
    const dot = cli(['score', '--method', 'gradDot', '--factors', p('factors.safetensors'), '--train', p('train-grads.safetensors'), '--test', p('test-grads.safetensors'), '--out', p('z.safetensors')]);
    assert.notEqual(dot.status, 0);
    assert.match(dot.stderr, /gradDot does not read factors/);
  });

  it('--fisher sampled is seeded; an unknown Fisher is refused', () => {
    const run = (seed: string, out: string) => cli(['ekfac-factors', '--model', fx.modelDir, '--adapter', fx.adapterDir, '--data', p('train.jsonl'), '--out', p(out), '--fisher', 'sampled', '--seed', seed]);
    assert.equal(run('3', 's3.safetensors').status, 0);
    const s3 = readEkfacFactors(p('s3.safetensors'));
    assert.equal(s3.settings.fisher, 'sampled');
    assert.equal(s3.settings.seed, 3);
    const e = readEkfacFactors(p('factors.safetensors'));
    assert.notDeepEqual(Array.from(s3.tensors[0].lambda), Array.from(e.tensors[0].lambda));
    const bad = cli(['ekfac-factors', '--model', fx.modelDir, '--adapter', fx.adapterDir, '--data', p('train.jsonl'), '--out', p('b.safetensors'), '--fisher', 'true']);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /--fisher/);
  });
});

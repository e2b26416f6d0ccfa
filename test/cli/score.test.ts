import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeSafetensors, TensorToWrite } from '../../src/io/safetensors';
import { Rng } from '../../src/random';
import { tmpDir } from '../helpers/fixtures';
import { denseHessian, dot, invert, matVec, maxRelativeError, meanSquareDamping, row } from '../attribution/helpers';
import { GradientSet } from '../../src/gradients/types';
import { readScoreFile } from '../../src/attribution/scoreFile';

const BIN = path.join(__dirname, '..', '..', 'bin', 'tda-lab.js');
const cli = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });

const KEYS: [string, number[]][] = [
  ['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', [2, 4]],
  ['base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', [3, 2]],
];

function gradFile(file: string, n: number, seed: number, mask = 'response', poison = false): GradientSet {
  const rng = new Rng(seed);
  const tensors: Record<string, TensorToWrite> = { loss: { shape: [n], data: Float32Array.from({ length: n }, () => rng.next()) } };
  const blocks = KEYS.map(([name, shape]) => {
    const dim = shape[0] * shape[1];
    const data = Float32Array.from({ length: n * dim }, () => rng.normal());
    tensors[name] = { shape: [n, ...shape], data };
    return { name, shape, dim, data };
  });
  if (poison) blocks[1].data[3] = NaN;
  writeSafetensors(file, tensors, { mask });
  // Blocks come back in sorted key order, as the reader sorts them.
  return { n, blocks: [...blocks].sort((a, b) => (a.name < b.name ? -1 : 1)) };
}

describe('tda-lab score (command line)', () => {
  let work: string;
  let train: GradientSet;
  let test: GradientSet;
  before(() => {
    work = tmpDir();
    train = gradFile(path.join(work, 'train.safetensors'), 10, 1);
    test = gradFile(path.join(work, 'test.safetensors'), 3, 2);
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it('gradDot and exact write the brute-force score matrices', () => {
    const base = ['--train', path.join(work, 'train.safetensors'), '--test', path.join(work, 'test.safetensors')];
    const r1 = cli(['score', '--method', 'gradDot', ...base, '--out', path.join(work, 'dot.safetensors')]);
    assert.equal(r1.status, 0, r1.stderr);
    const dotScores = readScoreFile(path.join(work, 'dot.safetensors'));
    assert.equal(dotScores.metadata.method, 'gradDot');
    assert.equal(dotScores.metadata.mask, 'response');
    const want: number[] = [];
    for (let q = 0; q < 3; q++) for (let i = 0; i < 10; i++) want.push(dot(row(test, 0, q), row(train, 0, i)) + dot(row(test, 1, q), row(train, 1, i)));
    assert.ok(maxRelativeError(dotScores.scores.data, want) < 1e-5);

    const r2 = cli(['score', '--method', 'exact', ...base, '--out', path.join(work, 'exact.safetensors'), '--damping-scale', '0.5']);
    assert.equal(r2.status, 0, r2.stderr);
    const inv = train.blocks.map((_, l) => invert(denseHessian(train, l, meanSquareDamping(train, l, 0.5))));
    const wantExact: number[] = [];
    for (let q = 0; q < 3; q++) for (let i = 0; i < 10; i++) wantExact.push(inv.reduce((s, h, l) => s + dot(matVec(h, row(test, l, q)), row(train, l, i)), 0));
    const got = readScoreFile(path.join(work, 'exact.safetensors'));
    assert.ok(maxRelativeError(got.scores.data, wantExact) < 1e-4);
    assert.deepEqual(Object.keys(JSON.parse(got.metadata.damping)).length, 2);
  });

  it('every method runs from the command line', () => {
    for (const method of ['gradCos', 'dataInf', 'lissa', 'kronGrad']) {
      const out = path.join(work, `${method}.safetensors`);
      const r = cli(['score', '--method', method, '--train', path.join(work, 'train.safetensors'), '--test', path.join(work, 'test.safetensors'), '--out', out]);
      assert.equal(r.status, 0, `${method}: ${r.stderr}`);
      assert.deepEqual([readScoreFile(out).scores.nTest, readScoreFile(out).scores.nTrain], [3, 10]);
    }
  });

  it('bad inputs give a one-line error and write nothing', () => {
    gradFile(path.join(work, 'nan.safetensors'), 4, 3, 'response', true);
    gradFile(path.join(work, 'full.safetensors'), 4, 3, 'full');
    writeSafetensors(path.join(work, 'other.safetensors'), { 'x.lora_A.weight': { shape: [2, 3, 3], data: new Float32Array(18) } }, { mask: 'response' });
    const cases: [string[], RegExp][] = [
      [['--method', 'nope'], /unknown method 'nope'/],
      [['--test', path.join(work, 'nan.safetensors')], /nan\.safetensors.*lora_B\.weight.*example 0 is NaN/],
      [['--test', path.join(work, 'full.safetensors')], /full\.safetensors.*'mask'.*label mask 'full' differs/],
      [['--test', path.join(work, 'other.safetensors')], /other\.safetensors.*blocks \[x\.lora_A\.weight\]/],
      [['--train', path.join(work, 'missing.safetensors')], /missing\.safetensors/],
    ];
    for (const [override, pattern] of cases) {
      const args: Record<string, string> = {
        '--method': 'gradDot',
        '--train': path.join(work, 'train.safetensors'),
        '--test': path.join(work, 'test.safetensors'),
        '--out': path.join(work, 'never.safetensors'),
      };
      for (let k = 0; k < override.length; k += 2) args[override[k]] = override[k + 1];
      const r = cli(['score', ...Object.entries(args).flat()]);
      assert.equal(r.status, 1, `expected failure: ${override.join(' ')}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, pattern);
      assert.ok(!fs.existsSync(path.join(work, 'never.safetensors')));
    }
  });
});

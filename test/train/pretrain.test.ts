import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { TokenSequence } from '../../src/data/batch';
import { computeLosses } from '../../src/model/loss';
import { LlamaModel } from '../../src/model/llama';
import { Rng } from '../../src/random';
import { llamaConfig } from '../../src/model/synthetic';
import { baseWeightTensors, createTrainableModel } from '../../src/model/trainableWeights';
import { createAdam, epochBatches, permutation, reductionWeights, setLearningRate } from '../../src/train/common';
import { pretrain, PretrainOptions, TrainLog } from '../../src/train/pretrain';
import { learningRateAt } from '../../src/train/schedule';
import { throwsTda } from '../helpers/errors';

const cfg = llamaConfig({ hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, vocabSize: 30 });

const seqs: TokenSequence[] = [
  { inputIds: [1, 5, 6, 7, 8, 2], promptLength: 2 },
  { inputIds: [1, 9, 10, 11, 2], promptLength: 2 },
  { inputIds: [1, 12, 13, 14, 15, 16, 2], promptLength: 2 },
  { inputIds: [1, 17, 18, 2], promptLength: 2 },
  { inputIds: [1, 19, 20, 21, 22, 2], promptLength: 2 },
];

/** Trains a fresh model (init seed 3), returns its weights and log, and disposes it (variable names are global). */
function run(opts: Partial<PretrainOptions> = {}, use?: (m: LlamaModel, log: TrainLog) => void) {
  const model = createTrainableModel(cfg, 3, 0.1);
  try {
    const before = tf.memory().numTensors;
    const log = pretrain(model, seqs, { steps: 6, batchSize: 2, lr: 0.01, seed: 7, mask: 'full', ...opts });
    const leaked = tf.memory().numTensors - before;
    use?.(model, log);
    return { log, weights: baseWeightTensors(model), leaked };
  } finally {
    model.dispose();
  }
}

describe('pretrain', () => {
  it('seeded epochs of permutations: every example once per epoch, DataLoader-style last batch', () => {
    const batches = epochBatches(5, 2, new Rng(1));
    assert.deepEqual(
      batches.map((b) => b.length),
      [2, 2, 1],
    );
    assert.deepEqual(batches.flat().sort(), [0, 1, 2, 3, 4]);
    assert.deepEqual(permutation(8, new Rng(4)), permutation(8, new Rng(4)));
    assert.notDeepEqual(permutation(8, new Rng(4)), permutation(8, new Rng(5)));
  });

  it("changing the Adam optimizer's learning rate between steps changes the next update", () => {
    const x = tf.variable(tf.zeros([2]));
    const c = tf.tensor1d([1, -2]);
    const opt = createAdam(0.1);
    const f = () => tf.sum(tf.mul(x, c)) as tf.Scalar;
    opt.minimize(f, false, [x]);
    // First Adam step: m_hat / sqrt(v_hat) = sign(g), so the move is exactly lr.
    const a = x.dataSync();
    assert.ok(Math.abs(a[0] + 0.1) < 1e-6 && Math.abs(a[1] - 0.1) < 1e-6, `${a}`);
    setLearningRate(opt, 0.01);
    opt.minimize(f, false, [x]);
    // Constant gradient: the second step moves by the new rate.
    const b = x.dataSync();
    assert.ok(Math.abs(b[0] + 0.11) < 1e-6 && Math.abs(b[1] - 0.11) < 1e-6, `${b}`);
    opt.dispose();
    tf.dispose([x, c]);
    throwsTda(() => setLearningRate({} as tf.Optimizer, 1), 'learningRate');
  });

  it('lowers the loss; logs loss, scheduled lr and epoch per step; no tensor leaks', () => {
    const schedule = { kind: 'linear', warmupSteps: 3 } as const;
    let lossesAfter: Float32Array | null = null;
    const { log, leaked } = run({ steps: 30, lr: 0.02, schedule }, (model) => {
      lossesAfter = computeLosses(model, null, seqs, { mask: 'full' });
    });
    assert.equal(log.loss.length, 30);
    assert.equal(log.lr.length, 30);
    log.lr.forEach((v, s) => assert.equal(v, learningRateAt(schedule, s, 30, 0.02)));
    assert.equal(log.lr[0], 0);
    const first = (log.loss[0] + log.loss[1] + log.loss[2]) / 3;
    const last = (log.loss[27] + log.loss[28] + log.loss[29]) / 3;
    assert.ok(last < first * 0.6, `loss ${first} -> ${last}`);
    const meanAfter = lossesAfter!.reduce((a, b) => a + b, 0) / seqs.length;
    assert.ok(meanAfter < first * 0.6, `final model loss ${meanAfter}`);
    // 5 examples in batches of 2: 3 steps per epoch.
    assert.deepEqual(log.epoch.slice(0, 4), [1 / 3, 2 / 3, 1, 1 + 1 / 3]);
    // Per-step tensor count is flat once Adam has made its moment slots.
    const counts: number[] = [];
    run({ steps: 8, onStep: () => counts.push(tf.memory().numTensors) });
    assert.ok(
      counts.slice(1).every((n) => n === counts[1]),
      `tensor counts ${counts}`,
    );
    assert.equal(leaked, 0, 'pretrain disposes everything it made');
  });

  it('is deterministic: same seed, bit-identical weights; another seed, other weights', () => {
    const a = run({ seed: 11 });
    const b = run({ seed: 11 });
    const c = run({ seed: 12 });
    assert.deepEqual(a.log.loss, b.log.loss);
    let differs = false;
    for (const [name, t] of a.weights) {
      assert.deepEqual(b.weights.get(name)!.data, t.data, name);
      if (!c.weights.get(name)!.data.every((v, i) => v === t.data[i])) differs = true;
    }
    assert.ok(differs, 'a different data order gives different weights');
  });

  it('AdamW-style decay: w <- w - lr * wd * w on matrices only, before the Adam update', () => {
    const init = (() => {
      const m = createTrainableModel(cfg, 3, 0.1);
      try {
        return baseWeightTensors(m);
      } finally {
        m.dispose();
      }
    })();
    const lr = 0.01;
    const plain = run({ steps: 1, lr });
    const decayed = run({ steps: 1, lr, weightDecay: 0.5 });
    for (const [name, t] of plain.weights) {
      const d = decayed.weights.get(name)!.data;
      const w0 = init.get(name)!.data;
      if (t.shape.length === 2) {
        for (let i = 0; i < d.length; i += 97) assert.ok(Math.abs(t.data[i] - d[i] - lr * 0.5 * w0[i]) < 1e-6, `${name}[${i}]`);
      } else {
        assert.deepEqual(d, t.data, `${name} (a norm weight) is not decayed`);
      }
    }
  });

  it('token reduction weighs examples by their counted tokens', () => {
    assert.deepEqual([...reductionWeights([1, 3], 'token')], [0.25, 0.75]);
    assert.deepEqual([...reductionWeights([1, 3], 'example')], [0.5, 0.5]);
    const ex = run({ steps: 2, reduction: 'example' });
    const tok = run({ steps: 2, reduction: 'token' });
    assert.notDeepEqual(ex.log.loss, tok.log.loss);
  });

  it('refuses bad input', () => {
    const model = createTrainableModel(cfg, 3);
    try {
      const ok: PretrainOptions = { steps: 1, batchSize: 2, lr: 0.01, seed: 1, mask: 'full' };
      throwsTda(() => pretrain(model, [], ok), 'sequences');
      throwsTda(() => pretrain(model, [{ inputIds: [1, 99], promptLength: 1 }], ok), 'sequences[0]', 'vocab');
      throwsTda(() => pretrain(model, [{ inputIds: [1, 2], promptLength: 2 }], { ...ok, mask: 'response' }), 'sequences[0]', 'no tokens');
      throwsTda(() => pretrain(model, seqs, { ...ok, steps: 0 }), 'steps');
      throwsTda(() => pretrain(model, seqs, { ...ok, weightDecay: -1 }), 'weightDecay');
    } finally {
      model.dispose();
    }
  });
});

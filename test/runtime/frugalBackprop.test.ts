import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { makeBatch } from '../../src/data/batch';
import { batchLoraGradients } from '../../src/gradients/compute';
import { ComputedGradients } from '../../src/gradients/types';
import { initAdapter, parseLoraConfig } from '../../src/model/adapter';
import { disposeLoraState, loraStateFromAdapter } from '../../src/model/loraState';
import { llamaConfig } from '../../src/model/synthetic';
import { createTrainableModel } from '../../src/model/trainableWeights';
import { initBackend } from '../../src/runtime/backend';
import { installFrugalBackprop, removeFrugalBackprop } from '../../src/runtime/frugalBackprop';
import { gradsInsideBackward } from '../../src/runtime/ops';
import { Rng } from '../../src/random';

/** Per-example gradients of a batch, and the batch's peak tensor bytes (tf.profile). */
async function profiled(f: () => ComputedGradients): Promise<{ grads: ComputedGradients; peak: number }> {
  let grads: ComputedGradients | undefined;
  const info = await tf.profile(() => {
    grads = f();
  });
  return { grads: grads!, peak: info.peakBytes };
}

function sameBits(a: ComputedGradients, b: ComputedGradients): boolean {
  return a.losses.every((v, i) => Object.is(v, b.losses[i])) && a.blocks.every((blk, j) => blk.data.every((v, i) => Object.is(v, b.blocks[j].data[i])));
}

describe('frugal backward pass (frees gradients and saved tensors as it goes)', function () {
  this.timeout(180000);
  before(async () => initBackend('wasm'));
  after(() => installFrugalBackprop());

  it("gives tfjs's own gradients bit for bit, at a lower peak, leaking nothing (6-layer model, 8 x 48 tokens)", async () => {
    // A model held in memory (trainable weights), LoRA on every linear module.
    const cfg = llamaConfig({ hiddenSize: 64, intermediateSize: 160, numLayers: 6, numHeads: 4, numKvHeads: 2, headDim: 16, vocabSize: 512 });
    const model = createTrainableModel(cfg, 3);
    const rng = new Rng(4);
    const sequences = Array.from({ length: 8 }, () => ({ inputIds: Array.from({ length: 48 }, () => rng.int(512)), promptLength: 12 }));
    const lora = initAdapter(cfg, parseLoraConfig({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: 'all-linear' }, 'test'), 2);
    for (const m of lora.modules) m.B.forEach((_, i) => (m.B[i] = rng.normal() * 0.05));
    const shared = loraStateFromAdapter(lora);
    const run = () => batchLoraGradients(model, shared, makeBatch(sequences, 'response', 0), false);
    try {
      removeFrugalBackprop();
      const tfjs = await profiled(run);
      installFrugalBackprop();
      const before = tf.memory().numTensors;
      const frugal = await profiled(run);
      assert.equal(tf.memory().numTensors, before, 'no tensor is left behind');
      assert.ok(sameBits(frugal.grads, tfjs.grads), 'the same numbers as tfjs');
      assert.ok(frugal.peak < 0.7 * tfjs.peak, `peak ${frugal.peak} bytes against tfjs's ${tfjs.peak}`);
      // With layer recomputation (a nested tf.grads inside the backward pass) as well.
      const recomputed = batchLoraGradients(model, shared, makeBatch(sequences, 'response', 0), true);
      assert.equal(tf.memory().numTensors, before);
      recomputed.blocks.forEach((b, j) => b.data.forEach((v, i) => assert.ok(Math.abs(v - frugal.grads.blocks[j].data[i]) <= 1e-5 * (1 + Math.abs(v)))));
    } finally {
      disposeLoraState(shared);
      model.dispose();
    }
  });

  it('leaves higher-order gradients to tfjs, and keeps a caller-given dy alive', () => {
    installFrugalBackprop();
    const x = tf.tensor1d([1, 2, -3]);
    // d2/dx2 of x^3 = 6x: the inner gradient is recorded on the outer tape.
    const second = tf.grad((v: tf.Tensor) => tf.sum(tf.grad((u: tf.Tensor) => tf.sum(tf.pow(u, 3)))(v)))(x);
    assert.deepEqual([...second.dataSync()], [6, 12, -18]);
    const dy = tf.tensor1d([1, 1, 2]);
    const [g] = tf.grads((u: tf.Tensor) => tf.mul(u, 2))([x], dy);
    assert.deepEqual([...g.dataSync()], [2, 2, 4]);
    assert.ok(!dy.isDisposed, "the caller's dy is the caller's");
    // Inside a custom gradient, while an outer pass runs (layer recomputation's case).
    const f = tf.customGrad(((u: tf.Tensor, save: tf.GradSaveFunc) => {
      save([u]);
      return { value: tf.square(u), gradFunc: (d: tf.Tensor, saved: tf.Tensor[]) => gradsInsideBackward((v) => tf.square(v), saved, d) };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    const [h] = tf.grads((u: tf.Tensor) => tf.sum(tf.mul((f as unknown as (t: tf.Tensor) => tf.Tensor)(u), 3)))([x]);
    assert.deepEqual([...h.dataSync()], [6, 12, -18]);
    tf.dispose([x, second, dy, g, h]);
  });
});

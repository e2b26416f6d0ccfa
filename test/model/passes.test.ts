import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { computeLoraGradients, DEFAULT_PASS_BYTES, DEFAULT_PASS_ROWS, examplesPerPass } from '../../src/gradients/compute';
import { blockByName, ComputedGradients } from '../../src/gradients/types';
import { SafetensorsFile } from '../../src/io/safetensors';
import { adapterKey, initAdapter, loadAdapter, parseLoraConfig } from '../../src/model/adapter';
import { LlamaModel } from '../../src/model/llama';
import { activationBytesPerRow, recomputeBytesPerRow } from '../../src/model/memoryBudget';
import { llamaConfig } from '../../src/model/synthetic';
import { createTrainableModel } from '../../src/model/trainableWeights';
import { initBackend } from '../../src/runtime/backend';
import { Rng } from '../../src/random';
import { assertAllClose, FIXTURE_DIR, fixtureSequences, relativeL2 } from '../helpers/fixtures';

describe('per-example gradients in passes within a memory budget', function () {
  this.timeout(180000);
  before(async () => initBackend('wasm'));

  it('examplesPerPass aims for DEFAULT_PASS_ROWS token rows, fewer where the planned bytes would exceed passBytes', () => {
    const cfg = llamaConfig({ hiddenSize: 512, intermediateSize: 1376, numLayers: 8, numHeads: 8, numKvHeads: 8, headDim: 64, vocabSize: 24000 });
    const perExample = 256 * activationBytesPerRow(cfg);
    assert.equal(examplesPerPass(cfg, 256, 768, 10 * perExample), 3); // ceil(768 / 256)
    assert.equal(examplesPerPass(cfg, 256, 4096, 3 * perExample), 3);
    assert.equal(examplesPerPass(cfg, 256, 4096, 3 * perExample - 1), 2);
    assert.equal(examplesPerPass(cfg, 256, 4096, 1), 1, 'at least one example');
    assert.equal(examplesPerPass(cfg, 256, 4096, 3 * 256 * recomputeBytesPerRow(cfg), true), 3);
    // The defaults: the benchmark's 49.9M model at 64 and 256 tokens, and a 1.1B model at 128.
    assert.equal(examplesPerPass(cfg, 64, DEFAULT_PASS_ROWS, DEFAULT_PASS_BYTES), 8);
    assert.equal(examplesPerPass(cfg, 256, DEFAULT_PASS_ROWS, DEFAULT_PASS_BYTES), 2);
    const big = llamaConfig({ hiddenSize: 2048, intermediateSize: 5632, numLayers: 22, numHeads: 32, numKvHeads: 4, headDim: 64, vocabSize: 32000 });
    assert.equal(examplesPerPass(big, 128, DEFAULT_PASS_ROWS, DEFAULT_PASS_BYTES), 1);
  });

  it('passes of one example give the reference fixture gradients, and those of the whole batch to 1e-5', async () => {
    const model = LlamaModel.load(FIXTURE_DIR);
    const adapter = loadAdapter(path.join(FIXTURE_DIR, 'adapter'), model.config);
    const sequences = fixtureSequences();
    const reference = SafetensorsFile.open(path.join(FIXTURE_DIR, 'expected_grads.safetensors'));
    try {
      const whole = await computeLoraGradients(model, adapter, sequences, { batchSize: 3, workers: 0 });
      const passes = await computeLoraGradients(model, adapter, sequences, { batchSize: 3, workers: 0, passRows: 1 });
      // Padding and product shapes differ between the passes and the whole batch: rounding only.
      assertAllClose(passes.losses, whole.losses, 'losses', 1e-5);
      for (const m of adapter.modules) {
        for (const which of ['A', 'B'] as const) {
          const key = adapterKey(m.path, which);
          const got = blockByName(passes, key).data;
          assertAllClose(got, blockByName(whole, key).data, key, 1e-5);
          const per = got.length / sequences.length;
          sequences.forEach((_, j) => {
            const want = reference.readFloat32(`example${j}.${key}`);
            assert.ok(relativeL2(got.subarray(j * per, (j + 1) * per), want) < 1e-3, `${key} example ${j}`);
          });
        }
      }
      await assert.rejects(computeLoraGradients(model, adapter, sequences, { passBytes: 0 }), /'passBytes'/);
      await assert.rejects(computeLoraGradients(model, adapter, sequences, { passRows: -1 }), /'passRows'/);
    } finally {
      reference.close();
      model.dispose();
    }
  });

  it('lowers the peak: a batch of 8 x 128 tokens in passes of 2 holds under 0.45x the tensors of one pass', async () => {
    const cfg = llamaConfig({ hiddenSize: 128, intermediateSize: 344, numLayers: 4, numHeads: 4, numKvHeads: 4, headDim: 32, vocabSize: 2000 });
    const model = createTrainableModel(cfg, 5);
    const lora = initAdapter(cfg, parseLoraConfig({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] }, 'test'), 1);
    const rng = new Rng(3);
    for (const m of lora.modules) m.B.forEach((_, i) => (m.B[i] = rng.normal() * 0.05));
    const sequences = Array.from({ length: 8 }, () => ({ inputIds: Array.from({ length: 128 }, () => rng.int(2000)), promptLength: 32 }));
    const peakOf = async (passRows: number) => {
      let out: ComputedGradients | undefined;
      const info = await tf.profile(async () => {
        out = await computeLoraGradients(model, lora, sequences, { batchSize: 8, workers: 0, passRows });
      });
      return { peak: info.peakBytes, grads: out! };
    };
    try {
      const one = await peakOf(8 * 128);
      const two = await peakOf(2 * 128);
      assert.ok(two.peak < 0.45 * one.peak, `passes of 2: ${two.peak} bytes, one pass: ${one.peak}`);
      one.grads.blocks.forEach((b, j) => assertAllClose(two.grads.blocks[j].data, b.data, b.name, 1e-5));
    } finally {
      model.dispose();
    }
  });
});

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { makeBatch } from '../../src/data/batch';
import { initAdapter, parseLoraConfig } from '../../src/model/adapter';
import { LlamaModel } from '../../src/model/llama';
import { loraStateFromAdapter, disposeLoraState } from '../../src/model/loraState';
import { chooseRecompute } from '../../src/model/memoryBudget';
import { llamaConfig, writeRandomCheckpoint } from '../../src/model/synthetic';
import { batchLoraGradients, computeLoraGradients } from '../../src/gradients/compute';
import { blockByName } from '../../src/gradients/types';
import { Rng } from '../../src/random';
import { relativeL2, tmpDir } from '../helpers/fixtures';

/** Activation checkpointing: each layer recomputed during the backward pass. */
describe('layer recomputation in the backward pass', () => {
  let work: string;
  let model: LlamaModel;
  const cfg = llamaConfig({ hiddenSize: 128, numLayers: 6, numHeads: 4, numKvHeads: 2, intermediateSize: 344, vocabSize: 300 });
  const lora = parseLoraConfig({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'down_proj'] }, 'test');
  const adapter = initAdapter(cfg, lora, 3);
  const rng = new Rng(4);
  for (const m of adapter.modules) m.B.forEach((_, i) => (m.B[i] = rng.normal() * 0.02)); // B != 0: both factors get gradients
  const sequences = Array.from({ length: 4 }, (_, i) => ({ inputIds: Array.from({ length: 48 + 4 * i }, () => rng.int(cfg.vocabSize)), promptLength: 12 }));

  before(() => {
    work = tmpDir();
    writeRandomCheckpoint(path.join(work, 'model'), cfg, 5);
    model = LlamaModel.load(path.join(work, 'model'));
  });
  after(() => {
    model.dispose();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('gives the same per-example gradients and losses as keeping every activation', async () => {
    const kept = await computeLoraGradients(model, adapter, sequences, { workers: 0, recompute: false });
    const recomputed = await computeLoraGradients(model, adapter, sequences, { workers: 0, recompute: true });
    for (const b of kept.blocks) {
      const err = relativeL2(blockByName(recomputed, b.name).data, b.data);
      assert.ok(err < 1e-6, `${b.name}: ${err}`);
      assert.ok(b.data.some((v) => v !== 0), `${b.name} has a gradient`);
    }
    assert.deepEqual([...recomputed.losses], [...kept.losses]);
  });

  it('keeps a fraction of the activations alive at the peak, and leaks no tensors', async () => {
    const shared = loraStateFromAdapter(adapter);
    const batch = makeBatch(sequences, 'response', 0);
    const peak = async (recompute: boolean) => (await tf.profile(() => void batchLoraGradients(model, shared, batch, recompute))).peakBytes;
    const before = tf.memory().numTensors;
    const full = await peak(false);
    const light = await peak(true);
    assert.equal(tf.memory().numTensors, before);
    disposeLoraState(shared);
    // Six layers: the recomputed pass holds the layer inputs and one layer at a time.
    assert.ok(light < 0.6 * full, `peak ${light} bytes recomputing vs ${full} keeping everything`);
  });

  it("'auto' recomputes exactly when a batch's full activations would not fit the heap", () => {
    const big = llamaConfig({ hiddenSize: 4096, numLayers: 32, numHeads: 32, numKvHeads: 32, intermediateSize: 11008, vocabSize: 32000 });
    assert.equal(chooseRecompute(big, 1, 16), false);
    assert.equal(chooseRecompute(big, 8, 64), true);
    assert.equal(chooseRecompute(big, 8, 64, false), false);
  });
});

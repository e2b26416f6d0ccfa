import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { makeBatch } from '../../src/data/batch';
import { adapterKey, loadAdapter } from '../../src/model/adapter';
import { batchLoraGradients, computeLoraGradients } from '../../src/gradients/compute';
import { blockByName } from '../../src/gradients/types';
import { computeLosses } from '../../src/model/loss';
import { disposeBatchConstants, LlamaModel } from '../../src/model/llama';
import { disposeLoraState, loraStateFromAdapter } from '../../src/model/loraState';
import { SafetensorsFile } from '../../src/io/safetensors';
import { llamaConfig, parameterCount, randomBaseTensors } from '../../src/model/synthetic';
import { FIXTURE_DIR, fixtureExpectations, fixtureSequences, relativeL2 } from '../helpers/fixtures';

describe('LLaMA forward and per-example LoRA gradients against the reference fixture', () => {
  let model: LlamaModel;
  const expected = fixtureExpectations();
  const sequences = fixtureSequences();

  before(() => {
    model = LlamaModel.load(FIXTURE_DIR);
  });
  after(() => model.dispose());

  it('computes the three example losses in one padded batch within 1e-4 relative', () => {
    const adapter = loadAdapter(path.join(FIXTURE_DIR, 'adapter'), model.config);
    const losses = computeLosses(model, adapter, sequences, { batchSize: 3 });
    expected.example_losses.forEach((want, j) => {
      assert.ok(Math.abs(losses[j] - want) / Math.abs(want) < 1e-4, `example ${j}: ${losses[j]} vs ${want}`);
    });
  });

  it('the adapter changes the loss (the LoRA update is applied)', () => {
    const withoutAdapter = computeLosses(model, null, sequences, { batchSize: 3 });
    const gap = Math.abs(withoutAdapter[0] - expected.example_losses[0]);
    assert.ok(gap > 1e-3, `loss without the adapter should differ, gap ${gap}`);
  });

  it('matches the last-token logits and final hidden states within 1e-4 relative', () => {
    const adapter = loadAdapter(path.join(FIXTURE_DIR, 'adapter'), model.config);
    const lora = loraStateFromAdapter(adapter);
    const batch = makeBatch(sequences, 'response');
    const c = model.batchConstants(batch);
    const [hidden, logits] = tf.tidy(() => {
      const h = model.hidden(c, lora);
      return [h.arraySync(), model.logits(h).arraySync()];
    });
    disposeBatchConstants(c);
    disposeLoraState(lora);
    sequences.forEach((s, j) => {
      const row = j * batch.seqLen + s.inputIds.length - 1;
      const gotLogits = logits[row].slice(0, 8);
      const gotHidden = hidden[row].slice(0, 8);
      assert.ok(relativeL2(gotLogits, expected.last_token_logits_first8[j]) < 1e-4, `logits of example ${j}: ${gotLogits}`);
      assert.ok(relativeL2(gotHidden, expected.last_token_hidden_first8[j]) < 1e-4, `hidden of example ${j}: ${gotHidden}`);
      // Mean over the real tokens only: padding must not leak into pooled states.
      const mean = new Array(model.config.hiddenSize).fill(0);
      for (let t = 0; t < s.inputIds.length; t++) hidden[j * batch.seqLen + t].forEach((v, i) => (mean[i] += v / s.inputIds.length));
      const norm = Math.hypot(...mean);
      assert.ok(Math.abs(norm - expected.mean_pooled_hidden_norm[j]) / expected.mean_pooled_hidden_norm[j] < 1e-4, `pooled norm ${norm}`);
    });
  });

  it('per-example gradients match the reference within 1e-3 relative L2, batched and one at a time', async () => {
    const adapter = loadAdapter(path.join(FIXTURE_DIR, 'adapter'), model.config);
    const reference = SafetensorsFile.open(path.join(FIXTURE_DIR, 'expected_grads.safetensors'));
    const batched = await computeLoraGradients(model, adapter, sequences, { batchSize: 3 });
    const single = await computeLoraGradients(model, adapter, sequences, { batchSize: 1 });
    for (const m of adapter.modules) {
      for (const which of ['A', 'B'] as const) {
        const key = adapterKey(m.path, which);
        const perExample = blockByName(batched, key).data.length / sequences.length;
        sequences.forEach((_, j) => {
          const want = reference.readFloat32(`example${j}.${key}`);
          assert.equal(want.length, perExample);
          const got = blockByName(batched, key).data.subarray(j * perExample, (j + 1) * perExample);
          const alone = blockByName(single, key).data.subarray(j * perExample, (j + 1) * perExample);
          assert.ok(relativeL2(got, want) < 1e-3, `${key} example ${j}: rel err ${relativeL2(got, want)}`);
          assert.ok(relativeL2(alone, got) < 1e-5, `${key} example ${j}: batched vs single ${relativeL2(alone, got)}`);
        });
      }
    }
    reference.close();
    expected.example_losses.forEach((want, j) => assert.ok(Math.abs(batched.losses[j] - want) / want < 1e-4));
  });

  it('single weight layout: each frozen matrix held once, same gradients as the reference', async () => {
    const before = tf.memory().numBytes;
    const single = LlamaModel.load(FIXTURE_DIR, { layout: 'single', storage: 'heap' });
    const singleBytes = tf.memory().numBytes - before;
    const both = LlamaModel.load(FIXTURE_DIR, { layout: 'both', storage: 'heap' });
    const bothBytes = tf.memory().numBytes - before - singleBytes;
    // Parameters in float32, plus the [d, d] rotate-half matrix and its transpose.
    const d = single.config.headDim;
    const params = parameterCount(single.config);
    assert.equal(singleBytes, (params + 2 * d * d) * 4);
    // Both layouts: every linear weight and the LM head twice.
    const embed = single.config.vocabSize * single.config.hiddenSize;
    assert.equal(bothBytes, (2 * params - embed - single.config.hiddenSize * (1 + 2 * single.config.numLayers) + 2 * d * d) * 4);
    const adapter = loadAdapter(path.join(FIXTURE_DIR, 'adapter'), model.config);
    const reference = SafetensorsFile.open(path.join(FIXTURE_DIR, 'expected_grads.safetensors'));
    const got = await computeLoraGradients(single, adapter, sequences, { batchSize: 3 });
    const key = adapterKey(adapter.modules[0].path, 'A');
    const perExample = blockByName(got, key).data.length / sequences.length;
    sequences.forEach((_, j) => {
      const err = relativeL2(blockByName(got, key).data.subarray(j * perExample, (j + 1) * perExample), reference.readFloat32(`example${j}.${key}`));
      assert.ok(err < 1e-3, `example ${j}: ${err}`);
    });
    reference.close();
    single.dispose();
    both.dispose();
    assert.equal(tf.memory().numBytes, before);
  });

  it('parameterCount counts every tensor of a checkpoint', () => {
    for (const cfg of [llamaConfig({ hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 4, numKvHeads: 2, vocabSize: 50, qkvBias: true }), llamaConfig({ hiddenSize: 16, intermediateSize: 40, numLayers: 3, numHeads: 2, vocabSize: 30, tieWordEmbeddings: true })]) {
      let total = 0;
      for (const t of randomBaseTensors(cfg, 1).values()) total += t.data.length;
      assert.equal(parameterCount(cfg), total);
    }
  });

  it('leaks no tensors across calls', async () => {
    const adapter = loadAdapter(path.join(FIXTURE_DIR, 'adapter'), model.config);
    await computeLoraGradients(model, adapter, sequences, { batchSize: 2 });
    const before = tf.memory().numTensors;
    await computeLoraGradients(model, adapter, sequences, { batchSize: 2 });
    computeLosses(model, adapter, sequences);
    const lora = loraStateFromAdapter(adapter);
    batchLoraGradients(model, lora, makeBatch(sequences));
    disposeLoraState(lora);
    assert.equal(tf.memory().numTensors, before);
  });
});

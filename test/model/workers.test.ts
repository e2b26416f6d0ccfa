import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initAdapter, loadAdapter, parseLoraConfig } from '../../src/model/adapter';
import { computeLoraGradients, GradientWorkers } from '../../src/gradients/compute';
import { blockByName, ComputedGradients } from '../../src/gradients/types';
import { LlamaModel } from '../../src/model/llama';
import { Rng } from '../../src/random';
import { createTrainableModel } from '../../src/model/trainableWeights';
import { llamaConfig, writeRandomCheckpoint } from '../../src/model/synthetic';
import { FIXTURE_DIR, fixtureSequences, tmpDir } from '../helpers/fixtures';

function assertIdentical(a: ComputedGradients, b: ComputedGradients): void {
  assert.ok(a.losses.every((v, i) => Object.is(v, b.losses[i])), 'losses differ');
  assert.deepEqual(a.blocks.map((t) => t.name), b.blocks.map((t) => t.name));
  for (const t of a.blocks) {
    const key = t.name;
    const u = blockByName(b, key);
    assert.deepEqual(u.shape, t.shape);
    assert.ok(
      t.data.every((v, i) => Object.is(v, u.data[i])),
      `${key} differs`,
    );
  }
}

describe('per-example gradients on worker threads', function () {
  this.timeout(120000);

  it('gives exactly the in-process numbers (reference fixture, GQA), batch by batch in input order', async () => {
    const model = LlamaModel.load(FIXTURE_DIR);
    const adapter = loadAdapter(path.join(FIXTURE_DIR, 'adapter'), model.config);
    const sequences = [...fixtureSequences(), ...fixtureSequences().reverse()];
    const inProcess = await computeLoraGradients(model, adapter, sequences, { batchSize: 2, workers: 0 });
    const progress: number[] = [];
    const before = tf.memory().numTensors;
    const workers = await computeLoraGradients(model, adapter, sequences, { batchSize: 2, workers: 2, onProgress: (done) => progress.push(done) });
    assert.equal(tf.memory().numTensors, before, 'the main thread keeps no tensors');
    assertIdentical(workers, inProcess);
    assert.deepEqual(
      [...progress].sort((a, b) => a - b),
      progress,
    );
    assert.equal(progress[progress.length - 1], sequences.length);
    model.dispose();
  });

  it('moves tied embeddings, q/k/v biases, LoRA on every module and trainable models correctly', async () => {
    const dir = tmpDir();
    try {
      const cfg = llamaConfig({
        modelType: 'qwen2',
        hiddenSize: 32,
        intermediateSize: 48,
        numLayers: 2,
        numHeads: 4,
        numKvHeads: 2,
        headDim: 8,
        vocabSize: 50,
        tieWordEmbeddings: true,
        qkvBias: true,
      });
      writeRandomCheckpoint(dir, cfg, 3);
      fs.writeFileSync(path.join(dir, 'unused'), ''); // the workers never read the directory
      const model = LlamaModel.load(dir);
      const lora = parseLoraConfig({ peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: 'all-linear' }, 'test');
      const adapter = initAdapter(model.config, lora, 5);
      const rng = new Rng(9);
      for (const m of adapter.modules) m.B.forEach((_, i) => (m.B[i] = rng.normal() * 0.1));
      const sequences = Array.from({ length: 7 }, (_, i) => ({ inputIds: Array.from({ length: 6 + (i % 3) }, () => rng.int(50)), promptLength: 2 }));
      const inProcess = await computeLoraGradients(model, adapter, sequences, { batchSize: 3, workers: 0 });
      assertIdentical(await computeLoraGradients(model, adapter, sequences, { batchSize: 3, workers: 2 }), inProcess);
      model.dispose();
      // A trainable model keeps its weights as variables, stored transposed.
      const trainable = createTrainableModel({ ...cfg, tieWordEmbeddings: false }, 4);
      const adapter2 = initAdapter(trainable.config, lora, 6);
      for (const m of adapter2.modules) m.B.forEach((_, i) => (m.B[i] = rng.normal() * 0.1));
      const want = await computeLoraGradients(trainable, adapter2, sequences, { batchSize: 3, workers: 0 });
      assertIdentical(await computeLoraGradients(trainable, adapter2, sequences, { batchSize: 3, workers: 2 }), want);
      trainable.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('GradientWorkers started once serve several calls, and refuse another model', async () => {
    const model = LlamaModel.load(FIXTURE_DIR);
    const adapter = loadAdapter(path.join(FIXTURE_DIR, 'adapter'), model.config);
    const sequences = fixtureSequences();
    const want = await computeLoraGradients(model, adapter, sequences, { batchSize: 1, workers: 0 });
    const workers = await GradientWorkers.start(model, adapter, 2);
    try {
      assertIdentical(await computeLoraGradients(model, adapter, sequences, { batchSize: 1, workers }), want);
      assertIdentical(await computeLoraGradients(model, adapter, sequences, { batchSize: 1, workers }), want);
      const other = loadAdapter(path.join(FIXTURE_DIR, 'adapter'), model.config);
      await assert.rejects(computeLoraGradients(model, other, sequences, { workers }), /another model or adapter/);
    } finally {
      await workers.close();
      model.dispose();
    }
  });

  it('reports an error raised in a worker with its message, and rejects a bad worker count', async () => {
    const model = LlamaModel.load(FIXTURE_DIR);
    const adapter = loadAdapter(path.join(FIXTURE_DIR, 'adapter'), model.config);
    const bad = [...fixtureSequences(), { inputIds: [1, 2, 3], promptLength: 3 }];
    await assert.rejects(computeLoraGradients(model, adapter, bad, { batchSize: 1, workers: 2 }), /no tokens to score/);
    await assert.rejects(computeLoraGradients(model, adapter, bad, { workers: -1 }), /'workers'/);
    model.dispose();
  });
});

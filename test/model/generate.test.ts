import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { TokenBatch } from '../../src/data/batch';
import { initAdapter, LoraAdapter, parseLoraConfig } from '../../src/model/adapter';
import { argmax, generate, sample } from '../../src/model/generate';
import { disposeBatchConstants, LlamaModel } from '../../src/model/llama';
import { disposeLoraState, loraStateFromAdapter } from '../../src/model/loraState';
import { Rng } from '../../src/random';
import { llamaConfig } from '../../src/model/synthetic';
import { createTrainableModel, saveBaseModel } from '../../src/model/trainableWeights';
import { download } from '../../src/runtime/ops';
import { pretrain } from '../../src/train/pretrain';
import { tempDirs, throwsTda } from '../helpers/errors';

const cfg = llamaConfig({ hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, vocabSize: 30 });

/** Last-position logits of one sequence, from a forward pass over that sequence alone. */
function singleLogits(model: LlamaModel, ids: number[], adapter: LoraAdapter | null): Float32Array {
  const T = ids.length;
  const batch: TokenBatch = {
    batchSize: 1,
    seqLen: T,
    ids: Int32Array.from(ids),
    lengths: [T],
    lossRows: new Int32Array(0),
    lossLabels: new Int32Array(0),
    lossExample: new Int32Array(0),
    lossCounts: [0],
    mask: 'full',
  };
  const c = model.batchConstants(batch);
  const lora = adapter ? loraStateFromAdapter(adapter) : undefined;
  try {
    const all = download(() => model.logits(model.hidden(c, lora)));
    return all.slice((T - 1) * cfg.vocabSize, T * cfg.vocabSize);
  } finally {
    disposeBatchConstants(c);
    if (lora) disposeLoraState(lora);
  }
}

describe('generate', () => {
  const dirs = tempDirs('tda-generate-');
  let model: LlamaModel;
  let adapter: LoraAdapter;
  const prompts = [[1, 4, 7], [1, 9], [1, 3, 3, 8, 12], [2]];

  before(() => {
    const dir = dirs.make();
    const random = createTrainableModel(cfg, 11, 0.15);
    saveBaseModel(dir, random);
    random.dispose();
    model = LlamaModel.load(dir);
    adapter = initAdapter(cfg, parseLoraConfig({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] }, 'test'), 3);
    const rng = new Rng(4);
    for (const m of adapter.modules) for (let i = 0; i < m.B.length; i++) m.B[i] = rng.normal() * 0.2;
  });
  after(() => {
    model.dispose();
    dirs.cleanup();
  });

  it('greedy (batched, right-padded) equals a brute-force argmax loop over single prompts', () => {
    for (const a of [null, adapter]) {
      const got = generate(model, a, prompts, { maxNewTokens: 6, mode: 'greedy' });
      prompts.forEach((p, i) => {
        const seq = [...p];
        const expected: number[] = [];
        for (let t = 0; t < 6; t++) {
          const next = argmax(singleLogits(model, seq, a));
          expected.push(next);
          seq.push(next);
        }
        assert.deepEqual(got[i], expected, `prompt ${i}`);
      });
    }
    // The adapter matters.
    assert.notDeepEqual(generate(model, adapter, prompts, { maxNewTokens: 6, mode: 'greedy' }), generate(model, null, prompts, { maxNewTokens: 6, mode: 'greedy' }));
  });

  it('stops each sequence at eos (excluded unless includeEos) and never runs past maxNewTokens', () => {
    const free = generate(model, null, prompts, { maxNewTokens: 6, mode: 'greedy' });
    // Use the third token of prompt 0's greedy output as eos.
    const eos = free[0][2];
    const stopped = generate(model, null, prompts, { maxNewTokens: 6, mode: 'greedy', eosId: eos });
    const withEos = generate(model, null, prompts, { maxNewTokens: 6, mode: 'greedy', eosId: [eos], includeEos: true });
    prompts.forEach((_, i) => {
      const cut = free[i].indexOf(eos);
      assert.deepEqual(stopped[i], cut < 0 ? free[i] : free[i].slice(0, cut));
      assert.deepEqual(withEos[i], cut < 0 ? free[i] : free[i].slice(0, cut + 1));
    });
    assert.ok(stopped[0].length <= 2 && stopped[0].length < free[0].length);
    assert.deepEqual(generate(model, null, prompts, { maxNewTokens: 0, mode: 'greedy' }), [[], [], [], []]);
    assert.deepEqual(generate(model, null, [], { maxNewTokens: 3, mode: 'greedy' }), []);
  });

  it('sampling: deterministic per seed, independent of batching; temperature -> 0 and topK 1 give greedy', () => {
    const opts = { maxNewTokens: 8, mode: 'sample' as const, seed: 5 };
    const a = generate(model, adapter, prompts, opts);
    assert.deepEqual(generate(model, adapter, prompts, opts), a);
    assert.deepEqual(generate(model, adapter, prompts, { ...opts, batchSize: 1 }), a, 'same samples one prompt at a time');
    assert.notDeepEqual(generate(model, adapter, prompts, { ...opts, seed: 6 }), a);
    const greedy = generate(model, adapter, prompts, { maxNewTokens: 8, mode: 'greedy' });
    assert.notDeepEqual(a, greedy);
    assert.deepEqual(generate(model, adapter, prompts, { ...opts, temperature: 1e-4 }), greedy);
    assert.deepEqual(generate(model, adapter, prompts, { ...opts, temperature: 0 }), greedy);
    assert.deepEqual(generate(model, adapter, prompts, { ...opts, topK: 1 }), greedy);
  });

  it('sample() follows softmax(logits / T) restricted to the top k', () => {
    const logits = [Math.log(1), Math.log(2), Math.log(5), -Infinity, Math.log(2)];
    const rng = new Rng(1);
    const counts = new Array(5).fill(0);
    const N = 20000;
    for (let i = 0; i < N; i++) counts[sample(logits, 1, undefined, rng)]++;
    [0.1, 0.2, 0.5, 0, 0.2].forEach((p, i) => assert.ok(Math.abs(counts[i] / N - p) < 0.015, `token ${i}: ${counts[i] / N} vs ${p}`));
    // Temperature 0.5 squares the odds; top-2 keeps token 2 and both tokens tied at the 2nd value (1 and 4).
    const c2 = new Array(5).fill(0);
    for (let i = 0; i < N; i++) c2[sample(logits, 0.5, 2, rng)]++;
    assert.equal(c2[0], 0);
    [0, 4 / 33, 25 / 33, 0, 4 / 33].forEach((p, i) => assert.ok(Math.abs(c2[i] / N - p) < 0.015, `token ${i}: ${c2[i] / N} vs ${p}`));
    assert.equal(argmax([1, 3, 3, 2]), 1);
  });

  it('reproduces a sequence a tiny model was trained to memorise', () => {
    const trained = createTrainableModel(cfg, 2, 0.1);
    try {
      const data = [
        { inputIds: [1, 3, 4, 5, 6, 7, 2], promptLength: 2 },
        { inputIds: [1, 8, 9, 10, 11, 2], promptLength: 2 },
      ];
      pretrain(trained, data, { steps: 60, batchSize: 2, lr: 0.02, seed: 1, mask: 'full' });
      const out = generate(trained, null, [[1, 3], [1, 8], [1, 3, 4, 5]], { maxNewTokens: 10, mode: 'greedy', eosId: 2 });
      assert.deepEqual(out, [[4, 5, 6, 7], [9, 10, 11], [6, 7]]);
    } finally {
      trained.dispose();
    }
  });

  it('leaks no tensors and refuses bad input', () => {
    const before = tf.memory().numTensors;
    generate(model, adapter, prompts, { maxNewTokens: 3, mode: 'sample', seed: 1, topK: 5 });
    assert.equal(tf.memory().numTensors, before);
    throwsTda(() => generate(model, null, [[]], { maxNewTokens: 1, mode: 'greedy' }), 'prompts[0]', 'empty');
    throwsTda(() => generate(model, null, [[1, 30]], { maxNewTokens: 1, mode: 'greedy' }), 'prompts[0]', 'vocab');
    throwsTda(() => generate(model, null, [[1]], { maxNewTokens: 1, mode: 'sample' }), 'seed');
    throwsTda(() => generate(model, null, [[1]], { maxNewTokens: -1, mode: 'greedy' }), 'maxNewTokens');
    throwsTda(() => generate(model, null, [[1]], { maxNewTokens: 1, mode: 'beam' as 'greedy' }), 'mode');
    throwsTda(() => generate(model, null, [[1]], { maxNewTokens: 1, mode: 'sample', seed: 1, topK: 0 }), 'topK');
    throwsTda(() => generate(model, null, [[1]], { maxNewTokens: 5000, mode: 'greedy' }), 'max_position_embeddings');
  });
});

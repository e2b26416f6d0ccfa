import * as assert from 'node:assert/strict';
import { EkfacInfluence } from '../../src/attribution/ekfac';
import { computeEkfacFactors } from '../../src/attribution/ekfacFactors';
import { computeLoraGradients } from '../../src/gradients/compute';
import { inMemorySource } from '../../src/gradients/types';
import { gradientScores, methodSettings } from '../../src/experiments/pipeline';
import { initAdapter } from '../../src/model/adapter';
import { throwsTda } from '../helpers/errors';
import { makeEkfacFixture, randomSequences } from '../attribution/ekfacFixture';

describe('experiments/pipeline: ekfac among the gradient methods', () => {
  it('scores with the checkpoint\'s factors, as the scorer does; refuses it without them and non-gradient methods', async () => {
    const fx = makeEkfacFixture({ hiddenSize: 32, intermediateSize: 48, numLayers: 1, numHeads: 4, numKvHeads: 2, vocabSize: 61 }, { n: 6, r: 4, targetModules: ['q_proj', 'v_proj'] });
    try {
      const factors = await computeEkfacFactors(fx.model, fx.adapter, fx.examples);
      const train = await computeLoraGradients(fx.model, fx.adapter, fx.examples, { workers: 0 });
      const test = await computeLoraGradients(fx.model, fx.adapter, randomSequences(2, 61, 5), { workers: 0 });
      const scores = gradientScores(train, test, ['gradDot', 'ekfac'], {}, factors);
      const direct = new EkfacInfluence();
      direct.cache({ train: inMemorySource(train), factors });
      assert.deepEqual(Array.from(scores.ekfac.data), Array.from(direct.attribute(test).data));
      assert.equal(methodSettings(['ekfac']).ekfac.method, 'ekfac');
      throwsTda(() => gradientScores(train, test, ['ekfac']), 'ekfac needs factors');
      throwsTda(() => methodSettings(['repSim']), "'repSim' scores from embeddings");
    } finally {
      fx.cleanup();
    }
  });

  it('at a PEFT initialisation (lora_B = 0, so every A gradient is zero) the scores are finite: A tensors contribute nothing', async () => {
    const fx = makeEkfacFixture({ hiddenSize: 32, intermediateSize: 48, numLayers: 1, numHeads: 4, numKvHeads: 2, vocabSize: 61 }, { n: 5, r: 4, targetModules: ['q_proj', 'v_proj'] });
    try {
      const adapter = initAdapter(fx.config, fx.adapter.config, 3);
      const factors = await computeEkfacFactors(fx.model, adapter, fx.examples);
      const train = await computeLoraGradients(fx.model, adapter, fx.examples, { workers: 0 });
      const onlyB = { ...train, blocks: train.blocks.filter((b) => b.name.includes('lora_B')) };
      const all = new EkfacInfluence();
      all.cache({ train: inMemorySource(train), factors });
      const b = new EkfacInfluence();
      b.cache({ train: inMemorySource(onlyB), factors });
      const s = all.attribute(train).data;
      assert.ok(s.every(Number.isFinite));
      assert.deepEqual(Array.from(s), Array.from(b.attribute(onlyB).data));
    } finally {
      fx.cleanup();
    }
  });
});

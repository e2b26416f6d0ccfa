import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { capturedGradients } from '../../src/attribution/ekfacFactors';
import { makeBatch } from '../../src/data/batch';
import { computeLoraGradients } from '../../src/gradients/compute';
import { captureBatch } from '../../src/model/capture';
import { disposeLoraState, loraStateFromAdapter } from '../../src/model/loraState';
import { relativeL2 } from '../helpers/fixtures';
import { EkfacFixture, makeEkfacFixture } from './ekfacFixture';

describe('model/capture: per-token inputs and pre-activation gradients of every LoRA tensor', () => {
  let fx: EkfacFixture;
  before(() => {
    fx = makeEkfacFixture({ hiddenSize: 64, intermediateSize: 96, numLayers: 2, numHeads: 4, numKvHeads: 2, vocabSize: 97 }, { n: 7 });
  });
  after(() => fx.cleanup());

  for (const mask of ['response', 'full'] as const) {
    it(`sum_t d_t a_t^T per example equals the stored per-example gradients (mask ${mask}, padded batch)`, async () => {
      const want = await computeLoraGradients(fx.model, fx.adapter, fx.examples, { mask, batchSize: 7, workers: 0 });
      const shared = loraStateFromAdapter(fx.adapter);
      const before = tf.memory().numTensors;
      try {
        const batch = makeBatch(fx.examples, mask);
        const cap = captureBatch(fx.model, shared, batch);
        assert.equal(tf.memory().numTensors, before, 'the capture leaves no tensors behind');
        assert.equal(cap.tokens, fx.examples.reduce((s, e) => s + e.inputIds.length, 0), 'every non-padding token, and no padding');
        const got = capturedGradients(cap, fx.examples.length);
        assert.equal(got.size, want.blocks.length);
        for (const b of want.blocks) {
          const g = got.get(b.name);
          assert.ok(g, b.name);
          const err = relativeL2(g, b.data);
          assert.ok(err < 1e-5, `${b.name}: relative L2 ${err}`);
        }
        cap.losses.forEach((v, i) => assert.ok(Math.abs(v - want.losses![i]) < 1e-5 * Math.abs(want.losses![i]) + 1e-6, `loss ${i}`));
      } finally {
        disposeLoraState(shared);
      }
    });
  }
});

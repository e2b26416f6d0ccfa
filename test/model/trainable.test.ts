import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { makeBatch } from '../../src/data/batch';
import { computeLosses } from '../../src/model/loss';
import { disposeBatchConstants, LlamaModel } from '../../src/model/llama';
import { disposeLossConstants, exampleLosses, lossConstants } from '../../src/model/loss';
import { llamaConfig } from '../../src/model/synthetic';
import { createTrainableModel, saveBaseModel, trainableVariables } from '../../src/model/trainableWeights';
import { tmpDir } from '../helpers/fixtures';

describe('trainable base model (pretraining from scratch)', () => {
  const cfg = llamaConfig({ hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, vocabSize: 20 });
  const seqs = [
    { inputIds: [1, 5, 6, 7, 8, 2], promptLength: 1 },
    { inputIds: [1, 9, 10, 11, 2], promptLength: 1 },
  ];

  it('Adam steps on every base weight lower the loss, and the saved checkpoint reloads to the same losses', () => {
    const model = createTrainableModel(cfg, 1, 0.1);
    const vars = trainableVariables(model);
    assert.equal(vars.length, 3 + cfg.numLayers * (2 + 7));
    const batch = makeBatch(seqs, 'full');
    const c = model.batchConstants(batch);
    const lc = lossConstants(batch, cfg.vocabSize);
    const opt = tf.train.adam(0.01);
    const loss = () => tf.mean(exampleLosses(model, c, lc)) as tf.Scalar;
    const before = tf.tidy(() => loss().dataSync()[0]);
    const firstEmbed = vars[0].dataSync().slice();
    for (let i = 0; i < 30; i++) opt.minimize(loss, true, vars)?.dispose();
    const after = tf.tidy(() => loss().dataSync()[0]);
    assert.ok(after < before * 0.7, `loss ${before} -> ${after}`);
    assert.notDeepEqual([...vars[0].dataSync()], [...firstEmbed], 'embeddings are trained too');
    const trained = computeLosses(model, null, seqs, { mask: 'full' });
    disposeBatchConstants(c);
    disposeLossConstants(lc);
    const dir = path.join(tmpDir(), 'pretrained');
    saveBaseModel(dir, model);
    const reloaded = LlamaModel.load(dir);
    const again = computeLosses(reloaded, null, seqs, { mask: 'full' });
    trained.forEach((v, i) => assert.ok(Math.abs(v - again[i]) < 1e-5, `${v} vs ${again[i]}`));
    reloaded.dispose();
    model.dispose();
    opt.dispose();
    fs.rmSync(path.dirname(dir), { recursive: true, force: true });
  });
});

describe('createTrainableModel memory', () => {
  it('owns its variables: creating and disposing a model leaks no tensors', () => {
    const cfg = llamaConfig({ hiddenSize: 16, intermediateSize: 32, numLayers: 1, numHeads: 2, numKvHeads: 2, vocabSize: 10 });
    const before = tf.memory().numTensors;
    createTrainableModel(cfg, 3).dispose();
    assert.equal(tf.memory().numTensors, before);
  });
});

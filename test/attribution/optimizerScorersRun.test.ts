/**
 * LESS and TrackStar on a real fine-tuning run: the trainer's checkpoints, the moments it
 * saved and per-example gradients computed from the checkpoints fit together (block names
 * are the adapter keys the moments are stored under), and the scores equal the float64
 * transcriptions fed from the same files.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { Less } from '../../src/attribution/less';
import { TrackStar } from '../../src/attribution/trackstar';
import { TokenSequence } from '../../src/data/batch';
import { computeLoraGradients } from '../../src/gradients/compute';
import { inMemorySource } from '../../src/gradients/types';
import { initAdapter, loadAdapter, parseLoraConfig } from '../../src/model/adapter';
import { LlamaModel } from '../../src/model/llama';
import { readOptimizerState } from '../../src/model/optimizerState';
import { llamaConfig } from '../../src/model/synthetic';
import { createTrainableModel, saveBaseModel } from '../../src/model/trainableWeights';
import { finetuneLora } from '../../src/train/finetune';
import { tempDirs } from '../helpers/errors';
import { dot, projectConcatenated, unit } from './optimizerReference';

const cfg = llamaConfig({ hiddenSize: 16, intermediateSize: 32, numLayers: 1, numHeads: 2, numKvHeads: 2, vocabSize: 24 });
const seqs: TokenSequence[] = [3, 4, 5, 6, 7, 8].map((a) => ({ inputIds: [1, a, a + 8, a + 12, 2], promptLength: 2 }));
const queries: TokenSequence[] = [3, 6].map((a) => ({ inputIds: [1, a, a + 8, a + 12], promptLength: 2 }));

describe('attribution: LESS and TrackStar on a fine-tuning run', () => {
  const dirs = tempDirs('tda-less-run-');
  after(() => dirs.cleanup());

  it("read the trainer's checkpoints and moments and equal their transcriptions", async () => {
    const base = dirs.make();
    const random = createTrainableModel(cfg, 5, 0.15);
    saveBaseModel(base, random);
    random.dispose();
    const model = LlamaModel.load(base);
    try {
      const run = path.join(dirs.make(), 'run');
      const lora = parseLoraConfig({ peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'] }, 'test');
      finetuneLora(model, initAdapter(cfg, lora, 1), seqs, { epochs: 3, batchSize: 3, lr: 0.02, schedule: 'linear', seed: 1, outDir: run });
      const names = ['checkpoint-2', 'checkpoint-4', 'checkpoint-6'];
      const at = await Promise.all(
        names.map(async (n) => {
          const dir = path.join(run, n);
          const adapter = loadAdapter(dir, cfg);
          const train = await computeLoraGradients(model, adapter, seqs, { workers: 0 });
          const test = await computeLoraGradients(model, adapter, queries, { workers: 0 });
          return { train, test, optimizer: readOptimizerState(dir) };
        }),
      );
      assert.ok(at[1].optimizer.moments.every((t) => t.expAvgSq.some((v) => v > 0)), 'trained moments are nonzero');
      const k = 16;
      const spec = { kind: 'rademacher' as const, dim: k, seed: 0 };

      const less = new Less({ projectionDim: k, workers: 0 });
      less.cache(at.map((c) => ({ train: inMemorySource(c.train), optimizer: c.optimizer })));
      const got = less.attribute(at.map((c) => c.test));
      const lrs = at.map((c) => c.optimizer.learningRate);
      const total = lrs.reduce((a, b) => a + b, 0);
      assert.ok(lrs[0] > lrs[2], `a linear schedule decays: ${lrs}`);
      for (let q = 0; q < queries.length; q++) {
        for (let i = 0; i < seqs.length; i++) {
          let want = 0;
          at.forEach((c, ci) => {
            const { beta1, beta2, eps, moments } = c.optimizer;
            const byBlock = c.train.blocks.map((b) => moments.find((m) => m.key === b.name)!);
            const gamma = (l: number, j: number, g: number) =>
              (beta1 * byBlock[l].expAvg[j] + (1 - beta1) * g) / (Math.sqrt(beta2 * byBlock[l].expAvgSq[j] + (1 - beta2) * g * g) + eps);
            want += (lrs[ci] / total) * dot(unit(projectConcatenated(c.test, q, spec, (_l, _j, g) => g)), unit(projectConcatenated(c.train, i, spec, gamma)));
          });
          assert.ok(Math.abs(got.data[q * seqs.length + i] - want) < 1e-4, `less [${q}, ${i}]: ${got.data[q * seqs.length + i]} vs ${want}`);
        }
      }

      const last = at[2];
      const ts = new TrackStar({ projectionDim: 4, mix: 1, ridge: 1e-2, workers: 0 });
      ts.cache({ train: inMemorySource(last.train), optimizer: last.optimizer });
      const tsScores = ts.attribute(last.test);
      assert.equal(tsScores.data.length, queries.length * seqs.length);
      assert.ok(tsScores.data.every((s) => Number.isFinite(s) && Math.abs(s) <= 1 + 1e-5));
      assert.equal(ts.settings().step, 6);
    } finally {
      model.dispose();
    }
  });
});

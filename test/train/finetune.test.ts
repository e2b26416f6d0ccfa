import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { makeBatch, TokenSequence } from '../../src/data/batch';
import { initAdapter, loadAdapter, LoraAdapter, parseLoraConfig, saveAdapter } from '../../src/model/adapter';
import { listCheckpoints } from '../../src/model/checkpoints';
import { computeLosses } from '../../src/model/loss';
import { readOptimizerState } from '../../src/model/optimizerState';
import { computeLoraGradients } from '../../src/gradients/compute';
import { disposeBatchConstants, LlamaModel } from '../../src/model/llama';
import { disposeLoraState, loraStateFromAdapter } from '../../src/model/loraState';
import { disposeLossConstants, exampleLosses, lossConstants } from '../../src/model/loss';
import { Rng } from '../../src/random';
import { llamaConfig } from '../../src/model/synthetic';
import { createTrainableModel, saveBaseModel } from '../../src/model/trainableWeights';
import { download } from '../../src/runtime/ops';
import { finetuneLora, FinetuneOptions } from '../../src/train/finetune';
import { LoraDropout } from '../../src/train/loraDropout';
import { checkpointLearningRates, readTrainerState, writeTrainerState, TrainerState } from '../../src/train/trainerState';
import { tempDirs, throwsTda, writeJson } from '../helpers/errors';

const cfg = llamaConfig({ hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, vocabSize: 30 });

/** A toy mapping: prompt [1, a] -> response [a + 10, a + 16, 2]. */
const seqs: TokenSequence[] = [3, 4, 5, 6, 7, 8].map((a) => ({ inputIds: [1, a, a + 10, a + 16, 2], promptLength: 2 }));

function loraConfig(dropout = 0, targets: string[] = ['q_proj', 'v_proj', 'up_proj', 'down_proj']) {
  return parseLoraConfig({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: targets, lora_dropout: dropout }, 'test');
}

const flat = (a: LoraAdapter) => a.modules.flatMap((m) => [...m.A, ...m.B]);
const meanOf = (xs: ArrayLike<number>) => Array.from(xs).reduce((s, v) => s + v, 0) / xs.length;

describe('finetuneLora', () => {
  const dirs = tempDirs('tda-finetune-');
  let model: LlamaModel;
  before(() => {
    // A frozen base loaded from disk. Weights with std 0.15 rather than HF's 0.02, so the LM
    // head can express confident predictions at this tiny width.
    const dir = dirs.make();
    const random = createTrainableModel(cfg, 5, 0.15);
    saveBaseModel(dir, random);
    random.dispose();
    model = LlamaModel.load(dir);
  });
  after(() => {
    model.dispose();
    dirs.cleanup();
  });

  const base: FinetuneOptions = { epochs: 3, batchSize: 6, lr: 0.02, seed: 1 };

  it('lowers the response loss; a checkpoint per epoch named by global step; B zero only at checkpoint-0', () => {
    const out = path.join(dirs.make(), 'run');
    const init = initAdapter(cfg, loraConfig(), 2);
    const epochs: number[] = [];
    const { adapter, log } = finetuneLora(model, init, seqs, {
      ...base,
      epochs: 6,
      batchSize: 4,
      lr: 0.05,
      outDir: out,
      onEpoch: (e) => epochs.push(e.meanLoss),
    });
    assert.ok(epochs[5] < epochs[0] * 0.5, `epoch losses ${epochs}`);
    // 6 examples in batches of 4: 2 steps per epoch.
    assert.deepEqual(
      listCheckpoints(out).map((c) => c.name),
      ['checkpoint-0', 'checkpoint-2', 'checkpoint-4', 'checkpoint-6', 'checkpoint-8', 'checkpoint-10', 'checkpoint-12'],
    );
    const first = loadAdapter(path.join(out, 'checkpoint-0'), cfg);
    assert.deepEqual(flat(first), flat(init), 'checkpoint-0 is the initial adapter');
    assert.ok(first.modules.every((m) => m.B.every((v) => v === 0)));
    const second = loadAdapter(path.join(out, 'checkpoint-2'), cfg);
    assert.ok(second.modules.every((m) => m.B.some((v) => v !== 0)));
    const last = loadAdapter(path.join(out, 'checkpoint-12'), cfg);
    assert.deepEqual(flat(last), flat(adapter), 'the returned adapter is the last checkpoint');
    assert.equal(adapter.dir, path.join(out, 'checkpoint-12'));
    assert.equal(last.config.loraDropout, 0);
    assert.deepEqual(last.config.targetModules, init.config.targetModules);
    assert.equal(log.global_step, 12);
  });

  it("checkpoints reload to the losses training saw (full batch: step s+1's loss is checkpoint-s's)", () => {
    const out = path.join(dirs.make(), 'run');
    const { log } = finetuneLora(model, initAdapter(cfg, loraConfig(), 3), seqs, { ...base, outDir: out });
    const stepLoss = log.log_history.filter((e) => typeof e.loss === 'number').map((e) => e.loss as number);
    assert.equal(stepLoss.length, 3);
    for (const s of [0, 1, 2]) {
      const losses = computeLosses(model, loadAdapter(path.join(out, `checkpoint-${s}`), cfg), seqs, { mask: 'response' });
      const m = meanOf(losses);
      assert.ok(Math.abs(m - stepLoss[s]) < 1e-5 * Math.max(1, m), `checkpoint-${s}: ${m} vs in-training ${stepLoss[s]}`);
    }
  });

  it('writes an HF trainer_state.json (atomically, also per checkpoint) and maps checkpoints to learning rates', () => {
    const out = path.join(dirs.make(), 'run');
    // 6 examples, batch 2: 3 steps per epoch; linear decay over 6 steps from 0.06: 0.06, 0.05, ..., 0.01.
    finetuneLora(model, initAdapter(cfg, loraConfig(), 4), seqs, { ...base, epochs: 2, batchSize: 2, lr: 0.06, schedule: 'linear', outDir: out });
    const state = readTrainerState(out);
    assert.equal(state.global_step, 6);
    assert.equal(state.max_steps, 6);
    assert.equal(state.num_train_epochs, 2);
    assert.equal(state.train_batch_size, 2);
    assert.equal(state.epoch, 2);
    const steps = state.log_history.filter((e) => e.loss !== undefined);
    assert.deepEqual(
      steps.map((e) => e.step),
      [1, 2, 3, 4, 5, 6],
    );
    steps.forEach((e, k) => {
      assert.ok(Math.abs((e.learning_rate as number) - 0.01 * (6 - k)) < 1e-12);
      assert.ok(Math.abs(e.epoch - (k + 1) / 3) < 1e-12);
    });
    const summary = state.log_history[state.log_history.length - 1];
    assert.equal(typeof summary.train_loss, 'number');
    assert.deepEqual(
      state.checkpoints!.map((c) => [c.name, c.step, c.epoch]),
      [
        ['checkpoint-0', 0, 0],
        ['checkpoint-3', 3, 1],
        ['checkpoint-6', 6, 2],
      ],
    );
    const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);
    [0.05, 0.05, 0.02].forEach((v, k) => close(state.checkpoints![k].learning_rate, v));
    checkpointLearningRates(out).forEach((c, k) => close(c.learningRate, [0.05, 0.05, 0.02][k]));
    checkpointLearningRates(out, { rule: 'starting' }).forEach((c, k) => close(c.learningRate, [0.05, 0.02, 0.02][k]));
    // Each checkpoint carries the state so far, like HF's.
    assert.equal(readTrainerState(path.join(out, 'checkpoint-3')).global_step, 3);
    assert.equal(readTrainerState(path.join(out, 'checkpoint-0')).global_step, 0);
    assert.deepEqual(
      fs.readdirSync(out).filter((f) => f.includes('tmp')),
      [],
      'no temp files left',
    );
  });

  it('reads a plain HF run: state only inside the last checkpoint, sparse logging', () => {
    const out = dirs.make();
    const adapter = initAdapter(cfg, loraConfig(), 1);
    for (const s of [4, 6, 8]) saveAdapter(path.join(out, `checkpoint-${s}`), adapter);
    const hf = (globalStep: number, history: TrainerState['log_history']) => ({ global_step: globalStep, log_history: history, max_steps: 8 });
    // Logged every 2 steps; no checkpoint has an entry of tda-lab's own keys.
    const history = [2, 4, 6, 8].map((step) => ({ step, epoch: step / 4, loss: 1, learning_rate: step / 100 }));
    writeJson(path.join(out, 'checkpoint-4', 'trainer_state.json'), hf(4, history.slice(0, 2)));
    writeJson(path.join(out, 'checkpoint-8', 'trainer_state.json'), hf(8, history));
    assert.equal(readTrainerState(out).global_step, 8, 'falls back to the last checkpoint');
    let lrs = checkpointLearningRates(out).map((c) => c.learningRate);
    [0.03, 0.06, 0.08].forEach((v, k) => assert.ok(Math.abs(lrs[k] - v) < 1e-12, `${lrs}`));
    // Logged every 4 steps: checkpoint-6's interval (4, 6] is empty, so it takes the next one.
    writeJson(path.join(out, 'checkpoint-8', 'trainer_state.json'), hf(8, [history[1], history[3]]));
    lrs = checkpointLearningRates(out).map((c) => c.learningRate);
    [0.04, 0.08, 0.08].forEach((v, k) => assert.ok(Math.abs(lrs[k] - v) < 1e-12, `${lrs}`));
    writeJson(path.join(out, 'checkpoint-8', 'trainer_state.json'), { global_step: 8, log_history: [{ step: 8, loss: 1 }] });
    throwsTda(() => checkpointLearningRates(out), 'log_history', 'learning_rate');
    writeJson(path.join(out, 'checkpoint-8', 'trainer_state.json'), { global_step: 8, log_history: {} });
    throwsTda(() => readTrainerState(out), 'log_history');
    throwsTda(() => readTrainerState(dirs.make()), 'trainer state not found');
    const file = path.join(out, 'state.json');
    writeTrainerState(file, hf(1, [{ step: 1, epoch: 1, loss: 0.5 }]) as unknown as TrainerState);
    assert.equal(readTrainerState(file).log_history[0].loss, 0.5);
  });

  it("saves Adam's moments with every checkpoint: zero at checkpoint-0, then Adam's recurrence over the full-batch gradients", async () => {
    const out = path.join(dirs.make(), 'run');
    const init = initAdapter(cfg, loraConfig(), 7);
    const [b1, b2] = [0.8, 0.95];
    // One batch of all 6 examples per epoch: step s's gradient is the mean gradient at checkpoint-(s-1).
    const opts: FinetuneOptions = { ...base, epochs: 2, lr: 0.03, schedule: 'linear', betas: [b1, b2], eps: 1e-6 };
    const { adapter, log } = finetuneLora(model, init, seqs, { ...opts, outDir: out });
    const unsaved = finetuneLora(model, init, seqs, opts).adapter;
    assert.deepEqual(flat(adapter), flat(unsaved), 'saving the optimizer state changes no weight');

    const states = [0, 1, 2].map((s) => readOptimizerState(path.join(out, `checkpoint-${s}`)));
    states.forEach((st, s) => {
      assert.equal(st.step, s);
      assert.deepEqual([st.beta1, st.beta2, st.eps], [b1, b2, 1e-6]);
      assert.equal(st.learningRate, log.checkpoints![s].learning_rate, 'the learning rate recorded for the checkpoint');
    });
    assert.ok(states[0].moments.every((t) => t.expAvg.every((x) => x === 0) && t.expAvgSq.every((x) => x === 0)), 'checkpoint-0: zero moments');

    // Independent replay: per-example gradients (computeLoraGradients) averaged, then m and v by hand in float64.
    const meanGradient = async (s: number) => {
      const g = await computeLoraGradients(model, loadAdapter(path.join(out, `checkpoint-${s}`), cfg), seqs, { mask: 'response', workers: 0 });
      return new Map(g.blocks.map((b) => [b.name, Array.from({ length: b.dim }, (_, j) => meanOf(Array.from({ length: g.n }, (_, i) => b.data[i * b.dim + j])))]));
    };
    const g0 = await meanGradient(0);
    const g1 = await meanGradient(1);
    const relErr = (got: ArrayLike<number>, want: number[]) => {
      let num = 0;
      let den = 0;
      want.forEach((w, j) => {
        num += (got[j] - w) ** 2;
        den += w * w;
      });
      // lora_A's gradient is exactly zero while B is (checkpoint-0): then the error is absolute.
      return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-20);
    };
    assert.equal(states[1].moments.length, 2 * init.modules.length);
    for (const t of states[2].moments) {
      const a = g0.get(t.key)!;
      const b = g1.get(t.key)!;
      assert.ok(a && b, t.key);
      const m1 = a.map((x) => (1 - b1) * x);
      const v1 = a.map((x) => (1 - b2) * x * x);
      const t1 = states[1].moments.find((x) => x.key === t.key)!;
      assert.ok(relErr(t1.expAvg, m1) < 1e-4, `${t.key} m at step 1: ${relErr(t1.expAvg, m1)}`);
      assert.ok(relErr(t1.expAvgSq, v1) < 1e-4, `${t.key} v at step 1`);
      const m2 = m1.map((m, j) => b1 * m + (1 - b1) * b[j]);
      const v2 = v1.map((v, j) => b2 * v + (1 - b2) * b[j] * b[j]);
      assert.ok(m2.some((x) => x !== 0), `${t.key}: nonzero by step 2`);
      assert.ok(relErr(t.expAvg, m2) < 1e-4, `${t.key} m at step 2: ${relErr(t.expAvg, m2)}`);
      assert.ok(relErr(t.expAvgSq, v2) < 1e-4, `${t.key} v at step 2`);
    }
  });

  it('is deterministic per seed, with and without LoRA dropout', () => {
    const init = initAdapter(cfg, loraConfig(0.3), 6);
    const opts: FinetuneOptions = { ...base, epochs: 2, batchSize: 4 };
    const a = finetuneLora(model, init, seqs, opts);
    const b = finetuneLora(model, init, seqs, opts);
    const c = finetuneLora(model, init, seqs, { ...opts, seed: 2 });
    const noDrop = finetuneLora(model, init, seqs, { ...opts, loraDropout: 0 });
    const noDrop2 = finetuneLora(model, init, seqs, { ...opts, loraDropout: 0 });
    assert.deepEqual(flat(a.adapter), flat(b.adapter));
    assert.deepEqual(
      a.log.log_history.map((e) => e.loss),
      b.log.log_history.map((e) => e.loss),
    );
    assert.notDeepEqual(flat(a.adapter), flat(c.adapter));
    assert.notDeepEqual(flat(a.adapter), flat(noDrop.adapter), 'dropout changes training');
    assert.deepEqual(flat(noDrop.adapter), flat(noDrop2.adapter));
    assert.equal(a.log.tda_lab!.lora_dropout, 0.3);
    assert.equal(a.adapter.config.loraDropout, 0.3, 'the adapter keeps its own config');
  });

  it("LoRA dropout: without masks it is the model's own forward; with masks it drops lora_A inputs; all-zero masks leave the base model", () => {
    const adapter = initAdapter(cfg, loraConfig(0.5), 7);
    const rng = new Rng(9);
    for (const m of adapter.modules) for (let i = 0; i < m.B.length; i++) m.B[i] = rng.normal() * 0.3;
    const batch = makeBatch(seqs.slice(0, 3), 'response');
    const c = model.batchConstants(batch);
    const lc = lossConstants(batch, cfg.vocabSize);
    const lora = loraStateFromAdapter(adapter);
    const drop = new LoraDropout(0.5, new Rng(1));
    try {
      const plain = download(() => exampleLosses(model, c, lc, lora));
      const viewed = download(() => exampleLosses(model, c, lc, drop.apply(lora)));
      assert.deepEqual(viewed, plain);
      drop.resample(batch.batchSize * batch.seqLen, adapter.modules);
      const dropped = download(() => exampleLosses(model, c, lc, drop.apply(lora)));
      assert.notDeepEqual(dropped, plain);
      const again = new LoraDropout(0.5, new Rng(1));
      again.resample(batch.batchSize * batch.seqLen, adapter.modules);
      assert.deepEqual(download(() => exampleLosses(model, c, lc, again.apply(lora))), dropped, 'seeded masks');
      again.clear();
      // The LoRA state itself never holds the masks.
      assert.deepEqual(download(() => exampleLosses(model, c, lc, lora)), plain);
      // Masks of zeros drop every lora_A input: the base model without LoRA, exactly.
      const rows = batch.batchSize * batch.seqLen;
      const zeros = new Map(adapter.modules.map((m) => [m.path, tf.zeros([rows, m.inFeatures]) as tf.Tensor2D]));
      const base = download(() => exampleLosses(model, c, lc));
      assert.deepEqual(download(() => exampleLosses(model, c, lc, { ...lora, inputMasks: zeros })), base);
      assert.notDeepEqual(base, plain);
      zeros.forEach((t) => t.dispose());
      // p = 0 draws no masks.
      const none = new LoraDropout(0, new Rng(1));
      none.resample(batch.batchSize * batch.seqLen, adapter.modules);
      assert.deepEqual(download(() => exampleLosses(model, c, lc, none.apply(lora))), plain);
      throwsTda(() => new LoraDropout(1, new Rng(1)), 'lora_dropout');
    } finally {
      drop.clear();
      disposeLoraState(lora);
      disposeBatchConstants(c);
      disposeLossConstants(lc);
    }
  });

  it('leaks no tensors (flat per step, nothing left after)', () => {
    const before = tf.memory().numTensors;
    const counts: number[] = [];
    finetuneLora(model, initAdapter(cfg, loraConfig(0.2), 8), seqs, {
      ...base,
      epochs: 2,
      batchSize: 2,
      onStep: () => counts.push(tf.memory().numTensors),
    });
    assert.ok(
      counts.slice(1).every((n) => n === counts[1]),
      `tensor counts ${counts}`,
    );
    assert.equal(tf.memory().numTensors, before);
  });

  it('output folder handling: refuses an old run unless overwrite; saveInitial false', () => {
    const out = path.join(dirs.make(), 'run');
    const init = initAdapter(cfg, loraConfig(), 2);
    finetuneLora(model, init, seqs, { ...base, epochs: 1, outDir: out, saveInitial: false });
    assert.deepEqual(
      listCheckpoints(out).map((c) => c.name),
      ['checkpoint-1'],
    );
    throwsTda(() => finetuneLora(model, init, seqs, { ...base, epochs: 1, outDir: out }), 'already holds a training run', 'overwrite');
    finetuneLora(model, init, seqs, { ...base, epochs: 2, outDir: out, overwrite: true });
    assert.deepEqual(
      listCheckpoints(out).map((c) => c.name),
      ['checkpoint-0', 'checkpoint-1', 'checkpoint-2'],
    );
  });

  it('refuses bad input', () => {
    const init = initAdapter(cfg, loraConfig(), 2);
    const other = initAdapter(llamaConfig({ hiddenSize: 16, intermediateSize: 32, numLayers: 2, numHeads: 4, numKvHeads: 2, vocabSize: 30 }), loraConfig(), 2);
    throwsTda(() => finetuneLora(model, other, seqs, base), 'model.layers.0.self_attn.q_proj', 'the model');
    throwsTda(() => finetuneLora(model, init, seqs, { ...base, epochs: 0 }), 'epochs');
    throwsTda(() => finetuneLora(model, init, [{ inputIds: [1, 2], promptLength: 2 }], base), 'sequences[0]');
    throwsTda(() => finetuneLora(model, init, seqs, { ...base, loraDropout: 1 }), 'lora_dropout');
    throwsTda(() => finetuneLora(model, init, seqs, { ...base, schedule: 'step' as 'linear' }), 'schedule');
  });
});

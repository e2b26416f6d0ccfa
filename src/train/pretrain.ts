/**
 * Pretraining a base model from scratch (every weight trained), for building small
 * worlds whose facts the base model knows before LoRA fine-tuning.
 *
 * - Data order: epochs of seeded random permutations (Rng(seed)), cut into batches of
 *   `batchSize` (the last batch of an epoch may be smaller, as with a PyTorch DataLoader
 *   with drop_last=False); training runs for exactly `steps` optimizer steps, crossing
 *   epoch boundaries as needed.
 * - Objective per step: the batch's per-example losses combined by `reduction` (default
 *   `example`: the mean of per-example mean token losses; see LossReduction).
 * - Optimizer: Adam (PyTorch defaults betas 0.9/0.999, eps 1e-8) with the scheduled
 *   learning rate. `weightDecay` > 0 makes it AdamW-style: decoupled decay
 *   w <- w - lr * weightDecay * w on the matrices only (embeddings, linear layers, LM
 *   head), never on norm weights or biases (the usual no-decay list in HF Trainer).
 * - Deterministic: the same model initialisation, data and options give bit-identical
 *   weights on the same backend.
 */
import * as tf from '@tensorflow/tfjs';
import { LabelMask, makeBatch, TokenSequence } from '../data/batch';
import { TdaError } from '../errors';
import { disposeBatchConstants, LlamaModel } from '../model/llama';
import { disposeLossConstants, exampleLosses, lossConstants } from '../model/loss';
import { Rng } from '../random';
import { trainableVariables } from '../model/trainableWeights';
import {
  AdamOptions,
  adamStep,
  checkLoss,
  checkLr,
  checkPositiveInt,
  checkSeed,
  checkSequences,
  createAdam,
  epochBatches,
  LossReduction,
  reductionWeights,
} from './common';
import { makeSchedule, ScheduleInput } from './schedule';

export interface PretrainOptions extends AdamOptions {
  /** Number of optimizer steps. */
  steps: number;
  batchSize: number;
  /** Peak learning rate (the schedule scales it). */
  lr: number;
  /** Default 'constant'. */
  schedule?: ScheduleInput;
  /** Decoupled (AdamW) weight decay on matrices; default 0. */
  weightDecay?: number;
  /** Seeds the data order. */
  seed: number;
  mask: LabelMask;
  reduction?: LossReduction;
  padId?: number;
  /** After each step: 1-based step number, that step's loss (before its update), its learning rate. */
  onStep?: (step: number, loss: number, lr: number) => void;
}

export interface TrainLog {
  /** loss[i]: objective of step i + 1, computed before that step's update. */
  loss: number[];
  /** lr[i]: learning rate step i + 1 used. */
  lr: number[];
  /** Fractional epochs completed at the end of each step (HF's `epoch` field). */
  epoch: number[];
}

export function pretrain(model: LlamaModel, sequences: TokenSequence[], opts: PretrainOptions): TrainLog {
  if (!model.trainable) throw new TdaError('pretrain needs a trainable model (createTrainableModel)', { field: 'model' });
  checkPositiveInt(opts.steps, 'steps');
  checkPositiveInt(opts.batchSize, 'batchSize');
  checkLr(opts.lr);
  checkSeed(opts.seed);
  const wd = opts.weightDecay ?? 0;
  if (!(Number.isFinite(wd) && wd >= 0)) throw new TdaError(`must be a finite non-negative number, got ${wd}`, { field: 'weightDecay' });
  const reduction = opts.reduction ?? 'example';
  reductionWeights([1], reduction); // validates the name
  checkSequences(sequences, model.config.vocabSize, opts.mask);

  const schedule = makeSchedule(opts.schedule ?? 'constant', opts.steps, opts.lr);
  const vars = trainableVariables(model);
  const matrices = vars.filter((v) => v.rank === 2);
  const opt = createAdam(opts.lr, opts);
  const rng = new Rng(opts.seed);
  const n = sequences.length;
  const stepsPerEpoch = Math.ceil(n / opts.batchSize);
  const log: TrainLog = { loss: [], lr: [], epoch: [] };
  let queue: number[][] = [];
  let epochsStarted = 0;
  try {
    for (let step = 0; step < opts.steps; step++) {
      if (queue.length === 0) {
        queue = epochBatches(n, opts.batchSize, rng);
        epochsStarted++;
      }
      const indices = queue.shift() as number[];
      const batch = makeBatch(
        indices.map((i) => sequences[i]),
        opts.mask,
        opts.padId ?? 0,
      );
      const lr = schedule(step);
      const c = model.batchConstants(batch);
      const lc = lossConstants(batch, model.config.vocabSize);
      const weights = tf.tensor1d(reductionWeights(batch.lossCounts, reduction));
      let loss: number;
      try {
        loss = adamStep(opt, vars, () => tf.sum(tf.mul(exampleLosses(model, c, lc), weights)) as tf.Scalar, lr, { vars: matrices, weightDecay: wd });
      } finally {
        disposeBatchConstants(c);
        disposeLossConstants(lc);
        weights.dispose();
      }
      checkLoss(loss, step + 1);
      log.loss.push(loss);
      log.lr.push(lr);
      log.epoch.push(epochsStarted - 1 + (stepsPerEpoch - queue.length) / stepsPerEpoch);
      opts.onStep?.(step + 1, loss, lr);
    }
  } finally {
    opt.dispose();
  }
  return log;
}

/**
 * LoRA fine-tuning of a frozen base model, saving a PEFT checkpoint after every epoch the
 * way an HF Trainer run with `save_strategy="epoch"` does, so attribution methods that
 * use several checkpoints (TracIn-CP, DDA's denoising) can read the run back.
 *
 * - Only the LoRA factors train (tf.Variables holding A^T and B^T); the base weights are
 *   never updated, even if the model was built in trainable mode.
 * - Data order: each epoch a seeded random permutation (an Rng seeded from `seed`), cut
 *   into batches of `batchSize`, the last one possibly smaller (DataLoader with
 *   drop_last=False). Steps per epoch = ceil(n / batchSize); the schedule spans
 *   epochs * that many steps.
 * - Objective: see LossReduction (default: mean of per-example mean response losses).
 * - Optimizer: Adam (PyTorch defaults) with the scheduled learning rate; optional
 *   decoupled weight decay on the LoRA factors.
 * - LoRA dropout (the adapter config's `lora_dropout`, or `loraDropout`) is applied to the
 *   input of lora_A during training only, with masks from a second seeded Rng stream.
 *   Attribution never uses dropout, so with dropout the logged training losses differ from
 *   the losses `computeLosses` gives for the same adapter.
 * - Checkpoints: `outDir/checkpoint-<global step>/` (HF naming: the optimizer step count
 *   when it was saved, so `checkpoint-0` is the initial adapter when `saveInitial`, and
 *   after epoch e it is `checkpoint-<e * stepsPerEpoch>`), each holding
 *   `adapter_config.json`, `adapter_model.safetensors`, the `trainer_state.json` so far and
 *   Adam's moments with the step, betas, eps and the checkpoint's learning rate
 *   (`optimizer_state.safetensors`, see model/optimizerState.ts; zero at checkpoint-0);
 *   `outDir/trainer_state.json` is rewritten (atomically) after every epoch.
 * - Deterministic: same inputs and seed, bit-identical adapters on the same backend.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { LabelMask, makeBatch, TokenSequence } from '../data/batch';
import { TdaError } from '../errors';
import { adapterKey, LoraAdapter, LoraModuleWeights, saveAdapter } from '../model/adapter';
import { disposeBatchConstants, LlamaModel } from '../model/llama';
import { LoraFactors, LoraState } from '../model/loraState';
import { disposeLossConstants, exampleLosses, lossConstants } from '../model/loss';
import { linearShape } from '../model/modules';
import { OptimizerState, TensorMoments, writeOptimizerState } from '../model/optimizerState';
import { Rng } from '../random';
import { download } from '../runtime/ops';
import {
  AdamOptions,
  adamSettings,
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
import { adamMoments } from './adamMoments';
import { LoraDropout } from './loraDropout';
import { makeSchedule, ScheduleInput } from './schedule';
import { TRAINER_STATE_FILE, TrainerCheckpointEntry, TrainerState, writeTrainerState } from './trainerState';

export interface EpochInfo {
  /** 1-based epoch just finished. */
  epoch: number;
  /** Global step at its end. */
  step: number;
  /** Mean of the epoch's step losses. */
  meanLoss: number;
  /** Mean learning rate over the epoch's steps. */
  meanLr: number;
  /** The adapter after this epoch (a copy; safe to keep). */
  adapter: LoraAdapter;
  /** Where it was saved, or null without outDir. */
  checkpointDir: string | null;
}

export interface FinetuneOptions extends AdamOptions {
  epochs: number;
  batchSize: number;
  /** Peak learning rate (the schedule scales it). */
  lr: number;
  /** Default 'constant'. */
  schedule?: ScheduleInput;
  /** Seeds the data order and the dropout masks. */
  seed: number;
  /** Default 'response'. */
  mask?: LabelMask;
  reduction?: LossReduction;
  padId?: number;
  /** Overrides the adapter config's lora_dropout (the saved configs keep the adapter's value). */
  loraDropout?: number;
  /** Decoupled (AdamW) weight decay on the LoRA factors; default 0. */
  weightDecay?: number;
  /** Where checkpoints and trainer_state.json go; nothing is written without it. */
  outDir?: string;
  /** Save the initial adapter as checkpoint-0 (default true). */
  saveInitial?: boolean;
  /** Replace existing checkpoint-* folders and trainer_state.json in outDir (default false: refuse). */
  overwrite?: boolean;
  /** After each step: 1-based global step, its loss (before its update), its learning rate, the 1-based epoch. */
  onStep?: (step: number, loss: number, lr: number, epoch: number) => void;
  onEpoch?: (info: EpochInfo) => void;
}

export interface FinetuneResult {
  /** The adapter after the last epoch. */
  adapter: LoraAdapter;
  log: TrainerState;
}

const CHECKPOINT_RE = /^checkpoint-\d+$/;

export function finetuneLora(model: LlamaModel, adapter: LoraAdapter, sequences: TokenSequence[], opts: FinetuneOptions): FinetuneResult {
  checkPositiveInt(opts.epochs, 'epochs');
  checkPositiveInt(opts.batchSize, 'batchSize');
  checkLr(opts.lr);
  checkSeed(opts.seed);
  const mask = opts.mask ?? 'response';
  const reduction = opts.reduction ?? 'example';
  reductionWeights([1], reduction);
  const wd = opts.weightDecay ?? 0;
  if (!(Number.isFinite(wd) && wd >= 0)) throw new TdaError(`must be a finite non-negative number, got ${wd}`, { field: 'weightDecay' });
  const dropoutP = opts.loraDropout ?? adapter.config.loraDropout;
  checkAdapter(model, adapter);
  checkSequences(sequences, model.config.vocabSize, mask);

  const n = sequences.length;
  const stepsPerEpoch = Math.ceil(n / opts.batchSize);
  const totalSteps = opts.epochs * stepsPerEpoch;
  const schedule = makeSchedule(opts.schedule ?? 'constant', totalSteps, opts.lr);
  const seeder = new Rng(opts.seed);
  const orderRng = new Rng(seeder.nextUint32());
  const dropout = new LoraDropout(dropoutP, new Rng(seeder.nextUint32()));
  if (opts.outDir) prepareOutDir(opts.outDir, opts.overwrite ?? false);
  const started = Date.now();

  const state: TrainerState = {
    best_metric: null,
    best_model_checkpoint: null,
    epoch: 0,
    eval_steps: 500,
    global_step: 0,
    is_hyper_param_search: false,
    is_local_process_zero: true,
    is_world_process_zero: true,
    log_history: [],
    logging_steps: 1,
    max_steps: totalSteps,
    num_input_tokens_seen: 0,
    num_train_epochs: opts.epochs,
    save_steps: stepsPerEpoch,
    total_flos: 0,
    train_batch_size: opts.batchSize,
    trial_name: null,
    trial_params: null,
    checkpoints: [],
    tda_lab: {
      seed: opts.seed,
      mask,
      reduction,
      learning_rate: opts.lr,
      schedule: typeof opts.schedule === 'function' ? 'custom' : (opts.schedule ?? 'constant'),
      weight_decay: wd,
      lora_dropout: dropoutP,
      num_examples: n,
      steps_per_epoch: stepsPerEpoch,
    },
  };

  const vars: tf.Variable[] = [];
  const factors = new Map<string, LoraFactors>();
  const r = adapter.config.r;
  let opt: tf.AdamOptimizer | null = null;
  try {
    for (const m of adapter.modules) {
      const aT = ownedVariable(tf.tidy(() => tf.transpose(tf.tensor2d(m.A, [r, m.inFeatures]))));
      vars.push(aT);
      const bT = ownedVariable(tf.tidy(() => tf.transpose(tf.tensor2d(m.B, [m.outFeatures, r]))));
      vars.push(bT);
      factors.set(m.path, { aT, bT });
    }
    const lora: LoraState = { scaling: adapter.config.scaling, perExample: false, factors };
    opt = createAdam(opts.lr, opts);
    const snapshot = (): LoraAdapter => ({
      config: { ...adapter.config },
      modules: adapter.modules.map((m, i) => ({
        ...m,
        A: download(() => tf.transpose(vars[2 * i])),
        B: download(() => tf.transpose(vars[2 * i + 1])),
      })),
    });
    // Adam's moments in the PEFT layout: the variables hold A^T and B^T, so each is transposed back.
    const optimizerState = (step: number, lr: number): OptimizerState => {
      const moments = adapter.modules.flatMap((m, i): TensorMoments[] =>
        (['A', 'B'] as const).map((which, j) => {
          const shape = which === 'A' ? [r, m.inFeatures] : [m.outFeatures, r];
          const slot = adamMoments(opt!, 2 * i + j);
          const size = shape[0] * shape[1];
          return {
            key: adapterKey(m.path, which),
            shape,
            expAvg: slot ? download(() => tf.transpose(slot.m)) : new Float32Array(size),
            expAvgSq: slot ? download(() => tf.transpose(slot.v)) : new Float32Array(size),
          };
        }),
      );
      return { step, ...adamSettings(opts), learningRate: lr, moments };
    };
    const saveCheckpoint = (a: LoraAdapter, step: number, epoch: number, lr: number): string | null => {
      if (!opts.outDir) return null;
      const name = `checkpoint-${step}`;
      const dir = path.join(opts.outDir, name);
      saveAdapter(dir, a);
      writeOptimizerState(dir, optimizerState(step, lr));
      const entry: TrainerCheckpointEntry = { name, step, epoch, learning_rate: lr };
      state.checkpoints!.push(entry);
      return dir;
    };
    const writeStates = (checkpointDir: string | null) => {
      if (!opts.outDir) return;
      if (checkpointDir) writeTrainerState(path.join(checkpointDir, TRAINER_STATE_FILE), state);
      writeTrainerState(path.join(opts.outDir, TRAINER_STATE_FILE), state);
    };

    if (opts.outDir && (opts.saveInitial ?? true)) {
      // No epoch ended at the initial checkpoint: it takes the first epoch's mean learning
      // rate, known in advance since the schedule is a function of the step.
      const firstEpochLr = mean(Array.from({ length: stepsPerEpoch }, (_, k) => schedule(k)));
      writeStates(saveCheckpoint(adapter, 0, 0, firstEpochLr));
    }

    let step = 0;
    let current = adapter;
    for (let epoch = 1; epoch <= opts.epochs; epoch++) {
      const losses: number[] = [];
      const lrs: number[] = [];
      for (const indices of epochBatches(n, opts.batchSize, orderRng)) {
        const batch = makeBatch(
          indices.map((i) => sequences[i]),
          mask,
          opts.padId ?? 0,
        );
        const lr = schedule(step);
        const c = model.batchConstants(batch);
        const lc = lossConstants(batch, model.config.vocabSize);
        const weights = tf.tensor1d(reductionWeights(batch.lossCounts, reduction));
        let loss: number;
        try {
          dropout.resample(batch.batchSize * batch.seqLen, adapter.modules);
          const objective = () => tf.sum(tf.mul(exampleLosses(model, c, lc, dropout.apply(lora)), weights)) as tf.Scalar;
          loss = adamStep(opt, vars, objective, lr, { vars, weightDecay: wd });
        } finally {
          dropout.clear();
          disposeBatchConstants(c);
          disposeLossConstants(lc);
          weights.dispose();
        }
        step++;
        checkLoss(loss, step);
        losses.push(loss);
        lrs.push(lr);
        state.log_history.push({ epoch: step / stepsPerEpoch, learning_rate: lr, loss, step });
        state.global_step = step;
        state.epoch = step / stepsPerEpoch;
        opts.onStep?.(step, loss, lr, epoch);
      }
      const meanLoss = mean(losses);
      const meanLr = mean(lrs);
      current = snapshot();
      const checkpointDir = saveCheckpoint(current, step, epoch, meanLr);
      if (epoch === opts.epochs) {
        const seconds = (Date.now() - started) / 1000;
        state.log_history.push({
          epoch: opts.epochs,
          step,
          total_flos: 0,
          train_loss: mean(state.log_history.filter((e) => typeof e.loss === 'number').map((e) => e.loss as number)),
          train_runtime: seconds,
          train_samples_per_second: seconds > 0 ? (n * opts.epochs) / seconds : 0,
          train_steps_per_second: seconds > 0 ? step / seconds : 0,
        });
      }
      writeStates(checkpointDir);
      opts.onEpoch?.({ epoch, step, meanLoss, meanLr, adapter: current, checkpointDir });
    }
    const lastDir = opts.outDir ? path.join(opts.outDir, `checkpoint-${step}`) : undefined;
    return { adapter: { ...current, dir: lastDir }, log: state };
  } finally {
    opt?.dispose();
    dropout.clear();
    tf.dispose(vars);
  }
}

/** A variable made from `t`, which is then disposed (tf.variable shares t's data and does not take ownership). */
function ownedVariable(t: tf.Tensor): tf.Variable {
  try {
    return tf.variable(t, true);
  } finally {
    t.dispose();
  }
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** The adapter's modules must fit the model (same shapes as loadAdapter would check). */
function checkAdapter(model: LlamaModel, adapter: LoraAdapter): void {
  if (!adapter.modules.length) throw new TdaError('the adapter has no LoRA modules', { field: 'adapter' });
  const r = adapter.config.r;
  const seen = new Set<string>();
  adapter.modules.forEach((m: LoraModuleWeights) => {
    if (seen.has(m.path)) throw new TdaError('module appears twice in the adapter', { field: m.path });
    seen.add(m.path);
    if (m.layer >= model.config.numLayers) throw new TdaError(`layer ${m.layer} does not exist in the model`, { field: m.path });
    const { inFeatures, outFeatures } = linearShape(model.config, m.module);
    if (m.inFeatures !== inFeatures || m.outFeatures !== outFeatures) {
      throw new TdaError(`adapter module is ${m.outFeatures}x${m.inFeatures}, the model's layer is ${outFeatures}x${inFeatures}`, { field: m.path });
    }
    if (m.A.length !== r * inFeatures || m.B.length !== outFeatures * r) {
      throw new TdaError(`factor sizes do not match r=${r} (A ${m.A.length}, B ${m.B.length} values)`, { field: m.path });
    }
  });
}

/** Checkpoints of an older run mixed with this one's would corrupt multi-checkpoint scores. */
function prepareOutDir(dir: string, overwrite: boolean): void {
  fs.mkdirSync(dir, { recursive: true });
  const stale = fs.readdirSync(dir).filter((e) => CHECKPOINT_RE.test(e) || e === TRAINER_STATE_FILE);
  if (!stale.length) return;
  if (!overwrite) {
    throw new TdaError(`output directory already holds a training run (${stale.slice(0, 3).join(', ')}); pass overwrite: true to replace it`, {
      file: dir,
    });
  }
  for (const e of stale) fs.rmSync(path.join(dir, e), { recursive: true, force: true });
}

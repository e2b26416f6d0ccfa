/**
 * `trainer_state.json` in the Hugging Face Trainer format, and the learning rate in
 * effect around each checkpoint (the weight TracIn-CP gives it).
 *
 * HF fields written: `log_history` (one entry per step: `loss`, `learning_rate`, `epoch`,
 * `step`; then a summary entry with `train_loss`), `global_step`, `max_steps`, `epoch`,
 * `num_train_epochs`, `train_batch_size`, `logging_steps`, `save_steps`, ... Two
 * differences from HF to know about: HF logs the learning rate *after* the scheduler step
 * (the rate of the next step), tda-lab logs the rate the step actually used; and
 * tda-lab adds `checkpoints` (one entry per saved checkpoint with its step, epoch and the
 * mean learning rate of the epoch that ended at it) and `tda_lab` (the run's settings).
 * Both readers below accept real HF files, which lack those two keys.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TdaError } from '../errors';
import { writeFileAtomic, writeFully } from '../io/fsutil';
import { isDir, isObject, readJsonFile } from '../model/config';
import { listCheckpoints } from '../model/checkpoints';

export const TRAINER_STATE_FILE = 'trainer_state.json';

export interface TrainerLogEntry {
  step: number;
  epoch: number;
  loss?: number;
  learning_rate?: number;
  [key: string]: unknown;
}

export interface TrainerCheckpointEntry {
  /** Folder name, `checkpoint-<step>`. */
  name: string;
  step: number;
  epoch: number;
  /** Mean learning rate over the epoch that ended at this checkpoint; for the initial checkpoint (step 0), that of the first epoch. */
  learning_rate: number;
}

export interface TrainerState {
  best_metric: number | null;
  best_model_checkpoint: string | null;
  epoch: number;
  eval_steps: number;
  global_step: number;
  is_hyper_param_search: boolean;
  is_local_process_zero: boolean;
  is_world_process_zero: boolean;
  log_history: TrainerLogEntry[];
  logging_steps: number;
  max_steps: number;
  num_input_tokens_seen: number;
  num_train_epochs: number;
  save_steps: number;
  total_flos: number;
  train_batch_size: number;
  trial_name: string | null;
  trial_params: Record<string, unknown> | null;
  /** tda-lab extension (absent in HF files). */
  checkpoints?: TrainerCheckpointEntry[];
  /** tda-lab extension: the run's settings (absent in HF files). */
  tda_lab?: Record<string, unknown>;
  [key: string]: unknown;
}

/** Writes `file` atomically (temp file + rename), pretty-printed like HF (indent 2). */
export function writeTrainerState(file: string, state: TrainerState): void {
  const text = JSON.stringify(state, null, 2) + '\n';
  writeFileAtomic(file, (fd) => writeFully(fd, Buffer.from(text, 'utf8')));
}

/**
 * Reads `<dir>/trainer_state.json`. If `dir` has none (HF only writes it at the top level
 * when asked), the one in its last `checkpoint-*` folder is used. `dir` may also be the
 * file itself.
 */
export function readTrainerState(dir: string): TrainerState {
  let file = isDir(dir) ? path.join(dir, TRAINER_STATE_FILE) : dir;
  if (isDir(dir) && !fs.existsSync(file)) {
    let cps: ReturnType<typeof listCheckpoints> = [];
    try {
      cps = listCheckpoints(dir);
    } catch {
      /* no checkpoints either: report the missing top-level file below */
    }
    const last = [...cps].reverse().find((c) => fs.existsSync(path.join(c.dir, TRAINER_STATE_FILE)));
    if (last) file = path.join(last.dir, TRAINER_STATE_FILE);
  }
  if (!fs.existsSync(file)) throw new TdaError('trainer state not found (expected an HF Trainer trainer_state.json)', { file });
  const json = readJsonFile(file);
  if (!isObject(json)) throw new TdaError('trainer state must be a JSON object', { file });
  if (!Array.isArray(json.log_history)) throw new TdaError('must be a list of log entries', { file, field: 'log_history' });
  json.log_history.forEach((e: unknown, i: number) => {
    // JSON numbers like 1e999 parse to Infinity: refuse them here, not as an infinite TracIn weight later.
    if (!isObject(e) || typeof e.step !== 'number' || !Number.isFinite(e.step)) throw new TdaError('each entry needs a numeric step', { file, field: `log_history[${i}]` });
    if (e.learning_rate !== undefined && (typeof e.learning_rate !== 'number' || !Number.isFinite(e.learning_rate))) {
      throw new TdaError('learning_rate must be a finite number', { file, field: `log_history[${i}].learning_rate` });
    }
  });
  if (typeof json.global_step !== 'number') throw new TdaError('must be a number', { file, field: 'global_step' });
  return json as unknown as TrainerState;
}

export interface CheckpointLearningRate {
  name: string;
  dir: string;
  step: number;
  learningRate: number;
}

/**
 * The learning rate to weight each `checkpoint-*` folder of `dir` by in TracIn-CP: the
 * mean of the logged learning rates over the training interval the checkpoint stands for.
 *
 * - `ending` (default): the steps since the previous checkpoint, i.e. the epoch that ended
 *   at it; a checkpoint at step 0 (the initial adapter) has no such interval and takes the
 *   first interval after it.
 * - `starting`: the steps until the next checkpoint; the last checkpoint takes the
 *   interval that ended at it.
 *
 * When an interval holds no logged learning rate (sparse HF logging), the logged rate
 * nearest in step is used. Errors if the log has no learning rates at all.
 */
export function checkpointLearningRates(dir: string, opts: { rule?: 'ending' | 'starting' } = {}): CheckpointLearningRate[] {
  const rule = opts.rule ?? 'ending';
  if (rule !== 'ending' && rule !== 'starting') throw new TdaError(`unknown rule '${rule}' (use ending or starting)`, { field: 'rule' });
  const cps = listCheckpoints(dir);
  const state = readTrainerState(dir);
  const logged = state.log_history.filter((e): e is TrainerLogEntry & { learning_rate: number } => typeof e.learning_rate === 'number');
  if (!logged.length) throw new TdaError('log_history has no learning_rate entries', { file: dir, field: 'log_history' });
  const meanIn = (lo: number, hi: number): number | null => {
    const xs = logged.filter((e) => e.step > lo && e.step <= hi).map((e) => e.learning_rate);
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
  };
  const nearest = (step: number): number =>
    logged.reduce((best, e) => (Math.abs(e.step - step) < Math.abs(best.step - step) ? e : best)).learning_rate;
  return cps.map((c, k) => {
    const before = k > 0 ? meanIn(cps[k - 1].step, c.step) : meanIn(0, c.step);
    const after = k + 1 < cps.length ? meanIn(c.step, cps[k + 1].step) : meanIn(c.step, Infinity);
    const lr = (rule === 'ending' ? (before ?? after) : (after ?? before)) ?? nearest(c.step);
    // Finite rates near the largest double can still sum to Infinity.
    if (!Number.isFinite(lr)) throw new TdaError(`learning rates around ${c.name} average to ${lr}`, { file: dir, field: 'log_history' });
    return { name: c.name, dir: c.dir, step: c.step, learningRate: lr };
  });
}

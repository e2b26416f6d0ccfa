/**
 * Pieces shared by pretraining and LoRA fine-tuning: seeded epoch shuffles, the Adam
 * optimizer with a learning rate that can change between steps, and option checks.
 */
import * as tf from '@tensorflow/tfjs';
import { LabelMask, TokenSequence } from '../data/batch';
import { TdaError } from '../errors';
import { Rng } from '../random';

/** A uniformly random permutation of 0..n-1 (Fisher-Yates). */
export function permutation(n: number, rng: Rng): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/**
 * One epoch's batches, PyTorch DataLoader style (shuffle=True, drop_last=False): a fresh
 * permutation cut into chunks of `batchSize`, the last one possibly smaller.
 */
export function epochBatches(n: number, batchSize: number, rng: Rng): number[][] {
  const p = permutation(n, rng);
  const out: number[][] = [];
  for (let s = 0; s < n; s += batchSize) out.push(p.slice(s, s + batchSize));
  return out;
}

export interface AdamOptions {
  /** Default [0.9, 0.999] (PyTorch). */
  betas?: [number, number];
  /** Default 1e-8 (PyTorch); tfjs would otherwise use the backend epsilon (1e-7). */
  eps?: number;
}

/** The Adam settings in effect: the given ones, else PyTorch's defaults. */
export function adamSettings(opts: AdamOptions = {}): { beta1: number; beta2: number; eps: number } {
  const [beta1, beta2] = opts.betas ?? [0.9, 0.999];
  return { beta1, beta2, eps: opts.eps ?? 1e-8 };
}

/** tfjs Adam with PyTorch's defaults. Update: w -= lr * m_hat / (sqrt(v_hat) + eps). */
export function createAdam(lr: number, opts: AdamOptions = {}): tf.AdamOptimizer {
  const { beta1: b1, beta2: b2, eps } = adamSettings(opts);
  for (const [name, b] of [
    ['betas[0]', b1],
    ['betas[1]', b2],
  ] as const) {
    if (!(b >= 0 && b < 1)) throw new TdaError(`must be in [0, 1), got ${b}`, { field: name });
  }
  if (!(eps > 0)) throw new TdaError(`must be positive, got ${eps}`, { field: 'eps' });
  return tf.train.adam(lr, b1, b2, eps);
}

/**
 * Sets the learning rate the next `applyGradients` uses. tfjs 4.22's AdamOptimizer reads
 * its (protected) `learningRate` field on every step, so assigning it is enough; the test
 * suite checks this, since it relies on a tfjs internal.
 */
export function setLearningRate(opt: tf.Optimizer, lr: number): void {
  const o = opt as unknown as { learningRate?: unknown };
  if (typeof o.learningRate !== 'number') {
    throw new TdaError('this optimizer has no numeric learningRate field (tfjs internals changed?)', { field: 'learningRate' });
  }
  o.learningRate = lr;
}

export function learningRateOf(opt: tf.Optimizer): number {
  return (opt as unknown as { learningRate: number }).learningRate;
}

export function checkPositiveInt(v: number, field: string): void {
  if (!Number.isInteger(v) || v < 1) throw new TdaError(`must be a positive integer, got ${v}`, { field });
}

export function checkSeed(v: number): void {
  if (!Number.isSafeInteger(v)) throw new TdaError(`must be an integer, got ${v}`, { field: 'seed' });
}

export function checkLr(v: number): void {
  if (!Number.isFinite(v) || v < 0) throw new TdaError(`must be a finite non-negative number, got ${v}`, { field: 'lr' });
}

/** Throws if a training loss is NaN or infinite, naming the step. */
export function checkLoss(loss: number, step: number): void {
  if (!Number.isFinite(loss)) {
    throw new TdaError(`training loss is ${loss} at step ${step} (learning rate too high?)`, { field: 'loss' });
  }
}

/**
 * How a batch's per-example losses become the training objective.
 * `example` (default): the mean over examples of each example's mean token loss, the same
 * per-example loss attribution differentiates. `token`: the mean over every counted token
 * of the batch (what HF's causal-LM loss computes), so long responses weigh more.
 */
export type LossReduction = 'example' | 'token';

/** Weights w_b with objective = sum_b w_b * loss_b. */
export function reductionWeights(lossCounts: number[], reduction: LossReduction): Float32Array {
  if (reduction !== 'example' && reduction !== 'token') {
    throw new TdaError(`unknown loss reduction '${reduction}' (use example or token)`, { field: 'reduction' });
  }
  const B = lossCounts.length;
  if (reduction === 'example') return new Float32Array(B).fill(1 / B);
  const total = lossCounts.reduce((a, b) => a + b, 0);
  return Float32Array.from(lossCounts, (c) => c / total);
}

/** Every sequence must have valid token ids and at least one token its label mask counts. */
export function checkSequences(sequences: TokenSequence[], vocabSize: number, mask: LabelMask): void {
  if (sequences.length === 0) throw new TdaError('no training sequences', { field: 'sequences' });
  if (mask !== 'response' && mask !== 'full') throw new TdaError(`unknown label mask '${mask}' (use response or full)`, { field: 'mask' });
  sequences.forEach((s, i) => {
    const j = s.inputIds.findIndex((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
    if (j >= 0) {
      throw new TdaError(`token id ${s.inputIds[j]} at position ${j} is outside the vocabulary (vocab_size ${vocabSize})`, { field: `sequences[${i}]` });
    }
    const first = mask === 'response' ? Math.max(s.promptLength, 1) : 1;
    if (first >= s.inputIds.length) {
      throw new TdaError(`has no tokens to train on under the '${mask}' mask (length ${s.inputIds.length}, prompt length ${s.promptLength})`, {
        field: `sequences[${i}]`,
      });
    }
  });
}

/**
 * One optimizer step: gradients of `objective` with respect to `vars`, optional decoupled
 * weight decay (AdamW: w <- w - lr * wd * w on `decayVars`, applied after the gradients
 * are taken and before the Adam update, as torch.optim.AdamW does), then the Adam update
 * at learning rate `lr`. Returns the objective's value (before the update).
 */
export function adamStep(
  opt: tf.Optimizer,
  vars: tf.Variable[],
  objective: () => tf.Scalar,
  lr: number,
  decay?: { vars: tf.Variable[]; weightDecay: number },
): number {
  setLearningRate(opt, lr);
  const { value, grads } = opt.computeGradients(objective, vars);
  try {
    if (decay && decay.weightDecay > 0 && lr > 0) {
      const factor = 1 - lr * decay.weightDecay;
      tf.tidy(() => decay.vars.forEach((v) => v.assign(tf.mul(v, factor))));
    }
    // The array form keeps each variable at its index even if one got no gradient, so
    // Adam's moment slots (kept by position) never shift between steps.
    opt.applyGradients(vars.map((v) => ({ name: v.name, tensor: grads[v.name] })));
  } finally {
    tf.dispose(grads);
  }
  try {
    return value.dataSync()[0];
  } finally {
    value.dispose();
  }
}

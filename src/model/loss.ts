/**
 * Per-example language-model loss: for each example, the mean next-token cross-entropy
 * over the positions its label mask counts (see data/batch.ts). Padding never counts.
 *
 * Two forms of the same quantity share one bookkeeping (LossRows):
 * - `batchLosses`, the fused cross-entropy (runtime/ops.ts crossEntropyRows: no exp/log per
 *   vocabulary entry on wasm, no one-hot targets), for gradients and evaluation;
 * - `exampleLosses`, log-softmax times one-hot targets, which the trainers use: their runs
 *   (and the embedded model) reproduce bit for bit with it.
 */
import * as tf from '@tensorflow/tfjs';
import { LabelMask, makeBatch, TokenBatch, TokenSequence } from '../data/batch';
import { crossEntropyRows, download, gatherRows, headCrossEntropyRows, oneHotFloat } from '../runtime/ops';
import type { LoraAdapter } from './adapter';
import { checkBatchFits } from './memoryBudget';
import { BatchConstants, disposeBatchConstants, LlamaModel } from './llama';
import { disposeLoraState, LoraState, loraStateFromAdapter } from './loraState';

/** The positions whose loss counts; constant tensors made outside differentiated code. */
export interface LossRows {
  /** Row of each counted position in the [B*T] hidden states. */
  rows: tf.Tensor1D;
  /** Next-token label of each counted position. */
  labels: Int32Array;
  /** [B, n]: 1 / count_b where position i belongs to example b, else 0. */
  average: tf.Tensor2D;
}

export function lossRows(batch: TokenBatch): LossRows {
  const n = batch.lossRows.length;
  const average = new Float32Array(batch.batchSize * n);
  for (let i = 0; i < n; i++) {
    const b = batch.lossExample[i];
    average[b * n + i] = 1 / batch.lossCounts[b];
  }
  return { rows: tf.tensor1d(batch.lossRows, 'int32'), labels: batch.lossLabels, average: tf.tensor2d(average, [batch.batchSize, n]) };
}

export function disposeLossRows(lr: LossRows): void {
  lr.rows.dispose();
  lr.average.dispose();
}

/**
 * Loss of every example in the batch, [B], with the fused cross-entropy. Only counted
 * positions reach the LM head. `forGradients`: the loss will be differentiated with respect
 * to the hidden states (LoRA factors), not the LM head, so the head goes through
 * headCrossEntropyRows (logits a block of rows at a time).
 */
export function batchLosses(model: LlamaModel, c: BatchConstants, lr: LossRows, lora?: LoraState, forGradients = false): tf.Tensor1D {
  const hidden = gatherRows(model.hidden(c, lora), lr.rows);
  const rowLoss = forGradients ? headCrossEntropyRows(hidden, model.weights.lmHead, lr.labels) : crossEntropyRows(model.logits(hidden), lr.labels);
  return tf.reshape(tf.matMul(lr.average, tf.reshape(rowLoss, [-1, 1])), [-1]) as tf.Tensor1D;
}

export interface LossOptions {
  mask?: LabelMask;
  batchSize?: number;
  padId?: number;
}

/** Per-example losses (no gradients), [n], with an optional adapter. */
export function computeLosses(model: LlamaModel, adapter: LoraAdapter | null, examples: TokenSequence[], opts: LossOptions = {}): Float32Array {
  const out = new Float32Array(examples.length);
  const batchSize = Math.max(1, opts.batchSize ?? 8);
  const shared = adapter ? loraStateFromAdapter(adapter) : undefined;
  try {
    for (let start = 0; start < examples.length; start += batchSize) {
      const batch = makeBatch(examples.slice(start, start + batchSize), opts.mask ?? 'response', opts.padId ?? 0);
      checkBatchFits(model.config, batch.batchSize, batch.seqLen, true);
      const c = model.batchConstants(batch);
      const lr = lossRows(batch);
      try {
        out.set(download(() => batchLosses(model, c, lr, shared)), start);
      } finally {
        disposeBatchConstants(c);
        disposeLossRows(lr);
      }
    }
  } finally {
    if (shared) disposeLoraState(shared);
  }
  return out;
}

/** LossRows plus the [n, vocab] one-hot targets `exampleLosses` multiplies by. */
export interface LossConstants extends LossRows {
  targets: tf.Tensor2D;
}

export function lossConstants(batch: TokenBatch, vocabSize: number): LossConstants {
  return { ...lossRows(batch), targets: tf.tidy(() => oneHotFloat(tf.tensor1d(batch.lossLabels, 'int32'), vocabSize)) };
}

export function disposeLossConstants(lc: LossConstants): void {
  disposeLossRows(lc);
  lc.targets.dispose();
}

/** Loss of every example in the batch, [B]. Only the counted positions reach the LM head. */
export function exampleLosses(model: LlamaModel, c: BatchConstants, lc: LossConstants, lora?: LoraState): tf.Tensor1D {
  const hidden = model.hidden(c, lora);
  const logits = model.logits(gatherRows(hidden, lc.rows));
  const tokenLogProb = tf.sum(tf.mul(tf.logSoftmax(logits), lc.targets), 1);
  return tf.neg(tf.reshape(tf.matMul(lc.average, tf.reshape(tokenLogProb, [-1, 1])), [-1])) as tf.Tensor1D;
}

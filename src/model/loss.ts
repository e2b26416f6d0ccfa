/**
 * Per-example language-model loss: for each example, the mean next-token cross-entropy
 * over the positions its label mask counts (see data/batch.ts). Padding never counts.
 */
import * as tf from '@tensorflow/tfjs';
import { TokenBatch } from '../data/batch';
import { gatherRows, oneHotFloat } from '../runtime/ops';
import { BatchConstants, LlamaModel } from './llama';
import { LoraState } from './loraState';

/** Constant tensors describing which positions count; made outside differentiated code. */
export interface LossConstants {
  rows: tf.Tensor1D;
  /** [n, vocab] one-hot targets. */
  targets: tf.Tensor2D;
  /** [B, n]: 1 / count_b where position i belongs to example b, else 0. */
  average: tf.Tensor2D;
}

export function lossConstants(batch: TokenBatch, vocabSize: number): LossConstants {
  const n = batch.lossRows.length;
  const average = new Float32Array(batch.batchSize * n);
  for (let i = 0; i < n; i++) {
    const b = batch.lossExample[i];
    average[b * n + i] = 1 / batch.lossCounts[b];
  }
  return {
    rows: tf.tensor1d(batch.lossRows, 'int32'),
    targets: tf.tidy(() => oneHotFloat(tf.tensor1d(batch.lossLabels, 'int32'), vocabSize)),
    average: tf.tensor2d(average, [batch.batchSize, n]),
  };
}

export function disposeLossConstants(lc: LossConstants): void {
  lc.rows.dispose();
  lc.targets.dispose();
  lc.average.dispose();
}

/** Loss of every example in the batch, [B]. Only the counted positions reach the LM head. */
export function exampleLosses(model: LlamaModel, c: BatchConstants, lc: LossConstants, lora?: LoraState): tf.Tensor1D {
  const hidden = model.hidden(c, lora);
  const logits = model.logits(gatherRows(hidden, lc.rows));
  const tokenLogProb = tf.sum(tf.mul(tf.logSoftmax(logits), lc.targets), 1);
  return tf.neg(tf.reshape(tf.matMul(lc.average, tf.reshape(tokenLogProb, [-1, 1])), [-1])) as tf.Tensor1D;
}

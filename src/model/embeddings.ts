/**
 * Per-example representations: the model's final (post-norm) hidden states pooled to one
 * vector per example. They feed representation similarity (RepSim) and data density (LMD3).
 *
 * `last-prompt`: the hidden state at the last prompt token (position promptLength - 1), the
 *   one that predicts the response; what the IF-on-LLMs code embeds. By causality it is the
 *   prompt's own representation, whatever the response.
 * `last`: the hidden state at the last real token (the end of the response).
 * `mean`: the mean over the real tokens; right padding never enters the pool.
 */
import * as tf from '@tensorflow/tfjs';
import type { TokenBatch, TokenSequence } from '../data/batch';
import { TdaError } from '../errors';
import type { LoraAdapter } from './adapter';
import { disposeBatchConstants, LlamaModel } from './llama';
import { disposeLoraState, LoraState, loraStateFromAdapter } from './loraState';
import { download } from '../runtime/ops';

/** Per-example representations (hidden states) of n examples, [n, dim]. */
export interface EmbeddingSet {
  n: number;
  dim: number;
  data: Float32Array;
}

/** Shape and finiteness checks: a NaN would silently poison every score of its row or column. */
export function checkEmbeddingSet(e: EmbeddingSet, field: string, file?: string): void {
  if (!Number.isInteger(e.n) || e.n < 0 || !Number.isInteger(e.dim) || e.dim < 1) {
    throw new TdaError(`embedding set must have integer n >= 0 and dim >= 1, got n=${e.n}, dim=${e.dim}`, { file, field });
  }
  if (e.data.length !== e.n * e.dim) throw new TdaError(`embedding data has ${e.data.length} values, expected ${e.n} x ${e.dim}`, { file, field });
  const bad = e.data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new TdaError(`non-finite value ${e.data[bad]} in example ${Math.floor(bad / e.dim)}`, { file, field });
}

export const POOLINGS = ['last-prompt', 'last', 'mean'] as const;

export type Pooling = (typeof POOLINGS)[number];

export interface EmbeddingOptions {
  /** Default `last`. */
  pool?: Pooling;
  /** Examples per forward pass (default 8). Results do not depend on it. */
  batchSize?: number;
  /** Token used for right padding (default 0); it is masked out of attention and pooling. */
  padId?: number;
}

/** Pooled final hidden states of every example, [n, hidden], with the adapter applied if given. */
export function computeEmbeddings(
  model: LlamaModel,
  adapter: LoraAdapter | null,
  examples: TokenSequence[],
  opts: EmbeddingOptions = {},
): EmbeddingSet {
  const pool = opts.pool ?? 'last';
  if (!POOLINGS.includes(pool)) throw new TdaError(`unknown pooling '${String(pool)}' (use ${POOLINGS.join(', ')})`, { field: 'pool' });
  const batchSize = opts.batchSize ?? 8;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new TdaError(`must be a positive integer, got ${batchSize}`, { field: 'batchSize' });
  const padId = opts.padId ?? 0;
  const vocab = model.config.vocabSize;
  if (!Number.isInteger(padId) || padId < 0 || padId >= vocab) throw new TdaError(`must be a token id in [0, ${vocab}), got ${padId}`, { field: 'padId' });
  examples.forEach((ex, i) => {
    if (ex.inputIds.length === 0) throw new TdaError(`example ${i} has no tokens`, { field: 'inputIds' });
    const j = ex.inputIds.findIndex((id) => !Number.isInteger(id) || id < 0 || id >= vocab);
    // An out-of-range id would silently gather garbage (or zeros) rather than fail.
    if (j >= 0) throw new TdaError(`example ${i}: token id ${ex.inputIds[j]} at position ${j} is outside the vocabulary (${vocab})`, { field: 'inputIds' });
    if (pool === 'last-prompt' && !(Number.isInteger(ex.promptLength) && ex.promptLength >= 1 && ex.promptLength <= ex.inputIds.length)) {
      throw new TdaError(`example ${i}: pooling last-prompt needs a prompt of 1 to ${ex.inputIds.length} tokens, got ${ex.promptLength}`, { field: 'promptLength' });
    }
  });

  const dim = model.config.hiddenSize;
  const out = new Float32Array(examples.length * dim);
  const lora = adapter ? loraStateFromAdapter(adapter) : undefined;
  try {
    for (let start = 0; start < examples.length; start += batchSize) {
      const chunk = examples.slice(start, start + batchSize);
      const positions = pool === 'last-prompt' ? chunk.map((ex) => ex.promptLength - 1) : null;
      out.set(pooledBatch(model, lora, paddedBatch(chunk, padId), pool, positions), start * dim);
    }
  } finally {
    if (lora) disposeLoraState(lora);
  }
  return { n: examples.length, dim, data: out };
}

/**
 * A right-padded batch without label bookkeeping. makeBatch is not used because it insists
 * on tokens to score under a loss mask; a representation needs none (a one-token example
 * is fine).
 */
function paddedBatch(sequences: TokenSequence[], padId: number): TokenBatch {
  const batchSize = sequences.length;
  const seqLen = Math.max(...sequences.map((s) => s.inputIds.length));
  const ids = new Int32Array(batchSize * seqLen).fill(padId);
  sequences.forEach((s, b) => ids.set(s.inputIds, b * seqLen));
  return {
    batchSize,
    seqLen,
    ids,
    lengths: sequences.map((s) => s.inputIds.length),
    lossRows: new Int32Array(0),
    lossLabels: new Int32Array(0),
    lossExample: new Int32Array(0),
    lossCounts: sequences.map(() => 0),
    mask: 'full',
  };
}

/**
 * One forward pass; pooling is a [B, B*T] weight matrix times the hidden states [B*T, H]
 * (one-hot rows for `last` and `last-prompt`, 1/len over real tokens for `mean`): a single
 * 2-D matmul, the fast path on wasm, and padding gets weight exactly 0.
 * `positions` gives each example's token for `last-prompt`.
 */
function pooledBatch(model: LlamaModel, lora: LoraState | undefined, batch: TokenBatch, pool: Pooling, positions: number[] | null): Float32Array {
  const { batchSize: B, seqLen: T } = batch;
  const weights = new Float32Array(B * B * T);
  batch.lengths.forEach((len, b) => {
    if (pool === 'mean') for (let t = 0; t < len; t++) weights[b * B * T + b * T + t] = 1 / len;
    else weights[b * B * T + b * T + (pool === 'last-prompt' ? positions![b] : len - 1)] = 1;
  });
  const c = model.batchConstants(batch);
  try {
    return download(() => tf.matMul(tf.tensor2d(weights, [B, B * T]), model.hidden(c, lora)));
  } finally {
    disposeBatchConstants(c);
  }
}

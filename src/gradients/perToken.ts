/**
 * Per-token LoRA gradients of one example: for each token its label mask counts, the
 * gradient of that token's loss term alone (its next-token cross-entropy, not divided by the
 * example's token count). The example's gradient is their mean, g = sum_t g_t / count, since
 * its loss is the mean over the counted tokens.
 *
 * The per-example trick applied to tokens: the example is repeated once per counted token in
 * a batch, each copy with its own LoRA factors and a loss that counts only its own token, so
 * one backward pass per batch of copies gives every token's gradient.
 */
import { LabelMask, makeBatch, TokenBatch, TokenSequence } from '../data/batch';
import { TdaError } from '../errors';
import { LoraAdapter } from '../model/adapter';
import { LlamaModel } from '../model/llama';
import { disposeLoraState, LoraState, loraStateFromAdapter } from '../model/loraState';
import { batchLoraGradients } from './compute';
import { ComputedGradients } from './types';

export interface TokenGradients {
  /** Index in the example's input ids of the token each row's loss term predicts. */
  positions: number[];
  /** Number of counted tokens: the example's loss (and gradient) is the mean over them. */
  count: number;
  /** One row per counted token, in position order; `losses` are the tokens' own losses. */
  gradients: ComputedGradients;
}

export interface TokenGradientOptions {
  mask?: LabelMask;
  padId?: number;
  /** Token copies per backward pass (default 8). */
  batchSize?: number;
}

/** Copies [from, to) of a one-example batch, copy k counting only the example's counted token from + k. */
function tokenCopies(one: TokenBatch, from: number, to: number): TokenBatch {
  const m = to - from;
  const ids = new Int32Array(m * one.seqLen);
  for (let k = 0; k < m; k++) ids.set(one.ids, k * one.seqLen);
  return {
    batchSize: m,
    seqLen: one.seqLen,
    ids,
    lengths: Array(m).fill(one.lengths[0]),
    lossRows: Int32Array.from({ length: m }, (_, k) => k * one.seqLen + one.lossRows[from + k]),
    lossLabels: one.lossLabels.slice(from, to),
    lossExample: Int32Array.from({ length: m }, (_, k) => k),
    // A count of 1 makes each copy's loss its token's loss term itself.
    lossCounts: Array(m).fill(1),
    mask: one.mask,
  };
}

/** Per-token gradients of one example with the adapter's current weights (or a LoRA state already made from them). */
export function computeTokenGradients(model: LlamaModel, lora: LoraAdapter | LoraState, example: TokenSequence, opts: TokenGradientOptions = {}): TokenGradients {
  const batchSize = opts.batchSize ?? 8;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new TdaError(`must be a whole number >= 1, got ${batchSize}`, { field: 'batchSize' });
  const one = makeBatch([example], opts.mask ?? 'response', opts.padId ?? 0);
  const count = one.lossCounts[0];
  const owned = 'modules' in lora ? loraStateFromAdapter(lora) : null;
  const shared = owned ?? (lora as LoraState);
  try {
    const parts: ComputedGradients[] = [];
    for (let from = 0; from < count; from += batchSize) parts.push(batchLoraGradients(model, shared, tokenCopies(one, from, Math.min(count, from + batchSize))));
    const blocks = parts[0].blocks.map((b, l) => {
      const data = new Float32Array(count * b.dim);
      let at = 0;
      for (const p of parts) {
        data.set(p.blocks[l].data, at);
        at += p.blocks[l].data.length;
      }
      return { name: b.name, shape: b.shape, dim: b.dim, data };
    });
    const losses = new Float32Array(count);
    let at = 0;
    for (const p of parts) {
      losses.set(p.losses, at);
      at += p.n;
    }
    // Row b * seqLen + t - 1 predicts token t.
    const positions = Array.from(one.lossRows, (r) => r + 1);
    return { positions, count, gradients: { n: count, blocks, losses } };
  } finally {
    if (owned) disposeLoraState(owned);
  }
}

/** The example gradient the token rows average to: sum_t g_t / count (float64 sums). */
export function meanOfTokens(tokens: TokenGradients): ComputedGradients {
  const { count, gradients } = tokens;
  const blocks = gradients.blocks.map((b) => {
    const sum = new Float64Array(b.dim);
    for (let t = 0; t < count; t++) for (let j = 0; j < b.dim; j++) sum[j] += b.data[t * b.dim + j];
    return { ...b, data: Float32Array.from(sum, (v) => v / count) };
  });
  let loss = 0;
  gradients.losses.forEach((v) => (loss += v));
  return { n: 1, blocks, losses: Float32Array.of(loss / count) };
}

/**
 * Autoregressive decoding (greedy or sampled) with an optional LoRA adapter.
 *
 * No KV cache: every step recomputes the full forward pass of the still-running sequences,
 * right-padded into one batch, and reads the logits at each sequence's last real position.
 * With right padding and the model's causal + padding attention mask, a sequence's real
 * positions never attend to padding and keep their rotary positions, so the result equals
 * decoding each prompt on its own. This is O(length^2) per step, fine for the small
 * models this toolkit trains; LoRA dropout is never applied.
 *
 * Sampling draws from softmax(logits / temperature), restricted to the `topK` most likely
 * tokens when given (ties at the k-th value are kept, like HF's top-k filter). Each prompt
 * has its own random stream derived from `seed`, so results do not depend on batching.
 * Temperature 0 means greedy.
 */
import * as tf from '@tensorflow/tfjs';
import { TokenBatch } from '../data/batch';
import { TdaError } from '../errors';
import { download, gatherRows } from '../runtime/ops';
import { LoraAdapter } from './adapter';
import { disposeBatchConstants, LlamaModel } from './llama';
import { disposeLoraState, LoraState, loraStateFromAdapter } from './loraState';
import { Rng } from '../random';

export interface GenerateOptions {
  maxNewTokens: number;
  /** Stop a sequence when it produces this token (or any of these); none: always maxNewTokens. */
  eosId?: number | number[] | null;
  mode: 'greedy' | 'sample';
  /** Sampling temperature (default 1); 0 = greedy. */
  temperature?: number;
  /** Sample only among the k most likely tokens. */
  topK?: number;
  /** Required for sampling. */
  seed?: number;
  /** Keep the eos token at the end of the returned tokens (default false). */
  includeEos?: boolean;
  /** Prompts decoded together (default: all). */
  batchSize?: number;
  /** Padding token id for the batch (never attended to; default 0). */
  padId?: number;
}

/** The new tokens generated for each prompt (prompt not included), in prompt order. */
export function generate(model: LlamaModel, adapter: LoraAdapter | null, promptIds: number[][], opts: GenerateOptions): number[][] {
  const { vocabSize, maxPositionEmbeddings } = model.config;
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) {
    throw new TdaError(`must be a non-negative integer, got ${opts.maxNewTokens}`, { field: 'maxNewTokens' });
  }
  if (opts.mode !== 'greedy' && opts.mode !== 'sample') throw new TdaError(`unknown mode '${opts.mode}' (use greedy or sample)`, { field: 'mode' });
  const temperature = opts.temperature ?? 1;
  if (!(Number.isFinite(temperature) && temperature >= 0)) throw new TdaError(`must be a finite non-negative number, got ${temperature}`, { field: 'temperature' });
  if (opts.topK !== undefined && !(Number.isInteger(opts.topK) && opts.topK >= 1)) throw new TdaError(`must be a positive integer, got ${opts.topK}`, { field: 'topK' });
  const sampling = opts.mode === 'sample' && temperature > 0;
  if (opts.mode === 'sample' && opts.seed === undefined) throw new TdaError('sampling needs a seed', { field: 'seed' });
  const eos = new Set(opts.eosId === undefined || opts.eosId === null ? [] : Array.isArray(opts.eosId) ? opts.eosId : [opts.eosId]);
  const batchSize = opts.batchSize ?? Math.max(1, promptIds.length);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new TdaError(`must be a positive integer, got ${batchSize}`, { field: 'batchSize' });
  promptIds.forEach((p, i) => {
    if (!p.length) throw new TdaError('prompt is empty (needs at least one token, e.g. BOS)', { field: `prompts[${i}]` });
    const j = p.findIndex((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
    if (j >= 0) throw new TdaError(`token id ${p[j]} at position ${j} is outside the vocabulary (vocab_size ${vocabSize})`, { field: `prompts[${i}]` });
    if (p.length + opts.maxNewTokens > maxPositionEmbeddings) {
      throw new TdaError(`prompt length ${p.length} + maxNewTokens ${opts.maxNewTokens} exceeds max_position_embeddings ${maxPositionEmbeddings}`, {
        field: `prompts[${i}]`,
      });
    }
  });

  // One stream per prompt, so a prompt's sample does not depend on the others or on batching.
  const seeder = sampling ? new Rng(opts.seed as number) : null;
  const rngs = promptIds.map(() => (seeder ? new Rng(seeder.nextUint32()) : null));
  const lora = adapter ? loraStateFromAdapter(adapter) : undefined;
  const out: number[][] = promptIds.map(() => []);
  try {
    for (let start = 0; start < promptIds.length; start += batchSize) {
      const idx = Array.from({ length: Math.min(batchSize, promptIds.length - start) }, (_, k) => start + k);
      const seqs = idx.map((i) => [...promptIds[i]]);
      let active = idx.map((_, k) => k);
      for (let t = 0; t < opts.maxNewTokens && active.length; t++) {
        const logits = lastLogits(
          model,
          active.map((k) => seqs[k]),
          lora,
          opts.padId ?? 0,
        );
        const still: number[] = [];
        active.forEach((k, row) => {
          const i = idx[k];
          const row_ = logits.subarray(row * vocabSize, (row + 1) * vocabSize);
          const token = sampling ? sample(row_, temperature, opts.topK, rngs[i] as Rng) : argmax(row_);
          seqs[k].push(token);
          if (eos.has(token)) {
            if (opts.includeEos) out[i].push(token);
          } else {
            out[i].push(token);
            still.push(k);
          }
        });
        active = still;
      }
    }
  } finally {
    if (lora) disposeLoraState(lora);
  }
  return out;
}

/** Logits [n * vocab] at the last real position of each sequence, one right-padded forward pass. */
function lastLogits(model: LlamaModel, seqs: number[][], lora: LoraState | undefined, padId: number): Float32Array {
  const B = seqs.length;
  const T = Math.max(...seqs.map((s) => s.length));
  const ids = new Int32Array(B * T).fill(padId);
  seqs.forEach((s, b) => ids.set(s, b * T));
  // Only ids and lengths matter for the forward pass; no positions are scored.
  const batch: TokenBatch = {
    batchSize: B,
    seqLen: T,
    ids,
    lengths: seqs.map((s) => s.length),
    lossRows: new Int32Array(0),
    lossLabels: new Int32Array(0),
    lossExample: new Int32Array(0),
    lossCounts: seqs.map(() => 0),
    mask: 'full',
  };
  const c = model.batchConstants(batch);
  try {
    return download(() => {
      const rows = tf.tensor1d(
        seqs.map((s, b) => b * T + s.length - 1),
        'int32',
      );
      return model.logits(gatherRows(model.hidden(c, lora), rows));
    });
  } finally {
    disposeBatchConstants(c);
  }
}

/** Index of the largest value (the first one on ties). */
export function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}

/** A token drawn from softmax(logits / temperature) over the top-k logits (all when k is undefined). */
export function sample(logits: ArrayLike<number>, temperature: number, topK: number | undefined, rng: Rng): number {
  const n = logits.length;
  let threshold = -Infinity;
  if (topK !== undefined && topK < n) {
    const sorted = Array.from(logits).sort((a, b) => b - a);
    threshold = sorted[topK - 1];
  }
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] >= threshold && logits[i] > max) max = logits[i];
  const p = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    if (logits[i] >= threshold) {
      p[i] = Math.exp((logits[i] - max) / temperature);
      total += p[i];
    }
  }
  let u = rng.next() * total;
  let last = 0;
  for (let i = 0; i < n; i++) {
    if (p[i] === 0) continue;
    last = i;
    u -= p[i];
    if (u < 0) return i;
  }
  return last; // rounding left u >= 0: the last candidate
}

/**
 * Whether a batch's activations fit the wasm heap. tfjs-backend-wasm is a 32-bit module:
 * every tensor lives in one heap of at most 4 GB, and running out aborts the module
 * (unrecoverable, with no useful message). A 0.5B-parameter model's weights take half of
 * it, so a batch is checked before it runs and refused with the batch size that fits.
 */
import * as tf from '@tensorflow/tfjs';
import { TdaError } from '../errors';
import { parameterCount } from './modules';
import { ModelConfig } from './types';

/** tfjs-backend-wasm 4.22's heap limit (emscripten getHeapMax). */
export const WASM_HEAP_BYTES = 4294901760;

/** Part of the heap batches may plan to use; the rest absorbs the allocator's slack. */
const USABLE_SHARE = 0.95;

/**
 * Heap bytes a forward + backward pass over one token row keeps alive, an over-estimate:
 * 4.26 MB on the 0.5B preset (26 layers, hidden 1024, MLP 4096), where 4.0 MB was measured.
 * Per layer: ~16 hidden-sized and ~6 MLP-sized activations; plus logits, softmax and their
 * gradient over the vocabulary.
 */
export function activationBytesPerRow(cfg: ModelConfig): number {
  return 4 * (cfg.numLayers * (16 * cfg.hiddenSize + 6 * cfg.intermediateSize) + 3 * cfg.vocabSize);
}

/**
 * Heap bytes per token row of a forward + backward pass that recomputes each layer during
 * the backward pass (activation checkpointing, LlamaModel): only each layer's input is kept,
 * plus one layer's intermediates at a time and the logits.
 */
export function recomputeBytesPerRow(cfg: ModelConfig): number {
  return 4 * (2 * cfg.numLayers * cfg.hiddenSize + 2 * (16 * cfg.hiddenSize + 6 * cfg.intermediateSize) + 3 * cfg.vocabSize);
}

/**
 * Heap bytes a forward pass alone needs per token row, an over-estimate: its layers free
 * their intermediates as they go, so one layer's worth plus the logits and their softmax.
 */
export function forwardBytesPerRow(cfg: ModelConfig): number {
  return 4 * (16 * cfg.hiddenSize + 6 * cfg.intermediateSize + 3 * cfg.vocabSize);
}

export interface BudgetCheck {
  config: ModelConfig;
  batchSize: number;
  seqLen: number;
  /** Heap bytes already in use (weights and anything else alive). */
  usedBytes: number;
  heapBytes?: number;
  /** A forward pass only (losses, embeddings): no activations kept for a backward pass. */
  forwardOnly?: boolean;
  /** A backward pass that recomputes each layer (recomputeBytesPerRow). */
  recompute?: boolean;
}

/** Throws a TdaError naming the largest batch size that fits when this batch would not. */
export function checkActivationBudget(o: BudgetCheck): void {
  const perRow = o.forwardOnly ? forwardBytesPerRow(o.config) : o.recompute ? recomputeBytesPerRow(o.config) : activationBytesPerRow(o.config);
  const available = (o.heapBytes ?? WASM_HEAP_BYTES) * USABLE_SHARE - o.usedBytes;
  const need = o.batchSize * o.seqLen * perRow;
  if (need <= available) return;
  const fits = Math.floor(available / (o.seqLen * perRow));
  const gb = (b: number) => (b / 2 ** 30).toFixed(2);
  const advice = fits >= 1 ? `use a batch size of at most ${fits}` : `even one example of ${o.seqLen} tokens does not fit; use shorter sequences`;
  throw new TdaError(
    `a batch of ${o.batchSize} x ${o.seqLen} tokens needs about ${gb(need)} GB of activations, and ${gb(o.usedBytes)} GB of the ` +
      `${gb(o.heapBytes ?? WASM_HEAP_BYTES)} GB wasm heap is in use (model weights); ${advice}`,
    { field: 'batchSize' },
  );
}

/** The check for the current backend: only wasm has the fixed heap. */
export function checkBatchFits(config: ModelConfig, batchSize: number, seqLen: number, forwardOnly = false, recompute = false): void {
  if (tf.getBackend() !== 'wasm') return;
  checkActivationBudget({ config, batchSize, seqLen, usedBytes: tf.memory().numBytes, forwardOnly, recompute });
}

/**
 * Layer recomputation for a backward pass: `true`/`false` as asked, or for 'auto' only when
 * the batch's full activations would not fit the heap (recomputing costs one more forward).
 */
export function chooseRecompute(config: ModelConfig, batchSize: number, seqLen: number, choice: boolean | 'auto' = 'auto'): boolean {
  if (choice !== 'auto') return choice;
  if (tf.getBackend() !== 'wasm') return false;
  try {
    checkActivationBudget({ config, batchSize, seqLen, usedBytes: tf.memory().numBytes });
    return false;
  } catch {
    return true;
  }
}

/**
 * Refuses, before reading any weight, a model whose float32 weights cannot fit the wasm
 * heap next to a minimal batch (about 0.9B parameters is the most that loads).
 */
export function checkWeightsFit(config: ModelConfig, dir: string, heapBytes = WASM_HEAP_BYTES): void {
  const bytes = parameterCount(config) * 4;
  const room = heapBytes * USABLE_SHARE - tf.memory().numBytes;
  if (bytes + 64 * activationBytesPerRow(config) <= room) return;
  throw new TdaError(
    `the model has ${(parameterCount(config) / 1e9).toFixed(2)}B parameters, ${(bytes / 2 ** 30).toFixed(2)} GB as float32, ` +
      `which with room for a batch does not fit the ${(heapBytes / 2 ** 30).toFixed(0)} GB wasm heap; use a smaller model or the tensorflow backend (tfjs-node)`,
    { file: dir, field: 'config.json' },
  );
}

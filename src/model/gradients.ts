/**
 * Per-example gradients of each example's loss with respect to every LoRA tensor.
 *
 * One backward pass per batch: every example gets its own copy of the LoRA factors, so
 * the gradient of the summed loss with respect to copy b is example b's gradient. LoRA
 * dropout is never applied here: attribution needs the deterministic model.
 */
import * as tf from '@tensorflow/tfjs';
import { LabelMask, makeBatch, TokenBatch, TokenSequence } from '../data/batch';
import { TdaError } from '../errors';
import { adapterKey, LoraAdapter } from './adapter';
import { crossEntropyRows, download, gatherRows, readFloat32 } from '../runtime/ops';
import { adapterPayload, modelPayload } from '../runtime/modelTransfer';
import { availableCores, WorkerPool } from '../runtime/workers';
import type { GradientTask, GradientWorkerInit } from '../runtime/gradientWorker';
import { BackendName } from '../runtime/backend';
import { BatchConstants } from './llama';
import { fitsWorkerCopies } from './baseWeights';
import { checkBatchFits } from './memoryBudget';
import { ModelConfig } from './types';
import { disposeBatchConstants, LlamaModel } from './llama';
import { disposeLoraState, LoraFactors, LoraState, loraStateFromAdapter, replicatePerExample } from './loraState';

/** Gradients of one batch. A is [B, r, in] and B is [B, out, r], row-major, PEFT layout per example. */
export interface LoraGradientBatch {
  losses: Float32Array;
  modules: { path: string; A: Float32Array; B: Float32Array }[];
}

export interface GradientOptions {
  mask?: LabelMask;
  batchSize?: number;
  padId?: number;
  /** Called after each batch with the number of examples done. */
  onProgress?: (done: number, total: number) => void;
  /**
   * Worker threads to spread batches over (one tfjs instance each; wasm has no threads in
   * Node). 0 computes in this thread. Default: every core when the dataset has at least
   * WORKER_MIN_BATCHES batches, the backend is wasm and the model is small enough to keep
   * both weight layouts (copies of a larger one would exhaust memory), else 0. Results are the same
   * numbers either way: the same batches go through the same code.
   */
  workers?: number | GradientWorkers;
}

/**
 * Worker threads holding one model and adapter, kept across computeLoraGradients calls
 * (pass it as `workers`), so repeated calls (a gradient store's shards, a benchmark) pay
 * the start-up (a model copy per worker) once. Close it when done.
 */
export class GradientWorkers {
  private constructor(
    readonly model: LlamaModel,
    readonly adapter: LoraAdapter,
    readonly pool: WorkerPool<GradientTask, LoraGradientBatch>,
  ) {}

  static async start(model: LlamaModel, adapter: LoraAdapter, count = availableCores()): Promise<GradientWorkers> {
    if (!Number.isInteger(count) || count < 1) throw new TdaError(`must be a whole number >= 1, got ${count}`, { field: 'workers' });
    const init: GradientWorkerInit = { backend: tf.getBackend() as BackendName, model: modelPayload(model), adapter: adapterPayload(adapter) };
    return new GradientWorkers(model, adapter, await WorkerPool.start<GradientTask, LoraGradientBatch>('gradientWorker', count, init));
  }

  get size(): number {
    return this.pool.size;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** Below this many batches, starting workers (a model copy each) costs more than it saves. */
export const WORKER_MIN_BATCHES = 8;

function workerCount(opts: GradientOptions, batches: number, config: ModelConfig): number {
  if (opts.workers instanceof GradientWorkers) return opts.workers.size;
  if (opts.workers !== undefined) {
    if (!Number.isInteger(opts.workers) || opts.workers < 0) throw new TdaError(`must be a whole number >= 0, got ${opts.workers}`, { field: 'workers' });
    return Math.min(opts.workers, batches);
  }
  if (tf.getBackend() !== 'wasm' || batches < WORKER_MIN_BATCHES) return 0;
  // Each worker holds a copy of the model: a model big enough to keep a single weight
  // layout (baseWeights.ts) is big enough that copies would exhaust memory.
  if (!fitsWorkerCopies(config)) return 0;
  const cores = availableCores();
  return cores > 1 ? Math.min(cores, batches) : 0;
}

/**
 * Loss of every example in the batch, [B]: the same quantity as loss.ts's exampleLosses,
 * with the fused cross-entropy (no exp/log per vocabulary entry on wasm).
 */
function batchLosses(model: LlamaModel, c: BatchConstants, lc: CountedRows, lora?: LoraState): tf.Tensor1D {
  const logits = model.logits(gatherRows(model.hidden(c, lora), lc.rows));
  const rowLoss = crossEntropyRows(logits, lc.labels);
  return tf.reshape(tf.matMul(lc.average, tf.reshape(rowLoss, [-1, 1])), [-1]) as tf.Tensor1D;
}

/** The positions whose loss counts (loss.ts LossConstants without the one-hot [n, vocab] targets). */
interface CountedRows {
  rows: tf.Tensor1D;
  labels: Int32Array;
  /** [B, n]: 1 / count_b where position i belongs to example b, else 0. */
  average: tf.Tensor2D;
}

function countedRows(batch: TokenBatch): CountedRows {
  const n = batch.lossRows.length;
  const average = new Float32Array(batch.batchSize * n);
  for (let i = 0; i < n; i++) average[batch.lossExample[i] * n + i] = 1 / batch.lossCounts[batch.lossExample[i]];
  return { rows: tf.tensor1d(batch.lossRows, 'int32'), labels: batch.lossLabels, average: tf.tensor2d(average, [batch.batchSize, n]) };
}

function disposeCountedRows(lc: CountedRows): void {
  lc.rows.dispose();
  lc.average.dispose();
}

/** Per-example LoRA gradients and losses for one batch, with `shared` as the adapter's current weights. */
export function batchLoraGradients(model: LlamaModel, shared: LoraState, batch: TokenBatch): LoraGradientBatch {
  const B = batch.batchSize;
  checkBatchFits(model.config, B, batch.seqLen);
  const paths = [...shared.factors.keys()];
  const c = model.batchConstants(batch);
  const lc = countedRows(batch);
  const perExample = replicatePerExample(shared, B);
  try {
    const params = paths.flatMap((p) => {
      const f = perExample.factors.get(p) as LoraFactors;
      return [f.aT, f.bT];
    });
    let losses: tf.Tensor1D | undefined;
    const { value, grads } = tf.valueAndGrads((...ps: tf.Tensor[]) => {
      const factors = new Map<string, LoraFactors>(paths.map((p, i) => [p, { aT: ps[2 * i], bT: ps[2 * i + 1], shared: perExample.factors.get(p)?.shared }]));
      const state: LoraState = { scaling: shared.scaling, perExample: true, factors };
      losses = tf.keep(batchLosses(model, c, lc, state));
      return tf.sum(losses) as tf.Scalar;
    })(params);
    value.dispose();
    const lossValues = readFloat32(losses as tf.Tensor1D);
    (losses as tf.Tensor1D).dispose();
    const modules = paths.map((path, i) => {
      // Back from the forward layout (A^T, B^T) to PEFT's (A [r, in], B [out, r]).
      const A = download(() => tf.transpose(grads[2 * i], [0, 2, 1]));
      const Bg = download(() => tf.transpose(grads[2 * i + 1], [0, 2, 1]));
      return { path, A, B: Bg };
    });
    grads.forEach((g) => g.dispose());
    checkFinite(lossValues, modules);
    return { losses: lossValues, modules };
  } finally {
    disposeLoraState(perExample);
    disposeBatchConstants(c);
    disposeCountedRows(lc);
  }
}

/** NaN or infinite gradients would silently poison every score computed from them. */
function checkFinite(losses: Float32Array, modules: LoraGradientBatch['modules']): void {
  losses.forEach((v, b) => {
    if (!Number.isFinite(v)) throw new TdaError(`loss of example ${b} in the batch is ${v}`, { field: 'loss' });
  });
  for (const m of modules) {
    for (const [name, arr] of [
      ['lora_A', m.A],
      ['lora_B', m.B],
    ] as const) {
      for (let i = 0; i < arr.length; i++) {
        if (!Number.isFinite(arr[i])) {
          const per = arr.length / losses.length;
          throw new TdaError(`gradient is ${arr[i]} for example ${Math.floor(i / per)} of the batch`, { field: `${m.path}.${name}` });
        }
      }
    }
  }
}

/** Losses and gradients of a whole dataset, keyed by PEFT adapter key, each [nExamples, ...shape]. */
export interface LoraGradients {
  losses: Float32Array;
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
}

/**
 * Per-example LoRA gradients for every example, in input order, batch by batch.
 * Yields to the event loop between batches so progress bars can redraw.
 */
export async function computeLoraGradients(
  model: LlamaModel,
  adapter: LoraAdapter,
  examples: TokenSequence[],
  opts: GradientOptions = {},
): Promise<LoraGradients> {
  if (examples.length === 0) throw new TdaError('the dataset has no examples', { field: 'examples' });
  const n = examples.length;
  const batchSize = Math.max(1, opts.batchSize ?? 8);
  const r = adapter.config.r;
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const m of adapter.modules) {
    tensors.set(adapterKey(m.path, 'A'), { shape: [n, r, m.inFeatures], data: new Float32Array(n * r * m.inFeatures) });
    tensors.set(adapterKey(m.path, 'B'), { shape: [n, m.outFeatures, r], data: new Float32Array(n * m.outFeatures * r) });
  }
  const losses = new Float32Array(n);
  const store = (start: number, result: LoraGradientBatch) => {
    losses.set(result.losses, start);
    for (const m of result.modules) {
      const a = tensors.get(adapterKey(m.path, 'A'))!;
      a.data.set(m.A, start * (a.data.length / n));
      const b = tensors.get(adapterKey(m.path, 'B'))!;
      b.data.set(m.B, start * (b.data.length / n));
    }
  };
  const starts = Array.from({ length: Math.ceil(n / batchSize) }, (_, i) => i * batchSize);
  const mask = opts.mask ?? 'response';
  const padId = opts.padId ?? 0;
  const nWorkers = workerCount(opts, starts.length, model.config);
  if (nWorkers > 0) {
    const given = opts.workers instanceof GradientWorkers ? opts.workers : null;
    if (given && (given.model !== model || given.adapter !== adapter)) {
      throw new TdaError('these GradientWorkers were started for another model or adapter', { field: 'workers' });
    }
    const workers = given ?? (await GradientWorkers.start(model, adapter, nWorkers));
    const pool = workers.pool;
    try {
      let done = 0;
      await Promise.all(
        starts.map(async (start) => {
          const sequences = examples.slice(start, start + batchSize);
          store(start, await pool.run({ sequences, mask, padId }));
          done += sequences.length;
          opts.onProgress?.(done, n);
        }),
      );
    } finally {
      if (!given) await workers.close();
    }
    return { losses, tensors };
  }
  const shared = loraStateFromAdapter(adapter);
  try {
    for (const start of starts) {
      const chunk = examples.slice(start, start + batchSize);
      store(start, batchLoraGradients(model, shared, makeBatch(chunk, mask, padId)));
      opts.onProgress?.(Math.min(n, start + batchSize), n);
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    disposeLoraState(shared);
  }
  return { losses, tensors };
}

/** Per-example losses (no gradients), [n], with an optional adapter. */
export function computeLosses(model: LlamaModel, adapter: LoraAdapter | null, examples: TokenSequence[], opts: GradientOptions = {}): Float32Array {
  const out = new Float32Array(examples.length);
  const batchSize = Math.max(1, opts.batchSize ?? 8);
  const shared = adapter ? loraStateFromAdapter(adapter) : undefined;
  try {
    for (let start = 0; start < examples.length; start += batchSize) {
      const batch = makeBatch(examples.slice(start, start + batchSize), opts.mask ?? 'response', opts.padId ?? 0);
      checkBatchFits(model.config, batch.batchSize, batch.seqLen, true);
      const c = model.batchConstants(batch);
      const lc = countedRows(batch);
      try {
        out.set(download(() => batchLosses(model, c, lc, shared)), start);
      } finally {
        disposeBatchConstants(c);
        disposeCountedRows(lc);
      }
    }
  } finally {
    if (shared) disposeLoraState(shared);
  }
  return out;
}

/**
 * Per-example gradients of each example's loss with respect to every LoRA tensor, as a
 * GradientSet: one block per LoRA tensor in adapter order (`lora_A` [r, in] then `lora_B`
 * [out, r] of each module, named by its PEFT adapter key), [n, dim] each, plus the losses.
 *
 * One backward pass per batch: every example gets its own copy of the LoRA factors, so
 * the gradient of the summed loss with respect to copy b is example b's gradient. LoRA
 * dropout is never applied here: attribution needs the deterministic model.
 */
import * as tf from '@tensorflow/tfjs';
import { LabelMask, makeBatch, TokenBatch, TokenSequence } from '../data/batch';
import { TdaError } from '../errors';
import { adapterKey, LoraAdapter } from '../model/adapter';
import { fitsWorkerCopies, isMapped } from '../model/baseWeights';
import { disposeBatchConstants, LlamaModel } from '../model/llama';
import { batchLosses, disposeLossRows, lossRows } from '../model/loss';
import { disposeLoraState, LoraFactors, LoraState, loraStateFromAdapter, replicatePerExample } from '../model/loraState';
import { activationBytesPerRow, checkBatchFits, chooseRecompute, recomputeBytesPerRow } from '../model/memoryBudget';
import { adapterPayload, modelPayload } from '../model/transfer';
import { ModelConfig } from '../model/types';
import { BackendName } from '../runtime/backend';
import { download, readFloat32 } from '../runtime/ops';
import { availableCores, WorkerPool } from '../runtime/workers';
import type { GradientTask, GradientWorkerInit } from './worker';
import { checkFinite } from './checks';
import { BlockLayout, ComputedGradients, GradientBlock, GradientSet } from './types';

/** The blocks of an adapter's gradients, in adapter order: lora_A [r, in] then lora_B [out, r] per module. */
export function adapterBlocks(adapter: LoraAdapter): BlockLayout[] {
  const r = adapter.config.r;
  return adapter.modules.flatMap((m) => [
    { name: adapterKey(m.path, 'A'), shape: [r, m.inFeatures], dim: r * m.inFeatures },
    { name: adapterKey(m.path, 'B'), shape: [m.outFeatures, r], dim: m.outFeatures * r },
  ]);
}

export interface GradientOptions {
  mask?: LabelMask;
  batchSize?: number;
  padId?: number;
  /** Called after each batch with the number of examples done. */
  onProgress?: (done: number, total: number) => void;
  /**
   * Recompute each layer during the backward pass instead of keeping its activations
   * (activation checkpointing: about a third more time, a fraction of the memory, so longer
   * sequences and larger batches fit the heap). Default 'auto': only when a pass's full
   * activations (see passRows) would not fit the heap.
   */
  recompute?: boolean | 'auto';
  /**
   * Token rows a forward + backward pass aims for (default DEFAULT_PASS_ROWS): a batch is run
   * as passes of about this many rows (at least one example each), and in passes of fewer
   * where one would plan more than `passBytes` of activations per thread (default
   * DEFAULT_PASS_BYTES). A batch is the unit of work and of progress; a pass is what is in
   * memory at once. Per-example gradients do not depend on the examples they are computed
   * with, so only memory and speed change.
   */
  passRows?: number;
  /** See passRows. */
  passBytes?: number;
  /**
   * Worker threads to spread batches over (one tfjs instance each; wasm has no threads in
   * Node); the calling thread computes batches too. 0 computes in this thread alone.
   * Default: one per core besides this thread's when the dataset has at least
   * WORKER_MIN_BATCHES batches, the backend is wasm and the model is mapped or small enough
   * for a copy per worker, else 0. Results are the same numbers either way: the same batches
   * go through the same code.
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
    readonly pool: WorkerPool<GradientTask, ComputedGradients>,
  ) {}

  /** `count` workers (default: one per core besides the calling thread's, at least one). */
  static async start(model: LlamaModel, adapter: LoraAdapter, count = Math.max(1, availableCores() - 1)): Promise<GradientWorkers> {
    if (!Number.isInteger(count) || count < 1) throw new TdaError(`must be a whole number >= 1, got ${count}`, { field: 'workers' });
    const init: GradientWorkerInit = { backend: tf.getBackend() as BackendName, model: modelPayload(model), adapter: adapterPayload(adapter) };
    // Two passes per worker in hand: the calling thread computes too, and answers a
    // finished worker only between its own passes.
    return new GradientWorkers(model, adapter, await WorkerPool.start<GradientTask, ComputedGradients>(require.resolve('./worker'), count, init, 2));
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

function workerCount(opts: GradientOptions, batches: number, model: LlamaModel): number {
  if (opts.workers instanceof GradientWorkers) return opts.workers.size;
  if (opts.workers !== undefined) {
    if (!Number.isInteger(opts.workers) || opts.workers < 0) throw new TdaError(`must be a whole number >= 0, got ${opts.workers}`, { field: 'workers' });
    // The calling thread takes batches too.
    return Math.min(opts.workers, batches - 1);
  }
  if (tf.getBackend() !== 'wasm' || batches < WORKER_MIN_BATCHES) return 0;
  // Each worker holds a copy of heap weights: a model big enough to keep a single weight
  // layout (baseWeights.ts) is big enough that copies would exhaust memory. Mapped weights
  // are shared by all threads.
  if (!isMapped(model.weights) && !fitsWorkerCopies(model.config)) return 0;
  // The calling thread is one of the computing threads.
  return Math.min(availableCores() - 1, batches - 1);
}

/**
 * Token rows per pass by default. Below ~512 rows the products are too small to run at full
 * speed (49.9M parameters, 64 tokens: passes of 4 examples ran 10% slower than passes of 8);
 * above, memory grows with no gain (256 tokens: passes of 2 ran as fast as one pass of 8, in
 * a third of the memory).
 */
export const DEFAULT_PASS_ROWS = 512;

/**
 * Planned activation bytes a pass may not exceed by default, per thread (activationBytesPerRow
 * plans about twice what the frugal backward pass, runtime/frugalBackprop.ts, really holds).
 */
export const DEFAULT_PASS_BYTES = 2 ** 30;

/** Examples per pass for sequences of `seqLen` tokens (see GradientOptions.passRows): at least one. */
export function examplesPerPass(config: ModelConfig, seqLen: number, passRows: number, passBytes: number, recompute: boolean | 'auto' = 'auto'): number {
  const perRow = recompute === true ? recomputeBytesPerRow(config) : activationBytesPerRow(config);
  const byRows = Math.ceil(passRows / seqLen);
  const byBytes = Math.floor(passBytes / (seqLen * perRow));
  return Math.max(1, Math.min(byRows, byBytes));
}

/**
 * Per-example gradients of one pass (a task of computeLoraGradients, which splits batches
 * into passes). The same function runs in worker threads and in this one, so both give the
 * same numbers.
 */
export function passGradients(model: LlamaModel, shared: LoraState, task: GradientTask): ComputedGradients {
  return batchLoraGradients(model, shared, makeBatch(task.sequences, task.mask, task.padId), task.recompute);
}

/** Per-example LoRA gradients and losses for one batch, with `shared` as the adapter's current weights. */
export function batchLoraGradients(model: LlamaModel, shared: LoraState, batch: TokenBatch, recompute: boolean | 'auto' = 'auto'): ComputedGradients {
  const B = batch.batchSize;
  const recomputeLayers = chooseRecompute(model.config, B, batch.seqLen, recompute);
  checkBatchFits(model.config, B, batch.seqLen, false, recomputeLayers);
  const paths = [...shared.factors.keys()];
  const c = { ...model.batchConstants(batch), recomputeLayers };
  const lr = lossRows(batch);
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
      losses = tf.keep(batchLosses(model, c, lr, state, true));
      return tf.sum(losses) as tf.Scalar;
    })(params);
    value.dispose();
    const lossValues = readFloat32(losses as tf.Tensor1D);
    (losses as tf.Tensor1D).dispose();
    const blocks: GradientBlock[] = grads.map((g, j) => {
      // Back from the forward layout (A^T [B, in, r], B^T [B, r, out]) to PEFT's (A [r, in], B [out, r]).
      const shape = [g.shape[2] as number, g.shape[1] as number];
      const data = download(() => tf.transpose(g, [0, 2, 1]));
      return { name: adapterKey(paths[j >> 1], j % 2 === 0 ? 'A' : 'B'), shape, dim: shape[0] * shape[1], data };
    });
    grads.forEach((g) => g.dispose());
    const set = { n: B, blocks, losses: lossValues };
    checkFiniteBatch(set);
    return set;
  } finally {
    disposeLoraState(perExample);
    disposeBatchConstants(c);
    disposeLossRows(lr);
  }
}

/** NaN or infinite losses or gradients would silently poison every score computed from them. */
function checkFiniteBatch(set: ComputedGradients): void {
  set.losses.forEach((v, b) => {
    if (!Number.isFinite(v)) throw new TdaError(`loss of example ${b} in the batch is ${v}`, { field: 'loss' });
  });
  checkFinite(set);
}

/** An empty [n, dim] set with the adapter's blocks, filled batch by batch. */
function emptySet(adapter: LoraAdapter, n: number): ComputedGradients {
  return { n, blocks: adapterBlocks(adapter).map((b) => ({ ...b, data: new Float32Array(n * b.dim) })), losses: new Float32Array(n) };
}

/**
 * Per-example LoRA gradients for every example, in input order, batch by batch.
 * Yields to the event loop between batches so progress bars can redraw.
 */
export async function computeLoraGradients(model: LlamaModel, adapter: LoraAdapter, examples: TokenSequence[], opts: GradientOptions = {}): Promise<ComputedGradients> {
  if (examples.length === 0) throw new TdaError('the dataset has no examples', { field: 'examples' });
  const n = examples.length;
  const batchSize = Math.max(1, opts.batchSize ?? 8);
  const out = emptySet(adapter, n);
  const byName = new Map(out.blocks.map((b) => [b.name, b]));
  const store = (start: number, result: ComputedGradients) => {
    out.losses.set(result.losses, start);
    for (const b of result.blocks) {
      const into = byName.get(b.name);
      if (!into || into.dim !== b.dim) throw new Error(`gradient block '${b.name}' does not match the adapter`);
      into.data.set(b.data, start * b.dim);
    }
  };
  const starts = Array.from({ length: Math.ceil(n / batchSize) }, (_, i) => i * batchSize);
  const mask = opts.mask ?? 'response';
  const padId = opts.padId ?? 0;
  const passRows = opts.passRows ?? DEFAULT_PASS_ROWS;
  const passBytes = opts.passBytes ?? DEFAULT_PASS_BYTES;
  if (!(passRows > 0)) throw new TdaError(`must be a positive number of token rows, got ${passRows}`, { field: 'passRows' });
  if (!(passBytes > 0)) throw new TdaError(`must be a positive number of bytes, got ${passBytes}`, { field: 'passBytes' });
  const nWorkers = workerCount(opts, starts.length, model);
  const recompute = opts.recompute ?? 'auto';
  // Each batch is split into passes here, once: a pass (examples of one batch that are in
  // memory together) is the unit of hand-out, so threads share the work finely even when
  // there are few batches, and the numbers do not depend on which thread runs a pass.
  const pieces: { start: number; count: number }[] = [];
  for (const start of starts) {
    const end = Math.min(n, start + batchSize);
    const seqLen = Math.max(...examples.slice(start, end).map((s) => s.inputIds.length));
    const per = examplesPerPass(model.config, seqLen, passRows, passBytes, recompute);
    for (let s0 = start; s0 < end; s0 += per) pieces.push({ start: s0, count: Math.min(per, end - s0) });
  }
  const task = (p: { start: number; count: number }): GradientTask => ({ sequences: examples.slice(p.start, p.start + p.count), mask, padId, recompute });
  const shared = loraStateFromAdapter(adapter);
  let given: GradientWorkers | null = null;
  let workers: GradientWorkers | null = null;
  try {
    if (nWorkers > 0) {
      given = opts.workers instanceof GradientWorkers ? opts.workers : null;
      if (given && (given.model !== model || given.adapter !== adapter)) {
        throw new TdaError('these GradientWorkers were started for another model or adapter', { field: 'workers' });
      }
      workers = given ?? (await GradientWorkers.start(model, adapter, nWorkers));
    }
    // Passes go to whichever thread is free: each worker, and this thread, which yields to
    // the event loop between its passes so that finished workers get new ones. A worker's
    // second lane keeps its next pass in hand while this thread is busy (so it never waits
    // for an answer), except near the end, where it would leave this thread idle.
    const pool = workers?.pool;
    const threads = 1 + (pool?.size ?? 0);
    let next = 0;
    let failed = false;
    let done = 0;
    const take = (lookahead: boolean) => (!failed && next < pieces.length && !(lookahead && pieces.length - next <= threads) ? pieces[next++] : undefined);
    const finish = (start: number, result: ComputedGradients) => {
      store(start, result);
      done += result.n;
      opts.onProgress?.(done, n);
    };
    const lane = async (run: (t: GradientTask) => Promise<ComputedGradients>, lookahead = false) => {
      try {
        for (let p = take(lookahead); p !== undefined; p = take(lookahead)) finish(p.start, await run(task(p)));
      } catch (e) {
        failed = true;
        throw e;
      }
    };
    const remote = (t: GradientTask) => pool!.run(t);
    const lanes = pool ? Array.from({ length: pool.size }, () => lane(remote)) : [];
    lanes.push(
      lane(async (t) => {
        const result = passGradients(model, shared, t);
        await new Promise((resolve) => setImmediate(resolve));
        return result;
      }),
    );
    if (pool) for (let i = 0; i < pool.size; i++) lanes.push(lane(remote, true));
    await Promise.all(lanes);
  } finally {
    disposeLoraState(shared);
    if (workers && !given) await workers.close();
  }
  return out;
}

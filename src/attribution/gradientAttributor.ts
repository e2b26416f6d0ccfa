/**
 * The common shape of gradient-based attribution: every method maps each test gradient g_q
 * to a vector v_q (v_q = g_q for gradient matching, v_q = H^-1 g_q for influence functions)
 * and scores training example i by v_q . g_i, summed over blocks. Training gradients are
 * streamed chunk by chunk, so they never need to be in memory all at once.
 *
 * attributeTopK keeps only the best k training examples per query, folding each chunk's
 * scores into a [nTest, k] accumulator (topK.ts), so nothing of size nTest x nTrain exists.
 *
 * Sign: positive = upweighting the training example lowers the test loss (it helps).
 */
import * as tf from '@tensorflow/tfjs';
import { TdaError } from '../errors';
import type { ChunkResult, ScoringTask } from './scoringWorker';
import { nativeActive } from '../runtime/backend';
import { QUERY_BLOCK } from '../runtime/nativeProducts';
import { availableCores, SyncWorkerPool } from '../runtime/workers';
import { blockDampingAndNorms, DampingOptions, DEFAULT_DAMPING_SCALE } from './damping';
import { Scorer, Settings } from './method';
import { checkCompatible, checkFinite } from '../gradients/checks';
import { addColumns, FixedBlock, SLAB_COLUMNS, StreamedProducts } from './linalg';
import { checkK, TopKAccumulator, TopKScores } from './topK';
import { ScoreMatrix, scoreMatrix } from './types';
import { GradientSet, GradientSource, ownsChunks } from '../gradients/types';

/** Rewrites a chunk's [nTest, m] score block (training examples [start, start + m)) in place. */
export type BlockAdjust = (block: Float32Array, start: number, m: number) => void;

export interface ScoringOptions {
  /**
   * Worker threads for the products with the training gradients (one tfjs instance each;
   * wasm has no threads in Node). 0 runs them in this thread. Default: every core when a
   * pass over the training set is at least SCORING_WORKER_MIN_MACS multiply-adds on wasm
   * with its own kernels; on native BLAS, this thread.
   */
  workers?: number;
}

/** Below this much work per pass (nTest x nTrain x dim), starting workers costs more than it saves. */
export const SCORING_WORKER_MIN_MACS = 2e10;

function scoringWorkerCount(opts: ScoringOptions, nTest: number, train: GradientSource): number {
  if (opts.workers !== undefined) {
    if (!Number.isInteger(opts.workers) || opts.workers < 0) throw new TdaError(`must be a whole number >= 0, got ${opts.workers}`, { field: 'workers' });
    return opts.workers;
  }
  const dim = train.blocks.reduce((a, b) => a + b.dim, 0);
  // On native BLAS the products run at several times the wasm rate, and starting workers
  // and handing them the chunks cost more than a second core saves (measured: 10k x 100
  // x 100k gradDot in this thread ran twice as fast as on two workers).
  if (tf.getBackend() !== 'wasm' || nativeActive() || nTest * train.n * dim < SCORING_WORKER_MIN_MACS) return 0;
  const cores = availableCores();
  return cores > 1 ? cores : 0;
}

/** Block data in shared memory, so every worker reads the same copy. */
function sharedBlocks(set: GradientSet): FixedBlock[] {
  return set.blocks.map((b) => {
    const data = new Float32Array(new SharedArrayBuffer(b.data.length * 4));
    data.set(b.data);
    return { data, rows: set.n, dim: b.dim };
  });
}

/**
 * The products of test-side vectors with a stream of training chunks, as blocked 2-D
 * matmuls (linalg.ts StreamedProducts), in this thread or spread over worker threads
 * chunk by chunk. Open it for one scoring job and close it after.
 */
export class ScoringEngine {
  /** Chunk buffers the workers have handed back, reused for the next copies. */
  private spare: ArrayBuffer[] = [];

  private constructor(private readonly pool: SyncWorkerPool<ScoringTask, unknown> | null) {}

  static open(nTest: number, train: GradientSource, opts: ScoringOptions = {}): ScoringEngine {
    const workers = scoringWorkerCount(opts, nTest, train);
    return new ScoringEngine(workers > 0 ? SyncWorkerPool.start<ScoringTask, unknown>(require.resolve('./scoringWorker'), workers, { backend: tf.getBackend() }) : null);
  }

  get workers(): number {
    return this.pool?.size ?? 0;
  }

  /** A buffer of at least `bytes`, reused when one is spare. */
  private buffer(bytes: number): ArrayBuffer {
    const i = this.spare.findIndex((b) => b.byteLength >= bytes);
    return i >= 0 ? this.spare.splice(i, 1)[0] : new ArrayBuffer(bytes);
  }

  /**
   * Buffers a worker is done with (in the task's block order) go back to the source that
   * owns them, or to the spares. A moved buffer comes back as a new ArrayBuffer object, so
   * ownership is tracked per task and block, not by identity.
   */
  private recycle(task: number, buffers: ArrayBuffer[], train: GradientSource): void {
    const owned = this.ownedByTask.get(task) ?? [];
    this.ownedByTask.delete(task);
    buffers.forEach((b, j) => {
      if (owned[j] && ownsChunks(train)) train.recycle?.(b);
      else this.spare.push(b);
    });
  }

  /** For each task sent to a worker, which of its block buffers belong to the source. */
  private ownedByTask = new Map<number, boolean[]>();
  private tasksSent = 0;

  /**
   * A chunk's block data for a worker: moved as it is when the source hands its chunks
   * over (OwnedChunksSource), else copied (the source keeps its own).
   */
  private task(set: GradientSet, train: GradientSource, lambdas: number[] | null): { data: ScoringTask; transfer: ArrayBuffer[] } {
    const seen = new Set<ArrayBufferLike>();
    const owned: boolean[] = [];
    const chunk = set.blocks.map((b) => {
      const buf = b.data.buffer;
      const whole = buf instanceof ArrayBuffer && b.data.byteOffset === 0 && b.data.byteLength === buf.byteLength && !seen.has(buf);
      seen.add(buf);
      owned.push(ownsChunks(train) && whole);
      if (ownsChunks(train) && whole) return b.data;
      const copy = new Float32Array(this.buffer(b.data.byteLength), 0, b.data.length);
      copy.set(b.data);
      return copy;
    });
    this.ownedByTask.set(this.tasksSent++, owned);
    const transfer = chunk.map((c) => c.buffer as ArrayBuffer);
    return lambdas ? { data: { op: 'dataInf', m: set.n, chunk, lambdas }, transfer } : { data: { op: 'dot', m: set.n, chunk }, transfer };
  }

  /** In this thread: an owned source gets each chunk's buffers back once the chunk is used. */
  private static release(set: GradientSet, train: GradientSource): void {
    if (!ownsChunks(train) || !train.recycle) return;
    for (const b of set.blocks) if (b.data.buffer instanceof ArrayBuffer) train.recycle(b.data.buffer);
  }

  /**
   * Streams sum_l V_l @ G_l^T chunk by chunk: `onBlock` gets each chunk's [nTest, m] scores
   * (in completion order on workers) and may keep or drop them.
   */
  private streamDots(v: GradientSet, train: GradientSource, onBlock: (start: number, m: number, block: Float32Array) => void): void {
    if (!this.pool) {
      const products = new StreamedProducts(v.blocks.map((b) => ({ data: b.data, rows: v.n, dim: b.dim })));
      try {
        for (const { start, set } of train.chunks()) {
          const block = products.dot(set.blocks.map((b) => b.data), set.n);
          ScoringEngine.release(set, train);
          onBlock(start, set.n, block);
        }
      } finally {
        products.dispose();
      }
      return;
    }
    this.pool.broadcast({ op: 'load', blocks: sharedBlocks(v), slab: SLAB_COLUMNS });
    // Where each task's chunk sits, kept only while the task is in flight.
    const placed = new Map<number, { start: number; m: number }>();
    const self = this;
    const tasks = function* () {
      for (const { start, set } of train.chunks()) {
        placed.set(self.tasksSent, { start, m: set.n });
        yield self.task(set, train, null);
      }
    };
    this.pool.runAll(tasks(), (i, result) => {
      const r = result as ChunkResult;
      const at = placed.get(i)!;
      placed.delete(i);
      this.recycle(i, r.spent, train);
      onBlock(at.start, at.m, r.scores as Float32Array);
    });
    this.spare = [];
    this.tasksSent = 0;
  }

  /** sum_l V_l @ G_l^T over the training chunks: [nTest, nTrain]. */
  scores(v: GradientSet, train: GradientSource): ScoreMatrix {
    const s = scoreMatrix(v.n, train.n);
    if (!this.pool) {
      // In this thread each chunk's products go straight into its columns of the matrix.
      const products = new StreamedProducts(v.blocks.map((b) => ({ data: b.data, rows: v.n, dim: b.dim })));
      try {
        for (const { start, set } of train.chunks()) {
          products.dotInto(set.blocks.map((b) => b.data), set.n, s.data, train.n, start);
          ScoringEngine.release(set, train);
        }
      } finally {
        products.dispose();
      }
      return s;
    }
    this.streamDots(v, train, (start, m, block) => addColumns(s.data, train.n, block, v.n, start, m));
    return s;
  }

  /**
   * The best k training examples per row of sum_l V_l @ G_l^T, in memory that does not
   * grow with nTrain: each chunk's [nTest, m] block is folded into a [nTest, k]
   * accumulator and dropped. `adjust` may rewrite a block in place first (gradCos divides
   * by the training norms). k above train.n is clamped to train.n.
   */
  topK(v: GradientSet, train: GradientSource, k: number, adjust?: BlockAdjust): TopKScores {
    const acc = new TopKAccumulator(v.n, train.n, k);
    this.streamDots(v, train, (start, m, block) => {
      adjust?.(block, start, m);
      acc.add(block, start, m);
    });
    return acc.result();
  }

  /**
   * DataInf's update, summed over the training chunks: per block l,
   * sum_i (V_l g_il / (lambda_l + |g_il|^2)) g_il^T as [nTest, dim_l].
   */
  dataInfUpdates(test: GradientSet, train: GradientSource, lambdas: ArrayLike<number>, norms?: Float64Array[] | null): Float32Array[] {
    const lam = Array.from(lambdas);
    if (!this.pool) {
      const products = new StreamedProducts(test.blocks.map((b) => ({ data: b.data, rows: test.n, dim: b.dim })));
      try {
        for (const { start, set } of train.chunks()) {
          products.accumulateDataInf(
            set.blocks.map((b) => b.data),
            set.n,
            lam,
            norms?.map((x) => x.subarray(start, start + set.n)),
          );
          ScoringEngine.release(set, train);
        }
        return products.takeUpdates();
      } finally {
        products.dispose();
      }
    }
    this.pool.broadcast({ op: 'load', blocks: sharedBlocks(test), slab: SLAB_COLUMNS });
    const self = this;
    const tasks = function* () {
      for (const { set } of train.chunks()) yield self.task(set, train, lam);
    };
    // Each chunk's update comes back and is added in chunk order, as in this thread: float
    // sums depend on their order, and the order in which workers finish does not count.
    let total: Float32Array[] | null = null;
    const early = new Map<number, Float32Array[]>();
    let next = 0;
    this.pool.runAll(tasks(), (i, result) => {
      const r = result as ChunkResult;
      this.recycle(i, r.spent, train);
      early.set(i, r.updates!);
      for (let u = early.get(next); u !== undefined; u = early.get(next)) {
        early.delete(next++);
        if (total === null) total = u;
        else total.forEach((t, l) => addInto(t, u![l]));
      }
    });
    this.spare = [];
    this.tasksSent = 0;
    return total ?? test.blocks.map((b) => new Float32Array(test.n * b.dim));
  }

  close(): void {
    this.pool?.close();
  }
}

/** sum_l V_l @ G_l^T over training chunks: [nTest, nTrain]. */
export function dotScores(v: GradientSet, train: GradientSource, opts: ScoringOptions = {}): ScoreMatrix {
  const engine = ScoringEngine.open(v.n, train, opts);
  try {
    return engine.scores(v, train);
  } finally {
    engine.close();
  }
}

/** The best k training examples per row of sum_l V_l @ G_l^T, in fixed memory (see ScoringEngine.topK). */
export function topKScores(v: GradientSet, train: GradientSource, k: number, opts: ScoringOptions = {}): TopKScores {
  const engine = ScoringEngine.open(v.n, train, opts);
  try {
    return engine.topK(v, train, k);
  } finally {
    engine.close();
  }
}

export abstract class GradientAttributor implements Scorer<GradientSource, GradientSet> {
  abstract readonly name: string;
  private trainSource?: GradientSource;

  constructor(protected readonly scoring: ScoringOptions = {}) {}

  cache(train: GradientSource): void {
    if (train.n === 0) throw new TdaError('the training set has no examples', { field: 'train' });
    this.trainSource = train;
    this.prepare(train);
  }

  attribute(test: GradientSet): ScoreMatrix {
    const train = this.train;
    this.checkTest(test, train);
    return this.score(test, train);
  }

  /**
   * The k most helpful training examples per query, rows sorted by descending score (ties:
   * lower training index first), without the [nTest, nTrain] matrix: scoring memory does
   * not grow with nTrain beyond one chunk (what cache() keeps is the method's own; lissa,
   * for one, holds every training gradient). k above nTrain is clamped (result.k says how many).
   */
  attributeTopK(test: GradientSet, k: number): TopKScores {
    checkK(k);
    const train = this.train;
    // A method whose score() is not transform-then-dot must say how to do top-k itself.
    if (this.score !== GradientAttributor.prototype.score && this.scoreTopK === GradientAttributor.prototype.scoreTopK) {
      throw new TdaError(`top-k scoring is not available for method '${this.name}' (use attribute() for the full matrix)`, { field: 'topK' });
    }
    this.checkTest(test, train);
    return this.scoreTopK(test, train, Math.min(k, train.n));
  }

  /**
   * The vectors v_q = T(g_q) this method dots with the training gradients, one row per row
   * of `test` (gradCos: g_q / |g_q|, before its division by the training norms). Per-token
   * attribution (tokens.ts) splits scores through them.
   */
  testVectors(test: GradientSet): GradientSet {
    const train = this.train;
    this.checkTest(test, train);
    return this.transform(test, train);
  }

  /**
   * The size of the query blocks whose scores come out of one product call (1 when there are
   * none): a query's scores are bit-for-bit those of any run that scores its whole block, so
   * `score --shard` scores whole blocks and keeps its own rows.
   */
  queryAlignment(): number {
    return nativeActive() ? QUERY_BLOCK : 1;
  }

  /** The method and its resolved options; after cache(), what it found (damping, convergence). */
  settings(): Settings {
    return { method: this.name, workers: this.scoring.workers ?? 'auto', ...this.methodSettings() };
  }

  /** Settings of the method beyond its name and workers. */
  protected methodSettings(): Settings {
    return {};
  }

  private checkTest(test: GradientSet, train: GradientSource): void {
    if (test.n === 0) throw new TdaError('the test set has no examples', { field: 'test' });
    checkCompatible(train, test);
    checkFinite(test);
  }

  protected get train(): GradientSource {
    if (!this.trainSource) throw new TdaError(`${this.name}: call cache(train) before attribute(test)`, { field: 'train' });
    return this.trainSource;
  }

  /** Work that depends on the training set only. */
  protected prepare(train: GradientSource): void {
    void train;
  }

  /** Default: transform test gradients, then dot with training gradients. */
  protected score(test: GradientSet, train: GradientSource): ScoreMatrix {
    return dotScores(this.transform(test, train), train, this.scoring);
  }

  /** Default: transform test gradients, then keep the top k of their dots with the training gradients. */
  protected scoreTopK(test: GradientSet, train: GradientSource, k: number): TopKScores {
    return topKScores(this.transform(test, train), train, k, this.scoring);
  }

  protected abstract transform(test: GradientSet, train: GradientSource): GradientSet;
}

/** Base for influence functions: a damping lambda_l per block, computed in cache(). */
export abstract class DampedAttributor extends GradientAttributor {
  protected damping = new Float64Array(0);

  constructor(protected readonly dampingOptions: DampingOptions & ScoringOptions = {}) {
    super({ workers: dampingOptions.workers });
  }

  /**
   * Each block's squared per-example norms |g_il|^2 [nTrain], from the damping pass, when
   * keepNorms() asked for them and they are small enough to keep (else null).
   */
  protected exampleSquaredNorms: Float64Array[] | null = null;

  protected override prepare(train: GradientSource): void {
    const { damping, norms } = blockDampingAndNorms(train, this.dampingOptions, this.keepNorms());
    this.damping = damping;
    this.exampleSquaredNorms = norms;
    this.prepareBlocks(train);
  }

  /** Whether the damping pass keeps the per-example squared norms (DataInf reuses them). */
  protected keepNorms(): boolean {
    return false;
  }

  protected prepareBlocks(train: GradientSource): void {
    void train;
  }

  /** The lambda used for each block, by name (for result manifests). */
  dampingByBlock(): Record<string, number> {
    return Object.fromEntries(this.train.blocks.map((b, l) => [b.name, this.damping[l]]));
  }

  protected override methodSettings(): Settings {
    const given = this.dampingOptions.dampingValues ? { dampingValues: this.dampingOptions.dampingValues } : { dampingScale: this.dampingOptions.dampingScale ?? DEFAULT_DAMPING_SCALE };
    return { ...given, ...(this.damping.length ? { damping: this.dampingByBlock() } : {}) };
  }
}

/** Concatenates one block's rows over all training chunks: [n, dim]. */
export function materializeBlock(train: GradientSource, l: number): Float32Array {
  const dim = train.blocks[l].dim;
  const out = new Float32Array(train.n * dim);
  for (const { start, set } of train.chunks()) out.set(set.blocks[l].data, start * dim);
  return out;
}

/** t += u elementwise (float32 sums, as the backend's add). */
function addInto(t: Float32Array, u: Float32Array): void {
  for (let j = 0; j < t.length; j++) t[j] += u[j];
}

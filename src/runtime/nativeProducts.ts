/**
 * The scoring products of attribution/linalg.ts StreamedProducts as direct OpenBLAS calls on
 * the JavaScript arrays: the test-side blocks V_l [nT, dim_l] and each streamed chunk of
 * training gradients G_l [m, dim_l] are read where they are, with no upload into the wasm
 * heap, no column slabs and no transposed or padded copies (BLAS reads G_l transposed in
 * place), and scores can be written straight into their columns of the score matrix.
 *
 * Each large product is cut into parts that every core takes in turn (native/scoring.c): a
 * thread the system deschedules delays it by one part at most, and the cut depends on the
 * shape alone, so the bits do not depend on the number of threads.
 *
 * The queries go through BLAS in blocks of QUERY_BLOCK rows, [0, 128), [128, 256), ..., the
 * last one holding the rest. OpenBLAS picks its kernels (and so the last bits of a result)
 * by the shape of the call, so a query's scores are a function of the query, the training
 * gradients and its block's size only: `score --shard` aligns the queries it scores to
 * these blocks (queryAlignment) and keeps its own rows, which gives exactly the numbers of
 * a single run.
 */
import { isMainThread } from 'node:worker_threads';
import { NativeAddon } from './nativeAddon';
import { availableCores } from './workers';

export interface ProductBlock {
  data: Float32Array;
  rows: number;
  dim: number;
}

/** Queries per BLAS call (the last call of a set takes the remainder). */
export const QUERY_BLOCK = 128;

export class NativeStreamedProducts {
  /** DataInf: running sum over chunks of C_l @ G_l per block, [nT, dim_l] (null until the first). */
  private updates: (Float32Array | null)[];
  /** Per-block [QUERY_BLOCK, m] scratch for DataInf's coefficients. */
  private coef = new Float32Array(0);

  constructor(
    private readonly addon: NativeAddon,
    readonly blocks: ProductBlock[],
    /**
     * Threads that share each large product (native/scoring.c cuts it into parts by its shape
     * alone, so the bits do not depend on this): every core in the main thread, one in a
     * worker thread.
     */
    readonly threads = isMainThread ? availableCores() : 1,
  ) {
    this.updates = blocks.map(() => null);
  }

  private get nT(): number {
    return this.blocks[0]?.rows ?? 0;
  }

  /** [first row, rows] of each query block. */
  private queryBlocks(): [number, number][] {
    const out: [number, number][] = [];
    for (let q0 = 0; q0 < this.nT; q0 += QUERY_BLOCK) out.push([q0, Math.min(QUERY_BLOCK, this.nT - q0)]);
    return out;
  }

  private check(G: Float32Array, m: number, l: number): void {
    const dim = this.blocks[l].dim;
    if (G.length !== m * dim) throw new Error(`block ${l}: ${G.length} values is not ${m} x ${dim}`);
  }

  /** sum_l V_l @ G_l^T for a chunk of m training examples: [nT, m] row-major. */
  dot(chunk: Float32Array[], m: number): Float32Array {
    const out = new Float32Array(this.nT * m);
    this.dotInto(chunk, m, out, m, 0);
    return out;
  }

  /**
   * sum_l V_l @ G_l^T for a chunk of m training examples, written (not added) into columns
   * [col, col + m) of `target`, a row-major [nT, ld] matrix.
   */
  dotInto(chunk: Float32Array[], m: number, target: Float32Array, ld: number, col: number): void {
    chunk.forEach((G, l) => this.check(G, m, l));
    if (m === 0) return;
    for (const [q0, rows] of this.queryBlocks()) {
      chunk.forEach((G, l) => {
        const { data: V, dim } = this.blocks[l];
        this.addon.sgemmStrided(false, true, rows, m, dim, 1, V, q0 * dim, dim, G, 0, dim, l === 0 ? 0 : 1, target, q0 * ld + col, ld, this.threads);
      });
    }
  }

  /**
   * DataInf's update for a chunk: per block l with lambda_l > 0, C = V_l G_l^T with column i
   * scaled by 1 / (lambda_l + |g_il|^2), then C @ G_l added to the running update. `norms`,
   * when given, holds each block's |g_il|^2 for the chunk's rows (else computed here).
   */
  accumulateDataInf(chunk: Float32Array[], m: number, lambdas: ArrayLike<number>, norms?: Float64Array[]): void {
    chunk.forEach((G, l) => {
      const lambda = lambdas[l];
      if (lambda === 0 || m === 0) return;
      this.check(G, m, l);
      const { data: V, dim } = this.blocks[l];
      let sq = norms?.[l];
      if (!sq) {
        sq = new Float64Array(m);
        this.addon.rowSquaredNorms(G, m, dim, sq);
      }
      const inv = Float32Array.from(sq.subarray(0, m), (v) => 1 / (lambda + v));
      if (this.coef.length < QUERY_BLOCK * m) this.coef = new Float32Array(QUERY_BLOCK * m);
      const coef = this.coef;
      const prev = this.updates[l];
      const update = prev ?? new Float32Array(this.nT * dim);
      for (const [q0, rows] of this.queryBlocks()) {
        this.addon.sgemmStrided(false, true, rows, m, dim, 1, V, q0 * dim, dim, G, 0, dim, 0, coef, 0, m, this.threads);
        for (let q = 0; q < rows; q++) for (let i = 0; i < m; i++) coef[q * m + i] *= inv[i];
        this.addon.sgemmStrided(false, false, rows, dim, m, 1, coef, 0, m, G, 0, dim, prev ? 1 : 0, update, q0 * dim, dim, this.threads);
      }
      this.updates[l] = update;
    });
  }

  /** The DataInf updates summed so far, [nT, dim_l] per block (zeros where nothing was added); resets them. */
  takeUpdates(): Float32Array[] {
    const out = this.blocks.map((b, l) => this.updates[l] ?? new Float32Array(b.rows * b.dim));
    this.updates = this.blocks.map(() => null);
    return out;
  }
}

/**
 * The scoring products of attribution/linalg.ts StreamedProducts as direct OpenBLAS calls on
 * the JavaScript arrays: the test-side blocks V_l [nT, dim_l] and each streamed chunk of
 * training gradients G_l [m, dim_l] are read where they are, with no upload into the wasm
 * heap, no column slabs and no transposed copies (BLAS reads G_l transposed in place).
 *
 * The queries go through BLAS in blocks of exactly QUERY_BLOCK rows (the last one padded
 * with zeros): OpenBLAS picks its kernels by matrix shape, so a query's scores could
 * otherwise change in the last bits with the number of queries in the call, and
 * `score --shard` must give exactly the numbers of a single run.
 */
import { NativeAddon } from './nativeAddon';

export interface ProductBlock {
  data: Float32Array;
  rows: number;
  dim: number;
}

/** Queries per BLAS call. */
export const QUERY_BLOCK = 64;

export class NativeStreamedProducts {
  /** V_l in query blocks of QUERY_BLOCK rows: padded[l][qb] is [QUERY_BLOCK, dim_l]. */
  private readonly padded: Float32Array[][];
  /** DataInf: running sum over chunks of C_l @ G_l per block and query block (null until the first). */
  private updates: (Float32Array | null)[][];

  constructor(
    private readonly addon: NativeAddon,
    readonly blocks: ProductBlock[],
  ) {
    const nT = this.nT;
    const queryBlocks = Math.ceil(nT / QUERY_BLOCK);
    this.padded = blocks.map((b) =>
      Array.from({ length: queryBlocks }, (_, qb) => {
        const p = new Float32Array(QUERY_BLOCK * b.dim);
        p.set(b.data.subarray(qb * QUERY_BLOCK * b.dim, Math.min(nT, (qb + 1) * QUERY_BLOCK) * b.dim));
        return p;
      }),
    );
    this.updates = this.padded.map((qbs) => qbs.map(() => null));
  }

  private get nT(): number {
    return this.blocks[0]?.rows ?? 0;
  }

  /** Rows of query block qb that are real queries. */
  private rowsOf(qb: number): number {
    return Math.min(QUERY_BLOCK, this.nT - qb * QUERY_BLOCK);
  }

  private check(G: Float32Array, m: number, l: number): void {
    const dim = this.blocks[l].dim;
    if (G.length !== m * dim) throw new Error(`block ${l}: ${G.length} values is not ${m} x ${dim}`);
  }

  /** sum_l V_l @ G_l^T for a chunk of m training examples: [nT, m] row-major. */
  dot(chunk: Float32Array[], m: number): Float32Array {
    chunk.forEach((G, l) => this.check(G, m, l));
    const out = new Float32Array(this.nT * m);
    const tmp = new Float32Array(QUERY_BLOCK * m);
    for (let qb = 0; qb < this.padded[0]?.length; qb++) {
      chunk.forEach((G, l) => this.addon.sgemmArrays(false, true, QUERY_BLOCK, m, this.blocks[l].dim, 1, this.padded[l][qb], G, l === 0 ? 0 : 1, tmp));
      out.set(tmp.subarray(0, this.rowsOf(qb) * m), qb * QUERY_BLOCK * m);
    }
    return out;
  }

  /**
   * DataInf's update for a chunk: per block l with lambda_l > 0, C = V_l G_l^T with column i
   * scaled by 1 / (lambda_l + |g_il|^2), then C @ G_l added to the running update.
   */
  accumulateDataInf(chunk: Float32Array[], m: number, lambdas: ArrayLike<number>): void {
    chunk.forEach((G, l) => {
      const lambda = lambdas[l];
      if (lambda === 0) return;
      this.check(G, m, l);
      const dim = this.blocks[l].dim;
      const norms = new Float64Array(m);
      this.addon.rowSquaredNorms(G, m, dim, norms);
      const inv = Float32Array.from(norms, (v) => 1 / (lambda + v));
      const coef = new Float32Array(QUERY_BLOCK * m);
      this.padded[l].forEach((V, qb) => {
        this.addon.sgemmArrays(false, true, QUERY_BLOCK, m, dim, 1, V, G, 0, coef);
        for (let q = 0; q < QUERY_BLOCK; q++) for (let i = 0; i < m; i++) coef[q * m + i] *= inv[i];
        const prev = this.updates[l][qb];
        const update = prev ?? new Float32Array(QUERY_BLOCK * dim);
        this.addon.sgemmArrays(false, false, QUERY_BLOCK, dim, m, 1, coef, G, prev ? 1 : 0, update);
        this.updates[l][qb] = update;
      });
    });
  }

  /** The DataInf updates summed so far, [nT, dim_l] per block (zeros where nothing was added); resets them. */
  takeUpdates(): Float32Array[] {
    const out = this.blocks.map((b, l) => {
      const u = new Float32Array(b.rows * b.dim);
      this.updates[l].forEach((part, qb) => part && u.set(part.subarray(0, this.rowsOf(qb) * b.dim), qb * QUERY_BLOCK * b.dim));
      return u;
    });
    this.updates = this.padded.map((qbs) => qbs.map(() => null));
    return out;
  }
}

/**
 * The scoring products of attribution/linalg.ts StreamedProducts as direct OpenBLAS calls on
 * the JavaScript arrays: the test-side blocks V_l [nT, dim_l] and each streamed chunk of
 * training gradients G_l [m, dim_l] are read where they are, with no upload into the wasm
 * heap, no column slabs and no transposed copies (BLAS reads G_l transposed in place).
 */
import { NativeAddon } from './nativeAddon';

export interface ProductBlock {
  data: Float32Array;
  rows: number;
  dim: number;
}

export class NativeStreamedProducts {
  /** DataInf: running sum over chunks of C_l @ G_l per block, [nT, dim_l] (null until the first). */
  private updates: (Float32Array | null)[];

  constructor(
    private readonly addon: NativeAddon,
    readonly blocks: ProductBlock[],
  ) {
    this.updates = blocks.map(() => null);
  }

  private get nT(): number {
    return this.blocks[0]?.rows ?? 0;
  }

  private check(G: Float32Array, m: number, l: number): void {
    const dim = this.blocks[l].dim;
    if (G.length !== m * dim) throw new Error(`block ${l}: ${G.length} values is not ${m} x ${dim}`);
  }

  /** sum_l V_l @ G_l^T for a chunk of m training examples: [nT, m] row-major. */
  dot(chunk: Float32Array[], m: number): Float32Array {
    const out = new Float32Array(this.nT * m);
    chunk.forEach((G, l) => {
      this.check(G, m, l);
      const b = this.blocks[l];
      this.addon.sgemmArrays(false, true, b.rows, m, b.dim, 1, b.data, G, l === 0 ? 0 : 1, out);
    });
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
      const b = this.blocks[l];
      const coef = new Float32Array(b.rows * m);
      this.addon.sgemmArrays(false, true, b.rows, m, b.dim, 1, b.data, G, 0, coef);
      const inv = new Float32Array(m);
      for (let i = 0; i < m; i++) {
        let s = 0; // squared norm in float64
        for (let j = i * b.dim, end = j + b.dim; j < end; j++) s += G[j] * G[j];
        inv[i] = 1 / (lambda + s);
      }
      for (let q = 0; q < b.rows; q++) for (let i = 0; i < m; i++) coef[q * m + i] *= inv[i];
      const prev = this.updates[l];
      const update = prev ?? new Float32Array(b.rows * b.dim);
      this.addon.sgemmArrays(false, false, b.rows, b.dim, m, 1, coef, G, prev ? 1 : 0, update);
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

/**
 * Dense products on row-major Float32Arrays, run as tfjs 2-D matmuls (the fast path on
 * wasm: explicit transposes, never the transposeA/B flags).
 */
import * as tf from '@tensorflow/tfjs';
import { nativeActive } from '../runtime/backend';
import { nativeAddon } from '../runtime/nativeAddon';
import { NativeStreamedProducts } from '../runtime/nativeProducts';
import { download, readFloat32, transpose2d } from '../runtime/ops';

/** A @ B^T for A [a, d] and B [b, d]: [a, b]. Transposes whichever operand is smaller. */
export function matMulABt(A: Float32Array, a: number, B: Float32Array, b: number, d: number): Float32Array {
  return download(() => {
    const ta = tf.tensor2d(A, [a, d]);
    const tb = tf.tensor2d(B, [b, d]);
    if (a <= b) return tf.transpose(tf.matMul(tb, tf.transpose(ta)));
    return tf.matMul(ta, tf.transpose(tb));
  });
}

/** A @ M for A [a, k] and M [k, d]: [a, d]. */
export function matMul(A: Float32Array, a: number, k: number, M: Float32Array, d: number): Float32Array {
  return download(() => tf.matMul(tf.tensor2d(A, [a, k]), tf.tensor2d(M, [k, d])));
}

/** Q_S^T G_i Q_A for a stack of matrices G [m, rows, cols] (Kronecker-factored bases: kronGrad, EK-FAC). */
export function kroneckerRotate(g: tf.Tensor3D, qS: tf.Tensor2D, qA: tf.Tensor2D): tf.Tensor3D {
  const [m, rows, cols] = g.shape;
  const right = tf.reshape(tf.matMul(tf.reshape(g, [m * rows, cols]), qA), [m, rows, cols]);
  const t = tf.reshape(tf.transpose(right, [0, 2, 1]), [m * cols, rows]); // (G Q_A)^T stacked
  return tf.transpose(tf.reshape(tf.matMul(t, qS), [m, cols, rows]), [0, 2, 1]) as tf.Tensor3D;
}

/**
 * Q_S ((Q_S^T G_i Q_A) / (Lambda + damping)) Q_A^T for each of the n matrices G_i [rows, cols]
 * in `data`: the inverse of a Kronecker-factored curvature with corrected eigenvalues Lambda
 * [rows, cols] (kronGrad, EK-FAC). qS [rows, rows] and qA [cols, cols] hold eigenvectors in columns.
 */
export function kroneckerPrecondition(data: Float32Array, n: number, rows: number, cols: number, qS: Float32Array, qA: Float32Array, lambda: Float32Array, damping: number): Float32Array {
  return download(() => {
    const s = tf.tensor2d(qS, [rows, rows]);
    const a = tf.tensor2d(qA, [cols, cols]);
    const rotated = kroneckerRotate(tf.tensor3d(data, [n, rows, cols]), s, a);
    const scaled = tf.div(rotated, tf.add(tf.tensor2d(lambda, [rows, cols]), damping)) as tf.Tensor3D;
    // Back: Q_S X Q_A^T = rotate with the transposed bases.
    return kroneckerRotate(scaled, tf.transpose(s), tf.transpose(a));
  });
}

/** A^T A for A [m, d]: [d, d]. */
export function gram(A: Float32Array, m: number, d: number): Float32Array {
  return download(() => {
    const t = tf.tensor2d(A, [m, d]);
    return tf.matMul(tf.transpose(t), t);
  });
}

/** Squared L2 norm of each row of A [m, d], in float64 (natively where the addon is built). */
export function rowSquaredNorms(A: Float32Array, m: number, d: number): Float64Array {
  const out = new Float64Array(m);
  const addon = nativeAddon();
  if (addon) {
    addon.rowSquaredNorms(A, m, d, out);
    return out;
  }
  for (let i = 0; i < m; i++) {
    let s = 0;
    for (let j = i * d, end = j + d; j < end; j++) s += A[j] * A[j];
    out[i] = s;
  }
  return out;
}

/** Adds a [nTest, m] block of scores into columns [start, start + m) of a [nTest, nTrain] matrix. */
export function addColumns(target: Float32Array, nTrain: number, block: Float32Array, nTest: number, start: number, m: number): void {
  for (let q = 0; q < nTest; q++) {
    const row = q * nTrain + start;
    for (let i = 0; i < m; i++) target[row + i] += block[q * m + i];
  }
}

/**
 * Columns per slab of the inner (gradient) dimension. XNNPACK's matmul does not block the
 * inner dimension, so for 100k-long gradient rows each tile streams megabytes; slabs of a
 * few thousand columns keep the packed test-side slab in cache.
 */
export const SLAB_COLUMNS = 4096;

/** One block of a fixed (test-side) matrix: V [rows, dim] row-major. */
export interface FixedBlock {
  data: Float32Array;
  rows: number;
  dim: number;
}

/** [lo, hi) column ranges of the slabs of a dim-long row. */
function slabRanges(dim: number, slab: number): [number, number][] {
  const out: [number, number][] = [];
  for (let lo = 0; lo < dim; lo += slab) out.push([lo, Math.min(dim, lo + slab)]);
  return out;
}

/** Columns [lo, hi) of a row-major [m, dim] matrix, as a tensor [m, hi - lo] (one strided copy). */
function columnSlab(G: Float32Array, m: number, dim: number, lo: number, hi: number, scratch: Float32Array): tf.Tensor2D {
  const w = hi - lo;
  if (w === dim) return tf.tensor2d(G.subarray(0, m * dim), [m, dim]);
  const buf = scratch.subarray(0, m * w);
  for (let i = 0; i < m; i++) buf.set(G.subarray(i * dim + lo, i * dim + hi), i * w);
  return tf.tensor2d(buf, [m, w]);
}

/**
 * Blocked matrix products of fixed test-side matrices V_l [nT, dim_l] (one per gradient
 * block) with streamed chunks of training gradients G_l [m, dim_l]: the scoring kernel of
 * every gradient attributor, and DataInf's inverse-Hessian update.
 *
 * V_l^T is kept as slabs [w, nT] that live for the whole stream: the wasm matmul packs its
 * right operand once per tensor and caches the packing, so each chunk costs only its own
 * upload and the products. On native BLAS, direct BLAS calls on the arrays instead
 * (runtime/nativeProducts.ts). Runs in the calling thread; scoringWorker.ts runs the same
 * code on worker threads.
 */
export class StreamedProducts {
  private readonly vT: tf.Tensor2D[][];
  /** DataInf: running sum over chunks of C_l @ G_l per block and slab, [nT, w]. */
  private updates: (tf.Tensor2D | null)[][];
  private scratch = new Float32Array(0);
  private readonly native: NativeStreamedProducts | null;

  constructor(
    readonly blocks: FixedBlock[],
    readonly slab = SLAB_COLUMNS,
  ) {
    const nT = blocks[0]?.rows ?? 0;
    if (blocks.some((b) => b.rows !== nT)) throw new Error('StreamedProducts: every block needs the same number of rows');
    const addon = nativeActive() ? nativeAddon() : null;
    this.native = addon ? new NativeStreamedProducts(addon, blocks) : null;
    this.vT = this.native ? [] : blocks.map((b) =>
      slabRanges(b.dim, slab).map(([lo, hi]) =>
        tf.tidy(() => {
          const s = columnSlab(b.data, b.rows, b.dim, lo, hi, this.scratchFor(b.rows * (hi - lo)));
          return transpose2d(s);
        }),
      ),
    );
    this.updates = this.vT.map((slabs) => slabs.map(() => null));
  }

  /** Whether the products run as direct native BLAS calls (no tfjs tensors). */
  get isNative(): boolean {
    return this.native !== null;
  }

  get rows(): number {
    return this.blocks[0]?.rows ?? 0;
  }

  private scratchFor(n: number): Float32Array {
    if (this.scratch.length < n) this.scratch = new Float32Array(n);
    return this.scratch;
  }

  private upload(G: Float32Array, m: number, l: number): tf.Tensor2D[] {
    const dim = this.blocks[l].dim;
    if (G.length !== m * dim) throw new Error(`block ${l}: ${G.length} values is not ${m} x ${dim}`);
    return slabRanges(dim, this.slab).map(([lo, hi]) => columnSlab(G, m, dim, lo, hi, this.scratchFor(m * (hi - lo))));
  }

  /** G_l @ V_l^T for one block, [m, nT], from its uploaded slabs. */
  private productT(slabs: tf.Tensor2D[], l: number): tf.Tensor2D {
    const parts = slabs.map((g, k) => tf.matMul(g, this.vT[l][k]) as tf.Tensor2D);
    if (parts.length === 1) return parts[0];
    const sum = tf.addN(parts) as tf.Tensor2D;
    parts.forEach((p) => p.dispose());
    return sum;
  }

  /** sum_l V_l @ G_l^T for a chunk of m training examples: [nT, m] row-major. */
  dot(chunk: Float32Array[], m: number): Float32Array {
    if (this.native) return this.native.dot(chunk, m);
    return download(() => {
      const perBlock = chunk.map((G, l) => {
        const slabs = this.upload(G, m, l);
        const p = this.productT(slabs, l);
        slabs.forEach((s) => s.dispose());
        return p;
      });
      const total = perBlock.length === 1 ? perBlock[0] : tf.addN(perBlock);
      return transpose2d(total as tf.Tensor2D);
    });
  }

  /**
   * sum_l V_l @ G_l^T for a chunk of m training examples, written into columns [col, col + m)
   * of `target`, a row-major [nT, ld] matrix (on native BLAS with no intermediate block).
   */
  dotInto(chunk: Float32Array[], m: number, target: Float32Array, ld: number, col: number): void {
    if (this.native) return this.native.dotInto(chunk, m, target, ld, col);
    const block = this.dot(chunk, m);
    for (let q = 0; q < this.rows; q++) target.set(block.subarray(q * m, (q + 1) * m), q * ld + col);
  }

  /**
   * DataInf's update for a chunk: per block l with lambda_l > 0, C = V_l G_l^T scaled column
   * i by 1 / (lambda_l + |g_il|^2), then sum C @ G_l into the running update. `norms`, when
   * given, holds each block's |g_il|^2 for the chunk's rows.
   */
  accumulateDataInf(chunk: Float32Array[], m: number, lambdas: ArrayLike<number>, norms?: Float64Array[]): void {
    if (this.native) return this.native.accumulateDataInf(chunk, m, lambdas, norms);
    chunk.forEach((G, l) => {
      const lambda = lambdas[l];
      if (lambda === 0) return;
      const dim = this.blocks[l].dim;
      const norms = rowSquaredNorms(G, m, dim);
      const inv = Float32Array.from(norms, (v) => 1 / (lambda + v));
      const slabs = this.upload(G, m, l);
      const coef = tf.tidy(() => transpose2d(tf.mul(this.productT(slabs, l), tf.tensor2d(inv, [m, 1])) as tf.Tensor2D)); // [nT, m]
      slabs.forEach((g, k) => {
        const prev = this.updates[l][k];
        const next = tf.tidy(() => {
          const u = tf.matMul(coef, g) as tf.Tensor2D;
          return prev ? (tf.add(prev, u) as tf.Tensor2D) : u;
        });
        prev?.dispose();
        this.updates[l][k] = next;
        g.dispose();
      });
      coef.dispose();
    });
  }

  /** The DataInf updates summed so far, [nT, dim_l] per block (zeros where nothing was added); resets them. */
  takeUpdates(): Float32Array[] {
    if (this.native) return this.native.takeUpdates();
    return this.blocks.map((b, l) => {
      const out = new Float32Array(b.rows * b.dim);
      slabRanges(b.dim, this.slab).forEach(([lo, hi], k) => {
        const u = this.updates[l][k];
        if (!u) return;
        const w = hi - lo;
        const vals = readFloat32(u);
        for (let q = 0; q < b.rows; q++) out.set(vals.subarray(q * w, (q + 1) * w), q * b.dim + lo);
        u.dispose();
        this.updates[l][k] = null;
      });
      return out;
    });
  }

  dispose(): void {
    this.vT.forEach((slabs) => slabs.forEach((t) => t.dispose()));
    this.updates.forEach((slabs) => slabs.forEach((t) => t?.dispose()));
  }
}

/**
 * Gradient blocks of experiment size with a chosen condition number, and a float64 dense
 * reference for the damped inverse-Hessian-vector product, for the iterative-solver tests.
 *
 * A block is G = U diag(s) V^T (n x d): U's k = min(n, d) columns are orthonormal (a
 * Gaussian matrix's columns after modified Gram-Schmidt, i.e. Q of its QR), V's k columns are the first k columns of a seeded random
 * orthogonal d x d matrix M = (H D3)(H D2)(H D1) (H the normalised Walsh-Hadamard matrix,
 * D random signs; d a power of two), applied in O(d log d). The singular values decay
 * exponentially at the rate that makes the condition number of G^T G / n + lambda I, with
 * the default damping lambda = 0.1 * mean(G^2), equal to the target.
 */
import { CholeskyDecomposition, Matrix } from 'ml-matrix';
import { Rng } from '../../src/random';
import { GradientSet } from '../../src/gradients/types';

/** In-place normalised fast Walsh-Hadamard transform (length a power of two). */
function hadamard(a: Float64Array): void {
  const d = a.length;
  for (let h = 1; h < d; h *= 2) {
    for (let i = 0; i < d; i += 2 * h) {
      for (let j = i; j < i + h; j++) {
        const x = a[j];
        const y = a[j + h];
        a[j] = x + y;
        a[j + h] = x - y;
      }
    }
  }
  const c = 1 / Math.sqrt(d);
  for (let i = 0; i < d; i++) a[i] *= c;
}

/** k orthonormal columns of length n, as k rows of a Float64Array (modified Gram-Schmidt of Gaussian vectors: Q of their QR). */
function orthonormalColumns(n: number, k: number, rng: Rng): Float64Array[] {
  const cols: Float64Array[] = [];
  for (let j = 0; j < k; j++) {
    const c = Float64Array.from({ length: n }, () => rng.normal());
    for (const o of cols) {
      let p = 0;
      for (let i = 0; i < n; i++) p += o[i] * c[i];
      for (let i = 0; i < n; i++) c[i] -= p * o[i];
    }
    let norm = 0;
    for (let i = 0; i < n; i++) norm += c[i] * c[i];
    norm = Math.sqrt(norm);
    for (let i = 0; i < n; i++) c[i] /= norm;
    cols.push(c);
  }
  return cols;
}

/** Singular values s_j = exp(-alpha j / (k - 1)) with s_0^2 / sum s^2 = ratio (bisection on alpha). */
function spectrum(k: number, ratio: number): Float64Array {
  const make = (alpha: number) => Float64Array.from({ length: k }, (_, j) => Math.exp((-alpha * j) / (k - 1)));
  const share = (s: Float64Array) => (s[0] * s[0]) / s.reduce((a, x) => a + x * x, 0);
  let lo = 0;
  let hi = 1;
  while (share(make(hi)) < ratio) hi *= 2;
  for (let it = 0; it < 100; it++) {
    const mid = (lo + hi) / 2;
    if (share(make(mid)) < ratio) lo = mid;
    else hi = mid;
  }
  return make((lo + hi) / 2);
}

export interface ConditionedBlock {
  name: string;
  /** Target condition number of G^T G / n + lambda I (default damping). */
  condition: number;
  dim: number;
  /** Multiplies the whole block (LoRA blocks differ in scale by orders of magnitude). */
  scale: number;
}

/**
 * Training gradients [n, d] per block, and nTest test gradients of the same distribution
 * (random combinations of the same singular directions) plus 10% isotropic noise.
 */
export function conditionedGradients(n: number, nTest: number, blocks: ConditionedBlock[], seed: number): { train: GradientSet; test: GradientSet } {
  const rng = new Rng(seed);
  const trainBlocks = [];
  const testBlocks = [];
  for (const b of blocks) {
    const d = b.dim;
    const k = Math.min(n, d);
    // (kappa - 1) = s_0^2 / (n lambda) with lambda = 0.1 sum s^2 / (n d).
    const s = spectrum(k, (b.condition - 1) / (10 * d));
    const u = orthonormalColumns(n, k, rng);
    const signs = Array.from({ length: 3 }, () => Float64Array.from({ length: d }, () => (rng.next() < 0.5 ? -1 : 1)));
    // Row = M w with w the row's k coefficients padded to d.
    const rowFrom = (coef: ArrayLike<number>): Float64Array => {
      const w = new Float64Array(d);
      for (let j = 0; j < k; j++) w[j] = coef[j];
      for (const sg of signs) {
        for (let j = 0; j < d; j++) w[j] *= sg[j];
        hadamard(w);
      }
      return w;
    };
    const g = new Float32Array(n * d);
    for (let i = 0; i < n; i++) {
      const coef = Float64Array.from({ length: k }, (_, j) => u[j][i] * s[j] * b.scale);
      g.set(rowFrom(coef), i * d);
    }
    const t = new Float32Array(nTest * d);
    let meanRowNorm = 0;
    for (let i = 0; i < n; i++) meanRowNorm += Math.hypot(...g.subarray(i * d, (i + 1) * d)) / n;
    for (let q = 0; q < nTest; q++) {
      // A training-like row: U's rows have norm about sqrt(k / n) per unit of s.
      const coef = Float64Array.from({ length: k }, (_, j) => (rng.normal() / Math.sqrt(n)) * s[j] * b.scale);
      const row = rowFrom(coef);
      const noise = Float64Array.from({ length: d }, () => rng.normal());
      const scaleNoise = (0.1 * meanRowNorm) / Math.hypot(...noise);
      for (let j = 0; j < d; j++) t[q * d + j] = row[j] + scaleNoise * noise[j];
    }
    trainBlocks.push({ name: b.name, shape: [d], dim: d, data: g });
    testBlocks.push({ name: b.name, shape: [d], dim: d, data: t });
  }
  return { train: { n, blocks: trainBlocks }, test: { n: nTest, blocks: testBlocks } };
}

/** lambda = 0.1 * mean of the squared float32 gradients, in float64. */
export function defaultDamping(g: Float32Array, scale = 0.1): number {
  let ss = 0;
  for (let i = 0; i < g.length; i++) ss += g[i] * g[i];
  return (scale * ss) / g.length;
}

/**
 * x = (G^T G / n + lambda I)^-1 v for the rows of v, in float64, through the example space
 * (Woodbury): x = (v - G^T (G G^T + n lambda I)^-1 G v) / lambda, with a Cholesky factor of
 * the n x n kernel (ml-matrix).
 */
export function denseSolve(G: Float32Array, n: number, d: number, lambda: number, v: Float32Array, nT: number): Float64Array {
  const kernel = new Matrix(n, n);
  const rows = Array.from({ length: n }, (_, i) => Float64Array.from(G.subarray(i * d, (i + 1) * d)));
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      const a = rows[i];
      const b = rows[j];
      for (let c = 0; c < d; c++) s += a[c] * b[c];
      if (i === j) s += n * lambda;
      kernel.set(i, j, s);
      kernel.set(j, i, s);
    }
  }
  const chol = new CholeskyDecomposition(kernel);
  if (!chol.isPositiveDefinite()) throw new Error('reference kernel is not positive definite');
  const gv = new Matrix(n, nT);
  for (let q = 0; q < nT; q++) {
    const vq = v.subarray(q * d, (q + 1) * d);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += rows[i][c] * vq[c];
      gv.set(i, q, s);
    }
  }
  const z = chol.solve(gv);
  const x = new Float64Array(nT * d);
  for (let q = 0; q < nT; q++) {
    for (let c = 0; c < d; c++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += rows[i][c] * z.get(i, q);
      x[q * d + c] = (v[q * d + c] - s) / lambda;
    }
  }
  return x;
}

/** The condition number of G^T G / n + lambda I, from the eigenvalues of the kernel G G^T / n (float64). */
export function conditionNumber(G: Float32Array, n: number, d: number, lambda: number, topIterations = 200): number {
  // Top eigenvalue of G^T G / n by power iteration in float64; the smallest is lambda when n < d.
  let x = Float64Array.from({ length: d }, (_, j) => Math.sin(j + 1));
  let est = 0;
  for (let it = 0; it < topIterations; it++) {
    const y = new Float64Array(d);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += G[i * d + c] * x[c];
      for (let c = 0; c < d; c++) y[c] += (s * G[i * d + c]) / n;
    }
    est = Math.hypot(...y);
    x = y.map((a) => a / est);
  }
  return (est + lambda) / lambda;
}

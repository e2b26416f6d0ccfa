/**
 * Dense float64 references for the optimizer-aware scorers (LESS, TrackStar), written from
 * the formulas: random optimizer states, the projection of the concatenated gradient by the
 * stacked per-block matrices (the matrices themselves come from gradients/projection.ts,
 * they are an input), unit vectors, and a Jacobi eigendecomposition for R^(-1/2).
 */
import { projectionMatrix, ProjectionSpec } from '../../src/gradients/projection';
import { GradientSet, GradientSource, sliceExamples } from '../../src/gradients/types';
import { OptimizerState } from '../../src/model/optimizerState';
import { Rng } from '../../src/random';

/** A state with random moments for every block of `set` (v > 0). */
export function randomState(set: GradientSet, seed: number, learningRate: number, step = 5): OptimizerState {
  const rng = new Rng(seed);
  return {
    step,
    beta1: 0.9,
    beta2: 0.99,
    // Large enough to matter next to sqrt(v), so a misplaced eps shows.
    eps: 0.1,
    learningRate,
    moments: set.blocks.map((b) => ({
      key: b.name,
      shape: b.shape,
      expAvg: Float32Array.from({ length: b.dim }, () => 0.3 * rng.normal()),
      expAvgSq: Float32Array.from({ length: b.dim }, () => 0.05 + rng.next()),
    })),
  };
}

/** A source that hands `set` out in chunks of `size` examples. */
export function chunkedSource(set: GradientSet, size: number): GradientSource {
  return {
    n: set.n,
    blocks: set.blocks.map(({ name, shape, dim }) => ({ name, shape, dim })),
    *chunks() {
      for (let s = 0; s < set.n; s += size) yield { start: s, set: sliceExamples(set, s, Math.min(s + size, set.n)) };
    },
  };
}

/** Example i's vector of block-wise values f(l, j, g_lij), concatenated, then times the stacked [D, k] matrix. */
export function projectConcatenated(set: GradientSet, i: number, spec: ProjectionSpec, f: (l: number, j: number, g: number) => number): number[] {
  const out = new Array<number>(spec.dim).fill(0);
  set.blocks.forEach((b, l) => {
    const p = projectionMatrix(spec, b.name, b.dim);
    for (let j = 0; j < b.dim; j++) {
      const x = f(l, j, b.data[i * b.dim + j]);
      for (let c = 0; c < spec.dim; c++) out[c] += x * p[j * spec.dim + c];
    }
  });
  return out;
}

export function unit(x: number[]): number[] {
  const n = Math.sqrt(x.reduce((s, v) => s + v * v, 0));
  return n > 0 ? x.map((v) => v / n) : x;
}

export const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i], 0);

/** Eigenvalues and eigenvectors (columns of `vectors`) of a symmetric matrix by cyclic Jacobi rotations. */
export function jacobiEigen(m: number[][]): { values: number[]; vectors: number[][] } {
  const n = m.length;
  const a = m.map((r) => [...r]);
  const v = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j): number => (i === j ? 1 : 0)));
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p][q] * a[p][q];
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        if (a[p][q] === 0) continue;
        const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const [akp, akq] = [a[k][p], a[k][q]];
          a[k][p] = c * akp - s * akq;
          a[k][q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const [apk, aqk] = [a[p][k], a[q][k]];
          a[p][k] = c * apk - s * aqk;
          a[q][k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const [vkp, vkq] = [v[k][p], v[k][q]];
          v[k][p] = c * vkp - s * vkq;
          v[k][q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return { values: a.map((r, i) => r[i]), vectors: v };
}

/** (R + delta I)^(-1/2) from the Jacobi eigendecomposition. */
export function inverseSqrtReference(r: number[][], delta: number): number[][] {
  const { values, vectors } = jacobiEigen(r);
  const n = r.length;
  return Array.from({ length: n }, (_, a) => Array.from({ length: n }, (_, b) => values.reduce((s, l, e) => s + (vectors[a][e] * vectors[b][e]) / Math.sqrt(Math.max(l, 0) + delta), 0)));
}

export function matmul(a: number[][], b: number[][]): number[][] {
  return a.map((row) => b[0].map((_, j) => row.reduce((s, x, k) => s + x * b[k][j], 0)));
}

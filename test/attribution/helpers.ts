/** Small random gradient sets and brute-force references for scorer tests. */
import { Rng } from '../../src/random';
import { GradientSet, GradientSource, inMemorySource } from '../../src/gradients/types';

export function randomGradients(n: number, shapes: number[][], seed: number, scale = 1): GradientSet {
  const rng = new Rng(seed);
  return {
    n,
    blocks: shapes.map((shape, l) => {
      const dim = shape.reduce((a, b) => a * b, 1);
      return { name: `block${l}`, shape, dim, data: Float32Array.from({ length: n * dim }, () => rng.normal() * scale) };
    }),
  };
}

/** Row i of block l as float64. */
export function row(set: GradientSet, l: number, i: number): number[] {
  const b = set.blocks[l];
  return Array.from(b.data.subarray(i * b.dim, (i + 1) * b.dim));
}

export const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i], 0);

/** Inverse by Gauss-Jordan elimination with partial pivoting (independent of ml-matrix). */
export function invert(m: number[][]): number[][] {
  const n = m.length;
  const a = m.map((r, i) => [...r, ...Array.from({ length: n }, (_, j) => (i === j ? 1 : 0))]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r][c]) > Math.abs(a[p][c])) p = r;
    [a[c], a[p]] = [a[p], a[c]];
    const pv = a[c][c];
    for (let j = 0; j < 2 * n; j++) a[c][j] /= pv;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r][c];
      for (let j = 0; j < 2 * n; j++) a[r][j] -= f * a[c][j];
    }
  }
  return a.map((r) => r.slice(n));
}

export const matVec = (m: number[][], v: number[]) => m.map((r) => dot(r, v));

/** Dense damped Gauss-Newton block H = G^T G / n + lambda I in float64. */
export function denseHessian(set: GradientSet, l: number, lambda: number): number[][] {
  const d = set.blocks[l].dim;
  const h = Array.from({ length: d }, (_, i) => Array.from({ length: d }, (_, j) => (i === j ? lambda : 0)));
  for (let i = 0; i < set.n; i++) {
    const g = row(set, l, i);
    for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) h[a][b] += (g[a] * g[b]) / set.n;
  }
  return h;
}

/** DataInf's damping rule, computed directly. */
export function meanSquareDamping(set: GradientSet, l: number, scale = 0.1): number {
  const b = set.blocks[l];
  return (scale * b.data.reduce((s, x) => s + x * x, 0)) / b.data.length;
}

export function maxRelativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num = Math.max(num, Math.abs(got[i] - want[i]));
    den = Math.max(den, Math.abs(want[i]));
  }
  return num / den;
}

export function pearson(a: number[], b: number[]): number {
  const ma = a.reduce((s, x) => s + x, 0) / a.length;
  const mb = b.reduce((s, x) => s + x, 0) / b.length;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  a.forEach((x, i) => {
    sab += (x - ma) * (b[i] - mb);
    saa += (x - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  });
  return sab / Math.sqrt(saa * sbb);
}

/** Chunks of `size` consecutive examples; each pass yields fresh copies, like a store read from disk. */
export function chunked(set: GradientSet, size: number): GradientSource {
  const src = inMemorySource(set);
  return {
    ...src,
    chunks: function* () {
      for (let s = 0; s < set.n; s += size) {
        const m = Math.min(size, set.n - s);
        yield { start: s, set: { n: m, blocks: set.blocks.map((b) => ({ ...b, data: b.data.slice(s * b.dim, (s + m) * b.dim) })) } };
      }
    },
  };
}

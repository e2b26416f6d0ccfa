/**
 * LiSSA (Agarwal et al. 2017; Koh & Liang 2017): a stochastic Neumann series for
 * x = (H + lambda I)^-1 v per block, H = G^T G / n. With A = (H + lambda I) / scale,
 *   y_0 = v,  y_{t+1} = v + (I - A_t) y_t,  x = y_T / scale,
 * where A_t uses a random mini-batch of training gradients (or all of them). The series
 * converges when scale > the largest eigenvalue of H + lambda I; `scale: 'auto'` estimates it
 * by power iteration. The damping sign is +lambda (public code often has it wrong).
 * A convergence report (relative change of y per iteration) is kept in `report`.
 */
import { TdaError } from '../errors';
import { Rng } from '../model/random';
import { DampingOptions } from './damping';
import { DampedAttributor, materializeBlock, withBlocks } from './gradientAttributor';
import { matMul, matMulABt } from './linalg';
import { GradientSet, GradientSource } from './types';

export interface LissaOptions extends DampingOptions {
  /** Number of iterations (default 200). */
  iterations?: number;
  /** Divisor making the series converge; 'auto' = 1.1 x the estimated top eigenvalue of H + lambda I. */
  scale?: number | 'auto';
  /** Training examples per Hessian-vector product; null = all (deterministic). */
  batchSize?: number | null;
  /** Independent runs averaged, reducing mini-batch noise (Koh & Liang's r; default 1). */
  repeats?: number;
  seed?: number;
}

export interface LissaBlockReport {
  block: string;
  scale: number;
  /** ||y_{t+1} - y_t|| / ||y_t|| per iteration. */
  relativeChange: number[];
}

export class Lissa extends DampedAttributor {
  readonly name = 'lissa';
  report: LissaBlockReport[] = [];
  private blocks: Float32Array[] = [];
  private scales: number[] = [];
  private readonly opts: Required<Pick<LissaOptions, 'iterations' | 'scale' | 'seed' | 'repeats'>> & { batchSize: number | null };

  constructor(opts: LissaOptions = {}) {
    super(opts);
    this.opts = { iterations: opts.iterations ?? 200, scale: opts.scale ?? 'auto', batchSize: opts.batchSize ?? null, seed: opts.seed ?? 0, repeats: opts.repeats ?? 1 };
    if (typeof this.opts.scale === 'number' && !(this.opts.scale > 0)) throw new TdaError(`must be positive, got ${this.opts.scale}`, { field: 'scale' });
  }

  protected override prepareBlocks(train: GradientSource): void {
    this.blocks = train.blocks.map((_, l) => materializeBlock(train, l));
    this.scales = train.blocks.map((b, l) =>
      this.opts.scale === 'auto' ? 1.1 * (topEigenvalue(this.blocks[l], train.n, b.dim, this.opts.seed) + this.damping[l]) : (this.opts.scale as number),
    );
  }

  protected transform(test: GradientSet, train: GradientSource): GradientSet {
    const rng = new Rng(this.opts.seed);
    this.report = [];
    const out = test.blocks.map((b, l) => {
      const lambda = this.damping[l];
      if (lambda === 0) return new Float32Array(b.data.length);
      const scale = this.scales[l];
      const G = this.blocks[l];
      const d = b.dim;
      const nT = test.n;
      const v = b.data;
      const runs = this.opts.batchSize === null ? 1 : this.opts.repeats;
      const sum = new Float32Array(v.length);
      let changes: number[] = [];
      for (let run = 0; run < runs; run++) {
        let y = Float32Array.from(v);
        changes = [];
        for (let t = 0; t < this.opts.iterations; t++) {
          const [rows, m] = this.sample(G, train.n, d, rng);
          const hy = matMul(matMulABt(y, nT, rows, m, d), nT, m, rows, d); // y G_b^T G_b, [nT, d]
          const next = new Float32Array(y.length);
          let diff = 0;
          let norm = 0;
          for (let j = 0; j < y.length; j++) {
            next[j] = v[j] + y[j] - (hy[j] / m + lambda * y[j]) / scale;
            diff += (next[j] - y[j]) ** 2;
            norm += y[j] ** 2;
          }
          if (!Number.isFinite(diff)) {
            throw new TdaError(`LiSSA diverged at iteration ${t + 1} (scale ${scale} is below the top eigenvalue of H + lambda I; use a larger scale or 'auto')`, {
              field: b.name,
            });
          }
          changes.push(Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-30));
          y = next;
        }
        for (let j = 0; j < y.length; j++) sum[j] += y[j];
      }
      this.report.push({ block: b.name, scale, relativeChange: changes });
      return sum.map((x) => x / (scale * runs));
    });
    return withBlocks(test, out);
  }

  /** A mini-batch of training rows (with replacement) or all of them. */
  private sample(G: Float32Array, n: number, d: number, rng: Rng): [Float32Array, number] {
    const bs = this.opts.batchSize;
    if (bs === null || bs >= n) return [G, n];
    const rows = new Float32Array(bs * d);
    for (let k = 0; k < bs; k++) {
      const i = rng.int(n);
      rows.set(G.subarray(i * d, (i + 1) * d), k * d);
    }
    return [rows, bs];
  }
}

/** Largest eigenvalue of G^T G / n by power iteration (G is [n, d]). */
export function topEigenvalue(G: Float32Array, n: number, d: number, seed: number, iterations = 50): number {
  const rng = new Rng(seed + 7919);
  let x = Float32Array.from({ length: d }, () => rng.normal());
  let estimate = 0;
  for (let t = 0; t < iterations; t++) {
    const gx = matMulABt(x, 1, G, n, d); // [1, n]
    const hx = matMul(gx, 1, n, G, d); // [1, d]
    let norm = 0;
    for (let j = 0; j < d; j++) norm += hx[j] ** 2;
    norm = Math.sqrt(norm);
    if (norm === 0) return 0;
    estimate = norm / n;
    x = hx.map((v) => v / norm);
  }
  return estimate;
}

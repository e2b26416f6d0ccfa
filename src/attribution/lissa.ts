/**
 * LiSSA (Agarwal et al. 2017; Koh & Liang 2017): a stochastic Neumann series for
 * x = (H + lambda I)^-1 v per block, H = G^T G / n. With A = (H + lambda I) / scale,
 *   y_0 = v,  y_{t+1} = v + (I - A_t) y_t,  x = y_T / scale,
 * where A_t uses a random mini-batch of training gradients (or all of them). The series
 * converges when scale > the largest eigenvalue of H + lambda I; `scale: 'auto'` estimates it
 * by power iteration. The damping sign is +lambda (public code often has it wrong).
 * A convergence report (relative change of y per iteration) is kept in `report`.
 */
import * as tf from '@tensorflow/tfjs';
import { TdaError } from '../errors';
import { download } from '../runtime/ops';
import { Rng } from '../random';
import { DAMPING_SCALE_OPTION, DampingOptions } from './damping';
import { MethodDescriptor, Settings, WORKERS_OPTION } from './method';
import { DampedAttributor, materializeBlock, ScoringOptions } from './gradientAttributor';
import { GradientSet, GradientSource } from '../gradients/types';
import { withBlocks } from '../gradients/types';

/** Defaults, shared by the class and its command-line options. */
export const LISSA_DEFAULTS = { iterations: 200, scale: 'auto', batchSize: null, seed: 0, repeats: 1 } as const;

export interface LissaOptions extends DampingOptions, ScoringOptions {
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
    const d = LISSA_DEFAULTS;
    this.opts = { iterations: opts.iterations ?? d.iterations, scale: opts.scale ?? d.scale, batchSize: opts.batchSize ?? d.batchSize, seed: opts.seed ?? d.seed, repeats: opts.repeats ?? d.repeats };
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
      // The training block stays on the backend for all iterations (uploading it per
      // product dominated the run time); mini-batches are gathered rows of it.
      const g = tf.tensor2d(G, [train.n, d]);
      const gT = tf.transpose(g);
      const vT = tf.tensor2d(v, [nT, d]);
      try {
        for (let run = 0; run < runs; run++) {
          let y = tf.clone(vT);
          changes = [];
          for (let t = 0; t < this.opts.iterations; t++) {
            const idx = this.sampleRows(train.n, rng);
            const m = idx ? idx.length : train.n;
            const next = tf.tidy(() => {
              const rows = idx ? tf.gather(g, tf.tensor1d(idx, 'int32')) : g;
              const rowsT = idx ? tf.transpose(rows) : gT;
              const hy = tf.matMul(tf.matMul(y, rowsT), rows); // y G_b^T G_b, [nT, d]
              return tf.sub(tf.add(vT, y), tf.div(tf.add(tf.div(hy, m), tf.mul(y, lambda)), scale));
            });
            const [diff, norm] = download(() => tf.stack([tf.sum(tf.square(tf.sub(next, y))), tf.sum(tf.square(y))]));
            if (!Number.isFinite(diff)) {
              next.dispose();
              throw new TdaError(`LiSSA diverged at iteration ${t + 1} (scale ${scale} is below the top eigenvalue of H + lambda I; use a larger scale or 'auto')`, {
                field: b.name,
              });
            }
            changes.push(Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-30));
            y.dispose();
            y = next as tf.Tensor2D;
          }
          const yData = y.dataSync();
          for (let j = 0; j < yData.length; j++) sum[j] += yData[j];
          y.dispose();
        }
      } finally {
        g.dispose();
        gT.dispose();
        vT.dispose();
      }
      this.report.push({ block: b.name, scale, relativeChange: changes });
      return sum.map((x) => x / (scale * runs));
    });
    return withBlocks(test, out);
  }

  protected override methodSettings(): Settings {
    // The convergence reached: each block's last relative change of the iterate.
    const lastChange = Object.fromEntries(this.report.map((r) => [r.block, r.relativeChange[r.relativeChange.length - 1] ?? null]));
    return { ...super.methodSettings(), ...this.opts, ...(this.report.length ? { lastRelativeChange: lastChange } : {}) };
  }

  /** Row indices of a mini-batch (with replacement), or null for all rows. */
  private sampleRows(n: number, rng: Rng): number[] | null {
    const bs = this.opts.batchSize;
    if (bs === null || bs >= n) return null;
    return Array.from({ length: bs }, () => rng.int(n));
  }
}

/** Largest eigenvalue of G^T G / n by power iteration (G is [n, d]). */
export function topEigenvalue(G: Float32Array, n: number, d: number, seed: number, iterations = 50): number {
  const rng = new Rng(seed + 7919);
  const g = tf.tensor2d(G, [n, d]);
  const gT = tf.transpose(g);
  let x = tf.tensor2d(Float32Array.from({ length: d }, () => rng.normal()), [1, d]);
  let estimate = 0;
  try {
    for (let t = 0; t < iterations; t++) {
      const hx = tf.tidy(() => tf.matMul(tf.matMul(x, gT), g)); // [1, d]
      const norm = download(() => tf.norm(hx))[0];
      x.dispose();
      if (norm === 0) {
        hx.dispose();
        return 0;
      }
      estimate = norm / n;
      x = tf.tidy(() => tf.div(hx, norm)) as tf.Tensor2D;
      hx.dispose();
    }
  } finally {
    x.dispose();
    g.dispose();
    gT.dispose();
  }
  return estimate;
}

export const lissaMethod: MethodDescriptor = {
  name: 'lissa',
  summary: 'LiSSA: a Neumann series for the damped inverse-Hessian-vector product, per LoRA tensor',
  input: 'gradients',
  options: [
    DAMPING_SCALE_OPTION,
    WORKERS_OPTION,
    { key: 'iterations', description: 'LiSSA iterations', type: 'integer', default: LISSA_DEFAULTS.iterations, min: 1 },
    { key: 'seed', description: 'seed of the power iteration (and of mini-batches)', type: 'integer', default: LISSA_DEFAULTS.seed, min: 0 },
  ],
  create: (o) => new Lissa({ dampingScale: o.dampingScale as number, iterations: o.iterations as number, seed: o.seed as number, workers: o.workers as number | undefined }),
};

/**
 * LiSSA (Agarwal et al. 2017; Koh & Liang 2017): a stochastic Neumann series for
 * x = (H + lambda I)^-1 v per block, H = G^T G / n. With A = (H + lambda I) / scale,
 *   y_0 = v,  y_{t+1} = v + (I - A_t) y_t,  x = y_T / scale,
 * where A_t uses a random mini-batch of training gradients (or all of them). The series
 * converges when scale > the largest eigenvalue of H + lambda I; `scale: 'auto'` estimates it
 * by power iteration. The damping sign is +lambda (the LiSSA code of DataInf's and of the
 * IF-on-LLMs repositories has it wrong).
 *
 * By default it iterates until the relative residual of every query is below the tolerance
 * (iterativeSolver.ts), within a cap. Full-batch, y_{t+1} - y_t = v - (H + lambda I) y_t / scale
 * is the residual of y_t / scale, so each step's change estimates it for free; when the
 * estimate passes, the float64 residual decides (and is checked again after a tenth more
 * iterations, when float32 rounding kept it above). The error shrinks by
 * about 1 - 1 / condition per step, so ill-conditioned blocks need far more iterations than
 * conjugate gradients (method `cg`). `iterations: k` runs exactly k steps instead, as the
 * papers and the experiments do; the residual reached is reported all the same.
 * The relative change of y per iteration is kept in `report`.
 */
import * as tf from '@tensorflow/tfjs';
import { TdaError } from '../errors';
import { download } from '../runtime/ops';
import { Rng } from '../random';
import { DAMPING_SCALE_OPTION } from './damping';
import { relativeResiduals, worst } from './dampedResidual';
import { BlockProblem, BlockSolution, DEFAULT_MAX_ITERATIONS, IterativeSolver, IterativeSolverOptions, MAX_ITERATIONS_OPTION, TOLERANCE_OPTION, Unconverged, UNCONVERGED_OPTION } from './iterativeSolver';
import { MethodDescriptor, Settings, WORKERS_OPTION } from './method';
import { GradientSource } from '../gradients/types';

/** Defaults, shared by the class and its command-line options. */
export const LISSA_DEFAULTS = { maxIterations: DEFAULT_MAX_ITERATIONS.lissa, scale: 'auto', batchSize: null, seed: 0, repeats: 1 } as const;

export interface LissaOptions extends IterativeSolverOptions {
  /** Exactly this many iterations, no residual-based stop (the papers' protocol); default: iterate to the tolerance. */
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
  /** ||y_{t+1} - y_t|| / ||y_t|| per iteration (of the last run). */
  relativeChange: number[];
}

export class Lissa extends IterativeSolver {
  readonly name = 'lissa';
  report: LissaBlockReport[] = [];
  private scales: number[] = [];
  private rng = new Rng(0);
  private readonly opts: Required<Pick<LissaOptions, 'scale' | 'seed' | 'repeats'>> & { batchSize: number | null; iterations: number | undefined };

  constructor(opts: LissaOptions = {}) {
    super(opts, LISSA_DEFAULTS.maxIterations);
    const d = LISSA_DEFAULTS;
    this.opts = { iterations: opts.iterations, scale: opts.scale ?? d.scale, batchSize: opts.batchSize ?? d.batchSize, seed: opts.seed ?? d.seed, repeats: opts.repeats ?? d.repeats };
    if (typeof this.opts.scale === 'number' && !(this.opts.scale > 0)) throw new TdaError(`must be positive, got ${this.opts.scale}`, { field: 'scale' });
    if (opts.iterations !== undefined && opts.maxIterations !== undefined) {
      throw new TdaError('give either iterations (exactly that many) or maxIterations (a cap on iterating to the tolerance), not both', { field: 'maxIterations' });
    }
    if (opts.iterations !== undefined && (!Number.isInteger(opts.iterations) || opts.iterations < 1)) throw new TdaError(`must be a whole number >= 1, got ${opts.iterations}`, { field: 'iterations' });
  }

  protected override prepareSolver(train: GradientSource): void {
    this.scales = train.blocks.map((b, l) =>
      this.opts.scale === 'auto' ? 1.1 * (topEigenvalue(this.blocks[l], train.n, b.dim, this.opts.seed) + this.damping[l]) : (this.opts.scale as number),
    );
  }

  protected override promisesTolerance(): boolean {
    return this.opts.iterations === undefined;
  }

  protected override transform(...args: Parameters<IterativeSolver['transform']>): ReturnType<IterativeSolver['transform']> {
    // One random stream over all blocks of a call, as the fixed-iteration results always had.
    this.rng = new Rng(this.opts.seed);
    this.report = [];
    return super.transform(...args);
  }

  protected solveBlock(p: BlockProblem): BlockSolution {
    const { g, gT, n, d, nT, v, lambda } = p;
    const scale = this.scales[p.l];
    const fixed = this.opts.iterations;
    const steps = fixed ?? this.maxIterations;
    const runs = this.opts.batchSize === null ? 1 : this.opts.repeats;
    const vNorms = rowNorms(v, nT, d);
    const sum = new Float32Array(v.length);
    let changes: number[] = [];
    let used = 0;
    const vT = tf.tensor2d(v, [nT, d]);
    try {
      for (let run = 0; run < runs; run++) {
        let y = tf.clone(vT);
        changes = [];
        let nextCheck = 0;
        let t = 0;
        for (; t < steps; t++) {
          const idx = this.sampleRows(n);
          const m = idx ? idx.length : n;
          const next = tf.tidy(() => {
            const rows = idx ? tf.gather(g, tf.tensor1d(idx, 'int32')) : g;
            const rowsT = idx ? tf.transpose(rows) : gT;
            const hy = tf.matMul(tf.matMul(y, rowsT), rows); // y G_b^T G_b, [nT, d]
            return tf.sub(tf.add(vT, y), tf.div(tf.add(tf.div(hy, m), tf.mul(y, lambda)), scale));
          });
          // Per query ||y_{t+1} - y_t||^2, then ||y_t||^2.
          const sq = download(() => tf.concat([tf.sum(tf.square(tf.sub(next, y)), 1), tf.reshape(tf.sum(tf.square(y)), [1])]));
          let diff = 0;
          for (let q = 0; q < nT; q++) diff += sq[q];
          if (!Number.isFinite(diff)) {
            next.dispose();
            y.dispose();
            throw new TdaError(`LiSSA diverged at iteration ${t + 1} (scale ${scale} is below the top eigenvalue of H + lambda I; use a larger scale or 'auto')`, {
              field: p.name,
            });
          }
          changes.push(Math.sqrt(diff) / Math.max(Math.sqrt(sq[nT]), 1e-30));
          if (fixed === undefined && t >= nextCheck && this.estimatePasses(sq, vNorms)) {
            // The estimate is of y_t / scale: keep y_t if its float64 residual agrees.
            const x = y.dataSync().map((a) => a / scale);
            if (worst(relativeResiduals(p.G, n, d, lambda, v, x, nT)) <= this.tolerance) {
              next.dispose();
              break;
            }
            // Float32 rounding kept it above: look again after a tenth more iterations.
            nextCheck = t + 1 + Math.ceil((t + 1) / 10);
          }
          y.dispose();
          y = next as tf.Tensor2D;
        }
        used = Math.max(used, t);
        const yData = y.dataSync();
        for (let j = 0; j < yData.length; j++) sum[j] += yData[j];
        y.dispose();
      }
    } finally {
      vT.dispose();
    }
    this.report.push({ block: p.name, scale, relativeChange: changes });
    return { x: sum.map((x) => x / (scale * runs)), iterations: used };
  }

  /** Every query's step change (its residual estimate) within the tolerance of ||v_q||. */
  private estimatePasses(sq: Float32Array, vNorms: Float64Array): boolean {
    for (let q = 0; q < vNorms.length; q++) if (Math.sqrt(sq[q]) > this.tolerance * vNorms[q]) return false;
    return true;
  }

  protected override methodSettings(): Settings {
    const { iterations, ...rest } = this.opts;
    const mode = iterations === undefined ? { maxIterations: this.maxIterations } : { iterations };
    return { ...super.methodSettings(), ...mode, ...rest };
  }

  /** Row indices of a mini-batch (with replacement), or null for all rows. */
  private sampleRows(n: number): number[] | null {
    const bs = this.opts.batchSize;
    if (bs === null || bs >= n) return null;
    return Array.from({ length: bs }, () => this.rng.int(n));
  }
}

function rowNorms(a: Float32Array, rows: number, d: number): Float64Array {
  return Float64Array.from({ length: rows }, (_, q) => {
    let s = 0;
    for (let j = q * d; j < (q + 1) * d; j++) s += a[j] * a[j];
    return Math.sqrt(s);
  });
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
  summary: 'LiSSA: a Neumann series for the damped inverse-Hessian-vector product per LoRA tensor, to a residual tolerance or a fixed count',
  input: 'gradients',
  options: [
    DAMPING_SCALE_OPTION,
    WORKERS_OPTION,
    TOLERANCE_OPTION,
    MAX_ITERATIONS_OPTION,
    UNCONVERGED_OPTION,
    { key: 'iterations', description: 'run exactly this many LiSSA iterations (the papers\' protocol) instead of iterating to the tolerance', type: 'integer', min: 1 },
    { key: 'seed', description: 'seed of the power iteration (and of mini-batches)', type: 'integer', default: LISSA_DEFAULTS.seed, min: 0 },
  ],
  create: (o) =>
    new Lissa({
      dampingScale: o.dampingScale as number,
      iterations: o.iterations as number | undefined,
      maxIterations: o.maxIterations as number | undefined,
      tolerance: o.tolerance as number,
      unconverged: o.unconverged as Unconverged,
      seed: o.seed as number,
      workers: o.workers as number | undefined,
    }),
};

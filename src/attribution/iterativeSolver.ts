/**
 * What the iterative influence solvers (conjugate gradients, LiSSA) share: per block l they
 * solve (G_l^T G_l / n + lambda_l I) x_q = g_q for every test gradient g_q, stop once the
 * worst relative residual over the queries is below a tolerance (or at an iteration cap),
 * and say what they reached. The residual recorded per block is recomputed in float64
 * (dampedResidual.ts) for the float32 solution actually used; a block that misses the
 * tolerance is reported in one line through `onWarning` (default: stderr), or is an error
 * when `unconverged: 'fail'`.
 */
import * as tf from '@tensorflow/tfjs';
import { TdaError } from '../errors';
import { DampingOptions } from './damping';
import { relativeResiduals, worst } from './dampedResidual';
import { DampedAttributor, materializeBlock, ScoringOptions } from './gradientAttributor';
import { OptionSpec, Settings } from './method';
import { GradientSet, GradientSource, withBlocks } from '../gradients/types';
import { checkCompatible, checkFinite } from '../gradients/checks';

export const DEFAULT_TOLERANCE = 1e-3;

export type Unconverged = 'warn' | 'fail';

export interface IterativeSolverOptions extends DampingOptions, ScoringOptions {
  /** Largest relative residual ||(G^T G / n + lambda I) x - v|| / ||v|| accepted, per query (default 1e-3). */
  tolerance?: number;
  /** Iteration cap per block; each iteration is one product with the block's training gradients. */
  maxIterations?: number;
  /** A block above the tolerance at the end: `warn` (default) or `fail` (a TdaError naming the block). */
  unconverged?: Unconverged;
  /** Receives the one-line warning; default: written to stderr. */
  onWarning?: (message: string) => void;
}

/** What a solve reached for one block. */
export interface BlockConvergence {
  block: string;
  /** Worst relative residual over the queries, in float64; null for a block whose training gradients are all zero (it contributes 0). */
  relativeResidual: number | null;
  iterations: number;
  converged: boolean;
}

/** One block's solution: x [nT, d] (float32, as used for scoring) and the iterations spent. */
export interface BlockSolution {
  x: Float32Array;
  iterations: number;
}

/** The problem one block poses, with the training gradients already on the backend. */
export interface BlockProblem {
  name: string;
  /** Index of the block. */
  l: number;
  /** Training gradients [n, d] on the backend, and their transpose. */
  g: tf.Tensor2D;
  gT: tf.Tensor2D;
  /** The same, host side (float32) for float64 residuals. */
  G: Float32Array;
  n: number;
  d: number;
  lambda: number;
  /** Right-hand sides (test gradients) [nT, d]. */
  v: Float32Array;
  nT: number;
}

export const TOLERANCE_OPTION: OptionSpec = {
  key: 'tolerance',
  description: 'largest relative residual ||(G^T G/n + lambda I) x - g|| / ||g|| accepted per query and LoRA tensor',
  type: 'number',
  default: DEFAULT_TOLERANCE,
  min: 0,
  exclusiveMin: true,
};

export const UNCONVERGED_OPTION: OptionSpec = {
  key: 'unconverged',
  description: 'when a LoRA tensor ends above the tolerance: warn (one line on stderr) or fail',
  type: 'choice',
  choices: ['warn', 'fail'],
  default: 'warn',
};

/** Iteration caps: CG needs about sqrt(condition) iterations, LiSSA about the condition number. */
export const DEFAULT_MAX_ITERATIONS = { cg: 200, lissa: 1000 } as const;

/** The cap's default differs by method, so the option states both (and has no single default). */
export const MAX_ITERATIONS_OPTION: OptionSpec = {
  key: 'maxIterations',
  description: `iteration cap per LoRA tensor, each one pass over its training gradients (default: cg ${DEFAULT_MAX_ITERATIONS.cg}, lissa ${DEFAULT_MAX_ITERATIONS.lissa})`,
  type: 'integer',
  min: 1,
};

export abstract class IterativeSolver extends DampedAttributor {
  /** Per block, what the last attribute()/solve() reached. */
  convergence: BlockConvergence[] = [];
  protected blocks: Float32Array[] = [];
  protected readonly tolerance: number;
  protected readonly maxIterations: number;
  protected readonly unconverged: Unconverged;
  private readonly onWarning: (message: string) => void;

  constructor(opts: IterativeSolverOptions, defaultMaxIterations: number) {
    super(opts);
    this.tolerance = opts.tolerance ?? DEFAULT_TOLERANCE;
    this.maxIterations = opts.maxIterations ?? defaultMaxIterations;
    this.unconverged = opts.unconverged ?? 'warn';
    this.onWarning = opts.onWarning ?? ((m) => process.stderr.write(`${m}\n`));
    if (!(this.tolerance > 0) || !Number.isFinite(this.tolerance)) throw new TdaError(`must be a positive number, got ${this.tolerance}`, { field: 'tolerance' });
    if (!Number.isInteger(this.maxIterations) || this.maxIterations < 1) throw new TdaError(`must be a whole number >= 1, got ${this.maxIterations}`, { field: 'maxIterations' });
    if (this.unconverged !== 'warn' && this.unconverged !== 'fail') throw new TdaError(`must be warn or fail, got ${String(this.unconverged)}`, { field: 'unconverged' });
  }

  protected override prepareBlocks(train: GradientSource): void {
    this.blocks = train.blocks.map((_, l) => materializeBlock(train, l));
    this.prepareSolver(train);
  }

  /** Work of the method itself that depends on the training set only (LiSSA's scale). */
  protected prepareSolver(train: GradientSource): void {
    void train;
  }

  /** Whether this run promises the tolerance (a fixed number of iterations does not: it reports without warning). */
  protected promisesTolerance(): boolean {
    return true;
  }

  protected abstract solveBlock(p: BlockProblem): BlockSolution;

  /** x_q = (G_l^T G_l / n + lambda_l I)^-1 g_q per block: the test gradients as the method transforms them. */
  solve(test: GradientSet): GradientSet {
    if (test.n === 0) throw new TdaError('the test set has no examples', { field: 'test' });
    checkCompatible(this.train, test);
    checkFinite(test);
    return this.transform(test, this.train);
  }

  protected transform(test: GradientSet, train: GradientSource): GradientSet {
    this.convergence = [];
    const out = test.blocks.map((b, l) => {
      const lambda = this.damping[l];
      if (lambda === 0) {
        this.convergence.push({ block: b.name, relativeResidual: null, iterations: 0, converged: true });
        return new Float32Array(b.data.length);
      }
      // The training block stays on the backend for all iterations (uploading it per
      // product dominated the run time).
      const G = this.blocks[l];
      const g = tf.tensor2d(G, [train.n, b.dim]);
      const gT = tf.transpose(g);
      try {
        const p: BlockProblem = { name: b.name, l, g, gT, G, n: train.n, d: b.dim, lambda, v: b.data, nT: test.n };
        const { x, iterations } = this.solveBlock(p);
        const residual = worst(relativeResiduals(G, train.n, b.dim, lambda, b.data, x, test.n));
        this.convergence.push({ block: b.name, relativeResidual: residual, iterations, converged: residual <= this.tolerance });
        return x;
      } finally {
        g.dispose();
        gT.dispose();
      }
    });
    this.judge();
    return withBlocks(test, out);
  }

  /** Warn once (or fail) when a block ended above the tolerance. */
  private judge(): void {
    const missed = this.convergence.filter((c) => !c.converged);
    if (missed.length === 0) return;
    const w = missed.reduce((a, c) => ((c.relativeResidual ?? 0) > (a.relativeResidual ?? 0) ? c : a));
    const what = `${missed.length} of ${this.convergence.length} LoRA tensors did not reach relative residual ${this.tolerance} (worst ${w.relativeResidual?.toExponential(2)} after ${w.iterations} iterations)`;
    if (this.unconverged === 'fail') throw new TdaError(`${this.name}: ${what}; raise the iteration cap (--max-iterations) or the tolerance`, { field: w.block });
    if (this.promisesTolerance()) this.onWarning(`${this.name}: ${what} at '${w.block}'; see settings.convergence`);
  }

  protected override methodSettings(): Settings {
    const convergence = Object.fromEntries(this.convergence.map(({ block, ...c }) => [block, c]));
    return {
      ...super.methodSettings(),
      tolerance: this.tolerance,
      unconverged: this.unconverged,
      ...(this.convergence.length ? { convergence } : {}),
    };
  }
}

/**
 * The convergence records of score shards (each solved for its own queries) as one: per
 * block the worst residual and the most iterations; converged only if every shard was.
 */
export function mergeConvergence(records: Record<string, Omit<BlockConvergence, 'block'>>[]): Record<string, Omit<BlockConvergence, 'block'>> {
  const out: Record<string, Omit<BlockConvergence, 'block'>> = {};
  for (const rec of records) {
    for (const [block, c] of Object.entries(rec)) {
      const o = out[block];
      if (!o) out[block] = { ...c };
      else {
        const residuals = [o.relativeResidual, c.relativeResidual].filter((r): r is number => r !== null);
        out[block] = { relativeResidual: residuals.length ? Math.max(...residuals) : null, iterations: Math.max(o.iterations, c.iterations), converged: o.converged && c.converged };
      }
    }
  }
  return out;
}

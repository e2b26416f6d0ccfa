/**
 * LESS (Xia et al. 2024, "LESS: Selecting Influential Data for Targeted Instruction
 * Tuning"): optimizer-aware gradient matching over several checkpoints.
 *
 * At checkpoint c, training example i is represented by the update Adam would make from
 * its gradient g after one more step from the checkpoint's moments m, v, without bias
 * correction (as the reference code does):
 *   m' = b1 m + (1 - b1) g,   v' = b2 v + (1 - b2) g^2,   Gamma = m' / (sqrt(v') + eps)
 * a query by its plain gradient. Both are projected by one seeded Rademacher matrix
 * (featureProjection.ts) and unit-normalised; the score is
 *   S[q, i] = sum_c w_c <Gamma^_ci, g^_cq>,   w_c = lr_c / sum_c' lr_c'
 * with b1, b2, eps and lr_c from each checkpoint's optimizer state (the learning rate can be
 * given per checkpoint instead).
 *
 * Sign: Adam moves the weights by -lr Gamma, which changes the query's loss by about
 * -lr <Gamma, g_q>; a positive score means the example helps the query.
 *
 * Input: cache(checkpoints) with the training gradients and optimizer state of each
 * checkpoint (OptimizerCheckpoint), then attribute(tests) with the query gradients at the
 * same checkpoints, in the same order. Memory: one [nTrain, k] float32 feature matrix per
 * checkpoint.
 */
import { TdaError } from '../errors';
import { checkCompatible, checkFinite } from '../gradients/checks';
import { Projector } from '../gradients/projection';
import { GradientSet, inMemorySource } from '../gradients/types';
import { TensorMoments } from '../model/optimizerState';
import { normalizeRows, projectExamples } from './featureProjection';
import { dotScores } from './gradientAttributor';
import { MethodDescriptor, PROJECTION_SEED_OPTION, Scorer, Settings, WORKERS_OPTION } from './method';
import { blockMoments, checkSameTrainingSet, OptimizerCheckpoint } from './optimizerCheckpoint';
import { ScoreMatrix } from './types';

/** LESS's own projection size. */
export const LESS_DEFAULTS = { projectionDim: 8192, projectionSeed: 0 } as const;

export interface LessOptions {
  /** Dimension k of the projected features (default 8192, as in LESS). */
  projectionDim?: number;
  /** Seed of the Rademacher projection (default 0). */
  projectionSeed?: number;
  /** Worker threads for the final products (see ScoringOptions). */
  workers?: number;
}

/** Gamma = m' / (sqrt(v') + eps) after one simulated Adam step from moments t with gradients g ([n, dim]). */
export function adamUpdateDirection(g: Float32Array, t: TensorMoments, beta1: number, beta2: number, eps: number): Float32Array {
  const dim = t.expAvg.length;
  const out = new Float32Array(g.length);
  for (let j = 0; j < g.length; j++) {
    const p = j % dim;
    const m = beta1 * t.expAvg[p] + (1 - beta1) * g[j];
    const v = beta2 * t.expAvgSq[p] + (1 - beta2) * g[j] * g[j];
    out[j] = m / (Math.sqrt(v) + eps);
  }
  return out;
}

export class Less implements Scorer<OptimizerCheckpoint[], GradientSet[]> {
  readonly name = 'less';
  private readonly opts: Required<Omit<LessOptions, 'workers'>> & { workers?: number };
  private checkpoints: OptimizerCheckpoint[] = [];
  private weights: number[] = [];
  /** Per checkpoint: the training features [nTrain, k]. */
  private features: Float32Array[] = [];

  constructor(opts: LessOptions = {}) {
    this.opts = {
      projectionDim: opts.projectionDim ?? LESS_DEFAULTS.projectionDim,
      projectionSeed: opts.projectionSeed ?? LESS_DEFAULTS.projectionSeed,
      workers: opts.workers,
    };
    if (!Number.isSafeInteger(this.opts.projectionDim) || this.opts.projectionDim < 1) {
      throw new TdaError(`must be a whole number >= 1, got ${this.opts.projectionDim}`, { field: 'projectionDim' });
    }
  }

  /** Projects and normalises every training example's Adam update direction at every checkpoint. */
  cache(checkpoints: OptimizerCheckpoint[]): void {
    if (!Array.isArray(checkpoints) || checkpoints.length === 0) throw new TdaError('LESS needs at least one checkpoint', { field: 'checkpoints' });
    checkSameTrainingSet(checkpoints);
    const lrs = checkpoints.map((c, k) => {
      const lr = c.learningRate ?? c.optimizer.learningRate;
      if (!(Number.isFinite(lr) && lr >= 0)) throw new TdaError(`checkpoint ${k} learning rate must be a finite number >= 0, got ${lr}`, { field: 'learningRate' });
      return lr;
    });
    const total = lrs.reduce((a, b) => a + b, 0);
    if (!(total > 0)) throw new TdaError('the checkpoints\' learning rates sum to 0: nothing to weight them by', { field: 'learningRate' });
    const k = this.opts.projectionDim;
    const projector = this.projector();
    try {
      this.features = checkpoints.map((c, idx) => {
        const moments = blockMoments(c.train.blocks, c.optimizer, `checkpoint ${idx}`);
        const { beta1, beta2, eps } = c.optimizer;
        const out = new Float32Array(c.train.n * k);
        for (const { start, set } of c.train.chunks()) {
          checkFinite(set, undefined, start);
          const f = projectExamples(set, projector, (l, g) => adamUpdateDirection(g, moments[l], beta1, beta2, eps));
          out.set(normalizeRows(f, k), start * k);
        }
        return out;
      });
    } finally {
      projector.dispose();
    }
    this.checkpoints = checkpoints;
    this.weights = lrs.map((lr) => lr / total);
  }

  /** Scores queries given by their gradients at the cached checkpoints (same order). */
  attribute(tests: GradientSet[]): ScoreMatrix {
    if (!this.checkpoints.length) throw new TdaError('less: call cache(checkpoints) before attribute(tests)', { field: 'train' });
    if (!Array.isArray(tests) || tests.length !== this.checkpoints.length) {
      throw new TdaError(`needs the query gradients at each of the ${this.checkpoints.length} checkpoints, got ${Array.isArray(tests) ? tests.length : 'no list'}`, { field: 'test' });
    }
    const nTest = tests[0].n;
    if (nTest === 0) throw new TdaError('the test set has no examples', { field: 'test' });
    const k = this.opts.projectionDim;
    const projector = this.projector();
    const blocks = [];
    try {
      for (let c = 0; c < tests.length; c++) {
        const t = tests[c];
        if (t.n !== nTest) throw new TdaError(`checkpoint ${c} has ${t.n} queries, checkpoint 0 has ${nTest}`, { field: 'test' });
        checkCompatible(this.checkpoints[c].train, t);
        checkFinite(t);
        const f = normalizeRows(projectExamples(t, projector), k);
        // The checkpoint's weight goes on the query side, so one product sums the checkpoints.
        for (let j = 0; j < f.length; j++) f[j] *= this.weights[c];
        blocks.push({ name: `checkpoint ${c}`, shape: [k], dim: k, data: f });
      }
    } finally {
      projector.dispose();
    }
    const nTrain = this.checkpoints[0].train.n;
    const train = inMemorySource({ n: nTrain, blocks: blocks.map((b, c) => ({ ...b, data: this.features[c] })) });
    return dotScores({ n: nTest, blocks }, train, { workers: this.opts.workers });
  }

  settings(): Settings {
    return {
      method: 'less',
      projectionDim: this.opts.projectionDim,
      projectionSeed: this.opts.projectionSeed,
      projection: 'rademacher',
      workers: this.opts.workers ?? 'auto',
      ...(this.checkpoints.length
        ? { checkpoints: this.checkpoints.map((c, k) => ({ step: c.optimizer.step, learningRate: c.learningRate ?? c.optimizer.learningRate, weight: this.weights[k] })) }
        : {}),
    };
  }

  private projector(): Projector {
    return new Projector({ kind: 'rademacher', dim: this.opts.projectionDim, seed: this.opts.projectionSeed });
  }
}

export const lessMethod: MethodDescriptor = {
  name: 'less',
  summary: 'LESS: Adam-preconditioned training gradients vs query gradients, projected, unit-normalised, summed over checkpoints by learning rate',
  input: 'checkpoints',
  options: [
    { key: 'projectionDim', description: 'dimension of the random projection of the whole gradient (default: 8192 for less, 512 for trackStar)', type: 'integer', default: LESS_DEFAULTS.projectionDim, min: 1 },
    PROJECTION_SEED_OPTION,
    WORKERS_OPTION,
  ],
  create: (o) => new Less({ projectionDim: o.projectionDim as number, projectionSeed: o.projectionSeed as number, workers: o.workers as number | undefined }),
};

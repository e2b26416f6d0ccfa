/**
 * TrackStar (Chang et al. 2024, "Scalable Influence and Fact Tracing for Large Language
 * Model Pretraining"): corrected, projected, whitened, unit-normalised gradients.
 *
 * Every example's gradient g (training and query, at one checkpoint, normally the final
 * one) becomes
 *   phi = P (g / (sqrt(V) + eps))          V: Adam's second moment at that checkpoint
 *   G   = R^(-1/2) phi / |R^(-1/2) phi|
 * with P one seeded Rademacher projection of the whole vector (featureProjection.ts) and
 *   R = mix R_train + (1 - mix) R_query + ridge * (trace R / k) I,   R_x = Phi_x^T Phi_x / n_x
 * the autocorrelation of the projected corrected gradients; the ridge keeps R invertible
 * when there are fewer examples than dimensions. The score is G_q . G_i.
 *
 * R_query is the autocorrelation of the queries scored together in one attribute() call, so
 * with mix < 1 a query's scores depend on the batch it is scored with (all queries of a
 * task together is the method's intent). R^(-1/2) comes from a float64 symmetric
 * eigendecomposition of the k x k matrix (ml-matrix) in every attribute() call, which is
 * why k defaults to 512 (about 2 s here; 21 s at k = 1024).
 *
 * Sign: aligned (whitened) gradients mean a step on the training example lowers the
 * query's loss; positive = helps.
 */
import * as tf from '@tensorflow/tfjs';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { TdaError } from '../errors';
import { checkCompatible, checkFinite } from '../gradients/checks';
import { Projector } from '../gradients/projection';
import { GradientSet, inMemorySource } from '../gradients/types';
import { TensorMoments } from '../model/optimizerState';
import { normalizeRows, projectExamples } from './featureProjection';
import { dotScores } from './gradientAttributor';
import { MethodDescriptor, PROJECTION_SEED_OPTION, Scorer, Settings, WORKERS_OPTION } from './method';
import { blockMoments, OptimizerCheckpoint } from './optimizerCheckpoint';
import { ScoreMatrix } from './types';

export const TRACKSTAR_DEFAULTS = { projectionDim: 512, projectionSeed: 0, mix: 0.5, ridge: 1e-3, eps: 1e-8 } as const;

export interface TrackStarOptions {
  /** Dimension k of the projected gradients (default 512). */
  projectionDim?: number;
  projectionSeed?: number;
  /** Weight of the training autocorrelation in R, in [0, 1] (default 0.5; the rest is the queries'). */
  mix?: number;
  /** Added to R's diagonal as a fraction of its mean eigenvalue (default 1e-3). */
  ridge?: number;
  /** Added to sqrt(V) before dividing (default 1e-8). */
  eps?: number;
  workers?: number;
}

/** g / (sqrt(V) + eps) elementwise, V the second moment of the tensor ([n, dim] gradients). */
export function secondMomentCorrected(g: Float32Array, t: TensorMoments, eps: number): Float32Array {
  const dim = t.expAvgSq.length;
  const out = new Float32Array(g.length);
  for (let j = 0; j < g.length; j++) out[j] = g[j] / (Math.sqrt(t.expAvgSq[j % dim]) + eps);
  return out;
}

/** Phi^T Phi / n in float64, for Phi [n, k] row-major (upper triangle computed, mirrored). */
export function autocorrelation(phi: Float32Array, n: number, k: number): Float64Array {
  const r = new Float64Array(k * k);
  const row = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < k; a++) row[a] = phi[i * k + a];
    for (let a = 0; a < k; a++) {
      const x = row[a];
      if (x === 0) continue;
      const base = a * k;
      for (let b = a; b < k; b++) r[base + b] += x * row[b];
    }
  }
  for (let a = 0; a < k; a++) {
    for (let b = a; b < k; b++) {
      r[a * k + b] /= n;
      r[b * k + a] = r[a * k + b];
    }
  }
  return r;
}

/** (R + delta I)^(-1/2) of a symmetric positive semi-definite k x k matrix, by eigendecomposition (float64). */
export function inverseSqrt(r: Float64Array, k: number, delta: number): Float64Array {
  const m = new Matrix(k, k);
  for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) m.set(a, b, r[a * k + b]);
  const eig = new EigenvalueDecomposition(m, { assumeSymmetric: true });
  // A semi-definite matrix's zero eigenvalues come out of rounding as tiny values of either
  // sign: below 1e-12 of the largest, an eigenvalue counts as zero.
  const values = eig.realEigenvalues;
  const floor = 1e-12 * Math.max(0, ...values);
  const damped = values.map((l) => (l > floor ? l : 0) + delta);
  if (damped.some((l) => !(l > 0))) throw new TdaError(`R is singular (rank below k = ${k}) and the ridge is 0: give a positive ridge`, { field: 'ridge' });
  const s = damped.map((l) => 1 / Math.sqrt(Math.sqrt(l)));
  // U diag(s^2) U^T = V V^T with V = U diag(s): rows of V are contiguous, so each entry is one pass.
  const v = Float64Array.from(eig.eigenvectorMatrix.to1DArray());
  for (let a = 0; a < k; a++) for (let e = 0; e < k; e++) v[a * k + e] *= s[e];
  const out = new Float64Array(k * k);
  for (let a = 0; a < k; a++) {
    for (let b = a; b < k; b++) {
      let x = 0;
      for (let e = 0; e < k; e++) x += v[a * k + e] * v[b * k + e];
      out[a * k + b] = x;
      out[b * k + a] = x;
    }
  }
  return out;
}

export class TrackStar implements Scorer<OptimizerCheckpoint, GradientSet> {
  readonly name = 'trackStar';
  private readonly opts: Required<Omit<TrackStarOptions, 'workers'>> & { workers?: number };
  private checkpoint?: OptimizerCheckpoint;
  /** Projected corrected training gradients [nTrain, k] and their autocorrelation. */
  private phiTrain = new Float32Array(0);
  private rTrain = new Float64Array(0);
  private lastDelta?: number;

  constructor(opts: TrackStarOptions = {}) {
    const d = TRACKSTAR_DEFAULTS;
    this.opts = {
      projectionDim: opts.projectionDim ?? d.projectionDim,
      projectionSeed: opts.projectionSeed ?? d.projectionSeed,
      mix: opts.mix ?? d.mix,
      ridge: opts.ridge ?? d.ridge,
      eps: opts.eps ?? d.eps,
      workers: opts.workers,
    };
    const o = this.opts;
    if (!Number.isSafeInteger(o.projectionDim) || o.projectionDim < 1) throw new TdaError(`must be a whole number >= 1, got ${o.projectionDim}`, { field: 'projectionDim' });
    if (!(o.mix >= 0 && o.mix <= 1)) throw new TdaError(`must be in [0, 1], got ${o.mix}`, { field: 'mix' });
    if (!(Number.isFinite(o.ridge) && o.ridge >= 0)) throw new TdaError(`must be a finite number >= 0, got ${o.ridge}`, { field: 'ridge' });
    if (!(Number.isFinite(o.eps) && o.eps > 0)) throw new TdaError(`must be a positive number, got ${o.eps}`, { field: 'eps' });
  }

  /** Corrects and projects every training gradient and forms R_train. */
  cache(checkpoint: OptimizerCheckpoint): void {
    if (!checkpoint || !checkpoint.train || !checkpoint.optimizer) throw new TdaError('TrackStar needs one checkpoint: { train, optimizer }', { field: 'train' });
    const { train } = checkpoint;
    if (train.n === 0) throw new TdaError('the training set has no examples', { field: 'train' });
    const k = this.opts.projectionDim;
    this.phiTrain = new Float32Array(train.n * k);
    const moments = blockMoments(train.blocks, checkpoint.optimizer, 'train');
    const projector = this.projector();
    try {
      for (const { start, set } of train.chunks()) {
        checkFinite(set, undefined, start);
        this.phiTrain.set(this.features(set, moments, projector), start * k);
      }
    } finally {
      projector.dispose();
    }
    this.rTrain = autocorrelation(this.phiTrain, train.n, k);
    this.checkpoint = checkpoint;
  }

  attribute(test: GradientSet): ScoreMatrix {
    const c = this.checkpoint;
    if (!c) throw new TdaError('trackStar: call cache(checkpoint) before attribute(test)', { field: 'train' });
    if (test.n === 0) throw new TdaError('the test set has no examples', { field: 'test' });
    checkCompatible(c.train, test);
    checkFinite(test);
    const k = this.opts.projectionDim;
    const projector = this.projector();
    let phiTest: Float32Array;
    try {
      phiTest = this.features(test, blockMoments(c.train.blocks, c.optimizer, 'train'), projector);
    } finally {
      projector.dispose();
    }
    const { mix, ridge } = this.opts;
    const rQuery = mix < 1 ? autocorrelation(phiTest, test.n, k) : null;
    const r = new Float64Array(k * k);
    let trace = 0;
    for (let j = 0; j < r.length; j++) r[j] = mix * this.rTrain[j] + (rQuery ? (1 - mix) * rQuery[j] : 0);
    for (let a = 0; a < k; a++) trace += r[a * k + a];
    // Relative to the mean eigenvalue, so the ridge means the same at any gradient scale.
    const delta = ridge * (trace > 0 ? trace / k : 1);
    this.lastDelta = delta;
    const whiten = inverseSqrt(r, k, delta);
    const trainFeatures = normalizeRows(multiply(this.phiTrain, c.train.n, whiten, k), k);
    const testFeatures = normalizeRows(multiply(phiTest, test.n, whiten, k), k);
    const block = (n: number, data: Float32Array) => ({ n, blocks: [{ name: 'trackstar', shape: [k], dim: k, data }] });
    return dotScores(block(test.n, testFeatures), inMemorySource(block(c.train.n, trainFeatures)), { workers: this.opts.workers });
  }

  settings(): Settings {
    const { projectionDim, projectionSeed, mix, ridge, eps, workers } = this.opts;
    return {
      method: 'trackStar',
      projectionDim,
      projectionSeed,
      projection: 'rademacher',
      mix,
      ridge,
      eps,
      workers: workers ?? 'auto',
      ...(this.checkpoint ? { step: this.checkpoint.optimizer.step } : {}),
      ...(this.lastDelta !== undefined ? { ridgeValue: this.lastDelta } : {}),
    };
  }

  /** Projected second-moment-corrected gradients [n, k]. */
  private features(set: GradientSet, moments: TensorMoments[], projector: Projector): Float32Array {
    return projectExamples(set, projector, (l, g) => secondMomentCorrected(g, moments[l], this.opts.eps));
  }

  private projector(): Projector {
    return new Projector({ kind: 'rademacher', dim: this.opts.projectionDim, seed: this.opts.projectionSeed });
  }
}

/** X [n, k] times the symmetric k x k matrix W, as one 2-D matmul (float32). */
function multiply(x: Float32Array, n: number, w: Float64Array, k: number): Float32Array {
  return tf.tidy(() => {
    const y = tf.matMul(tf.tensor2d(x, [n, k]), tf.tensor2d(Float32Array.from(w), [k, k]));
    return new Float32Array(y.dataSync());
  });
}

export const trackStarMethod: MethodDescriptor = {
  name: 'trackStar',
  summary: 'TrackStar: gradients over sqrt(Adam second moment), projected, whitened by R^(-1/2) of train/query autocorrelation, unit-normalised, dot',
  input: 'checkpoints',
  options: [
    { key: 'projectionDim', description: 'dimension of the random projection of the whole gradient (default: 8192 for less, 512 for trackStar)', type: 'integer', default: TRACKSTAR_DEFAULTS.projectionDim, min: 1 },
    PROJECTION_SEED_OPTION,
    { key: 'mix', description: "weight of the training set's autocorrelation in R, in [0, 1] (the rest is the queries')", type: 'number', default: TRACKSTAR_DEFAULTS.mix, min: 0 },
    { key: 'ridge', description: "added to R's diagonal, as a fraction of its mean eigenvalue", type: 'number', default: TRACKSTAR_DEFAULTS.ridge, min: 0 },
    { key: 'eps', description: 'added to sqrt(V) before the gradient is divided by it', type: 'number', default: TRACKSTAR_DEFAULTS.eps, min: 0, exclusiveMin: true },
    WORKERS_OPTION,
  ],
  create: (o) =>
    new TrackStar({
      projectionDim: o.projectionDim as number,
      projectionSeed: o.projectionSeed as number,
      mix: o.mix as number,
      ridge: o.ridge as number,
      eps: o.eps as number,
      workers: o.workers as number | undefined,
    }),
};

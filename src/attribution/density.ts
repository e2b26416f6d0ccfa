/**
 * LMD3 data density (Kirchenbauer et al. 2024, arXiv 2405.06331): how densely the training
 * set covers a test query, as a Gaussian kernel density estimate over embeddings.
 *
 *   log p(q) = logsumexp_i( -||q - x_i||^2 / (2 h^2) ) - log n - (d/2) log(2 pi h^2)
 *
 * an isotropic kernel of bandwidth h in d dimensions over the n training embeddings x_i.
 * The output is one log-density per query (Float64Array [nTest]), not a score matrix.
 *
 * Bandwidth h (option `bandwidth`):
 *   'scott' (default)  h = sigma * n^(-1/(d+4))
 *   'silverman'        h = sigma * (4/(d+2))^(1/(d+4)) * n^(-1/(d+4))
 *   a number           used as is.
 * sigma is the MEAN of the per-dimension sample standard deviations (ddof 1) of the
 * training embeddings. scipy.stats.gaussian_kde applies the same factors to the full
 * covariance matrix instead (kernel covariance factor^2 * Cov); an isotropic kernel is used
 * here because a d x d covariance of LLM hidden states (d in the thousands, n often
 * smaller) is singular. In 1-D the two are identical.
 *
 * Leave-one-out (`leaveOneOut: true`, queries must be the training set itself): query j
 * excludes its own kernel and the normaliser uses n - 1. The bandwidth still comes from
 * all n training points.
 *
 * Per-pair view (`attribute` / `logKernelMatrix`): the [nTest, nTrain] matrix of log-kernel
 * values -||q - x_i||^2 / (2 h^2) (0 = on top of the query, more negative = farther; the
 * self pair is -Infinity under leave-one-out). Without the shared constant they stay exact
 * in float32; logsumexp of a row plus `logDensityConstant` is log p(q), and a row's softmax
 * is each training example's share of the query's density (larger = more support).
 *
 * Numerics: float64 throughout; squared distances as ||q||^2 + ||x||^2 - 2 q.x (clamped at
 * 0), the dot products a block of queries at a time; logsumexp with the row maximum factored out, so distant
 * queries give finite log-densities instead of log(0).
 */
import { TdaError } from '../errors';
import { crossDots } from './repSim';
import { MethodDescriptor, Scorer, Settings } from './method';
import { ScoreMatrix, scoreMatrix } from './types';
import { checkEmbeddingSet as checkSet, EmbeddingSet } from '../model/embeddings';

export type BandwidthRule = 'scott' | 'silverman';

export interface DensityOptions {
  /** 'scott' (default), 'silverman', or an explicit h > 0. */
  bandwidth?: BandwidthRule | number;
  /** Queries are the training set: exclude each point's own kernel, normalise by n - 1. */
  leaveOneOut?: boolean;
}

/** Mean over dimensions of the per-dimension sample standard deviation (ddof 1). */
export function meanStd(train: EmbeddingSet): number {
  checkSet(train, 'train');
  const { n, dim, data } = train;
  if (n < 2) throw new TdaError(`a bandwidth rule needs at least 2 training embeddings, got ${n}; pass a numeric bandwidth`, { field: 'bandwidth' });
  let total = 0;
  for (let k = 0; k < dim; k++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += data[i * dim + k];
    mean /= n;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += (data[i * dim + k] - mean) ** 2;
    total += Math.sqrt(ss / (n - 1));
  }
  return total / dim;
}

/** The bandwidth h a rule (or an explicit number) gives for these training embeddings. */
export function kdeBandwidth(train: EmbeddingSet, bandwidth: BandwidthRule | number = 'scott'): number {
  if (typeof bandwidth === 'number') {
    if (!(Number.isFinite(bandwidth) && bandwidth > 0)) throw new TdaError(`must be a finite number > 0, got ${bandwidth}`, { field: 'bandwidth' });
    return bandwidth;
  }
  if (bandwidth !== 'scott' && bandwidth !== 'silverman') {
    throw new TdaError(`unknown rule '${String(bandwidth)}' (use scott, silverman or a number)`, { field: 'bandwidth' });
  }
  const sigma = meanStd(train);
  if (!(sigma > 0)) throw new TdaError('training embeddings have zero spread, so the rule gives h = 0; pass a numeric bandwidth', { field: 'bandwidth' });
  const { n, dim: d } = train;
  const factor = bandwidth === 'scott' ? Math.pow(n, -1 / (d + 4)) : Math.pow((n * (d + 2)) / 4, -1 / (d + 4));
  return sigma * factor;
}

/** -log n - (d/2) log(2 pi h^2): what turns a row's log-kernel logsumexp into log p(q). */
export function logDensityConstant(n: number, dim: number, h: number): number {
  return -Math.log(n) - (dim / 2) * Math.log(2 * Math.PI * h * h);
}

/** Gaussian KDE over training embeddings; as an Attributor it yields log-kernel matrices. */
export class KernelDensity implements Scorer<EmbeddingSet> {
  readonly name = 'lmd3-kde';
  private train?: { n: number; dim: number; x: Float64Array; norms: Float64Array; h: number; source: EmbeddingSet };

  constructor(readonly opts: DensityOptions = {}) {}

  settings(): Settings {
    return { method: 'density', bandwidth: this.opts.bandwidth ?? 'scott', leaveOneOut: this.opts.leaveOneOut ?? false, ...(this.train ? { h: this.train.h } : {}) };
  }

  /** Bandwidth in use (after cache). */
  get h(): number {
    return this.fitted().h;
  }

  cache(train: EmbeddingSet): void {
    checkSet(train, 'train');
    if (train.n < 1) throw new TdaError('need at least one training embedding', { field: 'train' });
    if (this.opts.leaveOneOut && train.n < 2) throw new TdaError('leave-one-out needs at least 2 training embeddings', { field: 'leaveOneOut' });
    const h = kdeBandwidth(train, this.opts.bandwidth ?? 'scott');
    const x = Float64Array.from(train.data);
    this.train = { n: train.n, dim: train.dim, x, norms: rowNorms(x, train.n, train.dim), h, source: train };
  }

  /** log p(q) per query, Float64Array [nTest]. */
  logDensity(queries: EmbeddingSet): Float64Array {
    const t = this.fitted();
    const loo = this.checkQueries(queries);
    const out = new Float64Array(queries.n);
    const constant = logDensityConstant(loo ? t.n - 1 : t.n, t.dim, t.h);
    forEachLogKernelRow(t, queries, loo, (q, row) => {
      out[q] = logSumExp(row) + constant;
    });
    return out;
  }

  /** [nTest, nTrain] log-kernel values -||q - x_i||^2 / (2 h^2) (see the file comment). */
  attribute(test: EmbeddingSet): ScoreMatrix {
    const t = this.fitted();
    const loo = this.checkQueries(test);
    const out = scoreMatrix(test.n, t.n);
    forEachLogKernelRow(t, test, loo, (q, row) => out.data.set(row, q * t.n));
    return out;
  }

  private fitted() {
    if (!this.train) throw new TdaError('call cache(train) before scoring queries', { field: 'train' });
    return this.train;
  }

  /** Validates queries; true when leave-one-out applies (then they must be the training set). */
  private checkQueries(queries: EmbeddingSet): boolean {
    const t = this.fitted();
    checkSet(queries, 'queries');
    if (queries.dim !== t.dim) throw new TdaError(`queries have dim ${queries.dim}, training embeddings ${t.dim}`, { field: 'dim' });
    if (!this.opts.leaveOneOut) return false;
    const same = queries === t.source || (queries.n === t.n && queries.data.every((v, i) => v === t.source.data[i]));
    if (!same) throw new TdaError('leave-one-out needs the queries to be the training set itself', { field: 'leaveOneOut' });
    return true;
  }
}

/** log p(q) for each query under a Gaussian KDE of the training embeddings. */
export function logDensity(train: EmbeddingSet, queries: EmbeddingSet, opts: DensityOptions = {}): Float64Array {
  const kde = new KernelDensity(opts);
  kde.cache(train);
  return kde.logDensity(queries);
}

/** Per-pair log-kernel values -||q - x_i||^2 / (2 h^2) as an [nTest, nTrain] matrix. */
export function logKernelMatrix(train: EmbeddingSet, queries: EmbeddingSet, opts: DensityOptions = {}): ScoreMatrix {
  const kde = new KernelDensity(opts);
  kde.cache(train);
  return kde.attribute(queries);
}

// ---------------------------------------------------------------- kernels

const QUERY_BLOCK = 32;

/**
 * Calls fn(q, row) with row[i] = -||q - x_i||^2 / (2 h^2) (-Infinity for the self pair under
 * leave-one-out). Dot products come a block of queries at a time (crossDots); `row` is
 * reused between calls.
 */
function forEachLogKernelRow(
  t: { n: number; dim: number; x: Float64Array; norms: Float64Array; h: number },
  queries: EmbeddingSet,
  loo: boolean,
  fn: (q: number, row: Float64Array) => void,
): void {
  const { n, dim: d, x, norms } = t;
  const q64 = Float64Array.from(queries.data);
  const qNorms = rowNorms(q64, queries.n, d);
  const scale = -1 / (2 * t.h * t.h);
  const rows = new Float64Array(QUERY_BLOCK * n);
  for (let q0 = 0; q0 < queries.n; q0 += QUERY_BLOCK) {
    const nb = Math.min(QUERY_BLOCK, queries.n - q0);
    crossDots(q64, q0, q0 + nb, x, n, d, rows);
    for (let b = 0; b < nb; b++) {
      const row = rows.subarray(b * n, (b + 1) * n);
      const qn = qNorms[q0 + b];
      for (let i = 0; i < n; i++) row[i] = Math.max(0, qn + norms[i] - 2 * row[i]) * scale;
      if (loo) row[q0 + b] = -Infinity;
      fn(q0 + b, row);
    }
  }
}

function rowNorms(x: Float64Array, n: number, d: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += x[i * d + k] * x[i * d + k];
    out[i] = s;
  }
  return out;
}

/** log sum exp(v) with the maximum factored out; -Infinity for an empty or all -Infinity input. */
export function logSumExp(v: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < v.length; i++) if (v[i] > m) m = v[i];
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (let i = 0; i < v.length; i++) s += Math.exp(v[i] - m);
  return m + Math.log(s);
}


export const densityMethod: MethodDescriptor = {
  name: 'density',
  summary: 'LMD3: Gaussian log-kernel -|q - x_i|^2 / (2 h^2) of each query with each training embedding (its log-sum-exp gives the log-density)',
  input: 'embeddings',
  options: [{ key: 'bandwidth', description: "kernel bandwidth: 'scott', 'silverman' or a positive number", type: 'choice', choices: ['scott', 'silverman'], allowNumber: true, default: 'scott' }],
  create: (o) => new KernelDensity({ bandwidth: o.bandwidth as BandwidthRule | number }),
};

/**
 * Confidence intervals for a metric averaged over queries, resampling queries with
 * replacement: right when the queries are independent draws. When they come in runs that
 * share a model (fine-tuning runs, seeds), resample runs instead (runBootstrap.ts). Every resample comes from a seeded Rng: same seed, same interval.
 * NaN values (queries where the metric is undefined, e.g. no positives) are dropped first.
 */
import { TdaError } from '../errors';
import { Rng } from '../random';

export interface BootstrapOptions {
  /** Number of bootstrap resamples (default 1000). */
  resamples?: number;
  /** Coverage of the interval, in (0, 1) (default 0.95). */
  level?: number;
  /** Seed of the resampling (default 0). */
  seed?: number;
}

export interface Interval {
  /** The statistic on the (NaN-free) values themselves. */
  estimate: number;
  lo: number;
  hi: number;
  /** Number of values used (NaNs dropped). */
  n: number;
  level: number;
}

export interface MeanInterval {
  mean: number;
  lo: number;
  hi: number;
  n: number;
  level: number;
}

/** Values without NaN, as float64. */
export function dropNaN(values: ArrayLike<number>): number[] {
  const out: number[] = [];
  for (let i = 0; i < values.length; i++) if (!Number.isNaN(values[i])) out.push(values[i]);
  return out;
}

export function mean(values: ArrayLike<number>): number {
  if (values.length === 0) return NaN;
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  return s / values.length;
}

/** Mean over the non-NaN values (NaN when there are none). */
export function nanMean(values: ArrayLike<number>): number {
  return mean(dropNaN(values));
}

/** Quantile p of ascending `sorted`, linear interpolation between order statistics (R type 7, numpy default). */
export function quantileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * p;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

function options(opts: BootstrapOptions): { resamples: number; level: number; seed: number } {
  const resamples = opts.resamples ?? 1000;
  const level = opts.level ?? 0.95;
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(resamples) || resamples <= 0) throw new TdaError(`must be a positive integer, got ${resamples}`, { field: 'resamples' });
  checkLevel(level);
  if (!Number.isSafeInteger(seed)) throw new TdaError(`must be an integer, got ${seed}`, { field: 'seed' });
  return { resamples, level, seed };
}

function checkLevel(level: number): void {
  if (!(level > 0 && level < 1)) throw new TdaError(`must be in (0, 1), got ${level}`, { field: 'level' });
}

/** Percentile interval of the bootstrap distribution `stats` (sorted in place). */
function percentileInterval(stats: Float64Array, level: number): { lo: number; hi: number } {
  stats.sort();
  return { lo: quantileSorted(stats, (1 - level) / 2), hi: quantileSorted(stats, (1 + level) / 2) };
}

/**
 * Percentile bootstrap interval of any statistic of the values (e.g. a median or a
 * trimmed mean). The statistic gets a fresh array per resample. With no values the result
 * is all NaN; with one value the interval is that value.
 */
export function bootstrapCI(values: ArrayLike<number>, statistic: (xs: number[]) => number, opts: BootstrapOptions = {}): Interval {
  const { resamples, level, seed } = options(opts);
  const xs = dropNaN(values);
  const n = xs.length;
  if (n === 0) return { estimate: NaN, lo: NaN, hi: NaN, n, level };
  const rng = new Rng(seed);
  const stats = new Float64Array(resamples);
  const sample = new Array<number>(n);
  for (let r = 0; r < resamples; r++) {
    for (let j = 0; j < n; j++) sample[j] = xs[rng.int(n)];
    stats[r] = statistic(sample.slice());
  }
  return { estimate: statistic(xs.slice()), ...percentileInterval(stats, level), n, level };
}

/**
 * Percentile bootstrap interval of the mean. Same numbers as
 * bootstrapCI(values, mean, opts) (same seed, same draws), without the per-resample arrays.
 */
export function bootstrapMeanCI(values: ArrayLike<number>, opts: BootstrapOptions = {}): MeanInterval {
  const { resamples, level, seed } = options(opts);
  const xs = dropNaN(values);
  const n = xs.length;
  if (n === 0) return { mean: NaN, lo: NaN, hi: NaN, n, level };
  const rng = new Rng(seed);
  const stats = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += xs[rng.int(n)];
    stats[r] = s / n;
  }
  return { mean: mean(xs), ...percentileInterval(stats, level), n, level };
}

// jstat ships no type declarations; type the two functions used here locally rather than
// declaring the module globally.
interface JStatDistributions {
  jStat: {
    normal: { inv(p: number, mean: number, sd: number): number };
    studentt: { inv(p: number, dof: number): number };
  };
}
const { jStat } = require('jstat') as JStatDistributions;

export interface NormalIntervalOptions {
  level?: number;
  /** 't' (default): Student t with n - 1 degrees of freedom; 'normal': z quantile. */
  distribution?: 't' | 'normal';
}

/**
 * Closed-form interval of the mean: mean +- q * s / sqrt(n) with the sample standard
 * deviation s. No resampling, so it is cheap; it assumes the mean is near normal (many
 * queries), which the bootstrap does not. Needs n >= 2 (else lo = hi = NaN).
 */
export function normalMeanCI(values: ArrayLike<number>, opts: NormalIntervalOptions = {}): MeanInterval & { se: number } {
  const level = opts.level ?? 0.95;
  checkLevel(level);
  const dist = opts.distribution ?? 't';
  if (dist !== 't' && dist !== 'normal') throw new TdaError(`unknown distribution '${String(dist)}' (use t or normal)`, { field: 'distribution' });
  const xs = dropNaN(values);
  const n = xs.length;
  const m = mean(xs);
  if (n < 2) return { mean: m, lo: NaN, hi: NaN, n, level, se: NaN };
  let ss = 0;
  for (const x of xs) ss += (x - m) ** 2;
  const se = Math.sqrt(ss / (n - 1) / n);
  const p = (1 + level) / 2;
  const q = dist === 't' ? jStat.studentt.inv(p, n - 1) : jStat.normal.inv(p, 0, 1);
  return { mean: m, lo: m - q * se, hi: m + q * se, n, level, se };
}

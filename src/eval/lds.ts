/**
 * The linear datamodeling score (LDS; Park et al. 2023, as in TRAK, dattri and kronfluence).
 * A method's scores predict that training on subset S gives query q the output
 * sum_{i in S} score[q, i] (positive = helps, so a higher sum means a lower loss). After
 * retraining on M subsets, the LDS of query q is Spearman's rho, over the M subsets, between
 * that sum and minus the query's measured loss; a method's LDS is its mean over queries.
 */
import { TdaError } from '../errors';
import { Rng } from '../random';
import { BootstrapOptions, nanMean, quantileSorted } from './bootstrap';
import { spearman } from './correlation';

/** A score matrix [nQuery, nTrain], row-major (the shape attribution methods return). */
export interface LdsScores {
  nTest: number;
  nTrain: number;
  data: ArrayLike<number>;
}

/** Checks that every subset lists distinct training indices in [0, nTrain). */
export function checkSubsets(subsets: readonly (readonly number[])[], nTrain: number, file?: string): void {
  if (subsets.length === 0) throw new TdaError('no subsets', { file, field: 'subsets' });
  subsets.forEach((s, m) => {
    const seen = new Set<number>();
    for (const i of s) {
      if (!Number.isInteger(i) || i < 0 || i >= nTrain) throw new TdaError(`subset ${m} holds ${i}, not a training index in [0, ${nTrain})`, { file, field: `subsets[${m}]` });
      if (seen.has(i)) throw new TdaError(`subset ${m} holds ${i} twice`, { file, field: `subsets[${m}]` });
      seen.add(i);
    }
  });
}

/** Predicted outputs: [nQuery][M], the sum of each query's scores over each subset's examples. */
export function subsetScoreSums(scores: LdsScores, subsets: readonly (readonly number[])[]): Float64Array[] {
  checkSubsets(subsets, scores.nTrain);
  const out: Float64Array[] = [];
  for (let q = 0; q < scores.nTest; q++) {
    const row = q * scores.nTrain;
    const sums = new Float64Array(subsets.length);
    subsets.forEach((s, m) => {
      let acc = 0;
      for (const i of s) acc += scores.data[row + i];
      sums[m] = acc;
    });
    out.push(sums);
  }
  return out;
}

/**
 * Per-query LDS. `losses[m][q]` is query q's loss after training on subset m. A query whose
 * losses (or predictions) are all equal has no rank correlation: NaN, left out of means.
 */
export function ldsPerQuery(scores: LdsScores, subsets: readonly (readonly number[])[], losses: readonly ArrayLike<number>[]): number[] {
  if (losses.length !== subsets.length) throw new TdaError(`${losses.length} loss rows for ${subsets.length} subsets`, { field: 'losses' });
  losses.forEach((row, m) => {
    if (row.length !== scores.nTest) throw new TdaError(`subset ${m} has ${row.length} query losses, the scores have ${scores.nTest} queries`, { field: 'losses' });
  });
  const sums = subsetScoreSums(scores, subsets);
  return sums.map((pred, q) => spearman(pred, losses.map((row) => -row[q])));
}

export interface LdsInterval {
  lds: number;
  lo: number;
  hi: number;
  /** Runs and queries (non-NaN) that entered. */
  runs: number;
  queries: number;
}

/**
 * Mean LDS with a percentile bootstrap interval. `perRun[r]` holds run r's per-query values
 * (NaN dropped). The estimate is the mean over runs of each run's mean over queries. Each
 * resample draws runs with replacement and, inside each drawn run, its queries with
 * replacement: runs (independent fine-tunings, subsets and queries) are the top-level
 * sampling unit, queries the unit within a run. With one run this is the plain bootstrap
 * over queries.
 */
export function ldsInterval(perRun: readonly (readonly number[])[], opts: BootstrapOptions = {}): LdsInterval {
  const resamples = opts.resamples ?? 1000;
  const level = opts.level ?? 0.95;
  if (!Number.isInteger(resamples) || resamples <= 0) throw new TdaError(`must be a positive integer, got ${resamples}`, { field: 'resamples' });
  if (!(level > 0 && level < 1)) throw new TdaError(`must be in (0, 1), got ${level}`, { field: 'level' });
  const runs = perRun.map((r) => r.filter((v) => !Number.isNaN(v))).filter((r) => r.length > 0);
  const queries = runs.reduce((a, r) => a + r.length, 0);
  if (runs.length === 0) return { lds: NaN, lo: NaN, hi: NaN, runs: 0, queries: 0 };
  const estimate = nanMean(runs.map((r) => nanMean(r)));
  const rng = new Rng(opts.seed ?? 0);
  const stats = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    let total = 0;
    for (let k = 0; k < runs.length; k++) {
      const run = runs[rng.int(runs.length)];
      let s = 0;
      for (let j = 0; j < run.length; j++) s += run[rng.int(run.length)];
      total += s / run.length;
    }
    stats[b] = total / runs.length;
  }
  stats.sort();
  const alpha = (1 - level) / 2;
  return { lds: estimate, lo: quantileSorted(stats, alpha), hi: quantileSorted(stats, 1 - alpha), runs: runs.length, queries };
}

/**
 * Intervals when queries come in runs. Queries of one fine-tuning run (canary pair x seed)
 * share that run's model and canaries, so they are not independent draws: the sampling unit
 * is the run. This bootstrap resamples whole runs with replacement and recomputes the
 * statistic over the queries of the chosen runs (a cluster bootstrap).
 *
 *   weighting 'queries' (default): the mean over all queries of the resampled runs, i.e.
 *     sum of the runs' sums / sum of their counts; the estimate is the pooled mean, the
 *     number the tables print.
 *   weighting 'runs': the mean of the runs' own means (every run counts once).
 *
 * Paired differences (`pairedRunDifferences`): per query, value under B minus value under A
 * (same query, same run), then the same bootstrap over runs, so run-to-run spread that
 * moves both variants together cancels.
 *
 * Runs without any non-NaN value are dropped. With fewer than two runs there is no spread
 * between runs to resample: the interval is NaN (the estimate is still given). Resampling draws `rng.int(nRuns)` per run,
 * per resample, from a seeded Rng: with one query per run (and at least two runs) it gives
 * exactly the numbers of bootstrapMeanCI on those values (same seed, same draws).
 */
import { TdaError } from '../errors';
import { Rng } from '../random';
import { BootstrapOptions, dropNaN, quantileSorted } from './bootstrap';

export type RunWeighting = 'queries' | 'runs';

export interface RunBootstrapOptions extends BootstrapOptions {
  weighting?: RunWeighting;
}

export interface RunInterval {
  estimate: number;
  lo: number;
  hi: number;
  /** Runs with at least one value. */
  runs: number;
  /** Values (queries) over those runs. */
  queries: number;
  level: number;
  weighting: RunWeighting;
}

function resolve(opts: RunBootstrapOptions): { resamples: number; level: number; seed: number; weighting: RunWeighting } {
  const resamples = opts.resamples ?? 1000;
  const level = opts.level ?? 0.95;
  const seed = opts.seed ?? 0;
  const weighting = opts.weighting ?? 'queries';
  if (!Number.isInteger(resamples) || resamples <= 0) throw new TdaError(`must be a positive integer, got ${resamples}`, { field: 'resamples' });
  if (!(level > 0 && level < 1)) throw new TdaError(`must be in (0, 1), got ${level}`, { field: 'level' });
  if (!Number.isSafeInteger(seed)) throw new TdaError(`must be an integer, got ${seed}`, { field: 'seed' });
  if (weighting !== 'queries' && weighting !== 'runs') throw new TdaError(`unknown weighting '${String(weighting)}' (use queries or runs)`, { field: 'weighting' });
  return { resamples, level, seed, weighting };
}

/** Percentile interval over runs of the mean of per-query values; `runs[r]` holds run r's values. */
export function runBootstrapMeanCI(runs: ArrayLike<number>[], opts: RunBootstrapOptions = {}): RunInterval {
  const { resamples, level, seed, weighting } = resolve(opts);
  const kept = runs.map((r) => dropNaN(r)).filter((r) => r.length > 0);
  const nRuns = kept.length;
  const sums = kept.map((r) => r.reduce((a, b) => a + b, 0));
  const counts = kept.map((r) => r.length);
  const queries = counts.reduce((a, b) => a + b, 0);
  const empty = { estimate: NaN, lo: NaN, hi: NaN, runs: 0, queries: 0, level, weighting };
  if (nRuns === 0) return empty;
  // A resample is a multiset of runs; its statistic from per-run sums and counts.
  const stat = (pick: (r: number) => number): number => {
    let num = 0;
    let den = 0;
    for (let j = 0; j < nRuns; j++) {
      const r = pick(j);
      if (weighting === 'queries') {
        num += sums[r];
        den += counts[r];
      } else {
        num += sums[r] / counts[r];
        den += 1;
      }
    }
    return num / den;
  };
  if (nRuns < 2) return { ...empty, estimate: stat((j) => j), runs: nRuns, queries };
  const rng = new Rng(seed);
  const stats = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) stats[b] = stat(() => rng.int(nRuns));
  stats.sort();
  return { estimate: stat((j) => j), lo: quantileSorted(stats, (1 - level) / 2), hi: quantileSorted(stats, (1 + level) / 2), runs: nRuns, queries, level, weighting };
}

/**
 * Run-level interval of the mean paired difference B - A. `a[r][q]` and `b[r][q]` are the
 * same query q of run r under the two variants; a query where either is NaN is dropped.
 */
export function pairedRunDifferences(a: ArrayLike<number>[], b: ArrayLike<number>[], opts: RunBootstrapOptions = {}): RunInterval {
  if (a.length !== b.length) throw new TdaError(`${a.length} runs under A but ${b.length} under B`, { field: 'runs' });
  const diffs = a.map((ra, r) => {
    const rb = b[r];
    if (ra.length !== rb.length) throw new TdaError(`run ${r} has ${ra.length} queries under A but ${rb.length} under B`, { field: 'queries' });
    const d: number[] = [];
    for (let q = 0; q < ra.length; q++) {
      const v = rb[q] - ra[q];
      if (!Number.isNaN(v)) d.push(v);
    }
    return d;
  });
  return runBootstrapMeanCI(diffs, opts);
}

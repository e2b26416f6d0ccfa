/**
 * Words for a comparison, read off its interval, so that a sentence never says more than
 * the numbers do: "helps" only when the whole interval of (variant - baseline) lies above 0,
 * "hurts" only when it lies below, "no clear difference" when it contains 0, and
 * "too few runs" below the minimum number of runs (default 3: one seed is not a claim).
 */
import { TdaError } from '../errors';
import { RunInterval } from './runBootstrap';

export type Verdict = 'helps' | 'hurts' | 'no clear difference' | 'too few runs';

export interface ClaimOptions {
  /** Fewer runs than this give 'too few runs' (default 3). */
  minRuns?: number;
  /** Decimals of the printed numbers (default 3). */
  digits?: number;
}

/** The verdict for an interval of a difference (positive = the variant is better). */
export function verdictOf(ci: Pick<RunInterval, 'lo' | 'hi' | 'runs'>, opts: ClaimOptions = {}): Verdict {
  const minRuns = opts.minRuns ?? 3;
  if (!Number.isInteger(minRuns) || minRuns < 1) throw new TdaError(`must be a positive integer, got ${minRuns}`, { field: 'minRuns' });
  if (ci.runs < minRuns || Number.isNaN(ci.lo) || Number.isNaN(ci.hi)) return 'too few runs';
  if (ci.lo > 0) return 'helps';
  if (ci.hi < 0) return 'hurts';
  return 'no clear difference';
}

const signed = (x: number, digits: number) => `${x >= 0 ? '+' : '\u2212'}${Math.abs(x).toFixed(digits)}`;

/** "helps (+0.012, 95% CI +0.004 to +0.020; 6 runs, 42 queries)": the verdict, then the numbers it rests on. */
export function describeDifference(ci: RunInterval, opts: ClaimOptions = {}): string {
  const digits = opts.digits ?? 3;
  return `${verdictOf(ci, opts)} (${intervalNumbers(ci, digits, true)})`;
}

/** "0.885 (95% CI 0.840 to 0.921; 6 runs, 42 queries)". */
export function describeEstimate(ci: RunInterval, digits = 3): string {
  return Number.isNaN(ci.estimate) ? 'no data' : `${ci.estimate.toFixed(digits)} (${intervalNumbers(ci, digits, false).replace(/^[^,]*, /, '')})`;
}

function intervalNumbers(ci: RunInterval, digits: number, sign: boolean): string {
  if (Number.isNaN(ci.estimate)) return 'no data';
  const f = (x: number) => (Number.isNaN(x) ? '-' : sign ? signed(x, digits) : x.toFixed(digits));
  return `${f(ci.estimate)}, ${Math.round(ci.level * 100)}% CI ${f(ci.lo)} to ${f(ci.hi)}; ${ci.runs} run${ci.runs === 1 ? '' : 's'}, ${ci.queries} queries`;
}

/**
 * One sentence: "denoise vs plain, DataInf, ft: helps (+0.012, 95% CI +0.004 to +0.020; 6 runs,
 * 42 queries)". `what` names the comparison.
 */
export function wordClaim(what: string, ci: RunInterval, opts: ClaimOptions = {}): string {
  return `${what}: ${describeDifference(ci, opts)}`;
}

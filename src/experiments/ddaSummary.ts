/**
 * The DDA experiment's numbers across runs: per (method, variant, regime) the pooled mean AUC
 * with an interval from resampling runs (canary pair x seed), not queries; per method and
 * regime the paired differences of each variant against plain (and of each extra debias
 * reading against the one it replaces), with run-level intervals and a verdict; the verdict
 * and the quoted interval are the union of a percentile bootstrap over runs and a t interval
 * over the runs' mean differences, since with few runs (3 runs: 10 distinct resamples) the
 * bootstrap alone is too narrow; and the
 * `RESULT dda/...` lines a README may quote.
 */
import { describeDifference, describeEstimate, verdictOf } from '../eval/claims';
import { normalMeanCI } from '../eval/bootstrap';
import { pairedRunDifferences, runBootstrapMeanCI, RunInterval } from '../eval/runBootstrap';
import { resultLine } from './resultLines';

export interface DdaQueryRecord {
  run: number;
  pair: number;
  regime: string;
  seed: number;
  query: number;
  method: string;
  variant: string;
  auc: number;
  recall: number;
}

export interface DdaSummaryRow {
  method: string;
  variant: string;
  regime: string;
  auc: number;
  auc_lo: number;
  auc_hi: number;
  recall_at_k: number;
  runs: number;
  queries: number;
}

export interface DdaDifferenceRow {
  method: string;
  regime: string;
  /** e.g. "denoise - plain". */
  comparison: string;
  difference: number;
  /** Percentile bootstrap over runs (2000 resamples). */
  lo: number;
  hi: number;
  /** Student t interval of the mean of the runs' own mean differences (n - 1 degrees of freedom). */
  t_lo: number;
  t_hi: number;
  runs: number;
  queries: number;
  /** From the union of the two intervals: a bootstrap over 3 runs has only 10 distinct resamples and runs narrow. */
  verdict: string;
}

/** [variant, baseline]: what each difference measures. */
export const DDA_COMPARISONS: [string, string][] = [
  ['denoise', 'plain'],
  ['debias', 'plain'],
  ['DDA', 'plain'],
  ['debias (A_t, B=0)', 'plain'],
  ['DDA (A_t, B=0)', 'plain'],
  ['debias (A_t, B=0)', 'debias'],
  ['DDA (A_t, B=0)', 'DDA'],
  ['debias (contrast)', 'plain'],
  ['DDA (contrast)', 'plain'],
];

export const REGIME_SHORT: Record<string, string> = { 'fine-tuning-only': 'ft', 'base-bias': 'bias' };

const BOOTSTRAP = { seed: 0, resamples: 2000 };

/** Per run (ascending run number), the values of one method x variant x regime, by query. */
function byRun(records: DdaQueryRecord[], method: string, variant: string, regime: string, pick: (r: DdaQueryRecord) => number): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const r of records) {
    if (r.method !== method || r.variant !== variant || r.regime !== regime) continue;
    const row = out.get(r.run) ?? [];
    row[r.query] = pick(r);
    out.set(r.run, row);
  }
  return new Map([...out.entries()].sort((x, y) => x[0] - y[0]));
}

export function ddaSummaryRows(records: DdaQueryRecord[], methods: string[], variants: string[], regimes: string[]): DdaSummaryRow[] {
  const rows: DdaSummaryRow[] = [];
  for (const method of methods) {
    for (const variant of variants) {
      for (const regime of regimes) {
        const auc = byRun(records, method, variant, regime, (r) => r.auc);
        if (auc.size === 0) continue;
        const ci = runBootstrapMeanCI([...auc.values()], BOOTSTRAP);
        const recall = records.filter((r) => r.method === method && r.variant === variant && r.regime === regime && !Number.isNaN(r.recall)).map((r) => r.recall);
        rows.push({ method, variant, regime, auc: ci.estimate, auc_lo: ci.lo, auc_hi: ci.hi, recall_at_k: recall.reduce((a, b) => a + b, 0) / recall.length, runs: ci.runs, queries: ci.queries });
      }
    }
  }
  return rows;
}

/** The paired run-level interval of `variant - baseline`, or null if either is missing. */
export function ddaDifference(records: DdaQueryRecord[], method: string, regime: string, variant: string, baseline: string): RunInterval | null {
  const b = byRun(records, method, variant, regime, (r) => r.auc);
  const a = byRun(records, method, baseline, regime, (r) => r.auc);
  const runs = [...b.keys()].filter((k) => a.has(k));
  if (runs.length === 0) return null;
  return pairedRunDifferences(
    runs.map((k) => a.get(k)!),
    runs.map((k) => b.get(k)!),
    BOOTSTRAP,
  );
}

/** Each run's mean of per-query differences `variant - baseline` (runs with both). */
export function runMeanDifferences(records: DdaQueryRecord[], method: string, regime: string, variant: string, baseline: string): number[] {
  const b = byRun(records, method, variant, regime, (r) => r.auc);
  const a = byRun(records, method, baseline, regime, (r) => r.auc);
  const out: number[] = [];
  for (const [run, vb] of b) {
    const va = a.get(run);
    if (!va) continue;
    const d = vb.map((x, q) => x - va[q]).filter((x) => !Number.isNaN(x));
    if (d.length) out.push(d.reduce((s, x) => s + x, 0) / d.length);
  }
  return out;
}

export function ddaDifferenceRows(records: DdaQueryRecord[], methods: string[], regimes: string[]): DdaDifferenceRow[] {
  const rows: DdaDifferenceRow[] = [];
  for (const method of methods) {
    for (const regime of regimes) {
      for (const [variant, baseline] of DDA_COMPARISONS) {
        const ci = ddaDifference(records, method, regime, variant, baseline);
        if (!ci) continue;
        const t = normalMeanCI(runMeanDifferences(records, method, regime, variant, baseline));
        const union = { ...ci, lo: Math.min(ci.lo, t.lo), hi: Math.max(ci.hi, t.hi) };
        rows.push({ method, regime, comparison: `${variant} - ${baseline}`, difference: ci.estimate, lo: ci.lo, hi: ci.hi, t_lo: t.lo, t_hi: t.hi, runs: ci.runs, queries: ci.queries, verdict: verdictOf(union) });
      }
    }
  }
  return rows;
}

/** The run's `RESULT dda/...` lines: every AUC with its interval, every paired difference with its verdict. */
export function ddaResultLines(summary: DdaSummaryRow[], differences: DdaDifferenceRow[]): string[] {
  const asInterval = (x: { runs: number; queries: number }, estimate: number, lo: number, hi: number): RunInterval => ({ estimate, lo, hi, runs: x.runs, queries: x.queries, level: 0.95, weighting: 'queries' });
  return [
    ...summary.map((s) => resultLine('dda', `auc ${s.method} ${s.variant} ${REGIME_SHORT[s.regime] ?? s.regime}`, describeEstimate(asInterval(s, s.auc, s.auc_lo, s.auc_hi)))),
    ...differences.map((d) =>
      resultLine('dda', `${d.comparison} ${d.method} ${REGIME_SHORT[d.regime] ?? d.regime}`, `${describeDifference(asInterval(d, d.difference, Math.min(d.lo, d.t_lo), Math.max(d.hi, d.t_hi)))}`),
    ),
  ];
}

/**
 * Metrics of a whole score matrix against ground truth: one row per query (AUC, AP,
 * recall@k of its row of scores against its relevant training examples), summaries over
 * queries, and the pooled AUC.
 *
 * Ground truth: `positives[q]` lists the training indices relevant to query q (e.g. the
 * sources of a hallucination). A query with no positives has no defined AUC/AP/recall:
 * its row holds NaN and it is left out of every mean and interval (the summaries report
 * how many queries each mean covers). A query whose every training example is positive
 * has NaN AUC too (no negatives).
 */
import { ScoreMatrix, scoreRow } from '../attribution/types';
import { averagePrecision, recallAtK, rocAuc, TopKOptions } from './auc';
import { BootstrapOptions, bootstrapMeanCI, dropNaN, nanMean } from './bootstrap';
import { DataFrame, frameColumn, frameFromColumns } from './frame';
import { checkPositiveInt } from './ranking';
import { checkPositives, checkScoresForMetrics, positiveMask } from './validate';

/** Default k of recall@k (the CLI's too): 10, a typical "top results a person inspects". */
export const DEFAULT_RECALL_K = 10;

export interface PerQueryOptions extends TopKOptions {
  /** k of recall@k (default 10; capped at nTrain). */
  k?: number;
}

export interface PerQueryColumns {
  query: number[];
  auc: number[];
  ap: number[];
  recall_at_k: number[];
}

/** The per-query metrics as plain columns (what perQueryMetrics puts in a DataFrame). */
export function perQueryColumns(scores: ScoreMatrix, positives: readonly (readonly number[])[], opts: PerQueryOptions = {}): PerQueryColumns {
  checkScoresForMetrics(scores);
  const k = opts.k ?? DEFAULT_RECALL_K;
  checkPositiveInt(k, 'k');
  const lists = checkPositives(positives, scores.nTest, scores.nTrain);
  const out: PerQueryColumns = { query: [], auc: [], ap: [], recall_at_k: [] };
  for (let q = 0; q < scores.nTest; q++) {
    const row = scoreRow(scores, q);
    const mask = positiveMask(lists[q], scores.nTrain);
    out.query.push(q);
    out.auc.push(rocAuc(row, mask));
    out.ap.push(averagePrecision(row, mask));
    out.recall_at_k.push(recallAtK(row, mask, k, { ties: opts.ties }));
  }
  return out;
}

/** A DataFrame with one row per query and columns query, auc, ap, recall_at_k. */
export function perQueryMetrics(scores: ScoreMatrix, positives: readonly (readonly number[])[], opts: PerQueryOptions = {}): DataFrame {
  const c = perQueryColumns(scores, positives, opts);
  return frameFromColumns({ query: c.query, auc: c.auc, ap: c.ap, recall_at_k: c.recall_at_k });
}

/**
 * AUC with all nTest x nTrain (query, training example) pairs ranked together; a pair is
 * positive when the example is relevant to the query. Unlike the mean per-query AUC it
 * also asks that scores be comparable across queries, so it drops when one query's scores
 * are on a larger scale than another's.
 */
export function pooledAuc(scores: ScoreMatrix, positives: readonly (readonly number[])[]): number {
  checkScoresForMetrics(scores);
  const lists = checkPositives(positives, scores.nTest, scores.nTrain);
  // One byte per pair (a boolean[] would take 8): the metrics only test truthiness.
  const mask = new Uint8Array(scores.data.length);
  lists.forEach((list, q) => {
    for (const i of list) mask[q * scores.nTrain + i] = 1;
  });
  return rocAuc(scores.data, mask as unknown as ArrayLike<boolean>);
}

/** Metric columns of a per-query table: every column except `query`. */
function metricNames(df: DataFrame): string[] {
  return df.columns.filter((c) => c !== 'query');
}

/**
 * Mean of each metric over the queries where it is defined: a DataFrame with columns
 * metric, mean, n (n = queries counted, NaN rows excluded).
 */
export function metricMeans(perQuery: DataFrame): DataFrame {
  const names = metricNames(perQuery);
  const cols = names.map((m) => frameColumn(perQuery, m));
  return frameFromColumns({ metric: names, mean: cols.map(nanMean), n: cols.map((v) => dropNaN(v).length) });
}

/**
 * Means with percentile-bootstrap intervals over queries (seeded; NaN rows excluded): a
 * DataFrame with columns metric, mean, lo, hi, n. Defaults: 1000 resamples, 95%, seed 0.
 */
export function metricSummary(perQuery: DataFrame, opts: BootstrapOptions = {}): DataFrame {
  const names = metricNames(perQuery);
  const rows = names.map((m) => bootstrapMeanCI(frameColumn(perQuery, m), opts));
  return frameFromColumns({ metric: names, mean: rows.map((r) => r.mean), lo: rows.map((r) => r.lo), hi: rows.map((r) => r.hi), n: rows.map((r) => r.n) });
}

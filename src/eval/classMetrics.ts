/**
 * Class-attribution metrics of "Do Influence Functions Work on Large Language Models?"
 * (Li et al. 2024, arXiv 2409.19998). Each test query and each training example has a
 * class; a good attribution ranks training examples of the query's class first.
 *
 *   Acc_q   = 1 if the top-1 training example has the query's class, else 0
 *   Cover_q = (number of same-class examples among the top k) / k
 *
 * with k = floor(nTrain / nClasses) by default (the size of one class when classes are
 * balanced; at least 1), nClasses counted over the training labels. Reported values are
 * means over queries. Ranking ties: lower training index first (see ranking.ts).
 */
import { ScoreMatrix, scoreRow } from '../attribution/types';
import { TdaError } from '../errors';
import { DataFrame, frameFromColumns } from './frame';
import { argmax, checkPositiveInt, topK } from './ranking';
import { checkScoresForMetrics } from './validate';

export type ClassLabel = string | number;

export interface ClassMetricsOptions {
  /** Cover's k; default floor(nTrain / nClasses), at least 1. Capped at nTrain. */
  k?: number;
}

export interface ClassMetrics {
  /** Mean Acc over queries. */
  acc: number;
  /** Mean Cover over queries. */
  cover: number;
  /** The k used for Cover. */
  k: number;
  /** Distinct classes among the training labels. */
  nClasses: number;
  accPerQuery: number[];
  coverPerQuery: number[];
}

/** Cover's default k: floor(nTrain / nClasses), at least 1. */
export function defaultCoverK(nTrain: number, nClasses: number): number {
  return Math.max(1, Math.floor(nTrain / Math.max(1, nClasses)));
}

function checkLabels(labels: ArrayLike<ClassLabel>, n: number, field: string, what: string): void {
  if (labels.length !== n) throw new TdaError(`has ${labels.length} labels but there are ${n} ${what}`, { field });
  for (let i = 0; i < labels.length; i++) {
    const c = labels[i];
    const ok = typeof c === 'string' || (typeof c === 'number' && Number.isFinite(c));
    if (!ok) throw new TdaError(`label at index ${i} must be a string or a finite number, got ${String(c)}`, { field });
  }
}

export function classAccCover(
  scores: ScoreMatrix,
  testClasses: ArrayLike<ClassLabel>,
  trainClasses: ArrayLike<ClassLabel>,
  opts: ClassMetricsOptions = {},
): ClassMetrics {
  checkScoresForMetrics(scores);
  checkLabels(testClasses, scores.nTest, 'testClasses', 'queries (score rows)');
  checkLabels(trainClasses, scores.nTrain, 'trainClasses', 'training examples (score columns)');
  const nClasses = new Set(Array.from(trainClasses)).size;
  const k = opts.k ?? defaultCoverK(scores.nTrain, nClasses);
  checkPositiveInt(k, 'k');
  const m = Math.min(k, scores.nTrain);
  const accPerQuery: number[] = [];
  const coverPerQuery: number[] = [];
  for (let q = 0; q < scores.nTest; q++) {
    const row = scoreRow(scores, q);
    const c = testClasses[q];
    accPerQuery.push(trainClasses[argmax(row)] === c ? 1 : 0);
    const top = topK(row, m);
    let same = 0;
    for (const i of top) if (trainClasses[i] === c) same++;
    coverPerQuery.push(same / m);
  }
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return { acc: avg(accPerQuery), cover: avg(coverPerQuery), k: m, nClasses, accPerQuery, coverPerQuery };
}

/** Per-query Acc and Cover as a DataFrame with columns query, acc, cover. */
export function perQueryClassMetrics(
  scores: ScoreMatrix,
  testClasses: ArrayLike<ClassLabel>,
  trainClasses: ArrayLike<ClassLabel>,
  opts: ClassMetricsOptions = {},
): DataFrame {
  const r = classAccCover(scores, testClasses, trainClasses, opts);
  return frameFromColumns({ query: r.accPerQuery.map((_, q) => q), acc: r.accPerQuery, cover: r.coverPerQuery });
}

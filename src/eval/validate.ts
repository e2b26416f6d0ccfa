/**
 * Checks on a score matrix and its ground truth before any metric runs, so a bad input is
 * reported once, naming the file (when there is one), the field, the query and position,
 * instead of surfacing as a NaN metric.
 */
import { checkScoreMatrix as checkMatrix, ScoreMatrix } from '../attribution/types';
import { showValue, TdaError } from '../errors';

export interface Where {
  /** File the values came from, for error messages. */
  file?: string;
  /** Field name used in error messages (default 'scores' / 'positives'). */
  field?: string;
}

/** The shared score-matrix check (attribution/types.ts), plus: metrics need a query and a training example. */
export function checkScoresForMetrics(scores: ScoreMatrix, where: Where = {}): void {
  const field = where.field ?? 'scores';
  checkMatrix(scores, { file: where.file, field });
  if (scores.nTest === 0) throw new TdaError('has no queries (shape [0, nTrain])', { file: where.file, field });
  if (scores.nTrain === 0) throw new TdaError('has no training examples (shape [nTest, 0])', { file: where.file, field });
}

/**
 * Ground truth as lists of relevant training indices, one list per query. Must have nTest
 * lists of integers in [0, nTrain). Duplicates are harmless (a set is meant) and ignored.
 * Returns the lists as plain number arrays.
 */
export function checkPositives(positives: unknown, nTest: number, nTrain: number, where: Where = {}): number[][] {
  const field = where.field ?? 'positives';
  if (!Array.isArray(positives)) {
    throw new TdaError(`must be an array of index lists (one per query), got ${describe(positives)}`, { file: where.file, field });
  }
  if (positives.length !== nTest) {
    throw new TdaError(`has ${positives.length} entries but there are ${nTest} queries (score rows)`, { file: where.file, field });
  }
  return positives.map((list: unknown, q: number) => {
    const f = `${field}[${q}]`;
    if (!Array.isArray(list)) throw new TdaError(`query ${q}: must be an array of training indices, got ${describe(list)}`, { file: where.file, field: f });
    return list.map((v: unknown) => {
      if (typeof v !== 'number' || !Number.isInteger(v)) throw new TdaError(`query ${q}: index ${describe(v)} is not an integer`, { file: where.file, field: f });
      if (v < 0 || v >= nTrain) throw new TdaError(`query ${q}: index ${v} is out of range [0, ${nTrain})`, { file: where.file, field: f });
      return v;
    });
  });
}

/** A [nTrain] boolean mask from one query's index list (indices already checked). */
export function positiveMask(indices: readonly number[], nTrain: number): boolean[] {
  const mask = new Array<boolean>(nTrain).fill(false);
  for (const i of indices) mask[i] = true;
  return mask;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return showValue(v);
  return String(v);
}

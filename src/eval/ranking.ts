/**
 * Input checks and orderings shared by the ranking metrics.
 *
 * Tie rule used everywhere a strict order is needed (top-k, top-1): higher score first,
 * and among equal scores the LOWER index first ("stable by index"). It is deterministic
 * and matches a stable descending sort, so results never depend on the sort algorithm.
 */
import { TdaError } from '../errors';

/** Throws a TdaError naming `field` and the first NaN position; scores and labels must pair up. */
export function checkRankingInputs(scores: ArrayLike<number>, isPositive: ArrayLike<boolean>): void {
  if (scores.length !== isPositive.length) {
    throw new TdaError(`has ${isPositive.length} labels but there are ${scores.length} scores`, { field: 'isPositive' });
  }
  checkNoNaN(scores, 'scores');
}

/** NaN has no place in an order; infinities are ordered like any other number. */
export function checkNoNaN(values: ArrayLike<number>, field: string): void {
  for (let i = 0; i < values.length; i++) {
    if (Number.isNaN(values[i])) throw new TdaError(`value at index ${i} is NaN`, { field });
  }
}

export function checkPositiveInt(k: number, field: string): void {
  if (!Number.isInteger(k) || k <= 0) throw new TdaError(`must be a positive integer, got ${k}`, { field });
}

/** Indices sorted by score descending, ties by index ascending. */
export function descendingOrder(scores: ArrayLike<number>): Uint32Array {
  const order = new Uint32Array(scores.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  // Explicit comparisons (not a - b) so that +-Infinity compare correctly.
  order.sort((a, b) => {
    const sa = scores[a];
    const sb = scores[b];
    if (sa > sb) return -1;
    if (sa < sb) return 1;
    return a - b;
  });
  return order;
}

/** The first min(k, n) indices of descendingOrder (k >= 1). */
export function topK(scores: ArrayLike<number>, k: number): Uint32Array {
  checkPositiveInt(k, 'k');
  return descendingOrder(scores).subarray(0, Math.min(k, scores.length));
}

/** Index of the highest score (lowest index among ties); -1 when empty. */
export function argmax(scores: ArrayLike<number>): number {
  let best = -1;
  for (let i = 0; i < scores.length; i++) if (best < 0 || scores[i] > scores[best]) best = i;
  return best;
}

/**
 * Walk the scores from highest to lowest, one call per group of tied scores, with the
 * running counts of positives (tp) and negatives (fp) at or above that score. ROC and
 * precision-recall curves are both read off this walk.
 */
export function walkTieGroups(
  scores: ArrayLike<number>,
  isPositive: ArrayLike<boolean>,
  visit: (score: number, tp: number, fp: number) => void,
): void {
  const order = descendingOrder(scores);
  let tp = 0;
  let fp = 0;
  let j = 0;
  while (j < order.length) {
    const s = scores[order[j]];
    // -0 === 0, so signed zeros fall in one group, as they compare equal.
    while (j < order.length && scores[order[j]] === s) {
      if (isPositive[order[j]]) tp++;
      else fp++;
      j++;
    }
    visit(s, tp, fp);
  }
}

export function countPositives(isPositive: ArrayLike<boolean>): number {
  let n = 0;
  for (let i = 0; i < isPositive.length; i++) if (isPositive[i]) n++;
  return n;
}

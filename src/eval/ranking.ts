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

/** The m-th largest score (1 <= m <= n), from a numeric typed-array sort (no comparator: fast). */
export function kthLargest(scores: ArrayLike<number>, m: number): number {
  const sorted = Float64Array.from(scores).sort();
  return sorted[sorted.length - m];
}

/**
 * The first min(k, n) indices of descendingOrder (k >= 1), without sorting all n with a
 * comparator: find the k-th largest score b, keep everything above b and the lowest-index
 * examples tied with b, then order just those.
 */
export function topK(scores: ArrayLike<number>, k: number): Uint32Array {
  checkPositiveInt(k, 'k');
  const n = scores.length;
  const m = Math.min(k, n);
  if (m === 0) return new Uint32Array(0);
  const b = kthLargest(scores, m);
  const picked: number[] = [];
  for (let i = 0; i < n; i++) if (scores[i] > b) picked.push(i);
  for (let i = 0, slots = m - picked.length; i < n && slots > 0; i++) {
    if (scores[i] === b) {
      picked.push(i);
      slots--;
    }
  }
  const out = Uint32Array.from(picked);
  out.sort((a, c) => (scores[a] > scores[c] ? -1 : scores[a] < scores[c] ? 1 : a - c));
  return out;
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
  // Two numeric sorts (all scores, positives' scores) instead of a comparator sort of
  // indices: ~5x faster, and the groups need counts only, not which examples they hold.
  const all = Float64Array.from(scores).sort();
  let nPos = 0;
  for (let i = 0; i < isPositive.length; i++) if (isPositive[i]) nPos++;
  const pos = new Float64Array(nPos);
  for (let i = 0, p = 0; i < scores.length; i++) if (isPositive[i]) pos[p++] = scores[i];
  pos.sort();
  let tp = 0;
  let fp = 0;
  let i = all.length - 1;
  let j = nPos - 1;
  while (i >= 0) {
    const s = all[i];
    // -0 === 0, so signed zeros fall in one group, as they compare equal.
    let g = 0;
    while (i >= 0 && all[i] === s) {
      g++;
      i--;
    }
    let p = 0;
    while (j >= 0 && pos[j] === s) {
      p++;
      j--;
    }
    tp += p;
    fp += g - p;
    visit(s, tp, fp);
  }
}

export function countPositives(isPositive: ArrayLike<boolean>): number {
  let n = 0;
  for (let i = 0; i < isPositive.length; i++) if (isPositive[i]) n++;
  return n;
}

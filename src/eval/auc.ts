/**
 * Ranking metrics for one query: how well do the scores put the relevant ("positive")
 * training examples above the others? Higher score = ranked higher (the project's sign
 * convention: positive scores help the test output).
 *
 * Inputs: `scores[i]` and `isPositive[i]` for each training example i. A NaN score is an
 * error (TdaError naming the field); +-Infinity are ordered like other numbers.
 * Ties: ROC AUC, the ROC curve and average precision treat tied scores as one group (a
 * tie between a positive and a negative counts 1/2 in the AUC), so they do not depend on
 * the order of the inputs. recall@k / precision@k must cut a tied group at the k-th place:
 * by default they break ties by index (lower index ranks higher), or, with
 * `ties: 'expected'`, they return the expected value under a random order of the tied group.
 */
import { TdaError } from '../errors';
import { checkPositiveInt, checkRankingInputs, countPositives, kthLargest, topK, walkTieGroups } from './ranking';

/**
 * Area under the ROC curve = P(score of a random positive > score of a random negative),
 * ties counting 1/2 (the Mann-Whitney U statistic over nPos * nNeg). NaN when there are no
 * positives or no negatives, as the quantity is undefined there. O(n log n).
 */
export function rocAuc(scores: ArrayLike<number>, isPositive: ArrayLike<boolean>): number {
  checkRankingInputs(scores, isPositive);
  const nPos = countPositives(isPositive);
  const nNeg = scores.length - nPos;
  if (nPos === 0 || nNeg === 0) return NaN;
  // Sort the two classes apart (numeric typed-array sort, fast), then merge: for each group
  // of tied positives, count the negatives strictly below it and those tied with it.
  const pos = new Float64Array(nPos);
  const neg = new Float64Array(nNeg);
  for (let i = 0, p = 0, q = 0; i < scores.length; i++) {
    if (isPositive[i]) pos[p++] = scores[i];
    else neg[q++] = scores[i];
  }
  pos.sort();
  neg.sort();
  let below = 0; // negatives with score < s
  let upTo = 0; // negatives with score <= s
  let u = 0; // twice U: an integer, exact in float64 up to 2^53
  let i = 0;
  while (i < nPos) {
    const s = pos[i];
    let g = 0;
    while (i < nPos && pos[i] === s) {
      g++;
      i++;
    }
    while (below < nNeg && neg[below] < s) below++;
    if (upTo < below) upTo = below;
    while (upTo < nNeg && neg[upTo] <= s) upTo++;
    u += g * (2 * below + (upTo - below));
  }
  return u / 2 / nPos / nNeg;
}

export interface RocCurve {
  /** False positive rate after each threshold, from 0 to 1. */
  fpr: number[];
  /** True positive rate after each threshold, from 0 to 1. */
  tpr: number[];
  /** thresholds[j]: examples with score >= thresholds[j] are called positive; thresholds[0] = +Infinity. */
  thresholds: number[];
}

/**
 * ROC curve: one point per distinct score (tied scores make one step, possibly diagonal),
 * starting at (0, 0) with threshold +Infinity and ending at (1, 1). Its trapezoid area is
 * rocAuc. Without positives (negatives) the tpr (fpr) values are NaN.
 */
export function rocCurve(scores: ArrayLike<number>, isPositive: ArrayLike<boolean>): RocCurve {
  checkRankingInputs(scores, isPositive);
  const nPos = countPositives(isPositive);
  const nNeg = scores.length - nPos;
  const curve: RocCurve = { fpr: [0], tpr: [0], thresholds: [Infinity] };
  if (nPos === 0) curve.tpr[0] = NaN;
  if (nNeg === 0) curve.fpr[0] = NaN;
  walkTieGroups(scores, isPositive, (s, tp, fp) => {
    curve.fpr.push(fp / nNeg);
    curve.tpr.push(tp / nPos);
    curve.thresholds.push(s);
  });
  return curve;
}

/** Trapezoid area under a curve given by increasing x (for rocCurve: x = fpr, y = tpr). */
export function trapezoidArea(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let a = 0;
  for (let i = 1; i < x.length; i++) a += ((x[i] - x[i - 1]) * (y[i] + y[i - 1])) / 2;
  return a;
}

/**
 * Average precision, scikit-learn's definition: sum over the distinct score thresholds,
 * from high to low, of (R_n - R_{n-1}) * P_n, with precision P_n and recall R_n of the set
 * {score >= threshold n} and R_0 = 0 (a step function, no interpolation). Tied scores are
 * one threshold. NaN when there are no positives.
 */
export function averagePrecision(scores: ArrayLike<number>, isPositive: ArrayLike<boolean>): number {
  checkRankingInputs(scores, isPositive);
  const nPos = countPositives(isPositive);
  if (nPos === 0) return NaN;
  let ap = 0;
  let prevTp = 0;
  walkTieGroups(scores, isPositive, (_s, tp, fp) => {
    if (tp > prevTp) ap += ((tp - prevTp) / nPos) * (tp / (tp + fp));
    prevTp = tp;
  });
  return ap;
}

export type TieRule = 'index' | 'expected';

export interface TopKOptions {
  /**
   * How a group of tied scores straddling the k-th place is cut. 'index' (default): lower
   * index ranks higher, deterministic. 'expected': the mean over all orders of the tied
   * group (fractional counts).
   */
  ties?: TieRule;
}

/** Number of positives among the top min(k, n) examples (fractional under ties: 'expected'). */
export function positivesInTopK(scores: ArrayLike<number>, isPositive: ArrayLike<boolean>, k: number, opts: TopKOptions = {}): number {
  checkRankingInputs(scores, isPositive);
  checkPositiveInt(k, 'k');
  const ties = opts.ties ?? 'index';
  if (ties !== 'index' && ties !== 'expected') throw new TdaError(`unknown tie rule '${String(ties)}' (use index or expected)`, { field: 'ties' });
  const n = scores.length;
  const m = Math.min(k, n);
  if (m === 0) return 0;
  if (ties === 'index' || m === n) {
    let hits = 0;
    for (const i of topK(scores, m)) if (isPositive[i]) hits++;
    return hits;
  }
  // The group tied with the k-th score: take what lies strictly above it, plus the share of
  // the group's positives that the remaining slots get on average.
  const b = kthLargest(scores, m);
  let above = 0;
  let posAbove = 0;
  let group = 0;
  let posGroup = 0;
  for (let i = 0; i < n; i++) {
    if (scores[i] > b) {
      above++;
      if (isPositive[i]) posAbove++;
    } else if (scores[i] === b) {
      group++;
      if (isPositive[i]) posGroup++;
    }
  }
  return posAbove + ((m - above) * posGroup) / group;
}

/**
 * recall@k = |positives among the top k| / |positives|; k larger than n means all n.
 * NaN when there are no positives. Ties at the k-th place: see TopKOptions.
 */
export function recallAtK(scores: ArrayLike<number>, isPositive: ArrayLike<boolean>, k: number, opts: TopKOptions = {}): number {
  const hits = positivesInTopK(scores, isPositive, k, opts);
  const nPos = countPositives(isPositive);
  return nPos === 0 ? NaN : hits / nPos;
}

/**
 * precision@k = |positives among the top k| / k, with k capped at n (so it is the share of
 * the returned examples that are positive). NaN for an empty input.
 */
export function precisionAtK(scores: ArrayLike<number>, isPositive: ArrayLike<boolean>, k: number, opts: TopKOptions = {}): number {
  const hits = positivesInTopK(scores, isPositive, k, opts);
  const m = Math.min(k, scores.length);
  return m === 0 ? NaN : hits / m;
}

/**
 * Naive transcriptions of Spearman's rho (ranks by counting, ties at their mean rank) and
 * of the LDS, for checking src/eval/lds.ts and the files `reproduce lds` writes.
 */

/** Rank of each value: 1 + the number of smaller values + half the number of other equal values. */
export function countingRanks(x: ArrayLike<number>): number[] {
  const out: number[] = [];
  for (let i = 0; i < x.length; i++) {
    let smaller = 0;
    let equal = 0;
    for (let j = 0; j < x.length; j++) {
      if (x[j] < x[i]) smaller++;
      else if (x[j] === x[i] && j !== i) equal++;
    }
    out.push(1 + smaller + equal / 2);
  }
  return out;
}

/** Pearson's r of the counting ranks, from the textbook formula; NaN for a constant side. */
export function bruteSpearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const rx = countingRanks(x);
  const ry = countingRanks(y);
  const n = rx.length;
  const mx = rx.reduce((a, b) => a + b, 0) / n;
  const my = ry.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let dx = 0;
  let dy = 0;
  for (let i = 0; i < n; i++) {
    num += (rx[i] - mx) * (ry[i] - my);
    dx += (rx[i] - mx) ** 2;
    dy += (ry[i] - my) ** 2;
  }
  return dx === 0 || dy === 0 ? NaN : num / Math.sqrt(dx * dy);
}

/**
 * Mean over queries (NaN ones left out) of Spearman, over subsets, between the subset's score
 * sum and minus the loss. `scores[q][i]`, `subsets[m]`, `loss[m][q]`.
 */
export function bruteLds(scores: number[][], subsets: number[][], loss: number[][]): { perQuery: number[]; mean: number } {
  const perQuery = scores.map((row, q) =>
    bruteSpearman(
      subsets.map((s) => s.reduce((acc, i) => acc + row[i], 0)),
      loss.map((l) => -l[q]),
    ),
  );
  const ok = perQuery.filter((v) => !Number.isNaN(v));
  return { perQuery, mean: ok.reduce((a, b) => a + b, 0) / ok.length };
}

/** How much two methods agree on one query: rank correlation and top-k overlap. */

/** 1-based ranks, ties sharing their average rank (so Spearman stays exact with ties). */
export function averageRanks(xs: number[]): number[] {
  const order = xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b]);
  const ranks = new Array<number>(xs.length);
  for (let s = 0; s < order.length; ) {
    let e = s;
    while (e + 1 < order.length && xs[order[e + 1]] === xs[order[s]]) e++;
    for (let j = s; j <= e; j++) ranks[order[j]] = (s + e) / 2 + 1;
    s = e + 1;
  }
  return ranks;
}

/** Spearman's rho: the Pearson correlation of the average ranks; NaN when either side is constant. */
export function spearman(x: number[], y: number[]): number {
  if (x.length !== y.length) throw new RangeError(`spearman: ${x.length} vs ${y.length} values`);
  const rx = averageRanks(x);
  const ry = averageRanks(y);
  const n = x.length;
  const mx = rx.reduce((a, b) => a + b, 0) / n;
  const my = ry.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (rx[i] - mx) * (ry[i] - my);
    sxx += (rx[i] - mx) ** 2;
    syy += (ry[i] - my) ** 2;
  }
  return sxx === 0 || syy === 0 ? NaN : sxy / Math.sqrt(sxx * syy);
}

/** |a ∩ b| / |a| (1 for two empty sets). */
export function overlapShare(a: Set<number>, b: Set<number>): number {
  if (a.size === 0) return 1;
  let n = 0;
  for (const i of a) if (b.has(i)) n++;
  return n / a.size;
}

/**
 * Independent, deliberately naive reference implementations of the metrics (quadratic or
 * worse, straight from the definitions), for checking the fast ones.
 */
import { Rng } from '../../src/random';

/** AUC by counting every (positive, negative) pair: 1 if the positive scores higher, 1/2 on a tie. */
export function bruteAuc(scores: ArrayLike<number>, pos: ArrayLike<boolean>): number {
  let num = 0;
  let pairs = 0;
  for (let i = 0; i < scores.length; i++) {
    if (!pos[i]) continue;
    for (let j = 0; j < scores.length; j++) {
      if (pos[j]) continue;
      pairs++;
      if (scores[i] > scores[j]) num += 1;
      else if (scores[i] === scores[j]) num += 0.5;
    }
  }
  return pairs === 0 ? NaN : num / pairs;
}

/** AP = sum over distinct thresholds t (high to low) of (R(t) - R(prev)) * P(t), sets {score >= t}. */
export function bruteAp(scores: ArrayLike<number>, pos: ArrayLike<boolean>): number {
  const n = scores.length;
  let nPos = 0;
  for (let i = 0; i < n; i++) if (pos[i]) nPos++;
  if (nPos === 0) return NaN;
  const thresholds = [...new Set(Array.from(scores))].sort((a, b) => b - a);
  let ap = 0;
  let prevR = 0;
  for (const t of thresholds) {
    let sel = 0;
    let tp = 0;
    for (let i = 0; i < n; i++) {
      if (scores[i] >= t) {
        sel++;
        if (pos[i]) tp++;
      }
    }
    const r = tp / nPos;
    ap += (r - prevR) * (tp / sel);
    prevR = r;
  }
  return ap;
}

/** Positives among the first k when sorting by (score desc, then `tiebreak` rank asc). */
export function hitsWithTiebreak(scores: ArrayLike<number>, pos: ArrayLike<boolean>, k: number, tiebreak: number[]): number {
  const idx = Array.from({ length: scores.length }, (_, i) => i);
  idx.sort((a, b) => (scores[b] !== scores[a] ? scores[b] - scores[a] : tiebreak[a] - tiebreak[b]));
  let hits = 0;
  for (let j = 0; j < Math.min(k, idx.length); j++) if (pos[idx[j]]) hits++;
  return hits;
}

export function permutations(n: number): number[][] {
  if (n === 0) return [[]];
  const out: number[][] = [];
  for (const p of permutations(n - 1)) for (let at = 0; at <= p.length; at++) out.push([...p.slice(0, at), n - 1, ...p.slice(at)]);
  return out;
}

/** Random small-integer scores (ties frequent) and random labels. */
export function randomCase(rng: Rng, maxN = 25, levels = 5): { scores: number[]; pos: boolean[] } {
  const n = 1 + rng.int(maxN);
  const p = rng.next();
  const scores = Array.from({ length: n }, () => rng.int(levels));
  const pos = Array.from({ length: n }, () => rng.next() < p);
  return { scores, pos };
}

export function close(a: number, b: number, tol = 1e-12): boolean {
  return (Number.isNaN(a) && Number.isNaN(b)) || Math.abs(a - b) <= tol;
}

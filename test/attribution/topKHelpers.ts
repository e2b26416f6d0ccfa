/** Brute-force references for top-k tests. */
import * as assert from 'node:assert/strict';
import { TopKScores } from '../../src/attribution/topK';
import { ScoreMatrix } from '../../src/attribution/types';

/**
 * Reference top-k, independent of TopKAccumulator: sort each row's (score, index) pairs by
 * descending score, then ascending index, and take the first k.
 */
export function sortedTopK(data: ArrayLike<number>, nTest: number, nTrain: number, k: number): { indices: number[][]; scores: number[][] } {
  const indices: number[][] = [];
  const scores: number[][] = [];
  for (let q = 0; q < nTest; q++) {
    const order = Array.from({ length: nTrain }, (_, i) => i).sort((a, b) => data[q * nTrain + b] - data[q * nTrain + a] || a - b);
    indices.push(order.slice(0, k));
    scores.push(order.slice(0, k).map((i) => data[q * nTrain + i]));
  }
  return { indices, scores };
}

export function rows(t: TopKScores): { indices: number[][]; scores: number[][] } {
  const take = (a: ArrayLike<number>) => Array.from({ length: t.nTest }, (_, q) => Array.from(a).slice(q * t.k, (q + 1) * t.k));
  return { indices: take(t.indices), scores: take(t.scores) };
}

/** Top-k equals the sorted rows of a full score matrix, bit for bit. */
export function assertTopKOfMatrix(t: TopKScores, s: ScoreMatrix, k: number, what = ''): void {
  assert.deepEqual([t.nTest, t.k, t.nTrain], [s.nTest, Math.min(k, s.nTrain), s.nTrain], what);
  assert.deepEqual(rows(t), sortedTopK(s.data, s.nTest, s.nTrain, Math.min(k, s.nTrain)), what);
}

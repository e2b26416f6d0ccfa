/** Spearman with ties, the LDS and its run-then-query bootstrap against naive transcriptions. */
import * as assert from 'node:assert/strict';
import { pearson, spearman, averageRanks } from '../../src/eval/correlation';
import { checkSubsets, ldsInterval, ldsPerQuery, subsetScoreSums } from '../../src/eval/lds';
import { bootstrapMeanCI } from '../../src/eval/bootstrap';
import { Rng } from '../../src/random';
import { throwsTda } from '../helpers/errors';
import { bruteLds, bruteSpearman, countingRanks } from './ldsReference';

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

describe('eval: Spearman and the LDS', () => {
  it('ranks ties at their mean rank and equals the brute-force Spearman on data full of ties', () => {
    assert.deepEqual(Array.from(averageRanks([10, 20, 10, 30, 20, 20])), [1.5, 4, 1.5, 6, 4, 4]);
    const rng = new Rng(3);
    for (let t = 0; t < 200; t++) {
      const n = 2 + rng.int(30);
      const x = Array.from({ length: n }, () => rng.int(5));
      const y = Array.from({ length: n }, () => (rng.next() < 0.5 ? rng.int(4) : rng.normal()));
      assert.deepEqual(Array.from(averageRanks(x)), countingRanks(x));
      const want = bruteSpearman(x, y);
      const got = spearman(x, y);
      if (Number.isNaN(want)) assert.ok(Number.isNaN(got), `constant side: ${got}`);
      else close(got, want, 1e-12);
    }
    close(spearman([1, 2, 3, 4], [10, 20, 30, 1000]), 1);
    close(spearman([1, 2, 3], [3, 2, 1]), -1);
    assert.ok(Number.isNaN(spearman([1, 1, 1], [1, 2, 3])));
    close(pearson([1, 2, 3], [2, 4, 7]), 0.9933992677987828, 1e-12);
  });

  it('equals the transcription on random scores, subsets and losses; is 1 when losses are exactly linear in the scores', () => {
    const rng = new Rng(7);
    const nTrain = 25;
    const nQuery = 6;
    const M = 15;
    const scores = Array.from({ length: nQuery }, () => Array.from({ length: nTrain }, () => rng.normal()));
    const subsets = Array.from({ length: M }, () => Array.from({ length: nTrain }, (_, i) => i).filter(() => rng.next() < 0.5));
    const loss = Array.from({ length: M }, () => Array.from({ length: nQuery }, () => rng.normal()));
    const matrix = { nTest: nQuery, nTrain, data: Float32Array.from(scores.flat()) };
    const want = bruteLds(scores.map((r) => r.map((v) => Math.fround(v))), subsets, loss);
    const got = ldsPerQuery(matrix, subsets, loss);
    got.forEach((v, q) => close(v, want.perQuery[q], 1e-12));
    // A datamodel that is exactly right: loss = c - sum of scores over the subset.
    const linear = subsets.map((s) => Array.from({ length: nQuery }, (_, q) => 3 - s.reduce((a, i) => a + matrix.data[q * nTrain + i], 0)));
    ldsPerQuery(matrix, subsets, linear).forEach((v) => close(v, 1, 1e-12));
    // And the sums themselves.
    const sums = subsetScoreSums(matrix, subsets);
    close(sums[2][4], subsets[4].reduce((a, i) => a + matrix.data[2 * nTrain + i], 0), 1e-9);
  });

  it('bootstraps runs then queries: one run is the query bootstrap; the estimate is the mean of run means; NaN queries are left out', () => {
    const one = [0.1, 0.5, 0.3, NaN, 0.9, 0.2];
    const a = ldsInterval([one], { seed: 4, resamples: 500 });
    const b = bootstrapMeanCI(one.filter((v) => !Number.isNaN(v)), { seed: 4, resamples: 500 });
    close(a.lds, b.mean);
    assert.equal(a.queries, 5);
    assert.ok(a.lo <= a.lds && a.lds <= a.hi);
    const runs = [[0.1, 0.2, 0.3], [0.5, 0.6], [0.9, 0.8, 0.7, 1.0]];
    const c = ldsInterval(runs, { seed: 0, resamples: 2000 });
    close(c.lds, (0.2 + 0.55 + 0.85) / 3);
    assert.equal(c.runs, 3);
    // Runs that disagree make the interval wider than pooling their queries would.
    const pooled = bootstrapMeanCI(runs.flat(), { seed: 0, resamples: 2000 });
    assert.ok(c.hi - c.lo > pooled.hi - pooled.lo, `run level ${c.hi - c.lo} vs pooled ${pooled.hi - pooled.lo}`);
    const same = ldsInterval([[0.4, 0.4], [0.4]], { seed: 0, resamples: 50 });
    close(same.lo, 0.4);
    close(same.hi, 0.4);
  });

  it('refuses subsets outside the training set, repeated indices and mismatched losses, naming the field', () => {
    throwsTda(() => checkSubsets([[0, 1], [2, 5]], 5, 'subsets.json'), 'subsets.json', 'subsets[1]', '5');
    throwsTda(() => checkSubsets([[0, 0]], 5), 'subsets[0]', 'twice');
    const m = { nTest: 2, nTrain: 3, data: new Float32Array(6) };
    throwsTda(() => ldsPerQuery(m, [[0], [1], [2]], [[1, 2], [3, 4]]), 'losses');
    throwsTda(() => ldsPerQuery(m, [[0], [1]], [[1, 2], [3]]), 'losses');
    throwsTda(() => spearman([1, NaN], [1, 2]), 'values');
  });
});

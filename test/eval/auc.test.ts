import * as assert from 'node:assert/strict';
import { averagePrecision, precisionAtK, recallAtK, rocAuc, rocCurve, trapezoidArea } from '../../src/eval/auc';
import { descendingOrder, topK } from '../../src/eval/ranking';
import { Rng } from '../../src/random';
import { throwsTda } from '../helpers/errors';
import { bruteAp, bruteAuc, close, hitsWithTiebreak, permutations, randomCase } from './reference';

const TRIALS = 600;

describe('eval: rocAuc', () => {
  it('equals brute-force pair counting on random tied scores', () => {
    const rng = new Rng(11);
    for (let t = 0; t < TRIALS; t++) {
      const { scores, pos } = randomCase(rng, 25, 1 + rng.int(6));
      const got = rocAuc(scores, pos);
      const want = bruteAuc(scores, pos);
      assert.ok(close(got, want), `trial ${t}: ${got} != ${want} for ${JSON.stringify({ scores, pos })}`);
    }
  });

  it('equals brute force on continuous scores, infinities and signed zeros', () => {
    const rng = new Rng(12);
    for (let t = 0; t < 200; t++) {
      const n = 2 + rng.int(40);
      const scores = Array.from({ length: n }, () => {
        const u = rng.next();
        if (u < 0.05) return Infinity;
        if (u < 0.1) return -Infinity;
        if (u < 0.15) return -0;
        if (u < 0.2) return 0;
        return rng.normal();
      });
      const pos = scores.map(() => rng.next() < 0.4);
      assert.ok(close(rocAuc(scores, pos), bruteAuc(scores, pos)), `trial ${t}`);
      assert.ok(close(rocAuc(Float32Array.from(scores), pos), bruteAuc(Float32Array.from(scores), pos)));
    }
  });

  it('hand cases: scikit-learn example, perfect, reversed, all tied', () => {
    assert.equal(rocAuc([0.1, 0.4, 0.35, 0.8], [false, false, true, true]), 0.75);
    assert.equal(rocAuc([3, 2, 1, 0], [true, true, false, false]), 1);
    assert.equal(rocAuc([0, 1, 2, 3], [true, true, false, false]), 0);
    assert.equal(rocAuc([5, 5, 5, 5, 5], [true, false, true, false, false]), 0.5);
    // One positive (score 2) above 2 negatives, tied with 1, below 1: (2 + 0.5) / 4.
    assert.equal(rocAuc([2, 1, 0, 2, 3], [true, false, false, false, false]), 0.625);
  });

  it('is NaN without positives or without negatives', () => {
    assert.ok(Number.isNaN(rocAuc([1, 2, 3], [false, false, false])));
    assert.ok(Number.isNaN(rocAuc([1, 2, 3], [true, true, true])));
    assert.ok(Number.isNaN(rocAuc([], [])));
  });

  it('rejects NaN scores and mismatched lengths, naming the field', () => {
    throwsTda(() => rocAuc([1, NaN, 3], [true, false, false]), "'scores'", 'index 1', 'NaN');
    throwsTda(() => rocAuc([1, 2], [true]), "'isPositive'", '1 labels', '2 scores');
    throwsTda(() => averagePrecision([NaN], [true]), "'scores'");
    throwsTda(() => rocCurve([0, NaN], [true, false]), "'scores'");
    throwsTda(() => recallAtK([NaN, 1], [true, false], 1), "'scores'");
  });
});

describe('eval: rocCurve', () => {
  it('has trapezoid area equal to rocAuc, from (0,0) to (1,1), one step per distinct score', () => {
    const rng = new Rng(21);
    let checked = 0;
    for (let t = 0; t < TRIALS; t++) {
      const { scores, pos } = randomCase(rng, 25, 1 + rng.int(6));
      const nPos = pos.filter((p) => p).length;
      if (nPos === 0 || nPos === pos.length) continue;
      checked++;
      const c = rocCurve(scores, pos);
      assert.equal(c.fpr.length, new Set(scores).size + 1);
      assert.equal(c.tpr.length, c.fpr.length);
      assert.equal(c.thresholds.length, c.fpr.length);
      assert.deepEqual([c.fpr[0], c.tpr[0], c.thresholds[0]], [0, 0, Infinity]);
      assert.deepEqual([c.fpr.at(-1), c.tpr.at(-1)], [1, 1]);
      for (let j = 1; j < c.fpr.length; j++) {
        assert.ok(c.thresholds[j] < c.thresholds[j - 1]);
        assert.ok(c.fpr[j] >= c.fpr[j - 1] && c.tpr[j] >= c.tpr[j - 1]);
      }
      assert.ok(close(trapezoidArea(c.fpr, c.tpr), rocAuc(scores, pos)), `trial ${t}`);
    }
    assert.ok(checked > TRIALS / 2);
  });

  it('hand case: tied scores make one diagonal step', () => {
    const c = rocCurve([0.9, 0.5, 0.5, 0.1], [true, true, false, false]);
    assert.deepEqual(c.thresholds, [Infinity, 0.9, 0.5, 0.1]);
    assert.deepEqual(c.tpr, [0, 0.5, 1, 1]);
    assert.deepEqual(c.fpr, [0, 0, 0.5, 1]);
  });

  it('has NaN rates on the axis with no examples', () => {
    const c = rocCurve([1, 2], [true, true]);
    assert.ok(c.fpr.every(Number.isNaN));
    assert.deepEqual(c.tpr, [0, 0.5, 1]);
  });
});

describe('eval: averagePrecision', () => {
  it('hand cases', () => {
    // scikit-learn's documented example: 0.8333...
    assert.ok(close(averagePrecision([0.1, 0.4, 0.35, 0.8], [false, false, true, true]), 5 / 6));
    // Positives ranked 1st and 3rd: (1/2)(1/1) + (1/2)(2/3).
    assert.ok(close(averagePrecision([3, 2, 1, 0], [true, false, true, false]), 0.5 + 1 / 3));
    // Everything tied: one threshold with recall 1 and precision nPos / n.
    assert.ok(close(averagePrecision([7, 7, 7, 7, 7], [true, false, true, false, false]), 2 / 5));
    // A tie straddling positive and negative at the top: (1)(1/2) for the tied pair, then the rest.
    assert.ok(close(averagePrecision([1, 1, 0], [true, false, true]), 0.5 * 0.5 + 0.5 * (2 / 3)));
    assert.equal(averagePrecision([1, 2], [true, true]), 1);
    assert.ok(Number.isNaN(averagePrecision([1, 2], [false, false])));
  });

  it('equals a brute-force evaluation of the definition on random tied scores', () => {
    const rng = new Rng(31);
    for (let t = 0; t < TRIALS; t++) {
      const { scores, pos } = randomCase(rng, 25, 1 + rng.int(6));
      const got = averagePrecision(scores, pos);
      assert.ok(close(got, bruteAp(scores, pos)), `trial ${t}: ${got} vs ${bruteAp(scores, pos)}`);
    }
  });

  it('does not depend on the input order', () => {
    const rng = new Rng(32);
    for (let t = 0; t < 100; t++) {
      const { scores, pos } = randomCase(rng, 15, 3);
      const perm = descendingOrder(scores.map(() => rng.next()));
      const s2 = Array.from(perm, (i) => scores[i]);
      const p2 = Array.from(perm, (i) => pos[i]);
      assert.ok(close(averagePrecision(scores, pos), averagePrecision(s2, p2)));
      assert.ok(close(rocAuc(scores, pos), rocAuc(s2, p2)));
    }
  });
});

describe('eval: recall@k and precision@k', () => {
  const scores = [0.9, 0.1, 0.8, 0.3, 0.7];
  const pos = [true, true, false, false, true];

  it('hand cases', () => {
    // Order: 0 (pos), 2, 4 (pos), 3, 1 (pos).
    assert.equal(recallAtK(scores, pos, 1), 1 / 3);
    assert.equal(recallAtK(scores, pos, 2), 1 / 3);
    assert.equal(recallAtK(scores, pos, 3), 2 / 3);
    assert.equal(recallAtK(scores, pos, 5), 1);
    assert.equal(recallAtK(scores, pos, 50), 1);
    assert.equal(precisionAtK(scores, pos, 1), 1);
    assert.equal(precisionAtK(scores, pos, 2), 1 / 2);
    assert.equal(precisionAtK(scores, pos, 3), 2 / 3);
    assert.equal(precisionAtK(scores, pos, 50), 3 / 5, 'k is capped at n');
    assert.ok(Number.isNaN(recallAtK(scores, [false, false, false, false, false], 2)));
  });

  it('breaks ties by index by default (lower index ranks higher)', () => {
    // All tied: the top 2 are indices 0 and 1.
    assert.equal(recallAtK([1, 1, 1, 1], [false, false, true, true], 2), 0);
    assert.equal(recallAtK([1, 1, 1, 1], [true, false, false, true], 2), 1 / 2);
    assert.deepEqual(Array.from(topK([2, 5, 5, 1, 5], 2)), [1, 2]);
  });

  it("ties: 'expected' equals the mean over every order of the tied examples", () => {
    const rng = new Rng(41);
    for (let t = 0; t < 150; t++) {
      const n = 1 + rng.int(6);
      const s = Array.from({ length: n }, () => rng.int(3));
      const p = Array.from({ length: n }, () => rng.next() < 0.5);
      const perms = permutations(n);
      for (let k = 1; k <= n + 1; k++) {
        const want = perms.reduce((acc, perm) => acc + hitsWithTiebreak(s, p, k, perm), 0) / perms.length;
        const nPos = p.filter((x) => x).length;
        const got = recallAtK(s, p, k, { ties: 'expected' });
        assert.ok(close(got, nPos ? want / nPos : NaN), `trial ${t} k ${k}: ${got} vs ${want}/${nPos}`);
        assert.ok(close(precisionAtK(s, p, k, { ties: 'expected' }), want / Math.min(k, n)));
        // The default rule is the identity tie-break.
        assert.ok(close(recallAtK(s, p, k), nPos ? hitsWithTiebreak(s, p, k, perms[0].map((_, i) => i)) / nPos : NaN));
      }
    }
  });

  it('rejects a k that is not a positive integer, and an unknown tie rule', () => {
    throwsTda(() => recallAtK(scores, pos, 0), "'k'");
    throwsTda(() => recallAtK(scores, pos, 1.5), "'k'");
    throwsTda(() => precisionAtK(scores, pos, -1), "'k'");
    throwsTda(() => recallAtK(scores, pos, 1, { ties: 'random' as never }), "'ties'");
  });
});

describe('eval: ranking order (ties by index)', () => {
  it('descendingOrder and topK match a naive sort by (score desc, index asc)', () => {
    const rng = new Rng(51);
    for (let t = 0; t < 300; t++) {
      const { scores } = randomCase(rng, 30, 1 + rng.int(5));
      const naive = scores.map((s, i) => ({ s, i })).sort((a, b) => b.s - a.s || a.i - b.i).map((e) => e.i);
      assert.deepEqual(Array.from(descendingOrder(scores)), naive);
      for (const k of [1, 2, 5, 30, 100]) assert.deepEqual(Array.from(topK(scores, k)), naive.slice(0, k), `trial ${t} k ${k}`);
    }
  });
});

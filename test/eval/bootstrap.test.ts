import * as assert from 'node:assert/strict';
import { bootstrapCI, bootstrapMeanCI, mean, nanMean, normalMeanCI, quantileSorted } from '../../src/eval/bootstrap';
import { Rng } from '../../src/random';
import { throwsTda } from '../helpers/errors';

function sample(n: number, seed: number): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => 0.7 + 0.2 * rng.normal());
}

describe('eval: bootstrap intervals over queries', () => {
  it('is deterministic per seed and changes with the seed', () => {
    const xs = sample(50, 1);
    const a = bootstrapMeanCI(xs, { seed: 7 });
    assert.deepEqual(bootstrapMeanCI(xs, { seed: 7 }), a);
    const b = bootstrapMeanCI(xs, { seed: 8 });
    assert.notDeepEqual([b.lo, b.hi], [a.lo, a.hi]);
    assert.equal(b.mean, a.mean);
  });

  it('contains the mean and narrows with more data', () => {
    const small = bootstrapMeanCI(sample(20, 2), { seed: 1 });
    const large = bootstrapMeanCI(sample(2000, 3), { seed: 1 });
    for (const r of [small, large]) {
      assert.ok(r.lo < r.mean && r.mean < r.hi, JSON.stringify(r));
      assert.equal(r.level, 0.95);
    }
    assert.ok(large.hi - large.lo < (small.hi - small.lo) / 4, `${large.hi - large.lo} vs ${small.hi - small.lo}`);
    // A higher level gives a wider interval from the same draws.
    const xs = sample(100, 4);
    const i90 = bootstrapMeanCI(xs, { level: 0.9 });
    const i99 = bootstrapMeanCI(xs, { level: 0.99 });
    assert.ok(i99.lo < i90.lo && i90.hi < i99.hi);
  });

  it('skips NaN values', () => {
    const xs = sample(30, 5);
    const withNaN = [NaN, ...xs.slice(0, 10), NaN, ...xs.slice(10)];
    const r = bootstrapMeanCI(withNaN, { seed: 3 });
    assert.deepEqual(r, bootstrapMeanCI(xs, { seed: 3 }));
    assert.equal(r.n, 30);
    assert.ok(Math.abs(nanMean(withNaN) - mean(xs)) < 1e-15);
    const none = bootstrapMeanCI([NaN, NaN]);
    assert.ok(Number.isNaN(none.mean) && Number.isNaN(none.lo) && Number.isNaN(none.hi));
    assert.equal(none.n, 0);
    assert.deepEqual(bootstrapMeanCI([0.25], { seed: 1 }), { mean: 0.25, lo: 0.25, hi: 0.25, n: 1, level: 0.95 });
  });

  it('the generic bootstrapCI with the mean gives the same interval as bootstrapMeanCI', () => {
    const xs = sample(40, 6);
    const g = bootstrapCI(xs, mean, { seed: 9, resamples: 500 });
    const m = bootstrapMeanCI(xs, { seed: 9, resamples: 500 });
    assert.deepEqual([g.estimate, g.lo, g.hi, g.n], [m.mean, m.lo, m.hi, m.n]);
  });

  it('bootstrapCI works for other statistics (median)', () => {
    const median = (v: number[]) => quantileSorted([...v].sort((a, b) => a - b), 0.5);
    const xs = sample(101, 10);
    const r = bootstrapCI(xs, median, { seed: 2 });
    assert.equal(r.estimate, median(xs));
    assert.ok(r.lo <= r.estimate && r.estimate <= r.hi);
  });

  it('quantileSorted interpolates linearly (numpy default)', () => {
    assert.equal(quantileSorted([1, 2, 3, 4], 0.5), 2.5);
    assert.equal(quantileSorted([1, 2, 3, 4], 0), 1);
    assert.equal(quantileSorted([1, 2, 3, 4], 1), 4);
    assert.ok(Math.abs(quantileSorted([0, 10], 0.025) - 0.25) < 1e-12);
    assert.ok(Number.isNaN(quantileSorted([], 0.5)));
  });

  it('normalMeanCI: t and z intervals by hand; close to the bootstrap for many queries', () => {
    const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const se = Math.sqrt(55 / 6) / Math.sqrt(10); // sample sd^2 = 82.5 / 9
    const t = normalMeanCI(xs);
    assert.ok(Math.abs(t.se - se) < 1e-12);
    assert.ok(Math.abs(t.lo - (5.5 - 2.2621571627409915 * se)) < 1e-6, String(t.lo));
    const z = normalMeanCI(xs, { distribution: 'normal' });
    assert.ok(Math.abs(z.hi - (5.5 + 1.959963984540054 * se)) < 1e-9, String(z.hi));
    const many = sample(3000, 11);
    const n = normalMeanCI(many);
    const b = bootstrapMeanCI(many, { seed: 4, resamples: 2000 });
    assert.ok(Math.abs(n.lo - b.lo) < 0.002 && Math.abs(n.hi - b.hi) < 0.002, JSON.stringify({ n, b }));
    assert.ok(Number.isNaN(normalMeanCI([1]).lo));
  });

  it('rejects bad options, naming them', () => {
    throwsTda(() => bootstrapMeanCI([1, 2], { resamples: 0 }), "'resamples'");
    throwsTda(() => bootstrapMeanCI([1, 2], { level: 1 }), "'level'");
    throwsTda(() => bootstrapCI([1, 2], mean, { seed: 1.5 }), "'seed'");
    throwsTda(() => normalMeanCI([1, 2], { level: 0 }), "'level'");
  });
});

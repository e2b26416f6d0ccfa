import * as assert from 'node:assert/strict';
import { describeDifference, describeEstimate, verdictOf, wordClaim } from '../../src/eval/claims';
import { RunInterval } from '../../src/eval/runBootstrap';
import { throwsTda } from '../helpers/errors';

const ci = (estimate: number, lo: number, hi: number, runs = 6, queries = 42): RunInterval => ({ estimate, lo, hi, runs, queries, level: 0.95, weighting: 'queries' });

describe('eval: claims worded from intervals', () => {
  it('says helps or hurts only when the interval excludes 0', () => {
    assert.equal(verdictOf(ci(0.012, 0.004, 0.02)), 'helps');
    assert.equal(verdictOf(ci(-0.06, -0.09, -0.03)), 'hurts');
    assert.equal(verdictOf(ci(0.011, -0.003, 0.025)), 'no clear difference');
    assert.equal(verdictOf(ci(0.01, 0, 0.02)), 'no clear difference', 'an interval touching 0 does not exclude it');
  });

  it('says too few runs below three runs (one seed is not a claim) or without an interval', () => {
    assert.equal(verdictOf(ci(0.1, 0.05, 0.15, 2)), 'too few runs');
    assert.equal(verdictOf(ci(0.1, NaN, NaN, 1)), 'too few runs');
    assert.equal(verdictOf(ci(0.1, 0.05, 0.15, 2), { minRuns: 2 }), 'helps');
    throwsTda(() => verdictOf(ci(0, -1, 1), { minRuns: 0 }), "'minRuns'");
  });

  it('writes the verdict with the numbers it rests on', () => {
    assert.equal(wordClaim('denoise vs plain, DataInf, ft', ci(0.0114, -0.0031, 0.0252)), 'denoise vs plain, DataInf, ft: no clear difference (+0.011, 95% CI \u22120.003 to +0.025; 6 runs, 42 queries)');
    assert.equal(describeDifference(ci(-0.07, -0.09, -0.05, 1, 8)), 'too few runs (\u22120.070, 95% CI \u22120.090 to \u22120.050; 1 run, 8 queries)');
    assert.equal(describeEstimate(ci(0.885, 0.84, 0.921)), '0.885 (95% CI 0.840 to 0.921; 6 runs, 42 queries)');
    assert.equal(describeEstimate(ci(0.7, NaN, NaN, 1, 3)), '0.700 (95% CI - to -; 1 run, 3 queries)');
  });
});

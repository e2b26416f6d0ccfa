import * as assert from 'node:assert/strict';
import { bootstrapMeanCI } from '../../src/eval/bootstrap';
import { pairedRunDifferences, runBootstrapMeanCI } from '../../src/eval/runBootstrap';
import { Rng } from '../../src/random';
import { throwsTda } from '../helpers/errors';

/** Type-7 quantile written out independently: position (n - 1) p between order statistics. */
function quantile7(sorted: number[], p: number): number {
  const pos = (sorted.length - 1) * p;
  const i = Math.floor(pos);
  const j = Math.min(i + 1, sorted.length - 1);
  return sorted[i] * (1 - (pos - i)) + sorted[j] * (pos - i);
}

/** The cluster bootstrap transcribed naively: pick runs, concatenate their values, average. */
function naiveClusterBootstrap(runs: number[][], resamples: number, seed: number, weighting: 'queries' | 'runs'): { estimate: number; lo: number; hi: number } {
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const statOf = (chosen: number[][]) => (weighting === 'queries' ? avg(chosen.flat()) : avg(chosen.map(avg)));
  const rng = new Rng(seed);
  const stats: number[] = [];
  for (let b = 0; b < resamples; b++) {
    const chosen: number[][] = [];
    for (let j = 0; j < runs.length; j++) chosen.push(runs[rng.int(runs.length)]);
    stats.push(statOf(chosen));
  }
  stats.sort((a, b) => a - b);
  return { estimate: statOf(runs), lo: quantile7(stats, 0.025), hi: quantile7(stats, 0.975) };
}

function runsOf(sizes: number[], seed: number): number[][] {
  const rng = new Rng(seed);
  return sizes.map((n, r) => Array.from({ length: n }, () => 0.6 + 0.05 * r + 0.1 * rng.normal()));
}

describe('eval: bootstrap over runs (canary pair x seed), not queries', () => {
  it('matches a naive transcription of the cluster bootstrap, for both weightings', () => {
    const runs = runsOf([3, 9, 1, 6, 4], 1);
    for (const weighting of ['queries', 'runs'] as const) {
      const got = runBootstrapMeanCI(runs, { seed: 5, resamples: 700, weighting });
      const want = naiveClusterBootstrap(runs, 700, 5, weighting);
      for (const k of ['estimate', 'lo', 'hi'] as const) assert.ok(Math.abs(got[k] - want[k]) < 1e-12, `${weighting} ${k}: ${got[k]} vs ${want[k]}`);
      assert.equal(got.runs, 5);
      assert.equal(got.queries, 23);
    }
  });

  it('queries weighting pools the queries; runs weighting averages the run means (by hand)', () => {
    const runs = [[1, 1, 1, 1], [0]];
    assert.equal(runBootstrapMeanCI(runs).estimate, 0.8);
    assert.equal(runBootstrapMeanCI(runs, { weighting: 'runs' }).estimate, 0.5);
  });

  it('with one query per run it is bootstrapMeanCI of those values (same seed, same draws)', () => {
    const xs = runsOf([1, 1, 1, 1, 1, 1, 1], 2).map((r) => r[0]);
    const a = runBootstrapMeanCI(xs.map((x) => [x]), { seed: 3 });
    const b = bootstrapMeanCI(xs, { seed: 3 });
    assert.deepEqual([a.estimate, a.lo, a.hi], [b.mean, b.lo, b.hi]);
  });

  it('is wider than a query bootstrap when runs differ: queries of one run are not independent', () => {
    // Two runs far apart, many queries each: resampling queries ignores the run-to-run spread.
    const rng = new Rng(4);
    const runs = [Array.from({ length: 40 }, () => 0.6 + 0.01 * rng.normal()), Array.from({ length: 40 }, () => 0.9 + 0.01 * rng.normal()), Array.from({ length: 40 }, () => 0.75 + 0.01 * rng.normal())];
    const byRun = runBootstrapMeanCI(runs, { seed: 1 });
    const byQuery = bootstrapMeanCI(runs.flat(), { seed: 1 });
    assert.ok(byRun.hi - byRun.lo > 4 * (byQuery.hi - byQuery.lo), `${byRun.hi - byRun.lo} vs ${byQuery.hi - byQuery.lo}`);
  });

  it('drops NaN values and empty runs; with fewer than two runs the interval is NaN', () => {
    const r = runBootstrapMeanCI([[NaN, 0.5], [], [NaN], [0.7, 0.9]], { seed: 2 });
    assert.equal(r.runs, 2);
    assert.equal(r.queries, 3);
    assert.ok(Math.abs(r.estimate - 0.7) < 1e-12);
    assert.deepEqual(r, { ...runBootstrapMeanCI([[0.5], [0.7, 0.9]], { seed: 2 }) });
    const one = runBootstrapMeanCI([[0.2, 0.4]]);
    assert.ok(Math.abs(one.estimate - 0.3) < 1e-12);
    assert.ok(Number.isNaN(one.lo) && Number.isNaN(one.hi));
    assert.ok(Number.isNaN(runBootstrapMeanCI([]).estimate));
  });

  it('paired differences: a constant gain is found exactly, though the unpaired intervals overlap', () => {
    const a = runsOf([5, 8, 3, 6], 7);
    const b = a.map((r) => r.map((x) => x + 0.02));
    const d = pairedRunDifferences(a, b, { seed: 1 });
    assert.ok(Math.abs(d.estimate - 0.02) < 1e-12 && Math.abs(d.lo - 0.02) < 1e-12 && Math.abs(d.hi - 0.02) < 1e-12, JSON.stringify(d));
    const ia = runBootstrapMeanCI(a, { seed: 1 });
    const ib = runBootstrapMeanCI(b, { seed: 1 });
    assert.ok(ib.lo < ia.hi, 'the unpaired intervals overlap');
  });

  it('paired differences equal the run bootstrap of per-query differences, skipping NaN pairs', () => {
    const a = runsOf([4, 2, 5], 8);
    const b = runsOf([4, 2, 5], 9);
    a[1][0] = NaN;
    const want = runBootstrapMeanCI(a.map((r, i) => r.map((x, q) => b[i][q] - x).filter((v) => !Number.isNaN(v))), { seed: 6 });
    assert.deepEqual(pairedRunDifferences(a, b, { seed: 6 }), want);
    throwsTda(() => pairedRunDifferences(a, b.slice(1)), "'runs'");
    throwsTda(() => pairedRunDifferences([[1, 2]], [[1]]), "'queries'");
  });

  it('rejects bad options, naming them', () => {
    throwsTda(() => runBootstrapMeanCI([[1]], { resamples: 0 }), "'resamples'");
    throwsTda(() => runBootstrapMeanCI([[1]], { level: 1.5 }), "'level'");
    throwsTda(() => runBootstrapMeanCI([[1]], { weighting: 'examples' as never }), "'weighting'");
  });
});

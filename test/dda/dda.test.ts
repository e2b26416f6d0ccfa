import * as assert from 'node:assert/strict';
import { ScoreMatrix, scoreMatrix } from '../../src/attribution/types';
import { dda, debias, denoise } from '../../src/dda';
import { Rng } from '../../src/random';
import { throwsTda } from '../helpers/errors';

const m = (rows: number[][]): ScoreMatrix => scoreMatrix(rows.length, rows[0].length, Float32Array.from(rows.flat()));

function near(got: ScoreMatrix, want: number[][], tol = 1e-6): void {
  assert.deepEqual([got.nTest, got.nTrain], [want.length, want[0].length]);
  want.flat().forEach((w, k) => assert.ok(Math.abs(got.data[k] - w) <= tol * Math.max(1, Math.abs(w)), `entry ${k}: ${got.data[k]} vs ${w}`));
}

function random(rng: Rng, nTest: number, nTrain: number, scale = 1): ScoreMatrix {
  return scoreMatrix(nTest, nTrain, Float32Array.from({ length: nTest * nTrain }, () => scale * rng.normal()));
}

const s15 = Math.sqrt(1.5);
const r2 = Math.SQRT2;

describe('DDA: debias', () => {
  it('subtracts lambda times the base scores (default lambda 1, no normalisation)', () => {
    const ft = m([[1, 2], [3, 4]]);
    const base = m([[0.5, 1], [1, 1]]);
    near(debias(ft, base), [[0.5, 1], [2, 3]]);
    near(debias(ft, base, { lambda: 2 }), [[0, 0], [1, 2]]);
    near(debias(ft, base, { lambda: 0 }), [[1, 2], [3, 4]]);
  });

  it('zscore-rows normalises each query row of each matrix before subtracting', () => {
    // Row [1, 2, 3]: mean 2, population std sqrt(2/3). Row [2, 2, 4]: mean 8/3, std sqrt(8/9).
    const ft = m([[1, 2, 3], [5, 5, 5]]);
    const base = m([[2, 2, 4], [1, 2, 3]]);
    near(debias(ft, base, { normalize: 'zscore-rows' }), [
      [-s15 + 1 / r2, 0 + 1 / r2, s15 - r2],
      [s15, 0, -s15], // a constant row has no scale: it becomes zeros
    ]);
  });

  it('zscore-all normalises each whole matrix before subtracting', () => {
    // ft: mean 2.5, std sqrt(1.25); base [0 0; 0 4]: mean 1, std sqrt(3).
    const ft = m([[1, 2], [3, 4]]);
    const base = m([[0, 0], [0, 4]]);
    const z = (v: number) => (v - 2.5) / Math.sqrt(1.25);
    const w = 1 / Math.sqrt(3);
    near(debias(ft, base, { normalize: 'zscore-all', lambda: 0.5 }), [
      [z(1) + 0.5 * w, z(2) + 0.5 * w],
      [z(3) + 0.5 * w, z(4) - 0.5 * Math.sqrt(3)],
    ]);
  });

  it('refuses mismatched shapes, NaN and bad options, naming the field', () => {
    const a = m([[1, 2]]);
    throwsTda(() => debias(a, m([[1, 2, 3]])), "'nTrain'");
    throwsTda(() => debias(a, m([[1, 2], [3, 4]])), "'nTest'");
    throwsTda(() => debias(a, m([[1, NaN]])), "'scoresBase'", 'NaN', 'training example 1');
    throwsTda(() => debias(m([[Infinity, 1]]), a), "'scoresFinetuned'");
    throwsTda(() => debias(a, { nTest: 1, nTrain: 2, data: new Float32Array(3) }), "'scoresBase'", '3 values');
    throwsTda(() => debias(a, a, { lambda: NaN }), "'lambda'");
    throwsTda(() => debias(a, a, { normalize: 'minmax' as never }), "'normalize'");
  });
});

describe('DDA: denoise', () => {
  const c0 = m([[1, 2], [10, -4]]);
  const c1 = m([[3, 6], [0, 0]]);
  const c2 = m([[5, 1], [2, 8]]);

  it('mean is the entry-wise average (the default)', () => {
    near(denoise([c0, c1, c2]), [[3, 3], [4, 4 / 3]]);
    near(denoise([c0]), [[1, 2], [10, -4]]);
  });

  it('ema follows E_0 = S_0, E_t = alpha S_t + (1 - alpha) E_{t-1}', () => {
    near(denoise([c0, c1, c2], { mode: 'ema' }), [[0.25 * 1 + 0.25 * 3 + 0.5 * 5, 0.25 * 2 + 0.25 * 6 + 0.5 * 1], [0.25 * 10 + 0.5 * 2, -1 + 4]]);
    const a = 0.3;
    const w = [(1 - a) ** 2, a * (1 - a), a];
    near(denoise([c0, c1, c2], { mode: 'ema', emaAlpha: a }), [
      [w[0] * 1 + w[1] * 3 + w[2] * 5, w[0] * 2 + w[1] * 6 + w[2] * 1],
      [w[0] * 10 + w[2] * 2, w[0] * -4 + w[2] * 8],
    ]);
    near(denoise([c0, c1, c2], { mode: 'ema', emaAlpha: 1 }), [[5, 1], [2, 8]]);
    // Order matters: EMA weighs later checkpoints more.
    assert.notDeepEqual(denoise([c2, c1, c0], { mode: 'ema' }).data, denoise([c0, c1, c2], { mode: 'ema' }).data);
  });

  it('median takes the middle value, or the mean of the two middle values for an even count', () => {
    near(denoise([c0, c1, c2], { mode: 'median' }), [[3, 2], [2, 0]]);
    const c3 = m([[4, 100], [-1, 1]]);
    // Sorted entries: [1 3 4 5], [1 2 6 100], [-1 0 2 10], [-4 0 1 8].
    near(denoise([c0, c1, c2, c3], { mode: 'median' }), [[3.5, 4], [1, 0.5]]);
    near(denoise([c0, c1], { mode: 'median' }), [[2, 4], [5, -2]]);
  });

  it('standardize z-scores each checkpoint per row first, so scale and shift per checkpoint do not matter', () => {
    const rng = new Rng(1);
    const s = random(rng, 3, 5);
    const wide = scoreMatrix(3, 5, s.data.map((v) => 100 * v + 7));
    const zs = denoise([s], { standardize: true });
    for (const mode of ['mean', 'ema', 'median'] as const) near(denoise([s, wide], { mode, standardize: true }), rows(zs), 1e-5);
    // Row [1, 2, 3] -> [-sqrt(1.5), 0, sqrt(1.5)]; row [3, 3, 9] -> [-1/sqrt2, -1/sqrt2, sqrt2].
    near(denoise([m([[1, 2, 3]]), m([[3, 3, 9]])], { standardize: true }), [[(-s15 - 1 / r2) / 2, -1 / r2 / 2, (s15 + r2) / 2]]);
  });

  it('refuses empty lists, mismatched checkpoints and NaN, naming the checkpoint', () => {
    throwsTda(() => denoise([]), "'scoresPerCheckpoint'");
    throwsTda(() => denoise([c0, c1, m([[1, 2, 3], [4, 5, 6]])]), "'nTrain'", 'checkpoint 2');
    throwsTda(() => denoise([c0, m([[1, 2]])]), "'nTest'", 'checkpoint 1');
    throwsTda(() => denoise([c0, c1, m([[1, 2], [NaN, 0]])]), "'scoresPerCheckpoint[2]'", 'checkpoint 2', 'query 1, training example 0');
    throwsTda(() => denoise([c0], { mode: 'max' as never }), "'mode'");
    throwsTda(() => denoise([c0], { mode: 'ema', emaAlpha: 0 }), "'emaAlpha'");
    throwsTda(() => denoise([c0], { mode: 'ema', emaAlpha: 1.5 }), "'emaAlpha'");
  });
});

describe('DDA: debias then denoise', () => {
  it('is the mean over checkpoints of S_t - lambda S_base in closed form', () => {
    const a = m([[1, 2], [3, 4]]);
    const b = m([[3, 0], [1, 0]]);
    const base = m([[2, 2], [0, 4]]);
    near(dda({ finetuned: [a, b], base }, { lambda: 0.5 }), [[1, 0], [2, 0]]);
    near(dda({ finetuned: [a, b], base }, { lambda: 0.5, mode: 'ema', emaAlpha: 0.25 }), [[0.75 * 0 + 0.25 * 2, 0.75 * 1 - 0.25 * 1], [0.75 * 3 + 0.25 * 1, 0.75 * 2 - 0.25 * 2]]);
  });

  it('equals denoise(debias(S_t, S_base)) for every option combination', () => {
    const rng = new Rng(9);
    const base = random(rng, 4, 6, 0.3);
    const finetuned = [random(rng, 4, 6), random(rng, 4, 6, 5), random(rng, 4, 6, 20), random(rng, 4, 6, 2)];
    for (const normalize of ['none', 'zscore-rows', 'zscore-all'] as const) {
      for (const mode of ['mean', 'ema', 'median'] as const) {
        for (const standardize of [false, true]) {
          const opts = { lambda: 0.7, normalize, mode, emaAlpha: 0.4, standardize };
          const want = denoise(finetuned.map((s) => debias(s, base, opts)), opts);
          near(dda({ finetuned, base }, opts), rows(want), 1e-5);
        }
      }
    }
  });

  it('refuses a base of another shape and NaN in a checkpoint, naming them', () => {
    const a = m([[1, 2]]);
    throwsTda(() => dda({ finetuned: [a, a], base: m([[1, 2, 3]]) }), "'nTrain'", 'base');
    throwsTda(() => dda({ finetuned: [a, m([[1, 2], [3, 4]])], base: a }), "'nTest'", 'checkpoint 1');
    throwsTda(() => dda({ finetuned: [a, a, m([[NaN, 1]])], base: a }), "'finetuned[2]'", 'checkpoint 2');
    throwsTda(() => dda({ finetuned: [a], base: m([[1, NaN]]) }), "'base'");
    throwsTda(() => dda({ finetuned: [], base: a }), "'finetuned'");
  });
});

function rows(s: ScoreMatrix): number[][] {
  return Array.from({ length: s.nTest }, (_, q) => Array.from(s.data.subarray(q * s.nTrain, (q + 1) * s.nTrain)));
}

/**
 * The claim behind influence functions, checked end to end on a problem small enough to
 * retrain: for L2-regularised logistic regression, the exact influence score predicts the
 * change in each test loss when a training example is left out and the model retrained.
 */
import * as assert from 'node:assert/strict';
import { ExactInfluence } from '../../src/attribution/exact';
import { GradDot } from '../../src/attribution/gradDot';
import { Rng } from '../../src/random';
import { invert, pearson } from './helpers';
import { GradientSet, inMemorySource } from '../../src/gradients/types';

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
const D = 4; // three features and a bias

function logLoss(w: number[], x: number[], y: number): number {
  const p = sigmoid(w.reduce((s, wi, k) => s + wi * x[k], 0));
  return -(y * Math.log(p) + (1 - y) * Math.log(1 - p));
}

/** Minimises (1/n) sum_i weight_i * loss_i + (alpha/2)|w|^2 by Newton's method, to machine precision. */
function fit(xs: number[][], ys: number[], weights: number[], alpha: number, n: number): number[] {
  let w = new Array(D).fill(0);
  for (let it = 0; it < 50; it++) {
    const g = w.map((wi) => alpha * wi);
    const h = Array.from({ length: D }, (_, a) => Array.from({ length: D }, (_, b) => (a === b ? alpha : 0)));
    xs.forEach((x, i) => {
      if (weights[i] === 0) return;
      const p = sigmoid(w.reduce((s, wi, k) => s + wi * x[k], 0));
      for (let a = 0; a < D; a++) {
        g[a] += (weights[i] * (p - ys[i]) * x[a]) / n;
        for (let b = 0; b < D; b++) h[a][b] += (weights[i] * p * (1 - p) * x[a] * x[b]) / n;
      }
    });
    const hInv = invert(h);
    const step = hInv.map((r) => r.reduce((s, v, k) => s + v * g[k], 0));
    w = w.map((wi, k) => wi - step[k]);
    if (Math.hypot(...step) < 1e-13) break;
  }
  return w;
}

describe('exact influence predicts leave-one-out retraining (logistic regression)', () => {
  it('correlates with the actual change in test loss (Pearson > 0.95), better than plain gradient matching', () => {
    const rng = new Rng(42);
    const trueW = [1.5, -2, 0.7, 0.3];
    const sample = () => {
      const x = [rng.normal(), rng.normal(), rng.normal(), 1];
      const y = rng.next() < sigmoid(trueW.reduce((s, w, k) => s + w * x[k], 0)) ? 1 : 0;
      return { x, y };
    };
    const n = 80;
    const alpha = 0.05;
    const trainPts = Array.from({ length: n }, sample);
    const testPts = Array.from({ length: 6 }, sample);
    const xs = trainPts.map((p) => p.x);
    const ys = trainPts.map((p) => p.y);
    const w = fit(xs, ys, new Array(n).fill(1), alpha, n);

    const grads = (pts: { x: number[]; y: number }[]): GradientSet => ({
      n: pts.length,
      blocks: [{ name: 'w', shape: [D], dim: D, data: Float32Array.from(pts.flatMap((p) => p.x.map((xk) => (sigmoid(w.reduce((s, wi, k) => s + wi * p.x[k], 0)) - p.y) * xk))) }],
    });
    // The damping plays the role of the L2 term of the objective's Hessian.
    const exact = new ExactInfluence({ dampingValues: { w: alpha } });
    exact.cache(inMemorySource(grads(trainPts)));
    const scores = exact.attribute(grads(testPts));
    const dotScores = (() => {
      const m = new GradDot();
      m.cache(inMemorySource(grads(trainPts)));
      return m.attribute(grads(testPts));
    })();

    const predicted: number[] = [];
    const matching: number[] = [];
    const actual: number[] = [];
    for (let i = 0; i < n; i++) {
      const weights = new Array(n).fill(1);
      weights[i] = 0;
      const wLoo = fit(xs, ys, weights, alpha, n);
      testPts.forEach((t, q) => {
        // Leaving a helpful example out raises the test loss: positive score <-> positive change.
        actual.push(logLoss(wLoo, t.x, t.y) - logLoss(w, t.x, t.y));
        predicted.push(scores.data[q * n + i] / n);
        matching.push(dotScores.data[q * n + i]);
      });
    }
    const r = pearson(predicted, actual);
    const rDot = pearson(matching, actual);
    assert.ok(r > 0.95, `Pearson(exact influence, LOO) = ${r.toFixed(4)}`);
    assert.ok(r > rDot, `exact (${r.toFixed(3)}) should beat gradient matching (${rDot.toFixed(3)})`);
  });
});

import * as assert from 'node:assert/strict';
import { createScorer } from '../../src/attribution/registry';
import { autocorrelation, inverseSqrt, TrackStar } from '../../src/attribution/trackstar';
import { ScoreMatrix } from '../../src/attribution/types';
import { GradientSet, inMemorySource } from '../../src/gradients/types';
import { Rng } from '../../src/random';
import { throwsTda } from '../helpers/errors';
import { randomGradients } from './helpers';
import { chunkedSource, dot, inverseSqrtReference, matmul, projectConcatenated, randomState, unit } from './optimizerReference';

const SHAPES = [
  [2, 3],
  [4, 2],
];

interface RefOptions {
  k: number;
  seed: number;
  mix: number;
  ridge: number;
  eps: number;
}

/** TrackStar written out from its formula in float64, R^(-1/2) by Jacobi rotations. */
function trackStarReference(train: GradientSet, test: GradientSet, state: ReturnType<typeof randomState>, o: RefOptions): number[][] {
  const spec = { kind: 'rademacher' as const, dim: o.k, seed: o.seed };
  const corrected = (l: number, j: number, g: number) => g / (Math.sqrt(state.moments[l].expAvgSq[j]) + o.eps);
  const phiTrain = Array.from({ length: train.n }, (_, i) => projectConcatenated(train, i, spec, corrected));
  const phiTest = Array.from({ length: test.n }, (_, q) => projectConcatenated(test, q, spec, corrected));
  const auto = (phi: number[][]) => Array.from({ length: o.k }, (_, a) => Array.from({ length: o.k }, (_, b) => phi.reduce((s, x) => s + x[a] * x[b], 0) / phi.length));
  const rTrain = auto(phiTrain);
  const rTest = auto(phiTest);
  const r = rTrain.map((row, a) => row.map((x, b) => o.mix * x + (1 - o.mix) * rTest[a][b]));
  const delta = (o.ridge * r.reduce((s, row, a) => s + row[a], 0)) / o.k;
  const w = inverseSqrtReference(r, delta);
  // The reference's own check: W (R + delta I) W = I.
  const damped = r.map((row, a) => row.map((x, b) => x + (a === b ? delta : 0)));
  matmul(matmul(w, damped), w).forEach((row, a) => row.forEach((x, b) => assert.ok(Math.abs(x - (a === b ? 1 : 0)) < 1e-8, `reference W R W [${a}, ${b}] = ${x}`)));
  const feature = (phi: number[]) => unit(w.map((row) => dot(row, phi)));
  const gTrain = phiTrain.map(feature);
  return phiTest.map((p) => {
    const gq = feature(p);
    return gTrain.map((gi) => dot(gq, gi));
  });
}

function assertClose(got: ScoreMatrix, want: number[][], tol: number, what: string): void {
  assert.equal(got.nTest, want.length);
  assert.equal(got.nTrain, want[0].length);
  want.forEach((row, q) => row.forEach((w, i) => assert.ok(Math.abs(got.data[q * got.nTrain + i] - w) < tol, `${what} [${q}, ${i}]: ${got.data[q * got.nTrain + i]} vs ${w}`)));
}

describe('attribution/trackstar: TrackStar against a direct transcription', () => {
  const train = randomGradients(8, SHAPES, 1);
  const test = randomGradients(3, SHAPES, 2);
  const state = randomState(train, 3, 0.01);

  it('equals the float64 transcription (Jacobi eigendecomposition for R^(-1/2)) for several mixes, dimensions and ridges', () => {
    const cases: RefOptions[] = [
      { k: 5, seed: 0, mix: 0.5, ridge: 1e-2, eps: 0.1 },
      { k: 5, seed: 4, mix: 1, ridge: 1e-3, eps: 1e-8 },
      { k: 12, seed: 2, mix: 0.3, ridge: 5e-2, eps: 0.1 },
    ];
    for (const o of cases) {
      const t = new TrackStar({ projectionDim: o.k, projectionSeed: o.seed, mix: o.mix, ridge: o.ridge, eps: o.eps, workers: 0 });
      t.cache({ train: chunkedSource(train, 3), optimizer: state });
      const got = t.attribute(test);
      assertClose(got, trackStarReference(train, test, state, o), 1e-4, JSON.stringify(o));
      assert.ok(got.data.every((s) => Math.abs(s) <= 1 + 1e-5), 'unit vectors: scores are cosines');
      assert.equal(t.settings().mix, o.mix);
      assert.equal(t.settings().step, state.step);
    }
  });

  it('with mix 1 a query scores the same alone or with others; with mix < 1 the queries shape R', () => {
    const t = new TrackStar({ projectionDim: 6, mix: 1, ridge: 1e-2, workers: 0 });
    t.cache({ train: inMemorySource(train), optimizer: state });
    const all = t.attribute(test);
    const one = t.attribute({ n: 1, blocks: test.blocks.map((b) => ({ ...b, data: b.data.slice(b.dim, 2 * b.dim) })) });
    one.data.forEach((s, i) => assert.ok(Math.abs(s - all.data[train.n + i]) < 1e-5));
    const mixed = new TrackStar({ projectionDim: 6, mix: 0.5, ridge: 1e-2, workers: 0 });
    mixed.cache({ train: inMemorySource(train), optimizer: state });
    assert.ok(mixed.attribute(test).data.some((s, j) => Math.abs(s - all.data[j]) > 1e-3), 'mix < 1 brings in the queries');
  });

  it('autocorrelation and inverseSqrt match their definitions', () => {
    const rng = new Rng(8);
    const [n, k] = [9, 6];
    const phi = Float32Array.from({ length: n * k }, () => rng.normal());
    const r = autocorrelation(phi, n, k);
    for (let a = 0; a < k; a++) {
      for (let b = 0; b < k; b++) {
        let s = 0;
        for (let i = 0; i < n; i++) s += phi[i * k + a] * phi[i * k + b];
        assert.ok(Math.abs(r[a * k + b] - s / n) < 1e-12);
      }
    }
    const rows = Array.from({ length: k }, (_, a) => Array.from(r.subarray(a * k, (a + 1) * k)));
    const want = inverseSqrtReference(rows, 0.01);
    const got = inverseSqrt(r, k, 0.01);
    want.forEach((row, a) => row.forEach((x, b) => assert.ok(Math.abs(got[a * k + b] - x) < 1e-9, `[${a}, ${b}]`)));
  });

  it('is a registry method with its defaults; refuses bad options and input, naming the field', () => {
    const d = createScorer('trackStar').settings();
    assert.deepEqual([d.projectionDim, d.projectionSeed, d.mix, d.ridge, d.eps], [512, 0, 0.5, 1e-3, 1e-8]);
    const scorer = createScorer('trackStar', { projectionDim: 5, mix: 0.5, ridge: 1e-2, eps: 0.1, workers: 0 });
    scorer.cache({ train: inMemorySource(train), optimizer: state });
    assertClose(scorer.attribute(test), trackStarReference(train, test, state, { k: 5, seed: 0, mix: 0.5, ridge: 1e-2, eps: 0.1 }), 1e-4, 'registry');
    throwsTda(() => createScorer('trackStar', { mix: 1.5 }), "'mix'", '[0, 1]');
    throwsTda(() => createScorer('trackStar', { eps: 0 }), '--eps', '> 0');
    throwsTda(() => new TrackStar().attribute(test), 'cache(checkpoint)');
    const t = new TrackStar({ projectionDim: 4, workers: 0 });
    throwsTda(() => t.cache({ train: inMemorySource(train), optimizer: { ...state, moments: state.moments.slice(0, 1) } }), "'block1'", 'no moments');
    t.cache({ train: inMemorySource(train), optimizer: state });
    throwsTda(() => t.attribute(randomGradients(2, [[2, 3]], 5)), 'test gradients have blocks');
    const zero = new TrackStar({ projectionDim: 4, ridge: 0, mix: 1, workers: 0 });
    zero.cache({ train: inMemorySource(randomGradients(3, SHAPES, 1, 0)), optimizer: state });
    throwsTda(() => zero.attribute(test), "'ridge'", 'singular');
    // Without a ridge R must be invertible: 8 training examples span k = 4 dimensions, but not 12.
    const noRidge = (k: number) => new TrackStar({ projectionDim: k, ridge: 0, mix: 1, eps: 0.1, workers: 0 });
    const full = noRidge(4);
    full.cache({ train: inMemorySource(train), optimizer: state });
    assertClose(full.attribute(test), trackStarReference(train, test, state, { k: 4, seed: 0, mix: 1, ridge: 0, eps: 0.1 }), 1e-4, 'no ridge');
    const wide = noRidge(12);
    wide.cache({ train: inMemorySource(train), optimizer: state });
    throwsTda(() => wide.attribute(test), "'ridge'", 'singular');
  });
});

/**
 * Conjugate gradients and LiSSA on gradient blocks of experiment size (n = 800 training
 * gradients, d = 1,024 and 4,096, condition numbers 1e3 and 1e4, blocks 1e3 apart in scale)
 * against a dense float64 solve (Woodbury + ml-matrix Cholesky), with every reported
 * residual recomputed here; and LiSSA's fixed-iteration mode against the formula it always
 * ran, transcribed.
 */
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { ConjugateGradient } from '../../src/attribution/conjugateGradient';
import { blockDamping } from '../../src/attribution/damping';
import { dotScores } from '../../src/attribution/gradientAttributor';
import { Lissa, topEigenvalue } from '../../src/attribution/lissa';
import { createGradientAttributor } from '../../src/attribution/registry';
import { GradientSet, inMemorySource, withBlocks } from '../../src/gradients/types';
import { Rng } from '../../src/random';
import { throwsTda } from '../helpers/errors';
import { conditionedGradients, conditionNumber, defaultDamping, denseSolve } from './conditionedGradients';
import { randomGradients } from './helpers';

const N = 800;
const N_TEST = 6;

/** max over rows of ||v_q - (G^T G / n + lambda I) x_q|| / ||v_q||, written out in float64. */
function worstResidual(G: Float32Array, n: number, d: number, lambda: number, v: Float32Array, x: Float32Array, nT: number): number {
  let w = 0;
  for (let q = 0; q < nT; q++) {
    const xq = Float64Array.from(x.subarray(q * d, (q + 1) * d));
    const gx = new Float64Array(n);
    for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) gx[i] += G[i * d + c] * xq[c];
    let rr = 0;
    let vv = 0;
    for (let c = 0; c < d; c++) {
      let hx = 0;
      for (let i = 0; i < n; i++) hx += G[i * d + c] * gx[i];
      const r = v[q * d + c] - hx / n - lambda * xq[c];
      rr += r * r;
      vv += v[q * d + c] ** 2;
    }
    w = Math.max(w, Math.sqrt(rr / vv));
  }
  return w;
}

function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let e = 0;
  let s = 0;
  for (let i = 0; i < want.length; i++) {
    e += (got[i] - want[i]) ** 2;
    s += want[i] ** 2;
  }
  return Math.sqrt(e / s);
}

describe('iterative influence solvers on blocks of experiment size (n = 800, d = 1,024 and 4,096, condition 1e3 and 1e4)', function () {
  this.timeout(600000);
  const { train, test } = conditionedGradients(
    N,
    N_TEST,
    [
      { name: 'lora_A', dim: 1024, condition: 1e3, scale: 1e-3 },
      { name: 'lora_B', dim: 4096, condition: 1e4, scale: 1 },
    ],
    5,
  );
  const lambdas = train.blocks.map((b) => defaultDamping(b.data));
  let reference: Float64Array[];
  let referenceScores: Float64Array;

  before(() => {
    reference = train.blocks.map((b, l) => denseSolve(b.data, N, b.dim, lambdas[l], test.blocks[l].data, N_TEST));
    referenceScores = new Float64Array(N_TEST * N);
    train.blocks.forEach((b, l) => {
      for (let q = 0; q < N_TEST; q++) {
        for (let i = 0; i < N; i++) {
          let s = 0;
          for (let c = 0; c < b.dim; c++) s += reference[l][q * b.dim + c] * b.data[i * b.dim + c];
          referenceScores[q * N + i] += s;
        }
      }
    });
  });

  it('the blocks have the condition numbers they were built for', () => {
    train.blocks.forEach((b, l) => {
      const want = [1e3, 1e4][l];
      const got = conditionNumber(b.data, N, b.dim, lambdas[l], 60);
      assert.ok(Math.abs(got - want) / want < 0.01, `${b.name}: condition ${got}`);
    });
  });

  it('cg reaches the default tolerance 1e-3 in every block, reports the residual it reached, and matches the dense solve', () => {
    const warnings: string[] = [];
    const cg = new ConjugateGradient({ onWarning: (m) => warnings.push(m) });
    cg.cache(inMemorySource(train));
    const x = cg.solve(test);
    assert.deepEqual(warnings, []);
    x.blocks.forEach((b, l) => {
      const c = cg.convergence[l];
      const recomputed = worstResidual(train.blocks[l].data, N, b.dim, lambdas[l], test.blocks[l].data, b.data, N_TEST);
      assert.equal(c.block, b.name);
      assert.ok(recomputed <= 1e-3, `${b.name}: residual ${recomputed}`);
      assert.ok(Math.abs(c.relativeResidual! - recomputed) <= 1e-9 * recomputed, `${b.name}: reported ${c.relativeResidual}, recomputed ${recomputed}`);
      assert.ok(c.converged);
      // Far fewer passes than LiSSA's ~condition number x ln(1 / tolerance).
      assert.ok(c.iterations > 0 && c.iterations <= 200, `${b.name}: ${c.iterations} iterations`);
      const err = relativeError(b.data, reference[l]);
      assert.ok(err < 5e-3, `${b.name}: relative error ${err} against the dense solve`);
    });
    const settings = cg.settings();
    assert.equal(settings.tolerance, 1e-3);
    assert.deepEqual(Object.keys(settings.convergence as object), ['lora_A', 'lora_B']);
    // The error of x is A^-1 r, largest along small eigenvalues, and the scores G x weigh it
    // by the singular values: a residual of 1e-3 leaves them a few 1e-3 off.
    const scores = cg.attribute(test);
    assert.ok(relativeError(scores.data, referenceScores) < 1e-2, `scores: ${relativeError(scores.data, referenceScores)}`);
  });

  it('cg reaches a tolerance of 1e-6 at condition 1e4: float64 refinement goes past where float32 CG alone stalls (~7e-6 here)', () => {
    const cg = new ConjugateGradient({ tolerance: 1e-6, maxIterations: 1000, unconverged: 'fail' });
    cg.cache(inMemorySource(train));
    const x = cg.solve(test);
    x.blocks.forEach((b, l) => {
      const recomputed = worstResidual(train.blocks[l].data, N, b.dim, lambdas[l], test.blocks[l].data, b.data, N_TEST);
      assert.ok(recomputed <= 1e-6, `${b.name}: residual ${recomputed}`);
      assert.ok(Math.abs(cg.convergence[l].relativeResidual! - recomputed) <= 1e-9 * recomputed);
      assert.ok(relativeError(b.data, reference[l]) < 1e-4, `${b.name}: ${relativeError(b.data, reference[l])}`);
    });
    const scores = cg.attribute(test);
    assert.ok(relativeError(scores.data, referenceScores) < 1e-4, `scores: ${relativeError(scores.data, referenceScores)}`);
  });

  it('lissa at its default cap either reaches the tolerance or says so: the reported residual is the true one, and one warning line names the block', () => {
    const warnings: string[] = [];
    const lissa = new Lissa({ onWarning: (m) => warnings.push(m) });
    lissa.cache(inMemorySource(train));
    const x = lissa.solve(test);
    const missed: string[] = [];
    x.blocks.forEach((b, l) => {
      const c = lissa.convergence[l];
      const recomputed = worstResidual(train.blocks[l].data, N, b.dim, lambdas[l], test.blocks[l].data, b.data, N_TEST);
      assert.ok(Math.abs(c.relativeResidual! - recomputed) <= 1e-9 * recomputed, `${b.name}: reported ${c.relativeResidual}, recomputed ${recomputed}`);
      assert.equal(c.converged, recomputed <= 1e-3);
      if (!c.converged) {
        missed.push(b.name);
        assert.equal(c.iterations, 1000, 'an unconverged block used the whole cap');
        // What the residual bounds: the error of the solution against the dense solve.
        assert.ok(relativeError(b.data, reference[l]) > 1e-3);
      }
    });
    assert.equal(warnings.length, missed.length ? 1 : 0, warnings.join('\n'));
    if (missed.length) {
      assert.ok(!warnings[0].includes('\n'));
      assert.match(warnings[0], new RegExp(`^lissa: ${missed.length} of 2 LoRA tensors did not reach relative residual 0\\.001 .*'lora_B'`));
    }
    const settings = lissa.settings() as { convergence: Record<string, { relativeResidual: number }>; maxIterations: number };
    assert.equal(settings.maxIterations, 1000);
    assert.equal(settings.convergence.lora_B.relativeResidual, lissa.convergence[1].relativeResidual);
  });

  it("unconverged: 'fail' is a TdaError naming the worst block", () => {
    const lissa = new Lissa({ maxIterations: 20, unconverged: 'fail' });
    lissa.cache(inMemorySource(train));
    throwsTda(() => lissa.solve(test), "'lora_B'", 'did not reach relative residual 0.001');
    const cg = new ConjugateGradient({ maxIterations: 3, unconverged: 'fail' });
    cg.cache(inMemorySource(train));
    throwsTda(() => cg.attribute(test), 'cg: 2 of 2 LoRA tensors', 'raise the iteration cap');
  });
});

describe('lissa iterating to the tolerance on a well-conditioned block (condition 30)', () => {
  it('stops before the cap once the float64 residual is below the tolerance, and matches the dense solve', function () {
    this.timeout(300000);
    const { train, test } = conditionedGradients(N, 4, [{ name: 'w', dim: 1024, condition: 30, scale: 1 }], 8);
    const lambda = defaultDamping(train.blocks[0].data);
    const lissa = new Lissa({ unconverged: 'fail' });
    lissa.cache(inMemorySource(train));
    const x = lissa.solve(test).blocks[0].data;
    const c = lissa.convergence[0];
    const recomputed = worstResidual(train.blocks[0].data, N, 1024, lambda, test.blocks[0].data, x, 4);
    assert.ok(recomputed <= 1e-3 && c.iterations < 1000, `residual ${recomputed} after ${c.iterations}`);
    assert.ok(Math.abs(c.relativeResidual! - recomputed) <= 1e-9 * recomputed);
    const want = denseSolve(train.blocks[0].data, N, 1024, lambda, test.blocks[0].data, 4);
    assert.ok(relativeError(x, want) < 3e-2, `${relativeError(x, want)}`);
  });

  it('with mini-batches (a noisy estimate of the residual) the reported residual is still the true one', function () {
    this.timeout(300000);
    const { train, test } = conditionedGradients(N, 4, [{ name: 'w', dim: 1024, condition: 30, scale: 1 }], 9);
    const lambda = defaultDamping(train.blocks[0].data);
    const warnings: string[] = [];
    const lissa = new Lissa({ batchSize: 400, repeats: 2, seed: 3, maxIterations: 60, onWarning: (m) => warnings.push(m) });
    lissa.cache(inMemorySource(train));
    const x = lissa.solve(test).blocks[0].data;
    const c = lissa.convergence[0];
    const recomputed = worstResidual(train.blocks[0].data, N, 1024, lambda, test.blocks[0].data, x, 4);
    assert.ok(Math.abs(c.relativeResidual! - recomputed) <= 1e-9 * recomputed, `reported ${c.relativeResidual}, recomputed ${recomputed}`);
    assert.equal(c.converged, recomputed <= 1e-3);
    assert.equal(warnings.length, c.converged ? 0 : 1);
  });
});

/**
 * LiSSA's fixed-iteration transform as it always was (before the tolerance mode), transcribed:
 * the experiments pass `iterations` and must get these numbers bit for bit.
 */
function formerLissaTransform(test: GradientSet, train: GradientSet, o: { iterations: number; batchSize: number | null; repeats: number; seed: number }): GradientSet {
  const source = inMemorySource(train);
  const damping = blockDamping(source);
  const rng = new Rng(o.seed);
  return withBlocks(
    test,
    test.blocks.map((b, l) => {
      const lambda = damping[l];
      if (lambda === 0) return new Float32Array(b.data.length);
      const G = train.blocks[l].data;
      const scale = 1.1 * (topEigenvalue(G, train.n, b.dim, o.seed) + lambda);
      const runs = o.batchSize === null ? 1 : o.repeats;
      const sum = new Float32Array(b.data.length);
      const g = tf.tensor2d(G, [train.n, b.dim]);
      const gT = tf.transpose(g);
      const vT = tf.tensor2d(b.data, [test.n, b.dim]);
      for (let run = 0; run < runs; run++) {
        let y = tf.clone(vT);
        for (let t = 0; t < o.iterations; t++) {
          const idx = o.batchSize === null || o.batchSize >= train.n ? null : Array.from({ length: o.batchSize }, () => rng.int(train.n));
          const m = idx ? idx.length : train.n;
          const next = tf.tidy(() => {
            const rows = idx ? tf.gather(g, tf.tensor1d(idx, 'int32')) : g;
            const rowsT = idx ? tf.transpose(rows) : gT;
            const hy = tf.matMul(tf.matMul(y, rowsT), rows);
            return tf.sub(tf.add(vT, y), tf.div(tf.add(tf.div(hy, m), tf.mul(y, lambda)), scale));
          });
          y.dispose();
          y = next as tf.Tensor2D;
        }
        const yData = y.dataSync();
        for (let j = 0; j < yData.length; j++) sum[j] += yData[j];
        y.dispose();
      }
      g.dispose();
      gT.dispose();
      vT.dispose();
      return sum.map((x) => x / (scale * runs));
    }),
  );
}

describe('lissa with a fixed number of iterations (the experiments) is the former computation, bit for bit', () => {
  const train = randomGradients(40, [[4, 16], [16, 4], [2, 8]], 21);
  const test = randomGradients(5, [[4, 16], [16, 4], [2, 8]], 22);

  it('full batch, through the registry as the experiments call it: same scores, and no warning although unconverged', () => {
    const want = dotScores(formerLissaTransform(test, train, { iterations: 30, batchSize: null, repeats: 1, seed: 0 }), inMemorySource(train), { workers: 0 });
    const lissa = createGradientAttributor('lissa', { iterations: 30, seed: 0, workers: 0 }) as Lissa;
    lissa.cache(inMemorySource(train));
    const got = lissa.attribute(test);
    assert.deepEqual(got.data, want.data);
    assert.equal(lissa.settings().iterations, 30);
    assert.equal(lissa.convergence.length, 3);
    // Reported all the same, against the damping the method used.
    const damping = blockDamping(inMemorySource(train));
    const x = lissa.solve(test);
    x.blocks.forEach((b, l) => {
      const recomputed = worstResidual(train.blocks[l].data, 40, b.dim, damping[l], test.blocks[l].data, b.data, 5);
      assert.ok(Math.abs(lissa.convergence[l].relativeResidual! - recomputed) <= 1e-9 * recomputed);
    });
  });

  it('mini-batches with repeats: same scores', () => {
    const o = { iterations: 25, batchSize: 8, repeats: 3, seed: 4 };
    const want = dotScores(formerLissaTransform(test, train, o), inMemorySource(train), { workers: 0 });
    const lissa = new Lissa({ ...o, workers: 0, onWarning: () => assert.fail('a fixed count does not warn') });
    lissa.cache(inMemorySource(train));
    assert.deepEqual(lissa.attribute(test).data, want.data);
  });

  it('solving leaves no tensors behind, iterating to the tolerance or not', () => {
    for (const make of [() => new ConjugateGradient(), () => new Lissa({ onWarning: () => undefined }), () => new Lissa({ iterations: 5 })]) {
      const m = make();
      m.cache(inMemorySource(train));
      m.solve(test);
      const before = tf.memory().numTensors;
      m.solve(test);
      assert.equal(tf.memory().numTensors, before, m.name);
    }
  });

  it('iterations and maxIterations together are refused', () => {
    throwsTda(() => new Lissa({ iterations: 5, maxIterations: 10 }), "'maxIterations'", 'not both');
  });
});

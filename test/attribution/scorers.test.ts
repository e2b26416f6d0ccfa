import * as assert from 'node:assert/strict';
import { DataInf } from '../../src/attribution/dataInf';
import { KronGradInfluence } from '../../src/attribution/kronGrad';
import { ExactInfluence } from '../../src/attribution/exact';
import { GradCos, GradDot } from '../../src/attribution/gradDot';
import { Lissa } from '../../src/attribution/lissa';
import { tracinCP } from '../../src/attribution/tracin';
import { Rng } from '../../src/random';
import { chunked, dot, denseHessian, invert, matVec, maxRelativeError, meanSquareDamping, randomGradients, row } from './helpers';
import { GradientSet, GradientSource, inMemorySource } from '../../src/gradients/types';

const SHAPES = [
  [3, 5],
  [2, 3],
];
const train = randomGradients(12, SHAPES, 1);
const test = randomGradients(4, SHAPES, 2);


/** Brute-force influence: sum_l g_q^T H_l^-1 g_i with dense inverses. */
function bruteInfluence(tr: GradientSet, te: GradientSet, scale = 0.1): number[] {
  const inverses = tr.blocks.map((_, l) => invert(denseHessian(tr, l, meanSquareDamping(tr, l, scale))));
  const out: number[] = [];
  for (let q = 0; q < te.n; q++) {
    for (let i = 0; i < tr.n; i++) out.push(tr.blocks.reduce((s, _, l) => s + dot(matVec(inverses[l], row(te, l, q)), row(tr, l, i)), 0));
  }
  return out;
}

describe('gradient attribution methods against brute-force references', () => {
  it('gradDot is the sum over blocks of g_q . g_i, streamed or not', () => {
    const want: number[] = [];
    for (let q = 0; q < test.n; q++) for (let i = 0; i < train.n; i++) want.push(dot(row(test, 0, q), row(train, 0, i)) + dot(row(test, 1, q), row(train, 1, i)));
    for (const src of [inMemorySource(train), chunked(train, 5)]) {
      const m = new GradDot();
      m.cache(src);
      const s = m.attribute(test);
      assert.equal(s.nTest, 4);
      assert.equal(s.nTrain, 12);
      assert.ok(maxRelativeError(s.data, want) < 1e-5);
    }
  });

  it('gradCos is the cosine of the concatenated gradients', () => {
    const full = (set: GradientSet, i: number) => [...row(set, 0, i), ...row(set, 1, i)];
    const m = new GradCos();
    m.cache(chunked(train, 7));
    const s = m.attribute(test);
    for (let q = 0; q < test.n; q++) {
      for (let i = 0; i < train.n; i++) {
        const a = full(test, q);
        const b = full(train, i);
        const want = dot(a, b) / Math.sqrt(dot(a, a) * dot(b, b));
        assert.ok(Math.abs(s.data[q * 12 + i] - want) < 1e-5);
      }
    }
  });

  it('exact equals a dense inverse computed by Gauss-Jordan, in parameter and example space', () => {
    const want = bruteInfluence(train, test);
    // Block 0 has 15 parameters > 12 examples (Woodbury path); block 1 has 6 (parameter path).
    for (const maxBlockSize of [4096, 14]) {
      const m = new ExactInfluence({ maxBlockSize });
      m.cache(chunked(train, 5));
      assert.ok(maxRelativeError(m.attribute(test).data, want) < 1e-4, `maxBlockSize ${maxBlockSize}`);
    }
    const big = new ExactInfluence({ maxBlockSize: 10 });
    assert.throws(() => big.cache(inMemorySource(train)), /'block0'.*too large.*15 parameters and 12 training examples/);
  });

  it('lissa converges to exact, reporting a shrinking relative change', () => {
    const exact = new ExactInfluence();
    exact.cache(inMemorySource(train));
    const want = exact.attribute(test).data;
    const lissa = new Lissa({ iterations: 400 });
    lissa.cache(inMemorySource(train));
    const got = lissa.attribute(test).data;
    assert.ok(maxRelativeError(got, want) < 1e-3, `lissa vs exact ${maxRelativeError(got, want)}`);
    for (const r of lissa.report) {
      assert.ok(r.relativeChange[r.relativeChange.length - 1] < 1e-4 * r.relativeChange[0], `${r.block} did not converge`);
    }
    // Stochastic mini-batches, averaged over repeats, get close but not exact.
    const sto = new Lissa({ iterations: 300, batchSize: 6, seed: 3, repeats: 16 });
    sto.cache(inMemorySource(train));
    const err = maxRelativeError(sto.attribute(test).data, want);
    assert.ok(err < 0.3 && err > 1e-4, `stochastic lissa error ${err}`);
    // Too small a scale diverges: that is what the scale is for. It is reported, not returned.
    const bad = new Lissa({ iterations: 2000, scale: 0.01 });
    bad.cache(inMemorySource(train));
    assert.throws(() => bad.attribute(test), /'block0'.*LiSSA diverged at iteration \d+ \(scale 0\.01/);
  });

  it('dataInf equals exact for one training example, and a direct transcription of its formula otherwise', () => {
    const one = randomGradients(1, SHAPES, 9);
    const exact = new ExactInfluence();
    exact.cache(inMemorySource(one));
    const di = new DataInf();
    di.cache(inMemorySource(one));
    assert.ok(maxRelativeError(di.attribute(test).data, exact.attribute(test).data) < 1e-4);

    const m = new DataInf();
    m.cache(chunked(train, 5));
    const got = m.attribute(test).data;
    const lambdas = train.blocks.map((_, l) => meanSquareDamping(train, l));
    for (let q = 0; q < test.n; q++) {
      for (let j = 0; j < train.n; j++) {
        let want = 0;
        train.blocks.forEach((_, l) => {
          const lam = lambdas[l];
          const gq = row(test, l, q);
          const gj = row(train, l, j);
          let sum = 0;
          for (let i = 0; i < train.n; i++) {
            const gi = row(train, l, i);
            sum += (dot(gq, gi) * dot(gi, gj)) / (lam + dot(gi, gi));
          }
          want += (dot(gq, gj) - sum / train.n) / lam;
        });
        assert.ok(Math.abs(got[q * 12 + j] - want) < 1e-4 * Math.max(1, Math.abs(want)), `q${q} j${j}: ${got[q * 12 + j]} vs ${want}`);
      }
    }
  });

  it('a block of all-zero gradients (lora_A at B = 0) contributes nothing instead of dividing by zero', () => {
    const zeroed: GradientSet = { n: train.n, blocks: [{ ...train.blocks[0], data: new Float32Array(train.blocks[0].data.length) }, train.blocks[1]] };
    const onlySecond: GradientSet = { n: train.n, blocks: [train.blocks[1]] };
    const testSecond: GradientSet = { n: test.n, blocks: [test.blocks[1]] };
    for (const make of [() => new DataInf(), () => new ExactInfluence(), () => new Lissa({ iterations: 300 }), () => new KronGradInfluence()]) {
      const a = make();
      a.cache(inMemorySource(zeroed));
      const b = make();
      b.cache(inMemorySource(onlySecond));
      const sa = a.attribute(test).data;
      assert.ok(sa.every(Number.isFinite));
      assert.ok(maxRelativeError(sa, b.attribute(testSecond).data) < 1e-3, a.name);
    }
  });

  it('kronGrad equals exact on a block whose Gauss-Newton matrix is exactly Kronecker-factored', () => {
    // G_jk = u_j v_k^T over all pairs: sum vec(G) vec(G)^T = (sum u u^T) kron (sum v v^T).
    const rng = new Rng(5);
    const us = Array.from({ length: 3 }, () => Array.from({ length: 3 }, () => rng.normal()));
    const vs = Array.from({ length: 4 }, () => Array.from({ length: 4 }, () => rng.normal()));
    const data: number[] = [];
    for (const u of us) for (const v of vs) for (const a of u) for (const b of v) data.push(a * b);
    const kron: GradientSet = { n: 12, blocks: [{ name: 'lora', shape: [3, 4], dim: 12, data: Float32Array.from(data) }] };
    const probe = randomGradients(3, [[3, 4]], 8);
    probe.blocks[0].name = 'lora';
    const exact = new ExactInfluence();
    exact.cache(inMemorySource(kron));
    const ek = new KronGradInfluence();
    ek.cache(inMemorySource(kron));
    assert.ok(maxRelativeError(ek.attribute(probe).data, exact.attribute(probe).data) < 1e-3);
    // On a generic block it is only an approximation.
    const generic = new KronGradInfluence();
    generic.cache(chunked(train, 5));
    const e = maxRelativeError(generic.attribute(test).data, bruteInfluence(train, test));
    assert.ok(e > 1e-3, `kronGrad should differ from exact on a generic block, error ${e}`);
  });

  it('tracinCP is the learning-rate-weighted sum of per-checkpoint dot products', () => {
    const ckpts = [1, 2, 3].map((k) => ({ train: inMemorySource(randomGradients(12, SHAPES, 10 + k)), test: randomGradients(4, SHAPES, 20 + k), learningRate: 0.1 * k }));
    const s = tracinCP(ckpts);
    for (let q = 0; q < 4; q++) {
      for (let i = 0; i < 12; i++) {
        const want = ckpts.reduce((acc, c) => {
          const tr = c.train.chunks()[Symbol.iterator]().next().value!.set;
          return acc + c.learningRate * (dot(row(c.test, 0, q), row(tr, 0, i)) + dot(row(c.test, 1, q), row(tr, 1, i)));
        }, 0);
        assert.ok(Math.abs(s.data[q * 12 + i] - want) < 1e-4 * Math.max(1, Math.abs(want)));
      }
    }
  });

  it('refuses mismatched blocks, NaN gradients, and scoring before cache()', () => {
    const m = new GradDot();
    assert.throws(() => m.attribute(test), /call cache\(train\) before attribute/);
    m.cache(inMemorySource(train));
    assert.throws(() => m.attribute(randomGradients(2, [[3, 5]], 3)), /blocks \[block0\] but training gradients have \[block0, block1\]/);
    const nan = randomGradients(2, SHAPES, 4);
    nan.blocks[1].data[7] = NaN;
    assert.throws(() => m.attribute(nan), /'block1'.*example 1 is NaN/);
  });
});

import * as assert from 'node:assert/strict';
import { checkFactorsMatch, EkfacInfluence } from '../../src/attribution/ekfac';
import { computeEkfacFactors, EkfacAccumulator, EkfacFactors, symmetricEigen } from '../../src/attribution/ekfacFactors';
import { createScorer } from '../../src/attribution/registry';
import { GradientAttributor } from '../../src/attribution/gradientAttributor';
import { computeLoraGradients } from '../../src/gradients/compute';
import { GradientSet, inMemorySource } from '../../src/gradients/types';
import { computeLosses } from '../../src/model/loss';
import { Rng } from '../../src/random';
import { throwsTda } from '../helpers/errors';
import { covariance, exampleGradient, referenceExample, ReferenceExample, rotateInto } from './ekfacReference';
import { EkfacFixture, makeEkfacFixture, randomSequences } from './ekfacFixture';
import { invert, maxRelativeError } from './helpers';


const flat = (m: number[][]) => m.flat();

describe('attribution/ekfac: factors against a brute-force computation on a small random model', () => {
  let fx: EkfacFixture;
  let factors: EkfacFactors;
  let reference: ReferenceExample[];
  before(async () => {
    fx = makeEkfacFixture({ hiddenSize: 64, intermediateSize: 96, numLayers: 2, numHeads: 4, numKvHeads: 2, vocabSize: 97 }, { n: 8, r: 8 });
    // Batches of 3: several batches, each padded.
    factors = await computeEkfacFactors(fx.model, fx.adapter, fx.examples, { batchSize: 3 });
    reference = fx.examples.map((e) => referenceExample(fx.config, fx.weightSeed, fx.adapter, e, 'response'));
  });
  after(() => fx.cleanup());

  it('the reference forward is the same model (its losses equal the library\'s)', () => {
    const losses = computeLosses(fx.model, fx.adapter, fx.examples, { mask: 'response' });
    reference.forEach((r, i) => assert.ok(Math.abs(r.loss - losses[i]) < 1e-4 * Math.abs(losses[i]), `example ${i}: ${r.loss} vs ${losses[i]}`));
  });

  it('activation and gradient covariances are sums over every non-padding token divided by the token count', () => {
    assert.equal(factors.settings.tokens, fx.examples.reduce((s, e) => s + e.inputIds.length, 0));
    assert.equal(factors.tensors.length, 2 * fx.adapter.modules.length);
    for (const f of factors.tensors) {
      const a = maxRelativeError(f.activationCovariance, flat(covariance(reference, f.name, 'act')));
      const g = maxRelativeError(f.gradientCovariance, flat(covariance(reference, f.name, 'grad')));
      assert.ok(a < 1e-4, `${f.name} activation covariance: ${a}`);
      assert.ok(g < 1e-4, `${f.name} gradient covariance: ${g}`);
    }
  });

  it('the eigenbases are orthonormal eigenvectors of the brute-force covariances', () => {
    for (const f of factors.tensors) {
      for (const [q, values, c, n] of [
        [f.activationEigenvectors, f.activationEigenvalues, covariance(reference, f.name, 'act'), f.cols],
        [f.gradientEigenvectors, f.gradientEigenvalues, covariance(reference, f.name, 'grad'), f.rows],
      ] as const) {
        const scale = Math.max(...c.flat().map(Math.abs));
        for (let a = 0; a < n; a++) {
          for (let b = 0; b < n; b++) {
            let qq = 0;
            for (let i = 0; i < n; i++) qq += q[i * n + a] * q[i * n + b];
            assert.ok(Math.abs(qq - (a === b ? 1 : 0)) < 1e-9, `${f.name}: Q^T Q [${a}, ${b}] = ${qq}`);
          }
          // C q_a = v_a q_a
          for (let i = 0; i < n; i++) {
            let cq = 0;
            for (let j = 0; j < n; j++) cq += c[i][j] * q[j * n + a];
            assert.ok(Math.abs(cq - values[a] * q[i * n + a]) < 1e-4 * scale, `${f.name}: eigenpair ${a}, row ${i}`);
          }
        }
      }
    }
  });

  it('modules reading the same input (q and v) share one activation eigenbasis', () => {
    const of = (m: string) => factors.tensors.find((t) => t.name.includes(`layers.1.self_attn.${m}.lora_A`))!;
    assert.deepEqual(of('q_proj').activationCovariance, of('v_proj').activationCovariance);
    assert.deepEqual(of('q_proj').activationEigenvectors, of('v_proj').activationEigenvectors);
  });

  it('the corrected eigenvalues are the mean over examples of (Q_d^T G_i Q_a)^2, G_i = sum_t d_t a_t^T', () => {
    for (const f of factors.tensors) {
      const want = new Array<number>(f.rows * f.cols).fill(0);
      for (const e of reference) {
        rotateInto(exampleGradient(e, f.name), f.gradientEigenvectors, f.activationEigenvectors)
          .flat()
          .forEach((v, j) => (want[j] += (v * v) / reference.length));
      }
      const err = maxRelativeError(f.lambda, want);
      assert.ok(err < 1e-4, `${f.name} lambda: ${err}`);
    }
  });

  it('covariances over the loss tokens only would not match: prompt tokens have output gradients too (the check can fail)', () => {
    // Only the counted (response) positions: the prompt rows have non-zero gradients too.
    const f = factors.tensors.find((t) => t.name.includes('layers.0.self_attn.q_proj.lora_A'))!;
    const counted = reference.map((e, i) => {
      const start = Math.max(fx.examples[i].promptLength, 1) - 1;
      const rows = e.tensors.get(f.name)!;
      return { loss: e.loss, tensors: new Map([[f.name, { act: rows.act.slice(start, -1), grad: rows.grad.slice(start, -1) }]]) };
    });
    assert.ok(maxRelativeError(f.gradientCovariance, flat(covariance(counted, f.name, 'grad'))) > 1e-2);
  });
});

describe('attribution/ekfac: the scorer', () => {
  it('equals a dense float64 inverse of the Kronecker-factored matrix with the corrected eigenvalues', async () => {
    const fx = makeEkfacFixture({ hiddenSize: 16, intermediateSize: 24, numLayers: 1, numHeads: 2, numKvHeads: 2, vocabSize: 31 }, { n: 6, r: 4, targetModules: ['q_proj', 'v_proj'] });
    try {
      const factors = await computeEkfacFactors(fx.model, fx.adapter, fx.examples, { batchSize: 4 });
      const train = await computeLoraGradients(fx.model, fx.adapter, fx.examples, { batchSize: 4, workers: 0 });
      const test = await computeLoraGradients(fx.model, fx.adapter, randomSequences(3, 31, 99), { workers: 0 });
      const ekfac = createScorer('ekfac', { workers: 0 }) as EkfacInfluence;
      ekfac.cache({ train: inMemorySource(train), factors });
      const got = ekfac.attribute(test);
      const want = new Float64Array(test.n * train.n);
      factors.tensors.forEach((f) => {
        const l = train.blocks.findIndex((b) => b.name === f.name);
        const dim = f.rows * f.cols;
        // kronfluence's rule: 0.1 x the mean corrected eigenvalue.
        const damping = (0.1 * f.lambda.reduce((a, b) => a + b, 0)) / f.lambda.length;
        // H = K diag(Lambda + lambda) K^T, K[(i, j), (a, b)] = Qd[i, a] Qa[j, b].
        const K = (p: number, c: number) => f.gradientEigenvectors[Math.floor(p / f.cols) * f.rows + Math.floor(c / f.cols)] * f.activationEigenvectors[(p % f.cols) * f.cols + (c % f.cols)];
        const h = Array.from({ length: dim }, (_, p) =>
          Array.from({ length: dim }, (_, q) => {
            let s = 0;
            for (let c = 0; c < dim; c++) s += K(p, c) * (f.lambda[c] + damping) * K(q, c);
            return s;
          }),
        );
        const hInv = invert(h);
        for (let q = 0; q < test.n; q++) {
          const gq = test.blocks[l].data.subarray(q * dim, (q + 1) * dim);
          const v = hInv.map((row) => row.reduce((s, x, j) => s + x * gq[j], 0));
          for (let i = 0; i < train.n; i++) {
            const gi = train.blocks[l].data.subarray(i * dim, (i + 1) * dim);
            want[q * train.n + i] += v.reduce((s, x, j) => s + x * gi[j], 0);
          }
        }
      });
      const err = maxRelativeError(got.data, want);
      assert.ok(err < 1e-4, `scores vs dense inverse: ${err}`);
      assert.equal(ekfac.settings().method, 'ekfac');
      assert.deepEqual(Object.keys(ekfac.settings().damping as object).sort(), train.blocks.map((b) => b.name).sort());
    } finally {
      fx.cleanup();
    }
  });

  /**
   * One token per example, a_i = s_i c_j Qa[:, j] and d_i = c'_k Qd[:, k]: the covariances are
   * diagonal in (Qa, Qd) with distinct eigenvalues, and every rotated gradient has one non-zero
   * entry, so the Fisher block is exactly Kronecker-factored with diagonal Lambda.
   */
  function kroneckerCase(rows: number, cols: number, seed: number, exact: boolean): { factors: EkfacFactors; train: GradientSet } {
    const rng = new Rng(seed);
    const basis = (n: number) => {
      const m = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) m[i * n + j] = m[j * n + i] = rng.normal();
      return symmetricEigen(m, n).vectors;
    };
    const qa = basis(cols);
    const qd = basis(rows);
    const n = 2 * rows * cols;
    const tokensPer = exact ? 1 : 3;
    const act = new Float32Array(n * tokensPer * cols);
    const grad = new Float32Array(n * tokensPer * rows);
    const example = new Int32Array(n * tokensPer);
    for (let i = 0; i < n; i++) {
      for (let t = 0; t < tokensPer; t++) {
        const row = i * tokensPer + t;
        example[row] = i;
        if (exact) {
          const j = i % cols;
          const k = Math.floor(i / cols) % rows;
          const sign = rng.next() < 0.5 ? -1 : 1;
          for (let c = 0; c < cols; c++) act[row * cols + c] = sign * (1 + j) * qa[c * cols + j];
          for (let r = 0; r < rows; r++) grad[row * rows + r] = (1 + 0.5 * k) * qd[r * rows + k];
        } else {
          for (let c = 0; c < cols; c++) act[row * cols + c] = rng.normal();
          for (let r = 0; r < rows; r++) grad[row * rows + r] = rng.normal();
        }
      }
    }
    const name = 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight';
    const acc = new EkfacAccumulator([{ name, rows, cols }]);
    acc.addCovariances([{ act, grad, rows, cols }], n * tokensPer);
    acc.eigendecompose();
    acc.addLambda([{ act, grad, rows, cols }], example, n);
    const factors = acc.finish({ fisher: 'empirical', mask: 'response', examples: n, tokens: n * tokensPer, batchSize: n, loraScaling: 2 });
    // The training gradients sum_t d_t a_t^T, written out directly.
    const data = new Float32Array(n * rows * cols);
    for (let row = 0; row < n * tokensPer; row++) {
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) data[example[row] * rows * cols + r * cols + c] += grad[row * rows + r] * act[row * cols + c];
    }
    return { factors, train: { n, blocks: [{ name, shape: [rows, cols], dim: rows * cols, data }] } };
  }

  function queries(rows: number, cols: number, seed: number, name: string): GradientSet {
    const rng = new Rng(seed);
    return { n: 4, blocks: [{ name, shape: [rows, cols], dim: rows * cols, data: Float32Array.from({ length: 4 * rows * cols }, () => rng.normal()) }] };
  }

  it('equals exact influence when the per-example Fisher block is exactly Kronecker-factored (and not otherwise)', () => {
    const [rows, cols] = [8, 32];
    for (const exactCase of [true, false]) {
      const { factors, train } = kroneckerCase(rows, cols, 5, exactCase);
      const test = queries(rows, cols, 6, train.blocks[0].name);
      const ekfac = createScorer('ekfac', { workers: 0 }) as EkfacInfluence;
      ekfac.cache({ train: inMemorySource(train), factors });
      const exact = createScorer('exact', { workers: 0 }) as GradientAttributor;
      exact.cache(inMemorySource(train));
      // The same damping rule: 0.1 x mean(Lambda) is 0.1 x the mean squared gradient, since rotations keep norms.
      const d1 = Object.values(ekfac.settings().damping as Record<string, number>)[0];
      const d2 = Object.values(exact.settings().damping as Record<string, number>)[0];
      assert.ok(Math.abs(d1 - d2) < 1e-5 * d2, `damping ${d1} vs ${d2}`);
      const err = maxRelativeError(ekfac.attribute(test).data, exact.attribute(test).data);
      if (exactCase) assert.ok(err < 1e-3, `Kronecker-factored: ekfac vs exact ${err}`);
      else assert.ok(err > 1e-2, `random tokens: ekfac should differ from exact, got ${err}`);
    }
  });

  it('factors made at another adapter or with another mask are refused; paths are compared with paths, hashes with hashes', () => {
    const settings = { fisher: 'empirical' as const, mask: 'response' as const, examples: 3, tokens: 9, batchSize: 8, loraScaling: 2, adapter: '/runs/a', adapterHash: 'abc' };
    const where = { factorsFile: 'f.safetensors', train: 'train.safetensors' };
    checkFactorsMatch(settings, { mask: 'response', checkpoint: '/runs/a' }, where);
    checkFactorsMatch(settings, { mask: 'response', checkpoint: 'sha256:abc' }, where);
    throwsTda(() => checkFactorsMatch(settings, { mask: 'full', checkpoint: '/runs/a' }, where), "label mask 'response'", "'full'", 'f.safetensors', 'settings.mask');
    throwsTda(() => checkFactorsMatch(settings, { mask: 'response', checkpoint: '/runs/b' }, where), 'at adapter /runs/a', '/runs/b', 'train.safetensors', 'settings.adapter');
    throwsTda(() => checkFactorsMatch(settings, { mask: 'response', checkpoint: 'sha256:def' }, where), 'sha256:abc', 'sha256:def');
  });

  it('refuses to score without factors, and gradients whose tensors the factors do not cover or whose shapes differ', () => {
    const { factors, train } = kroneckerCase(3, 4, 7, true);
    const ekfac = createScorer('ekfac') as EkfacInfluence;
    throwsTda(() => ekfac.cache(inMemorySource(train)), 'ekfac needs its factors', 'tda-lab ekfac-factors');
    const renamed: GradientSet = { ...train, blocks: [{ ...train.blocks[0], name: 'other.lora_A.weight' }] };
    throwsTda(() => ekfac.cache({ train: inMemorySource(renamed), factors, factorsFile: 'f.safetensors' }), 'no factors for LoRA tensor other.lora_A.weight', 'f.safetensors');
    const reshaped: GradientSet = { ...train, blocks: [{ ...train.blocks[0], shape: [4, 3] }] };
    throwsTda(() => ekfac.cache({ train: inMemorySource(reshaped), factors }), 'factors are for a [3, 4] tensor', '[4,3]');
  });
});

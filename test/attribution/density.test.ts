import * as assert from 'node:assert/strict';
import { KernelDensity, kdeBandwidth, logDensity, logDensityConstant, logKernelMatrix, logSumExp, meanStd } from '../../src/attribution/density';
import { Rng } from '../../src/random';
import { throwsTda } from '../helpers/errors';
import { EmbeddingSet } from '../../src/model/embeddings';

const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);

function set(rows: number[][]): EmbeddingSet {
  return { n: rows.length, dim: rows[0]?.length ?? 1, data: Float32Array.from(rows.flat()) };
}

function randomSet(rng: Rng, n: number, dim: number, scale = 1): EmbeddingSet {
  return set(Array.from({ length: n }, () => Array.from({ length: dim }, () => Math.fround(scale * rng.normal()))));
}

/** Direct sum of Gaussian kernels, no tricks. */
function bruteLogDensity(train: EmbeddingSet, q: number[], h: number, skip = -1): number {
  let sum = 0;
  let count = 0;
  for (let i = 0; i < train.n; i++) {
    if (i === skip) continue;
    let d2 = 0;
    for (let k = 0; k < train.dim; k++) d2 += (q[k] - train.data[i * train.dim + k]) ** 2;
    sum += Math.exp(-d2 / (2 * h * h)) / Math.pow(2 * Math.PI * h * h, train.dim / 2);
    count++;
  }
  return Math.log(sum / count);
}

const row = (e: EmbeddingSet, i: number) => Array.from(e.data.subarray(i * e.dim, (i + 1) * e.dim));

describe('LMD3 kernel density', () => {
  it('matches a brute-force sum of kernels (several blocks of queries)', () => {
    const rng = new Rng(3);
    const train = randomSet(rng, 23, 5);
    const test = randomSet(rng, 70, 5, 1.5);
    const kde = new KernelDensity();
    kde.cache(train);
    const got = kde.logDensity(test);
    for (let q = 0; q < test.n; q++) close(got[q], bruteLogDensity(train, row(test, q), kde.h), 1e-10);
  });

  it('a single kernel gives the Gaussian closed form', () => {
    const train = set([[1, -2, 0.5]]);
    const q = [0.25, -1, 2]; // exact in float32
    const h = 0.8;
    const d2 = 0.75 ** 2 + 1 + 1.5 ** 2;
    const want = -d2 / (2 * h * h) - 1.5 * Math.log(2 * Math.PI * h * h);
    close(logDensity(train, set([q]), { bandwidth: h })[0], want, 1e-12);
  });

  it('is stable far from the data (logsumexp, no log(0))', () => {
    const train = set([[0], [1]]);
    const got = logDensity(train, set([[1000]]), { bandwidth: 1 })[0];
    assert.ok(Number.isFinite(got));
    // Dominated by the nearer kernel at distance 999.
    close(got, -(999 ** 2) / 2 + Math.log(1 + Math.exp(-(1000 ** 2 - 999 ** 2) / 2)) - Math.log(2) - 0.5 * Math.log(2 * Math.PI), 1e-12);
  });

  it('integrates to 1 in 1-D', () => {
    const train = set([[-1], [0.5], [2], [2.2]]);
    for (const bandwidth of ['scott', 'silverman', 0.3] as const) {
      const grid = Array.from({ length: 4001 }, (_, i) => [-12 + i * 0.006]);
      const p = logDensity(train, set(grid), { bandwidth });
      let integral = 0;
      for (let i = 1; i < p.length; i++) integral += (0.006 * (Math.exp(p[i]) + Math.exp(p[i - 1]))) / 2;
      close(integral, 1, 1e-6);
    }
  });

  it('agrees with scipy.stats.gaussian_kde in 1-D (Scott and Silverman)', () => {
    const train = set([[-1], [0.5], [2], [0.25], [3.5]]);
    const queries = set([[0], [1], [-4]]);
    // Generated with scipy 1.17: gaussian_kde(x, bw_method=rule); sqrt(covariance) and logpdf.
    const ref = {
      scott: { h: 1.2579678064852335, logpdf: [-1.680485148283829, -1.6891458148951966, -5.519127115600594] },
      silverman: { h: 1.332469491901038, logpdf: [-1.7084773405909182, -1.704773703139428, -5.236171872814247] },
    };
    for (const rule of ['scott', 'silverman'] as const) {
      close(kdeBandwidth(train, rule), ref[rule].h, 1e-7);
      const got = logDensity(train, queries, { bandwidth: rule });
      ref[rule].logpdf.forEach((want, i) => close(got[i], want, 1e-7));
    }
  });

  it('bandwidth rules use the mean per-dimension standard deviation', () => {
    const train = set([[0, 0], [2, 10], [4, 20]]);
    close(meanStd(train), (2 + 10) / 2);
    close(kdeBandwidth(train, 'scott'), 6 * Math.pow(3, -1 / 6));
    close(kdeBandwidth(train, 'silverman'), 6 * Math.pow(4 / 4, 1 / 6) * Math.pow(3, -1 / 6));
    close(kdeBandwidth(train, 0.25), 0.25);
    throwsTda(() => kdeBandwidth(set([[1, 1], [1, 1]])), "'bandwidth'", 'zero spread');
    throwsTda(() => kdeBandwidth(set([[1, 1]])), "'bandwidth'", 'at least 2');
    throwsTda(() => kdeBandwidth(train, -1), "'bandwidth'");
    throwsTda(() => kdeBandwidth(train, 'wide' as never), "'bandwidth'");
  });

  it('leave-one-out equals the density of the others with the same bandwidth', () => {
    const rng = new Rng(11);
    const train = randomSet(rng, 12, 3);
    const kde = new KernelDensity({ leaveOneOut: true });
    kde.cache(train);
    const loo = kde.logDensity(train);
    for (let j = 0; j < train.n; j++) {
      const others = set(Array.from({ length: train.n }, (_, i) => row(train, i)).filter((_, i) => i !== j));
      close(loo[j], logDensity(others, set([row(train, j)]), { bandwidth: kde.h })[0], 1e-10);
      close(loo[j], bruteLogDensity(train, row(train, j), kde.h, j), 1e-10);
    }
    // Equal copies pass too; other queries do not.
    assert.deepEqual(kde.logDensity({ ...train, data: train.data.slice() }), loo);
    throwsTda(() => kde.logDensity(randomSet(rng, 12, 3)), "'leaveOneOut'");
    throwsTda(() => logDensity(set([[1]]), set([[1]]), { leaveOneOut: true, bandwidth: 1 }), "'leaveOneOut'");
  });

  it('the log-kernel matrix rebuilds the density and marks self pairs under LOO', () => {
    const rng = new Rng(5);
    const train = randomSet(rng, 6, 4);
    const test = randomSet(rng, 3, 4);
    const h = 1.3;
    const m = logKernelMatrix(train, test, { bandwidth: h });
    assert.deepEqual([m.nTest, m.nTrain], [3, 6]);
    const dens = logDensity(train, test, { bandwidth: h });
    for (let q = 0; q < 3; q++) {
      let d2 = 0;
      for (let k = 0; k < 4; k++) d2 += (test.data[q * 4 + k] - train.data[k]) ** 2;
      close(m.data[q * 6], -d2 / (2 * h * h), 1e-6);
      close(logSumExp(m.data.subarray(q * 6, (q + 1) * 6)) + logDensityConstant(6, 4, h), dens[q], 1e-6);
    }
    const self = logKernelMatrix(train, train, { bandwidth: h, leaveOneOut: true });
    for (let i = 0; i < 6; i++) assert.equal(self.data[i * 6 + i], -Infinity);
  });

  it('refuses queries before cache, dim mismatches and NaN', () => {
    const kde = new KernelDensity({ bandwidth: 1 });
    throwsTda(() => kde.logDensity(set([[1]])), 'cache');
    kde.cache(set([[1, 2]]));
    throwsTda(() => kde.logDensity(set([[1]])), "'dim'");
    throwsTda(() => kde.cache(set([[1, NaN]])), "'train'", 'example 0');
    throwsTda(() => kde.logDensity({ n: 2, dim: 2, data: new Float32Array(3) }), "'queries'");
    assert.deepEqual(logSumExp([]), -Infinity);
  });
});

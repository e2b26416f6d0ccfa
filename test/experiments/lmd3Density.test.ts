import * as assert from 'node:assert/strict';
import { kdeBandwidth } from '../../src/attribution/density';
import { densityChangeFit, densityLineText, padToSize } from '../../src/experiments/lmd3';
import { looBandwidth, LOO_FACTORS, meanLooLogDensity } from '../../src/experiments/looBandwidth';
import { fitTfidf, tfidfEmbeddings, tokenizeWords } from '../../src/experiments/tfidf';
import { EmbeddingSet } from '../../src/model/embeddings';
import { Rng } from '../../src/random';
import { throwsTda } from '../helpers/errors';

/** Mean leave-one-out log-density by a double loop: log of (1/(n-1)) sum_{j != i} N(x_i; x_j, h^2 I). */
function bruteLoo(x: number[][], h: number): number {
  const n = x.length;
  const d = x[0].length;
  let total = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const dist2 = x[i].reduce((a, v, k) => a + (v - x[j][k]) ** 2, 0);
      s += Math.exp(-dist2 / (2 * h * h)) / Math.pow(2 * Math.PI * h * h, d / 2);
    }
    total += Math.log(s / (n - 1));
  }
  return total / n;
}

const asSet = (x: number[][]): EmbeddingSet => ({ n: x.length, dim: x[0].length, data: Float32Array.from(x.flat()) });

describe('LMD3: leave-one-out bandwidth, TF-IDF embeddings, equal-steps control', () => {
  // Two tight clusters far apart: Scott's rule (built for one Gaussian) oversmooths them.
  const rng = new Rng(1);
  const x = Array.from({ length: 30 }, (_, i) => [(i % 2) * 10 + 0.3 * rng.normal(), 0.3 * rng.normal()]);

  it('mean leave-one-out log-density matches a double loop', () => {
    for (const h of [0.1, 0.5, 2]) assert.ok(Math.abs(meanLooLogDensity(asSet(x), h) - bruteLoo(x, h)) < 1e-4, `h ${h}`);
  });

  it('picks the candidate of highest leave-one-out likelihood (brute-force argmax), below Scott on clustered data', () => {
    const set = asSet(x);
    const scott = kdeBandwidth(set, 'scott');
    const r = looBandwidth(set);
    const brute = LOO_FACTORS.map((f) => f * scott).reduce((best, h) => (bruteLoo(x, h) > bruteLoo(x, best) ? h : best));
    assert.ok(Math.abs(r.h - brute) < 1e-9 * brute, `${r.h} vs ${brute}`);
    assert.equal(r.candidates.length, LOO_FACTORS.length);
    assert.ok(r.h < scott, `${r.h} should be below Scott's ${scott}`);
    throwsTda(() => looBandwidth(set, [1, -1]), "'bandwidth'");
  });

  it('TF-IDF: smoothed idf and unit rows, by hand', () => {
    assert.deepEqual(tokenizeWords('Where does Ana Lee live?'), ['where', 'does', 'ana', 'lee', 'live']);
    const m = fitTfidf(['a b', 'a c']);
    assert.deepEqual([...m.vocabulary.keys()], ['a', 'b', 'c']);
    const idfB = Math.log(3 / 2) + 1;
    assert.ok(Math.abs(m.idf[0] - 1) < 1e-12 && Math.abs(m.idf[1] - idfB) < 1e-12);
    const e = tfidfEmbeddings(m, ['a a b', 'zzz']);
    const norm = Math.sqrt(4 + idfB * idfB);
    assert.ok(Math.abs(e.data[0] - 2 / norm) < 1e-6 && Math.abs(e.data[1] - idfB / norm) < 1e-6 && e.data[2] === 0);
    assert.deepEqual(Array.from(e.data.subarray(3)), [0, 0, 0], 'unseen words give the zero vector');
  });

  it('the control set is padded with its own examples to the treated size, once each before any repeats', () => {
    const base = Array.from({ length: 10 }, (_, i) => i);
    const padded = padToSize(base, 14, 3);
    assert.equal(padded.length, 14);
    assert.deepEqual(padded.slice(0, 10), base);
    assert.equal(new Set(padded.slice(10)).size, 4, 'the extra examples are distinct');
    assert.deepEqual(padToSize(base, 14, 3), padded, 'seeded');
    assert.deepEqual(padToSize(base, 8, 3), base);
    assert.equal(Math.ceil(padded.length / 16), Math.ceil(14 / 16), 'as many optimizer steps as the treated set');
  });

  it('reports a density change that is the same for every query instead of failing on the regression', () => {
    const same = Array(6).fill(Math.log(600 / 750));
    assert.equal(densityChangeFit(same, [0.1, -0.2, 0.3, 0, 0.05, 0.2]), null);
    const row = { treated_density_change: same[0], control_density_change: same[0], slope: NaN, r2: NaN, p_value: NaN };
    assert.equal(densityLineText(row), 'treated -0.22, control -0.22; the density change is the same for every query, so no regression');
    const fit = densityChangeFit([0, 1, 2, 3], [0, 2, 4, 6.5]);
    assert.ok(fit && fit.slope > 2 && fit.slope < 2.3);
    assert.match(densityLineText({ ...row, slope: fit.slope, r2: fit.r2, p_value: fit.pValue }), /; loss improvement ~ density change: slope 2\.\d{4}, R\^2 0\.\d{3}, p /);
  });
});

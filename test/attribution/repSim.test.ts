import * as assert from 'node:assert/strict';
import { RepSim, repSimScores } from '../../src/attribution/repSim';
import { Rng } from '../../src/random';
import { throwsTda } from '../helpers/errors';
import { EmbeddingSet } from '../../src/model/embeddings';

function randomSet(rng: Rng, n: number, dim: number): EmbeddingSet {
  const data = new Float32Array(n * dim);
  for (let i = 0; i < data.length; i++) data[i] = rng.normal() + 0.3;
  return { n, dim, data };
}

function row(e: EmbeddingSet, i: number): number[] {
  return Array.from(e.data.subarray(i * e.dim, (i + 1) * e.dim));
}

describe('RepSim (cosine similarity of representations)', () => {
  it('matches a brute-force cosine loop (query blocks and a remainder of 3)', () => {
    const rng = new Rng(7);
    const train = randomSet(rng, 9, 13);
    const test = randomSet(rng, 71, 13);
    const r = new RepSim();
    r.cache(train);
    const s = r.attribute(test);
    assert.equal(r.name, 'repsim');
    assert.deepEqual([s.nTest, s.nTrain], [71, 9]);
    for (let q = 0; q < 71; q++) {
      for (let i = 0; i < 9; i++) {
        const a = row(test, q);
        const b = row(train, i);
        const dot = a.reduce((acc, v, k) => acc + v * b[k], 0);
        const want = dot / (Math.hypot(...a) * Math.hypot(...b));
        assert.ok(Math.abs(s.data[q * 9 + i] - want) < 1e-6, `(${q}, ${i}): ${s.data[q * 9 + i]} vs ${want}`);
      }
    }
  });

  it('is scale invariant, 1 for itself, -1 for its opposite, 0 for a zero vector', () => {
    const train: EmbeddingSet = { n: 3, dim: 2, data: Float32Array.from([3, 4, -6, -8, 0, 0]) };
    const test: EmbeddingSet = { n: 1, dim: 2, data: Float32Array.from([0.3, 0.4]) };
    const s = repSimScores(train, test);
    assert.deepEqual(Array.from(s.data).map((v) => Math.round(v * 1e6) / 1e6), [1, -1, 0]);
  });

  it('dot kind gives raw inner products', () => {
    const train: EmbeddingSet = { n: 2, dim: 2, data: Float32Array.from([1, 2, 3, 4]) };
    const test: EmbeddingSet = { n: 1, dim: 2, data: Float32Array.from([5, 6]) };
    assert.deepEqual(Array.from(repSimScores(train, test, 'dot').data), [17, 39]);
  });

  it('refuses attribute before cache, mismatched dims, bad shapes and NaN', () => {
    const r = new RepSim();
    throwsTda(() => r.attribute({ n: 1, dim: 2, data: new Float32Array(2) }), 'cache');
    r.cache({ n: 1, dim: 2, data: Float32Array.from([1, 0]) });
    throwsTda(() => r.attribute({ n: 1, dim: 3, data: new Float32Array(3) }), "'dim'");
    throwsTda(() => r.attribute({ n: 2, dim: 2, data: new Float32Array(3) }), "'test'");
    throwsTda(() => r.cache({ n: 1, dim: 2, data: Float32Array.from([1, NaN]) }), "'train'", 'example 0');
    throwsTda(() => new RepSim('euclid' as never), "'kind'");
  });
});

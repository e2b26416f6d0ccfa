import * as assert from 'node:assert/strict';
import { DataInf } from '../../src/attribution/dataInf';
import { GradCos, GradDot } from '../../src/attribution/gradDot';
import { GradientAttributor } from '../../src/attribution/gradientAttributor';
import { createGradientAttributor, GRADIENT_METHODS } from '../../src/attribution/registry';
import { TopKAccumulator } from '../../src/attribution/topK';
import { ScoreMatrix } from '../../src/attribution/types';
import { Rng } from '../../src/random';
import { throwsTda } from '../helpers/errors';
import { chunked, dot, maxRelativeError, randomGradients, row } from './helpers';
import { assertTopKOfMatrix, rows, sortedTopK } from './topKHelpers';
import { GradientSet, GradientSource } from '../../src/gradients/types';

const SHAPES = [[6], [2, 3]];
const train = randomGradients(23, SHAPES, 21);
const test = randomGradients(4, SHAPES, 22);

/** gradDot scores in float64 straight from the gradients. */
function dotMatrix(tr: GradientSet, te: GradientSet): number[] {
  const out: number[] = [];
  for (let q = 0; q < te.n; q++) for (let i = 0; i < tr.n; i++) out.push(tr.blocks.reduce((s, _, l) => s + dot(row(te, l, q), row(tr, l, i)), 0));
  return out;
}

describe('top-k scoring in fixed memory', function () {
  this.timeout(120000);

  it('TopKAccumulator equals sorting each row, for any chunking, k and arrival order', () => {
    const rng = new Rng(5);
    const nTest = 3;
    const nTrain = 40;
    // Values rounded to tenths so that many scores tie exactly.
    const full = Float32Array.from({ length: nTest * nTrain }, () => Math.round(rng.normal() * 10) / 10);
    for (const chunk of [1, 2, 3, 7, 40]) {
      for (const k of [1, 3, 5, 8, 40]) {
        for (const reverse of [false, true]) {
          const starts = Array.from({ length: Math.ceil(nTrain / chunk) }, (_, c) => c * chunk);
          if (reverse) starts.reverse();
          const acc = new TopKAccumulator(nTest, nTrain, k);
          for (const start of starts) {
            const m = Math.min(chunk, nTrain - start);
            const block = new Float32Array(nTest * m);
            for (let q = 0; q < nTest; q++) block.set(full.subarray(q * nTrain + start, q * nTrain + start + m), q * m);
            acc.add(block, start, m);
          }
          assert.deepEqual(rows(acc.result()), sortedTopK(full, nTest, nTrain, k), `chunk ${chunk}, k ${k}, reverse ${reverse}`);
        }
      }
    }
  });

  it('gradDot top-k equals sorting the full dot-product matrix, for chunks smaller and larger than k', () => {
    const want64 = sortedTopK(dotMatrix(train, test), test.n, train.n, 5);
    for (const size of [1, 3, 4, 7, 23, 100]) {
      const m = new GradDot({ workers: 0 });
      m.cache(chunked(train, size));
      const top = m.attributeTopK(test, 5);
      assertTopKOfMatrix(top, m.attribute(test), 5, `chunks of ${size}`);
      // And against float64 brute force: the same examples, scores to float32 precision.
      assert.deepEqual(rows(top).indices, want64.indices, `chunks of ${size}`);
      assert.ok(maxRelativeError(top.scores, want64.scores.flat()) < 1e-5);
    }
  });

  it('ties go to the lower training index, in every chunking', () => {
    // Small integers: every dot product is exact in float32, so equal rows tie exactly.
    const patterns = [
      [1, 0, 2],
      [0, 1, -1],
      [2, 2, 0],
      [-1, 0, 1],
    ];
    const order = [2, 0, 1, 0, 3, 2, 2, 1, 0, 3, 1, 2];
    const tr: GradientSet = { n: order.length, blocks: [{ name: 'g', shape: [3], dim: 3, data: Float32Array.from(order.flatMap((p) => patterns[p])) }] };
    const te: GradientSet = { n: 2, blocks: [{ name: 'g', shape: [3], dim: 3, data: Float32Array.from([1, 1, 1, 1, -1, 0]) }] };
    // Query 0 scores by pattern: 3, 0, 4, 0; query 1: 1, -1, 0, -1.
    const want = [
      [0, 5, 6, 11, 1, 3, 8],
      [1, 3, 8, 0, 5, 6, 11],
    ];
    for (const size of [1, 2, 5, 12]) {
      const m = new GradDot({ workers: 0 });
      m.cache(chunked(tr, size));
      const got = rows(m.attributeTopK(te, 7));
      assert.deepEqual(got.indices, want, `chunks of ${size}`);
      assert.deepEqual(got.scores, [
        [4, 4, 4, 4, 3, 3, 3],
        [1, 1, 1, 0, 0, 0, 0],
      ]);
    }
  });

  it('k above nTrain is clamped: every training example, ranked', () => {
    const m = new GradDot({ workers: 0 });
    m.cache(chunked(train, 5));
    const top = m.attributeTopK(test, 50);
    assert.equal(top.k, train.n);
    assertTopKOfMatrix(top, m.attribute(test), 50);
    for (const r of rows(top).indices) assert.deepEqual([...r].sort((a, b) => a - b), Array.from({ length: train.n }, (_, i) => i));
  });

  it('refuses a k that is not a whole number >= 1, and top-k before cache()', () => {
    const m = new GradDot({ workers: 0 });
    throwsTda(() => m.attributeTopK(test, 3), 'call cache(train)');
    m.cache(chunked(train, 5));
    for (const k of [0, -1, 2.5, NaN]) throwsTda(() => m.attributeTopK(test, k), "'k'", 'whole number');
  });

  it('a NaN score is an error naming the training example and its chunk', () => {
    const bad = chunked(train, 5);
    const poisoned: GradientSource = {
      ...bad,
      chunks: function* () {
        for (const c of bad.chunks()) {
          if (c.start === 10) c.set.blocks[1].data[2 * 6 + 4] = NaN; // example 12
          yield c;
        }
      },
    };
    const m = new GradDot({ workers: 0 });
    m.cache(poisoned);
    throwsTda(() => m.attributeTopK(test, 3), 'training example 12 is NaN', '[10, 15)');
  });

  it('workers: 2 give exactly the in-thread top-k (gradDot, gradCos; DataInf to float32 rounding)', () => {
    for (const make of [(w: number) => new GradDot({ workers: w }), (w: number) => new GradCos({ workers: w })]) {
      const local = make(0);
      local.cache(chunked(train, 4));
      const remote = make(2);
      remote.cache(chunked(train, 4));
      const want = local.attributeTopK(test, 6);
      const got = remote.attributeTopK(test, 6);
      assert.deepEqual(got.indices, want.indices, local.name);
      assert.ok(got.scores.every((v, i) => Object.is(v, want.scores[i])), local.name);
    }
    // DataInf sums its update over chunks in completion order on workers, so the last bits may differ.
    const local = new DataInf({ workers: 0 });
    local.cache(chunked(train, 4));
    const remote = new DataInf({ workers: 2 });
    remote.cache(chunked(train, 4));
    const want = local.attributeTopK(test, 6);
    const got = remote.attributeTopK(test, 6);
    assert.deepEqual(got.indices, want.indices);
    assert.ok(maxRelativeError(got.scores, want.scores) < 1e-5);
  });

  it('DataInf top-k equals the top-k of its full score matrix', () => {
    for (const size of [3, 23]) {
      const m = new DataInf({ workers: 0 });
      m.cache(chunked(train, size));
      assertTopKOfMatrix(m.attributeTopK(test, 5), m.attribute(test), 5, `chunks of ${size}`);
    }
  });

  it('every method of createGradientAttributor: top-k equals sorting its own full matrix', () => {
    // 2-D blocks, as kronGrad needs (LoRA matrices).
    const tr = randomGradients(15, [[2, 3], [3, 2]], 31);
    const te = randomGradients(3, [[2, 3], [3, 2]], 32);
    for (const method of GRADIENT_METHODS) {
      const m = createGradientAttributor(method, method === 'lissa' ? { iterations: 20, workers: 0 } : { workers: 0 });
      m.cache(chunked(tr, 4));
      assertTopKOfMatrix(m.attributeTopK(te, 4), m.attribute(te), 4, method);
    }
  });

  it('a method that rewrites score() without a top-k of its own is refused, not silently wrong', () => {
    class Negated extends GradientAttributor {
      readonly name = 'negated';
      protected transform(t: GradientSet): GradientSet {
        return t;
      }
      protected override score(t: GradientSet, tr: GradientSource): ScoreMatrix {
        const s = super.score(t, tr);
        s.data.forEach((v, i) => (s.data[i] = -v));
        return s;
      }
    }
    const m = new Negated({ workers: 0 });
    m.cache(chunked(train, 5));
    throwsTda(() => m.attributeTopK(test, 3), "top-k scoring is not available for method 'negated'");
  });
});

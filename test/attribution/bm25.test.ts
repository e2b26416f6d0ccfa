import * as assert from 'node:assert/strict';
import { Bm25, bm25Idf, bm25Scores, bm25Tokenize } from '../../src/attribution/bm25';
import { throwsTda } from '../helpers/errors';

const close = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);

// d0 = [the cat sat] (3 tokens), d1 = [the dog sat on the mat] (6), d2 = [cats and dogs] (3); avgdl = 4.
const corpus = ['The cat sat.', 'the DOG sat on the mat', 'cats and dogs'];

describe('BM25 lexical baseline', () => {
  it('tokenizes lower-cased runs of letters and digits', () => {
    assert.deepEqual(bm25Tokenize("The Cat's 2 dogs, naïve-C++!"), ['the', 'cat', 's', '2', 'dogs', 'naïve', 'c']);
    assert.deepEqual(bm25Tokenize('  ...  '), []);
  });

  it('uses the non-negative Lucene IDF', () => {
    close(bm25Idf(3, 1), Math.log(1 + 2.5 / 1.5));
    close(bm25Idf(3, 3), Math.log(1 + 0.5 / 3.5));
    assert.ok(bm25Idf(10, 10) > 0);
  });

  it('matches hand-computed scores (k1 = 1.5, b = 0.75)', () => {
    const s = bm25Scores(corpus, ['cat sat', 'zebra']);
    assert.deepEqual([s.nTest, s.nTrain], [2, 3]);
    const idfCat = Math.log(8 / 3); // df 1 of N 3: ln(1 + 2.5/1.5)
    const idfSat = Math.log(1.6); // df 2: ln(1 + 1.5/2.5)
    const norm0 = 1.5 * (0.25 + (0.75 * 3) / 4); // 1.21875
    const norm1 = 1.5 * (0.25 + (0.75 * 6) / 4); // 2.0625
    close(s.data[0], (idfCat + idfSat) * (2.5 / (1 + norm0))); // 1.6347...
    close(s.data[1], idfSat * (2.5 / (1 + norm1))); // 0.3837...
    close(s.data[2], 0); // "cats" is not "cat"
    close(1.634745, s.data[0], 1e-5);
    assert.deepEqual(Array.from(s.data.subarray(3)), [0, 0, 0]);
  });

  it('counts term frequency in the document and repeats in the query', () => {
    const s = bm25Scores(corpus, ['the', 'the the']);
    const idfThe = Math.log(1 + 1.5 / 2.5); // df 2
    close(s.data[0], idfThe * (2.5 / (1 + 1.21875)));
    close(s.data[1], idfThe * ((2 * 2.5) / (2 + 2.0625))); // tf 2 in d1
    for (let i = 0; i < 3; i++) close(s.data[3 + i], 2 * s.data[i]);
  });

  it('k1 and b are overridable, including 0', () => {
    const noLength = bm25Scores(corpus, ['sat'], { k1: 1.2, b: 0 });
    close(noLength.data[0], noLength.data[1]); // same tf, length ignored
    close(noLength.data[0], Math.log(1.6) * (2.2 / 2.2));
    const noTf = bm25Scores(corpus, ['the'], { k1: 0 });
    close(noTf.data[0], noTf.data[1]); // tf 1 vs 2 no longer matters
    throwsTda(() => new Bm25({ b: 1.5 }), "'b'");
    throwsTda(() => new Bm25({ k1: -1 }), "'k1'");
  });

  it('handles empty texts and refuses attribute before cache', () => {
    const s = bm25Scores(['', ''], ['a']);
    assert.deepEqual(Array.from(s.data), [0, 0]);
    throwsTda(() => new Bm25().attribute(['a']), 'cache');
    throwsTda(() => bm25Scores(['a', 3 as unknown as string], ['a']), "'train'", 'text 1');
  });
});

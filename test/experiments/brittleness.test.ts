/** The brittleness search with a stand-in for retraining: what it removes, when it stops, what it reuses. */
import * as assert from 'node:assert/strict';
import { brittlenessSearch, flipCurve, RANDOM_REMOVAL } from '../../src/experiments/brittleness';

describe('brittleness search', () => {
  // Query 0's answer flips once examples 0 and 1 are both gone; query 1's never does.
  const nTrain = 10;
  const scores = (rows: number[][]) => ({ nTest: rows.length, nTrain, data: Float32Array.from(rows.flat()) });
  const good = scores([[9, 8, 1, 1, 1, 1, 1, 1, 1, 0], [9, 8, 1, 1, 1, 1, 1, 1, 1, 0]]);
  const bad = scores([[0, 1, 9, 8, 7, 6, 5, 4, 3, 2], [0, 1, 9, 8, 7, 6, 5, 4, 3, 2]]);
  const same = scores([[9, 8, 2, 2, 2, 2, 2, 2, 2, 1], [9, 8, 2, 2, 2, 2, 2, 2, 2, 1]]);

  it('removes each method\'s top k from small to large, stops at the first flip, runs each removal set once', async () => {
    const retrained: string[] = [];
    const records = await brittlenessSearch({
      queries: [0, 1],
      scores: { good, bad, same },
      ks: [2, 4, 8],
      nTrain,
      seed: 1,
      flipped: (q, answer) => q === 0 && answer === 'other',
      retrain: async (removed) => {
        retrained.push(removed.join(','));
        const gone = new Set(removed);
        return new Map([[0, gone.has(0) && gone.has(1) ? 'other' : 'T'], [1, 'T']]);
      },
    });
    const get = (q: number, m: string) => records.find((r) => r.query === q && r.method === m)!;
    assert.deepEqual(get(0, 'good'), { query: 0, method: 'good', kFlip: 2, tried: [2] });
    assert.deepEqual(get(0, 'same'), { query: 0, method: 'same', kFlip: 2, tried: [2] });
    // The bad method removes 2, 3, 4, ... first: examples 0 and 1 are its last two, never within k = 8.
    assert.deepEqual(get(0, 'bad'), { query: 0, method: 'bad', kFlip: null, tried: [2, 4, 8] });
    assert.deepEqual(get(1, 'good').tried, [2, 4, 8]);
    assert.equal(records.filter((r) => r.method === RANDOM_REMOVAL).length, 2, 'random removal for every query');
    // good and same remove {0, 1} at k = 2 for both queries: one retraining.
    assert.equal(retrained.filter((k) => k === '0,1').length, 1);
    assert.equal(new Set(retrained).size, retrained.length, 'no removal set retrained twice');
    const curve = flipCurve(records, [2, 4, 8]);
    assert.deepEqual(curve.filter((c) => c.method === 'good').map((c) => c.flipped), [0.5, 0.5, 0.5]);
    assert.deepEqual(curve.filter((c) => c.method === 'bad').map((c) => c.flipped), [0, 0, 0]);
  });
});

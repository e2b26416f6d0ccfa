import * as assert from 'node:assert/strict';
import { ScoreMatrix, scoreMatrix } from '../../src/attribution/types';
import { dda, pairedDda } from '../../src/dda';
import { Rng } from '../../src/random';
import { throwsTda } from '../helpers/errors';

function random(rng: Rng, nTest: number, nTrain: number, scale = 1): ScoreMatrix {
  return scoreMatrix(nTest, nTrain, Float32Array.from({ length: nTest * nTrain }, () => scale * rng.normal()));
}

/** z-score of one row, population std, written out. */
function zRow(row: number[]): number[] {
  const m = row.reduce((a, b) => a + b, 0) / row.length;
  const sd = Math.sqrt(row.reduce((a, b) => a + (b - m) ** 2, 0) / row.length);
  return row.map((v) => (sd > 0 ? (v - m) / sd : 0));
}

const rowOf = (s: ScoreMatrix, q: number) => Array.from(s.data.subarray(q * s.nTrain, (q + 1) * s.nTrain));

describe('DDA with a reference per checkpoint (base at (A_t, B=0); error vs ground models)', () => {
  it('is the mean over checkpoints of z(z(S_t) - z(R_t)), written out row by row', () => {
    const rng = new Rng(1);
    const S = [random(rng, 3, 6), random(rng, 3, 6, 4), random(rng, 3, 6, 0.2)];
    const R = [random(rng, 3, 6), random(rng, 3, 6, 9), random(rng, 3, 6)];
    const got = pairedDda({ finetuned: S, references: R }, { normalize: 'zscore-rows', standardize: true, mode: 'mean' });
    for (let q = 0; q < 3; q++) {
      const perT = S.map((s, t) => zRow(zRow(rowOf(s, q)).map((v, i) => v - zRow(rowOf(R[t], q))[i])));
      const want = perT[0].map((_, i) => perT.reduce((a, row) => a + row[i], 0) / perT.length);
      rowOf(got, q).forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-5, `q ${q} i ${i}: ${v} vs ${want[i]}`));
    }
  });

  it('with every reference equal to one base matrix it is dda', () => {
    const rng = new Rng(2);
    const S = [random(rng, 2, 5), random(rng, 2, 5), random(rng, 2, 5)];
    const base = random(rng, 2, 5);
    for (const opts of [{}, { lambda: 0.5, normalize: 'zscore-all' as const }, { mode: 'ema' as const, emaAlpha: 0.3, standardize: true }]) {
      assert.deepEqual(pairedDda({ finetuned: S, references: [base, base, base] }, opts).data, dda({ finetuned: S, base }, opts).data);
    }
  });

  it('refuses a reference list of another length or shape, and NaN, naming them', () => {
    const rng = new Rng(3);
    const S = [random(rng, 2, 4), random(rng, 2, 4)];
    throwsTda(() => pairedDda({ finetuned: S, references: [S[0]] }), "'references'");
    throwsTda(() => pairedDda({ finetuned: S, references: [S[0], random(rng, 2, 5)] }), "'nTrain'");
    const bad = random(rng, 2, 4);
    bad.data[3] = NaN;
    throwsTda(() => pairedDda({ finetuned: S, references: [S[0], bad] }), "'references[1]'");
  });
});

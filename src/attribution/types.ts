/**
 * Shared shapes of the attribution engine.
 *
 * Score sign, everywhere: a POSITIVE score means the training example HELPS the test
 * output, i.e. upweighting it lowers the test loss (minus the classic influence on test
 * loss). A score matrix is [nTest, nTrain]; rows are queries.
 */

import { TdaError } from '../errors';

/** A dense row-major [nTest, nTrain] score matrix. */
export interface ScoreMatrix {
  nTest: number;
  nTrain: number;
  data: Float32Array;
}

/**
 * An attribution method in two phases: `cache` does the work that depends on the
 * training set only (damping, inverse-Hessian factors, norms), `attribute` scores queries.
 */
export interface Attributor<TTrain, TTest = TTrain> {
  readonly name: string;
  cache(train: TTrain): void;
  attribute(test: TTest): ScoreMatrix;
}

export function scoreMatrix(nTest: number, nTrain: number, data?: Float32Array): ScoreMatrix {
  const d = data ?? new Float32Array(nTest * nTrain);
  if (d.length !== nTest * nTrain) throw new Error(`score matrix data has ${d.length} values, expected ${nTest} x ${nTrain}`);
  return { nTest, nTrain, data: d };
}

/** Row q of a score matrix (a view). */
export function scoreRow(s: ScoreMatrix, q: number): Float32Array {
  return s.data.subarray(q * s.nTrain, (q + 1) * s.nTrain);
}

/** Where a score matrix came from, for error messages: a file, a field, and a label for prose (`checkpoint 2`). */
export interface ScoreMatrixSource {
  file?: string;
  field?: string;
  label?: string;
}

/**
 * The one check of a score matrix before it is combined or evaluated: whole-number shape,
 * data length nTest x nTrain, every score finite. A NaN or infinite score would silently
 * corrupt every sum, average and ranking made from it, so it is named by query and
 * training example.
 */
export function checkScoreMatrix(s: ScoreMatrix, where: ScoreMatrixSource = {}): void {
  const fail = (msg: string) => new TdaError(where.label ? `${where.label}: ${msg}` : msg, { file: where.file, field: where.field ?? 'scores' });
  if (!s || !Number.isInteger(s.nTest) || s.nTest < 0 || !Number.isInteger(s.nTrain) || s.nTrain < 0 || !s.data) throw fail(`bad shape [${s?.nTest}, ${s?.nTrain}]`);
  if (s.data.length !== s.nTest * s.nTrain) throw fail(`has ${s.data.length} values, expected ${s.nTest} x ${s.nTrain}`);
  for (let j = 0; j < s.data.length; j++) {
    if (!Number.isFinite(s.data[j])) {
      const q = Math.floor(j / s.nTrain);
      const i = j - q * s.nTrain;
      throw fail(`${s.data[j]} at [${q}, ${i}] (query ${q}, training example ${i})`);
    }
  }
}

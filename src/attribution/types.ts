/**
 * Shared shapes of the attribution engine.
 *
 * Score sign, everywhere: a POSITIVE score means the training example HELPS the test
 * output, i.e. upweighting it lowers the test loss (minus the classic influence on test
 * loss). A score matrix is [nTest, nTrain]; rows are queries.
 */

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

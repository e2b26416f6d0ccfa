/**
 * Input checks for the DDA combinators. Scores from different methods and checkpoints are
 * combined entry by entry, so a shape mismatch or a NaN would silently corrupt every
 * result; both are errors naming the field and, for a list, the checkpoint index.
 */
import type { ScoreMatrix } from '../attribution/types';
import { TdaError } from '../errors';

/** Where a matrix came from: `field` as the caller passed it (`finetuned[2]`), `label` for prose (`checkpoint 2`). */
export interface MatrixName {
  field: string;
  label: string;
}

/** Integer shape, matching data length, every score finite. */
export function checkScoreMatrix(s: ScoreMatrix, name: MatrixName): void {
  if (!s || !Number.isInteger(s.nTest) || s.nTest < 0 || !Number.isInteger(s.nTrain) || s.nTrain < 0 || !s.data) {
    throw new TdaError(`${name.label} is not a score matrix with integer nTest and nTrain`, { field: name.field });
  }
  if (s.data.length !== s.nTest * s.nTrain) {
    throw new TdaError(`${name.label} has ${s.data.length} values, expected nTest x nTrain = ${s.nTest} x ${s.nTrain}`, { field: name.field });
  }
  for (let k = 0; k < s.data.length; k++) {
    if (!Number.isFinite(s.data[k])) {
      const q = Math.floor(k / s.nTrain);
      throw new TdaError(`${name.label} has a non-finite score ${s.data[k]} at test ${q}, train ${k - q * s.nTrain}`, { field: name.field });
    }
  }
}

/** Same [nTest, nTrain] as the reference; the field named is the dimension that differs. */
export function checkSameShape(s: ScoreMatrix, name: MatrixName, ref: ScoreMatrix, refName: MatrixName): void {
  for (const dim of ['nTest', 'nTrain'] as const) {
    if (s[dim] !== ref[dim]) throw new TdaError(`${name.label} (${name.field}) has ${dim} ${s[dim]} but ${refName.label} (${refName.field}) has ${ref[dim]}`, { field: dim });
  }
}

/** A checkpoint list's entry names: `finetuned[2]` / `checkpoint 2`. */
export function checkpointName(listField: string, t: number): MatrixName {
  return { field: `${listField}[${t}]`, label: `checkpoint ${t}` };
}

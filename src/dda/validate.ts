/**
 * Input checks for the DDA combinators. Scores from different methods and checkpoints are
 * combined entry by entry, so a shape mismatch or a NaN would silently corrupt every
 * result; both are errors naming the field and, for a list, the checkpoint index.
 */
import { checkScoreMatrix as checkMatrix, ScoreMatrix } from '../attribution/types';
import { TdaError } from '../errors';

/** Where a matrix came from: `field` as the caller passed it (`finetuned[2]`), `label` for prose (`checkpoint 2`). */
export interface MatrixName {
  field: string;
  label: string;
}

/** Integer shape, matching data length, every score finite (the shared check, naming the checkpoint). */
export function checkScoreMatrix(s: ScoreMatrix, name: MatrixName): void {
  checkMatrix(s, { field: name.field, label: name.label });
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

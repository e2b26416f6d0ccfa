/**
 * DDA's denoise step (Wu et al. 2024): examples are fitted to different degrees at
 * different epochs, so one checkpoint's scores are noisy; combine the scores of every
 * checkpoint, entry by entry. Checkpoints are given in TRAINING ORDER (matters for EMA).
 *
 *   standardize: each checkpoint's matrix is first z-scored per query row
 *   mean:   S = (1/T) sum_t S_t
 *   ema:    E_0 = S_0;  E_t = alpha * S_t + (1 - alpha) * E_{t-1};  S = E_{T-1}
 *           (weights alpha (1-alpha)^(T-1-t) for t >= 1 and (1-alpha)^(T-1) for t = 0:
 *           later checkpoints count more; alpha = 1 keeps the last checkpoint only)
 *   median: per entry; with an even count, the mean of the two middle values
 */
import { ScoreMatrix, scoreMatrix } from '../attribution/types';
import { TdaError } from '../errors';
import { normalized } from './standardize';
import { checkpointName, checkSameShape, checkScoreMatrix } from './validate';

export type DenoiseMode = 'mean' | 'ema' | 'median';

export interface DenoiseOptions {
  /** Default `mean`. */
  mode?: DenoiseMode;
  /** EMA weight of the newer checkpoint, in (0, 1] (default 0.5). Only for `ema`. */
  emaAlpha?: number;
  /** Z-score each checkpoint's matrix per query row before combining (default false). */
  standardize?: boolean;
}

const MODES: readonly DenoiseMode[] = ['mean', 'ema', 'median'];

export function denoise(scoresPerCheckpoint: ScoreMatrix[], opts: DenoiseOptions = {}): ScoreMatrix {
  const settings = denoiseSettings(opts);
  checkCheckpoints(scoresPerCheckpoint, 'scoresPerCheckpoint');
  const { nTest, nTrain } = scoresPerCheckpoint[0];
  const values = scoresPerCheckpoint.map((s) => Float64Array.from(s.data));
  return scoreMatrix(nTest, nTrain, Float32Array.from(combineCheckpoints(values, nTest, nTrain, settings)));
}

/** Options with defaults, validated. */
export function denoiseSettings(opts: DenoiseOptions): Required<DenoiseOptions> {
  const mode = opts.mode ?? 'mean';
  const emaAlpha = opts.emaAlpha ?? 0.5;
  const standardize = opts.standardize ?? false;
  if (!MODES.includes(mode)) throw new TdaError(`unknown mode '${String(mode)}' (use ${MODES.join(', ')})`, { field: 'mode' });
  if (!(emaAlpha > 0 && emaAlpha <= 1)) throw new TdaError(`must be in (0, 1], got ${emaAlpha}`, { field: 'emaAlpha' });
  if (typeof standardize !== 'boolean') throw new TdaError('must be true or false', { field: 'standardize' });
  return { mode, emaAlpha, standardize };
}

/** A non-empty list of finite matrices of one shape; errors name the checkpoint index. */
export function checkCheckpoints(list: ScoreMatrix[], listField: string): void {
  if (!Array.isArray(list) || list.length === 0) throw new TdaError('need at least one checkpoint', { field: listField });
  list.forEach((s, t) => {
    checkScoreMatrix(s, checkpointName(listField, t));
    if (t > 0) checkSameShape(s, checkpointName(listField, t), list[0], checkpointName(listField, 0));
  });
}

/** Combines float64 [nTest, nTrain] matrices of checked inputs; the inputs are not modified. */
export function combineCheckpoints(values: Float64Array[], nTest: number, nTrain: number, o: Required<DenoiseOptions>): Float64Array {
  const mats = o.standardize ? values.map((data) => normalized({ nTest, nTrain, data }, 'zscore-rows')) : values;
  const T = mats.length;
  const out = new Float64Array(nTest * nTrain);
  if (o.mode === 'mean') {
    for (const m of mats) for (let k = 0; k < out.length; k++) out[k] += m[k];
    for (let k = 0; k < out.length; k++) out[k] /= T;
  } else if (o.mode === 'ema') {
    out.set(mats[0]);
    for (let t = 1; t < T; t++) for (let k = 0; k < out.length; k++) out[k] = o.emaAlpha * mats[t][k] + (1 - o.emaAlpha) * out[k];
  } else {
    const column = new Float64Array(T);
    for (let k = 0; k < out.length; k++) {
      for (let t = 0; t < T; t++) column[t] = mats[t][k];
      column.sort();
      out[k] = T % 2 ? column[(T - 1) / 2] : (column[T / 2 - 1] + column[T / 2]) / 2;
    }
  }
  return out;
}

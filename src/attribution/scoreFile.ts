/**
 * Score files, what `tda-lab score` writes: score matrices (`scores` [nTest, nTrain],
 * format `tda-lab.scores`) and top-k files (`indices` I32 and `scores` F32, both [nTest, k];
 * format `tda-lab.topk`), safetensors with the settings that produced them as metadata.
 */
import { showValue, TdaError } from '../errors';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors';
import { TopKScores } from './topK';
import { ScoreMatrix } from './types';

export const SCORES_FORMAT = 'tda-lab.scores';
export const TOPK_FORMAT = 'tda-lab.topk';

export function writeScoreFile(path: string, s: ScoreMatrix, metadata: Record<string, string> = {}): void {
  writeSafetensors(path, { scores: { shape: [s.nTest, s.nTrain], data: s.data } }, { format: SCORES_FORMAT, ...metadata });
}

/** A top-k file is not a score matrix: say so instead of reading its [nTest, k] scores as one. */
export function refuseTopK(f: SafetensorsFile, what: string): void {
  if (f.metadata.format === TOPK_FORMAT || f.has('indices')) {
    throw new TdaError(`is a top-k file (the best k training examples per query, from score --top-k); ${what} needs the full [nTest, nTrain] score matrix: run tda-lab score without --top-k`, {
      file: f.path,
      field: 'format',
    });
  }
}

export function readScoreFile(path: string): { scores: ScoreMatrix; metadata: Record<string, string> } {
  const f = SafetensorsFile.open(path);
  try {
    refuseTopK(f, 'readScoreFile');
    if (!f.has('scores')) throw new TdaError("holds no 'scores' tensor", { file: path, field: 'scores' });
    const shape = f.info('scores').shape;
    if (shape.length !== 2) throw new TdaError(`must be 2-D [nTest, nTrain], got [${shape}]`, { file: path, field: 'scores' });
    const data = f.readFloat32('scores');
    const bad = data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new TdaError(`is ${data[bad]} at query ${Math.floor(bad / shape[1])}, training example ${bad % shape[1]}`, { file: path, field: 'scores' });
    return { scores: { nTest: shape[0], nTrain: shape[1], data }, metadata: f.metadata };
  } finally {
    f.close();
  }
}

/** Writes `indices` [nTest, k] (I32) and `scores` [nTest, k] (F32); metadata records k and nTrain. */
export function writeTopKFile(path: string, t: TopKScores, metadata: Record<string, string> = {}): void {
  writeSafetensors(
    path,
    { indices: { dtype: 'I32', shape: [t.nTest, t.k], data: t.indices }, scores: { dtype: 'F32', shape: [t.nTest, t.k], data: t.scores } },
    { ...metadata, format: TOPK_FORMAT, k: String(t.k), n_train: String(t.nTrain) },
  );
}

/** Reads a top-k file back, checking shapes, index range, row order and finiteness. */
export function readTopKFile(path: string): { topK: TopKScores; metadata: Record<string, string> } {
  const f = SafetensorsFile.open(path);
  try {
    if (f.metadata.format !== TOPK_FORMAT) throw new TdaError(`is not a top-k file (format ${showValue(f.metadata.format)}, expected '${TOPK_FORMAT}')`, { file: path, field: 'format' });
    const nTrain = Number(f.metadata.n_train);
    if (!Number.isSafeInteger(nTrain) || nTrain < 1) throw new TdaError(`must be a positive integer, got ${showValue(f.metadata.n_train)}`, { file: path, field: 'n_train' });
    for (const name of ['indices', 'scores']) if (!f.has(name)) throw new TdaError('tensor is missing', { file: path, field: name });
    const shape = f.info('indices').shape;
    if (shape.length !== 2) throw new TdaError(`must be 2-D [nTest, k], got [${shape}]`, { file: path, field: 'indices' });
    if (f.info('scores').shape.join() !== shape.join()) throw new TdaError(`shape [${f.info('scores').shape}] differs from indices [${shape}]`, { file: path, field: 'scores' });
    const [nTest, k] = shape;
    const indices = f.readInt32('indices');
    const scores = f.readFloat32('scores');
    const inRow = new Set<number>();
    for (let j = 0; j < indices.length; j++) {
      const at = `query ${Math.floor(j / k)}, rank ${j % k}`;
      if (indices[j] < 0 || indices[j] >= nTrain) throw new TdaError(`${indices[j]} at ${at} is not a training index below ${nTrain}`, { file: path, field: 'indices' });
      // A ranking lists each training example once.
      if (j % k === 0) inRow.clear();
      if (inRow.has(indices[j])) throw new TdaError(`${indices[j]} at ${at} appears twice in the row`, { file: path, field: 'indices' });
      inRow.add(indices[j]);
      if (!Number.isFinite(scores[j])) throw new TdaError(`is ${scores[j]} at ${at}`, { file: path, field: 'scores' });
      if (j % k > 0 && scores[j] > scores[j - 1]) throw new TdaError(`row is not sorted by descending score at ${at}`, { file: path, field: 'scores' });
    }
    return { topK: { nTest, k, nTrain, indices, scores }, metadata: f.metadata };
  } finally {
    f.close();
  }
}

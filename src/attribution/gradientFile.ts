/**
 * The files `tda-lab grads` and `tda-lab score` exchange: per-example gradients (one
 * [n, ...shape] tensor per LoRA tensor plus `loss`) and score matrices (`scores`
 * [nTest, nTrain]), both safetensors with the settings that produced them as metadata.
 */
import { TdaError } from '../errors';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors';
import { checkFinite } from './gradientChecks';
import { GradientSet, ScoreMatrix } from './types';

export interface GradientFile {
  set: GradientSet;
  metadata: Record<string, string>;
}

export function readGradientFile(path: string): GradientFile {
  const f = SafetensorsFile.open(path);
  try {
    const names = f.names().filter((n) => n !== 'loss');
    if (names.length === 0) throw new TdaError('holds no gradient tensors', { file: path });
    const n = f.info(names[0]).shape[0];
    const blocks = names.map((name) => {
      const shape = f.info(name).shape;
      if (shape.length < 2 || shape[0] !== n) {
        throw new TdaError(`shape [${shape}] is not [${n}, ...] like the other gradient tensors`, { file: path, field: name });
      }
      const perExample = shape.slice(1);
      return { name, shape: perExample, dim: perExample.reduce((a, b) => a * b, 1), data: f.readFloat32(name) };
    });
    const set: GradientSet = { n, blocks, losses: f.has('loss') ? f.readFloat32('loss') : undefined };
    if (n === 0) throw new TdaError('holds gradients of zero examples', { file: path });
    checkFinite(set, path);
    return { set, metadata: f.metadata };
  } finally {
    f.close();
  }
}

export function writeScoreFile(path: string, s: ScoreMatrix, metadata: Record<string, string> = {}): void {
  writeSafetensors(path, { scores: { shape: [s.nTest, s.nTrain], data: s.data } }, { format: 'tda-lab.scores', ...metadata });
}

export function readScoreFile(path: string): { scores: ScoreMatrix; metadata: Record<string, string> } {
  const f = SafetensorsFile.open(path);
  try {
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

/**
 * Gradient files, what `tda-lab grads` writes and `tda-lab score` reads: safetensors with
 * one [n, ...shape] tensor per gradient block (named by its PEFT adapter key) plus `loss`
 * [n], and the settings that produced them as metadata (format `tda-lab.grads`).
 */
import { TdaError } from '../errors';
import { SafetensorsFile, TensorToWrite, writeSafetensors } from '../io/safetensors';
import { checkFinite } from './checks';
import { GradientSet } from './types';

export const GRADS_FORMAT = 'tda-lab.grads';

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
    // One loss per example, or scores and losses would be paired with the wrong examples.
    if (f.has('loss') && f.info('loss').shape.join() !== String(n)) {
      throw new TdaError(`shape [${f.info('loss').shape}] is not [${n}] (one loss per example)`, { file: path, field: 'loss' });
    }
    const set: GradientSet = { n, blocks, losses: f.has('loss') ? f.readFloat32('loss') : undefined };
    if (n === 0) throw new TdaError('holds gradients of zero examples', { file: path });
    checkFinite(set, path);
    return { set, metadata: f.metadata };
  } finally {
    f.close();
  }
}

/** Writes a gradient set: each block as [n, ...shape], plus `loss` [n] when the set has losses. */
export function writeGradientFile(path: string, set: GradientSet, metadata: Record<string, string> = {}): void {
  const tensors: Record<string, TensorToWrite> = {};
  if (set.losses) tensors.loss = { shape: [set.n], data: set.losses };
  for (const b of set.blocks) tensors[b.name] = { shape: [set.n, ...b.shape], data: b.data };
  writeSafetensors(path, tensors, { format: GRADS_FORMAT, ...metadata });
}

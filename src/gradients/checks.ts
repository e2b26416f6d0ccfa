/** Checks that test and train gradients describe the same parameters, and hold numbers. */
import { TdaError } from '../errors';
import { GradientSet, GradientSource } from './types';

export function checkCompatible(train: GradientSource, test: GradientSet, where: { train?: string; test?: string } = {}): void {
  const names = (bs: { name: string }[]) => bs.map((b) => b.name).join(', ');
  if (train.blocks.length !== test.blocks.length) {
    throw new TdaError(`test gradients have blocks [${names(test.blocks)}] but training gradients have [${names(train.blocks)}]`, { file: where.test });
  }
  train.blocks.forEach((b, i) => {
    const t = test.blocks[i];
    if (t.name !== b.name || t.dim !== b.dim) {
      throw new TdaError(`test block '${t.name}' (dim ${t.dim}) does not match training block '${b.name}' (dim ${b.dim})`, { file: where.test, field: t.name });
    }
  });
}

/** NaN or infinite gradients would poison every score: refuse them, naming the block and example. */
export function checkFinite(set: GradientSet, file?: string, offset = 0): void {
  for (const b of set.blocks) {
    if (b.data.length !== set.n * b.dim) throw new TdaError(`has ${b.data.length} values, expected ${set.n} x ${b.dim}`, { file, field: b.name });
    for (let i = 0; i < b.data.length; i++) {
      if (!Number.isFinite(b.data[i])) {
        throw new TdaError(`gradient of example ${offset + Math.floor(i / b.dim)} is ${b.data[i]}`, { file, field: b.name });
      }
    }
  }
}

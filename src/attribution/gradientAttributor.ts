/**
 * The common shape of gradient-based attribution: every method maps each test gradient g_q
 * to a vector v_q (v_q = g_q for gradient matching, v_q = H^-1 g_q for influence functions)
 * and scores training example i by v_q . g_i, summed over blocks. Training gradients are
 * streamed chunk by chunk, so they never need to be in memory all at once.
 *
 * Sign: positive = upweighting the training example lowers the test loss (it helps).
 */
import { TdaError } from '../errors';
import { blockDamping, DampingOptions } from './damping';
import { checkCompatible, checkFinite } from './gradientChecks';
import { addColumns, matMulABt } from './linalg';
import { Attributor, GradientSet, GradientSource, ScoreMatrix, scoreMatrix } from './types';

/** sum_l V_l @ G_l^T over training chunks: [nTest, nTrain]. */
export function dotScores(v: GradientSet, train: GradientSource): ScoreMatrix {
  const s = scoreMatrix(v.n, train.n);
  for (const { start, set } of train.chunks()) {
    set.blocks.forEach((b, l) => {
      const block = matMulABt(v.blocks[l].data, v.n, b.data, set.n, b.dim);
      addColumns(s.data, train.n, block, v.n, start, set.n);
    });
  }
  return s;
}

/** A copy of a GradientSet's structure with new block data. */
export function withBlocks(set: GradientSet, data: Float32Array[]): GradientSet {
  return { n: set.n, blocks: set.blocks.map((b, l) => ({ ...b, data: data[l] })) };
}

export abstract class GradientAttributor implements Attributor<GradientSource, GradientSet> {
  abstract readonly name: string;
  private trainSource?: GradientSource;

  cache(train: GradientSource): void {
    if (train.n === 0) throw new TdaError('the training set has no examples', { field: 'train' });
    this.trainSource = train;
    this.prepare(train);
  }

  attribute(test: GradientSet): ScoreMatrix {
    const train = this.train;
    if (test.n === 0) throw new TdaError('the test set has no examples', { field: 'test' });
    checkCompatible(train, test);
    checkFinite(test);
    return this.score(test, train);
  }

  protected get train(): GradientSource {
    if (!this.trainSource) throw new TdaError(`${this.name}: call cache(train) before attribute(test)`, { field: 'train' });
    return this.trainSource;
  }

  /** Work that depends on the training set only. */
  protected prepare(train: GradientSource): void {
    void train;
  }

  /** Default: transform test gradients, then dot with training gradients. */
  protected score(test: GradientSet, train: GradientSource): ScoreMatrix {
    return dotScores(this.transform(test, train), train);
  }

  protected abstract transform(test: GradientSet, train: GradientSource): GradientSet;
}

/** Base for influence functions: a damping lambda_l per block, computed in cache(). */
export abstract class DampedAttributor extends GradientAttributor {
  protected damping = new Float64Array(0);

  constructor(protected readonly dampingOptions: DampingOptions = {}) {
    super();
  }

  protected override prepare(train: GradientSource): void {
    this.damping = blockDamping(train, this.dampingOptions);
    this.prepareBlocks(train);
  }

  protected prepareBlocks(train: GradientSource): void {
    void train;
  }

  /** The lambda used for each block, by name (for result manifests). */
  dampingByBlock(): Record<string, number> {
    return Object.fromEntries(this.train.blocks.map((b, l) => [b.name, this.damping[l]]));
  }
}

/** Concatenates one block's rows over all training chunks: [n, dim]. */
export function materializeBlock(train: GradientSource, l: number): Float32Array {
  const dim = train.blocks[l].dim;
  const out = new Float32Array(train.n * dim);
  for (const { start, set } of train.chunks()) out.set(set.blocks[l].data, start * dim);
  return out;
}

/**
 * The input of optimizer-aware methods (LESS, TrackStar): per-example training gradients
 * taken at a checkpoint together with Adam's state saved there
 * (model/optimizerState.ts, `optimizer_state.safetensors`). The moments act elementwise on
 * the gradients, so the gradients must be the full LoRA tensors (not projected), and each
 * block is matched to its moments by its adapter key.
 */
import { TdaError } from '../errors';
import { BlockLayout, GradientSource } from '../gradients/types';
import { momentsOf, OptimizerState, TensorMoments } from '../model/optimizerState';

export interface OptimizerCheckpoint {
  /** Per-example training gradients at this checkpoint, one block per adapter tensor, unprojected. */
  train: GradientSource;
  /** Adam's state saved with this checkpoint (readOptimizerState). */
  optimizer: OptimizerState;
  /** The checkpoint's weight in a sum over checkpoints; default: the learning rate recorded in the state. */
  learningRate?: number;
}

/** The moments of each gradient block, in block order; refuses blocks whose shape is not the adapter tensor's. */
export function blockMoments(blocks: readonly BlockLayout[], state: OptimizerState, label: string): TensorMoments[] {
  return blocks.map((b) => {
    const t = momentsOf(state, b.name);
    const size = t.shape.reduce((a, x) => a * x, 1);
    if (b.dim !== size || b.shape.length !== t.shape.length || b.shape.some((d, i) => d !== t.shape[i])) {
      throw new TdaError(
        `${label}: gradient block has shape [${b.shape.join(', ')}] but its optimizer moments [${t.shape.join(', ')}] ` +
          '(the moments act elementwise: use unprojected gradients of the same adapter)',
        { file: state.file, field: b.name },
      );
    }
    return t;
  });
}

/** Same number of examples and the same blocks at every checkpoint. */
export function checkSameTrainingSet(checkpoints: readonly OptimizerCheckpoint[]): void {
  const first = checkpoints[0].train;
  if (first.n === 0) throw new TdaError('the training set has no examples', { field: 'train' });
  checkpoints.forEach((c, k) => {
    if (c.train.n !== first.n) throw new TdaError(`checkpoint ${k} has ${c.train.n} training examples, checkpoint 0 has ${first.n}`, { field: 'train' });
    const names = c.train.blocks.map((b) => b.name).join(', ');
    if (names !== first.blocks.map((b) => b.name).join(', ')) throw new TdaError(`checkpoint ${k} has blocks [${names}], checkpoint 0 has others`, { field: 'train' });
  });
}

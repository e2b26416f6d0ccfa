/**
 * Gradient matching: gradDot scores g_q . g_i (influence with an identity Hessian);
 * gradCos scores the cosine of the full concatenated LoRA gradients, which removes the
 * dominance of examples with large gradients.
 */
import { dotScores, GradientAttributor, ScoringEngine } from './gradientAttributor';
import { TopKScores } from './topK';
import { ScoreMatrix } from './types';
import { GradientSet, GradientSource } from '../gradients/types';
import { withBlocks } from '../gradients/types';
import { MethodDescriptor, WORKERS_OPTION } from './method';

export class GradDot extends GradientAttributor {
  readonly name = 'gradDot';
  protected transform(test: GradientSet): GradientSet {
    return test;
  }
}

/** Euclidean norm of each example's gradient over all blocks. */
export function exampleNorms(set: GradientSet): Float64Array {
  const norms = new Float64Array(set.n);
  for (const b of set.blocks) {
    for (let i = 0; i < set.n; i++) {
      let s = 0;
      for (let j = i * b.dim, end = j + b.dim; j < end; j++) s += b.data[j] * b.data[j];
      norms[i] += s;
    }
  }
  return norms.map(Math.sqrt);
}

export class GradCos extends GradientAttributor {
  readonly name = 'gradCos';
  private trainNorms = new Float64Array(0);

  protected override prepare(train: GradientSource): void {
    this.trainNorms = new Float64Array(train.n);
    for (const { start, set } of train.chunks()) this.trainNorms.set(exampleNorms(set), start);
  }

  protected transform(test: GradientSet): GradientSet {
    const norms = exampleNorms(test);
    return withBlocks(
      test,
      test.blocks.map((b) => b.data.map((v, j) => (norms[Math.floor(j / b.dim)] > 0 ? v / norms[Math.floor(j / b.dim)] : 0))),
    );
  }

  protected override score(test: GradientSet, train: GradientSource): ScoreMatrix {
    const s = dotScores(this.transform(test), train, this.scoring);
    this.divideByTrainNorms(s.data, 0, s.nTrain);
    return s;
  }

  /** Each chunk's block is divided by its training norms before it is ranked (the same arithmetic as score()). */
  protected override scoreTopK(test: GradientSet, train: GradientSource, k: number): TopKScores {
    const engine = ScoringEngine.open(test.n, train, this.scoring);
    try {
      return engine.topK(this.transform(test), train, k, (block, start, m) => this.divideByTrainNorms(block, start, m));
    } finally {
      engine.close();
    }
  }

  /** Columns of a [nTest, m] block holding training examples [start, start + m), divided by their norms. */
  private divideByTrainNorms(block: Float32Array, start: number, m: number): void {
    const rows = block.length / m;
    for (let q = 0; q < rows; q++) {
      // A zero gradient has no direction: its cosine is defined as 0.
      for (let j = 0; j < m; j++) block[q * m + j] = this.trainNorms[start + j] > 0 ? block[q * m + j] / this.trainNorms[start + j] : 0;
    }
  }
}

export const gradDotMethod: MethodDescriptor = {
  name: 'gradDot',
  summary: 'gradient dot product g_q . g_i over all LoRA tensors (influence with an identity Hessian)',
  input: 'gradients',
  options: [WORKERS_OPTION],
  create: (o) => new GradDot({ workers: o.workers as number | undefined }),
};

export const gradCosMethod: MethodDescriptor = {
  name: 'gradCos',
  summary: 'cosine of the concatenated LoRA gradients (gradient matching without the norm)',
  input: 'gradients',
  options: [WORKERS_OPTION],
  create: (o) => new GradCos({ workers: o.workers as number | undefined }),
};

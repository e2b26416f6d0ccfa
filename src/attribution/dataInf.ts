/**
 * DataInf (Kwon et al., ICLR 2024): a closed-form approximation of the inverse of each
 * block's damped Gauss-Newton matrix H_l = G_l^T G_l / n + lambda_l I, obtained by swapping
 * the order of inversion and averaging (Sherman-Morrison on each rank-one term):
 *
 *   H_l^-1 v ~ (1 / lambda_l) (v - (1/n) sum_i g_il (g_il . v) / (lambda_l + |g_il|^2))
 *
 * The approximation is exact for a single training example. Score = sum_l (H_l^-1 g_ql) . g_il.
 * This is the closed form of the paper and of DataInf's official code, which has it right
 * (damping +lambda_l). The wrong damping sign in public code is in the LiSSA functions, of
 * DataInf's repository and of the IF-on-LLMs one (they target (G^T G / n - lambda I)^-1); see
 * lissa.ts.
 * A block whose gradients are all zero (lora_A at B = 0) has lambda_l = 0 and contributes 0.
 */
import { DampedAttributor, ScoringEngine } from './gradientAttributor';
import { DAMPING_SCALE_OPTION } from './damping';
import { MethodDescriptor, WORKERS_OPTION } from './method';
import { TopKScores } from './topK';
import { ScoreMatrix } from './types';
import { GradientSet, GradientSource } from '../gradients/types';
import { withBlocks } from '../gradients/types';

export class DataInf extends DampedAttributor {
  readonly name = 'dataInf';

  /** One engine (one set of workers) for the transform and the scoring pass. */
  protected override score(test: GradientSet, train: GradientSource): ScoreMatrix {
    const engine = ScoringEngine.open(test.n, train, this.scoring);
    try {
      return engine.scores(this.transformWith(engine, test, train), train);
    } finally {
      engine.close();
    }
  }

  /** Top-k of the same scores: the transformed test vectors are dotted chunk by chunk and ranked. */
  protected override scoreTopK(test: GradientSet, train: GradientSource, k: number): TopKScores {
    const engine = ScoringEngine.open(test.n, train, this.scoring);
    try {
      return engine.topK(this.transformWith(engine, test, train), train, k);
    } finally {
      engine.close();
    }
  }

  protected transform(test: GradientSet, train: GradientSource): GradientSet {
    const engine = ScoringEngine.open(test.n, train, this.scoring);
    try {
      return this.transformWith(engine, test, train);
    } finally {
      engine.close();
    }
  }

  /** The damping pass keeps |g_il|^2 for the update pass. */
  protected override keepNorms(): boolean {
    return true;
  }

  /**
   * v_ql = (g_ql - (1/n) sum_i g_il (g_il . g_ql) / (lambda_l + |g_il|^2)) / lambda_l, as
   * blocked products; v is written over the summed update (a fresh array of the engine's).
   */
  private transformWith(engine: ScoringEngine, test: GradientSet, train: GradientSource): GradientSet {
    const acc = engine.dataInfUpdates(test, train, this.damping, this.exampleSquaredNorms);
    return withBlocks(
      test,
      test.blocks.map((b, l) => {
        const lambda = this.damping[l];
        const out = acc[l];
        if (lambda === 0) return out.fill(0);
        for (let j = 0; j < out.length; j++) out[j] = (b.data[j] - out[j] / train.n) / lambda;
        return out;
      }),
    );
  }
}

export const dataInfMethod: MethodDescriptor = {
  name: 'dataInf',
  summary: "DataInf's closed-form inverse of each LoRA tensor's damped Gauss-Newton matrix",
  input: 'gradients',
  options: [DAMPING_SCALE_OPTION, WORKERS_OPTION],
  create: (o) => new DataInf({ dampingScale: o.dampingScale as number, workers: o.workers as number | undefined }),
};

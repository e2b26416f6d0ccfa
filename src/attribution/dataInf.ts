/**
 * DataInf (Kwon et al., ICLR 2024): a closed-form approximation of the inverse of each
 * block's damped Gauss-Newton matrix H_l = G_l^T G_l / n + lambda_l I, obtained by swapping
 * the order of inversion and averaging (Sherman-Morrison on each rank-one term):
 *
 *   H_l^-1 v ~ (1 / lambda_l) (v - (1/n) sum_i g_il (g_il . v) / (lambda_l + |g_il|^2))
 *
 * The approximation is exact for a single training example. Score = sum_l (H_l^-1 g_ql) . g_il.
 * Public DataInf code puts the damping with the wrong sign; this follows the paper's math.
 * A block whose gradients are all zero (lora_A at B = 0) has lambda_l = 0 and contributes 0.
 */
import { DampedAttributor, withBlocks } from './gradientAttributor';
import { matMul, matMulABt, rowSquaredNorms } from './linalg';
import { GradientSet, GradientSource } from './types';

export class DataInf extends DampedAttributor {
  readonly name = 'dataInf';

  protected transform(test: GradientSet, train: GradientSource): GradientSet {
    const nT = test.n;
    const acc = test.blocks.map((b) => new Float32Array(nT * b.dim));
    for (const { set } of train.chunks()) {
      set.blocks.forEach((b, l) => {
        const lambda = this.damping[l];
        if (lambda === 0) return;
        const m = set.n;
        const coef = matMulABt(test.blocks[l].data, nT, b.data, m, b.dim); // [nT, m]: g_q . g_i
        const norms = rowSquaredNorms(b.data, m, b.dim);
        for (let q = 0; q < nT; q++) for (let i = 0; i < m; i++) coef[q * m + i] /= lambda + norms[i];
        const update = matMul(coef, nT, m, b.data, b.dim);
        const a = acc[l];
        for (let j = 0; j < a.length; j++) a[j] += update[j];
      });
    }
    return withBlocks(
      test,
      test.blocks.map((b, l) => {
        const lambda = this.damping[l];
        if (lambda === 0) return new Float32Array(b.data.length);
        return b.data.map((v, j) => (v - acc[l][j] / train.n) / lambda);
      }),
    );
  }
}

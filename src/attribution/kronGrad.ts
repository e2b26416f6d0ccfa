/**
 * kronGrad: eigenvalue-corrected Kronecker factors of each LoRA tensor's per-example gradient
 * matrices (a Shampoo-like factorisation; not EK-FAC, which is in ekfac.ts).
 *
 * A LoRA tensor's per-example gradient is a matrix G_i [rows, cols]. The Gauss-Newton block
 * E[vec(G) vec(G)^T] is approximated by the Kronecker product of the two factors
 *   S = E[G G^T] (rows x rows) and A = E[G^T G] (cols x cols),
 * whose eigenbases Q_S, Q_A are kept, while the eigenvalues are corrected to the exact
 * second moments in that basis: Lambda[a,b] = E[(Q_S^T G Q_A)[a,b]^2]. Then
 *   H^-1 V = Q_S ((Q_S^T V Q_A) / (Lambda + lambda)) Q_A^T.
 * It needs only what the gradient store holds. EK-FAC proper (George et al. 2018, as in
 * kronfluence) factors per-token input activations and pre-activation gradients instead;
 * the two eigenbases differ in general (they agree for one-token examples only when the
 * sizes of a and delta are uncorrelated). When the block is exactly Kronecker-factored,
 * this equals the exact inverse.
 */
import * as tf from '@tensorflow/tfjs';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { TdaError } from '../errors';
import { DampedAttributor } from './gradientAttributor';
import { DAMPING_SCALE_OPTION } from './damping';
import { MethodDescriptor, WORKERS_OPTION } from './method';
import { download } from '../runtime/ops';
import { gram, kroneckerPrecondition, kroneckerRotate as rotate } from './linalg';
import { GradientSet, GradientSource } from '../gradients/types';
import { withBlocks } from '../gradients/types';

interface BlockFactors {
  rows: number;
  cols: number;
  qS: Float32Array; // [rows, rows], eigenvectors in columns
  qA: Float32Array; // [cols, cols]
  lambda: Float32Array; // [rows, cols] corrected eigenvalues
}

/** Eigenvectors (columns) of a symmetric float32 matrix, as float32. */
function eigenvectors(a: Float32Array, size: number): Float32Array {
  const m = new Matrix(size, size);
  for (let i = 0; i < size; i++) for (let j = 0; j < size; j++) m.set(i, j, (a[i * size + j] + a[j * size + i]) / 2);
  return Float32Array.from(new EigenvalueDecomposition(m, { assumeSymmetric: true }).eigenvectorMatrix.to1DArray());
}

export class KronGradInfluence extends DampedAttributor {
  readonly name = 'kronGrad';
  private factors: BlockFactors[] = [];

  protected override prepareBlocks(train: GradientSource): void {
    const n = train.n;
    this.factors = train.blocks.map((b) => {
      if (b.shape.length !== 2) {
        throw new TdaError(`kronGrad needs 2-D gradient blocks (LoRA matrices), got shape [${b.shape}] (projected gradients cannot be factored)`, { field: b.name });
      }
      const [rows, cols] = b.shape;
      return { rows, cols, qS: new Float32Array(rows * rows), qA: new Float32Array(cols * cols), lambda: new Float32Array(rows * cols) };
    });
    // Pass 1: Kronecker factors S = sum G G^T, A = sum G^T G (scale is irrelevant to the eigenbasis).
    const sums = this.factors.map((f) => ({ S: new Float32Array(f.rows * f.rows), A: new Float32Array(f.cols * f.cols) }));
    for (const { set } of train.chunks()) {
      set.blocks.forEach((b, l) => {
        const { rows, cols } = this.factors[l];
        const m = set.n;
        const a = gram(b.data, m * rows, cols);
        const gT = download(() => tf.transpose(tf.tensor3d(b.data, [m, rows, cols]), [0, 2, 1]));
        const s = gram(gT, m * cols, rows);
        a.forEach((v, j) => (sums[l].A[j] += v));
        s.forEach((v, j) => (sums[l].S[j] += v));
      });
    }
    this.factors.forEach((f, l) => {
      f.qS = eigenvectors(sums[l].S, f.rows);
      f.qA = eigenvectors(sums[l].A, f.cols);
    });
    // Pass 2: eigenvalue correction, the mean squared gradient in the Kronecker eigenbasis.
    for (const { set } of train.chunks()) {
      set.blocks.forEach((b, l) => {
        const f = this.factors[l];
        const sq = download(() => {
          const r = rotate(tf.tensor3d(b.data, [set.n, f.rows, f.cols]), tf.tensor2d(f.qS, [f.rows, f.rows]), tf.tensor2d(f.qA, [f.cols, f.cols]));
          return tf.sum(tf.square(r), 0);
        });
        sq.forEach((v, j) => (f.lambda[j] += v / n));
      });
    }
  }

  protected transform(test: GradientSet): GradientSet {
    return withBlocks(
      test,
      test.blocks.map((b, l) => {
        const damping = this.damping[l];
        if (damping === 0) return new Float32Array(b.data.length);
        const f = this.factors[l];
        return kroneckerPrecondition(b.data, test.n, f.rows, f.cols, f.qS, f.qA, f.lambda, damping);
      }),
    );
  }
}

export const kronGradMethod: MethodDescriptor = {
  name: 'kronGrad',
  summary: 'eigenvalue-corrected Kronecker factors of each LoRA tensor\'s per-example gradient matrices (Shampoo-like; not EK-FAC)',
  input: 'gradients',
  options: [DAMPING_SCALE_OPTION, WORKERS_OPTION],
  create: (o) => new KronGradInfluence({ dampingScale: o.dampingScale as number, workers: o.workers as number | undefined }),
};

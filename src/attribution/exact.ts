/**
 * Exact influence with a block-diagonal damped Gauss-Newton matrix:
 * score = sum_l g_ql^T (G_l^T G_l / n + lambda_l I)^-1 g_il.
 *
 * Each block is solved in float64 by Cholesky, in whichever space is smaller:
 * the parameter space (d x d) or, through the Woodbury identity,
 *   (G^T G / n + lambda I)^-1 = (1/lambda) (I - G^T (n lambda I + G G^T)^-1 G),
 * the example space (n x n). Above `maxBlockSize` in both, it refuses: use dataInf, lissa,
 * kronGrad or projected gradients instead.
 */
import { TdaError } from '../errors';
import { choleskyFactor } from './cholesky';
import { DAMPING_SCALE_OPTION, DampingOptions } from './damping';
import { MethodDescriptor, Settings, WORKERS_OPTION } from './method';
import { DampedAttributor, materializeBlock, ScoringOptions } from './gradientAttributor';
import { gram, matMul, matMulABt } from './linalg';
import { GradientSet, GradientSource } from '../gradients/types';
import { withBlocks } from '../gradients/types';

/** Largest system solved per block unless told otherwise. */
export const DEFAULT_MAX_BLOCK_SIZE = 4096;

export interface ExactOptions extends DampingOptions, ScoringOptions {
  /** Largest d x d or n x n system solved per block (default 4096). */
  maxBlockSize?: number;
}

type BlockSolver = (test: Float32Array, nT: number) => Float32Array;

/** Symmetric float64 matrix [size, size] from a float32 product, scaled, plus `diag` on the diagonal. */
function symmetric(a: Float32Array, size: number, scale: number, diag: number): Float64Array {
  const m = new Float64Array(size * size);
  for (let i = 0; i < size; i++) {
    for (let j = 0; j <= i; j++) {
      const v = (scale * (a[i * size + j] + a[j * size + i])) / 2 + (i === j ? diag : 0);
      m[i * size + j] = v;
      m[j * size + i] = v;
    }
  }
  return m;
}

export class ExactInfluence extends DampedAttributor {
  readonly name = 'exact';
  private solvers: BlockSolver[] = [];
  private readonly maxBlockSize: number;

  constructor(opts: ExactOptions = {}) {
    super(opts);
    this.maxBlockSize = opts.maxBlockSize ?? DEFAULT_MAX_BLOCK_SIZE;
  }

  protected override methodSettings(): Settings {
    return { ...super.methodSettings(), maxBlockSize: this.maxBlockSize };
  }

  protected override prepareBlocks(train: GradientSource): void {
    const n = train.n;
    this.solvers = train.blocks.map((b, l) => {
      const lambda = this.damping[l];
      const d = b.dim;
      if (lambda === 0) return (_t: Float32Array, nT: number) => new Float32Array(nT * d);
      if (d <= this.maxBlockSize && (d <= n || n > this.maxBlockSize)) {
        // Parameter space: H = G^T G / n + lambda I, accumulated over chunks.
        const g = new Float32Array(d * d);
        for (const { set } of train.chunks()) {
          const part = gram(set.blocks[l].data, set.n, d);
          for (let j = 0; j < g.length; j++) g[j] += part[j];
        }
        const chol = choleskyFactor(symmetric(g, d, 1 / n, lambda), d, `Hessian block '${b.name}'`);
        return (t: Float32Array, nT: number) => Float32Array.from(chol.solve(Float64Array.from(t), nT));
      }
      if (n <= this.maxBlockSize) {
        // Example space (Woodbury): K = G G^T + n lambda I.
        const G = materializeBlock(train, l);
        const kernel = matMulABt(G, n, G, n, d);
        const chol = choleskyFactor(symmetric(kernel, n, 1, n * lambda), n, `kernel of block '${b.name}'`);
        return (t: Float32Array, nT: number) => {
          const p = matMulABt(t, nT, G, n, d); // [nT, n] = t G^T: one right-hand side per query
          const zT = Float32Array.from(chol.solve(Float64Array.from(p), nT)); // [nT, n]
          const back = matMul(zT, nT, n, G, d); // [nT, d]
          return t.map((v, j) => (v - back[j]) / lambda);
        };
      }
      throw new TdaError(
        `block is too large for the exact inverse: ${d} parameters and ${n} training examples, both above maxBlockSize ${this.maxBlockSize} (use dataInf, lissa, kronGrad or projected gradients)`,
        { field: b.name },
      );
    });
  }

  protected transform(test: GradientSet): GradientSet {
    return withBlocks(
      test,
      test.blocks.map((b, l) => this.solvers[l](b.data, test.n)),
    );
  }
}

export const exactMethod: MethodDescriptor = {
  name: 'exact',
  summary: 'the damped inverse Hessian per LoRA tensor, exactly (float64 Cholesky, parameter or example space)',
  input: 'gradients',
  options: [DAMPING_SCALE_OPTION, WORKERS_OPTION, { key: 'maxBlockSize', description: 'largest system the exact method solves per block', type: 'integer', default: DEFAULT_MAX_BLOCK_SIZE, min: 1 }],
  create: (o) => new ExactInfluence({ dampingScale: o.dampingScale as number, maxBlockSize: o.maxBlockSize as number, workers: o.workers as number | undefined }),
};

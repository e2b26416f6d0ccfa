/**
 * EK-FAC influence (George et al. 2018; Grosse et al. 2023), as kronfluence computes it.
 *
 * Per LoRA tensor, the Gauss-Newton block is approximated in the Kronecker eigenbasis of the
 * per-token activation and pre-activation-gradient covariances (Q_a, Q_d), with the
 * eigenvalues corrected to the per-example gradients' second moments in that basis, Lambda
 * (ekfacFactors.ts). A test gradient G [rows, cols] becomes
 *   H^-1 G = Q_d ((Q_d^T G Q_a) / (Lambda + lambda)) Q_a^T,   lambda = c x mean(Lambda)
 * (c = 0.1: kronfluence's damping when damping_factor is None), and scores training
 * gradient g_i by (H^-1 g_q) . g_i. Sign: positive = the training example helps the test
 * output (lowers its loss), as for every influence method here.
 *
 * The factors come from the model and the training data, not from the gradients alone, so
 * the method caches `{ train, factors }` (input kind `gradients+factors`); `tda-lab score
 * --method ekfac --factors <file>` reads them from a file of `tda-lab ekfac-factors`.
 */
import { TdaError } from '../errors';
import { GradientSet, GradientSource, withBlocks } from '../gradients/types';
import { DAMPING_SCALE_OPTION, DEFAULT_DAMPING_SCALE } from './damping';
import { EkfacFactors, EkfacFactorSettings, EkfacTensorFactors } from './ekfacFactors';
import { GradientAttributor, ScoringOptions } from './gradientAttributor';
import { kroneckerPrecondition } from './linalg';
import { MethodDescriptor, Settings, WORKERS_OPTION } from './method';

/** What ekfac caches: the training gradients and the factors computed on the same data and adapter. */
export interface FactoredTrain {
  train: GradientSource;
  factors: EkfacFactors;
  /** Where the factors were read from (recorded in the settings). */
  factorsFile?: string;
}

export interface EkfacOptions extends ScoringOptions {
  /** lambda = dampingScale x mean(Lambda) per tensor (default 0.1). */
  dampingScale?: number;
}

/** One tensor's factors as float32 tfjs-ready arrays, plus its damping. */
interface Prepared {
  rows: number;
  cols: number;
  qd: Float32Array;
  qa: Float32Array;
  lambda: Float32Array;
  damping: number;
}

function isFactoredTrain(x: unknown): x is FactoredTrain {
  return typeof x === 'object' && x !== null && 'factors' in x && 'train' in x;
}

/** damping = scale x mean(Lambda) (kronfluence: HEURISTIC_DAMPING_SCALE x mean of the corrected eigenvalues). */
export function ekfacDamping(t: EkfacTensorFactors, scale: number): number {
  let s = 0;
  for (let j = 0; j < t.lambda.length; j++) s += t.lambda[j];
  return (scale * s) / t.lambda.length;
}

/**
 * Refuses gradients made otherwise than the factors: another label mask, or another adapter
 * (compared as `score` compares two gradient inputs: paths with paths, hashes with hashes).
 * `inputs` are the gradients' settings as `score` records them (mask, checkpoint).
 */
export function checkFactorsMatch(settings: EkfacFactorSettings, inputs: Settings, where: { factorsFile?: string; train?: string } = {}): void {
  const file = where.factorsFile;
  const from = where.train ? ` (${where.train})` : '';
  if (inputs.mask !== undefined && inputs.mask !== 'unknown' && inputs.mask !== settings.mask) {
    throw new TdaError(`factors were computed with label mask '${settings.mask}' but the training gradients use '${inputs.mask}'${from}`, { file, field: 'settings.mask' });
  }
  const checkpoint = typeof inputs.checkpoint === 'string' ? inputs.checkpoint : undefined;
  if (!checkpoint) return;
  const own = checkpoint.startsWith('sha256:') ? (settings.adapterHash ? `sha256:${settings.adapterHash}` : undefined) : settings.adapter;
  if (own !== undefined && own !== checkpoint) {
    throw new TdaError(`factors were computed at adapter ${own} but the training gradients at ${checkpoint}${from}`, { file, field: 'settings.adapter' });
  }
}

export class EkfacInfluence extends GradientAttributor {
  readonly name = 'ekfac';
  private prepared: Prepared[] = [];
  private factored?: FactoredTrain;

  constructor(private readonly options: EkfacOptions = {}) {
    super({ workers: options.workers });
  }

  override cache(input: FactoredTrain | GradientSource): void {
    if (!isFactoredTrain(input)) {
      throw new TdaError('ekfac needs its factors with the training gradients: cache({ train, factors }) with factors from computeEkfacFactors or readEkfacFactors (tda-lab ekfac-factors)', { field: 'factors' });
    }
    this.factored = input;
    super.cache(input.train);
  }

  protected override prepare(train: GradientSource): void {
    const { factors, factorsFile } = this.factored!;
    const where = factorsFile ? { file: factorsFile } : {};
    const byName = new Map(factors.tensors.map((t) => [t.name, t]));
    const scale = this.options.dampingScale ?? DEFAULT_DAMPING_SCALE;
    this.prepared = train.blocks.map((b) => {
      const t = byName.get(b.name);
      if (!t) throw new TdaError(`has no factors for LoRA tensor ${b.name} (computed for another adapter?)`, { ...where, field: b.name });
      if (b.shape.length !== 2 || b.shape[0] !== t.rows || b.shape[1] !== t.cols) {
        throw new TdaError(`factors are for a [${t.rows}, ${t.cols}] tensor but the gradients of ${b.name} are [${b.shape}] (projected gradients cannot be factored)`, { ...where, field: b.name });
      }
      return {
        rows: t.rows,
        cols: t.cols,
        qd: Float32Array.from(t.gradientEigenvectors),
        qa: Float32Array.from(t.activationEigenvectors),
        lambda: Float32Array.from(t.lambda),
        damping: ekfacDamping(t, scale),
      };
    });
  }

  /** The damping used for each tensor, by name. */
  dampingByBlock(): Record<string, number> {
    return Object.fromEntries(this.train.blocks.map((b, l) => [b.name, this.prepared[l].damping]));
  }

  protected override methodSettings(): Settings {
    const f = this.factored;
    return {
      dampingScale: this.options.dampingScale ?? DEFAULT_DAMPING_SCALE,
      ...(this.prepared.length ? { damping: this.dampingByBlock() } : {}),
      ...(f ? { factors: { ...(f.factorsFile ? { file: f.factorsFile } : {}), ...f.factors.settings } } : {}),
    };
  }

  protected transform(test: GradientSet): GradientSet {
    return withBlocks(
      test,
      test.blocks.map((b, l) => {
        const p = this.prepared[l];
        // All-zero corrected eigenvalues (lora_B = 0 at initialisation makes every A gradient
        // zero): no curvature and no gradient, so the tensor contributes nothing.
        if (p.damping === 0) return new Float32Array(b.data.length);
        return kroneckerPrecondition(b.data, test.n, p.rows, p.cols, p.qd, p.qa, p.lambda, p.damping);
      }),
    );
  }
}

export const ekfacMethod: MethodDescriptor = {
  name: 'ekfac',
  summary: 'EK-FAC as in kronfluence: per-token activation and pre-activation-gradient covariances of each LoRA tensor, eigenvalues corrected by the per-example gradients (needs --factors from tda-lab ekfac-factors)',
  input: 'gradients+factors',
  options: [DAMPING_SCALE_OPTION, WORKERS_OPTION],
  create: (o) => new EkfacInfluence({ dampingScale: o.dampingScale as number, workers: o.workers as number | undefined }),
};

/** The gradient-based methods by name, for the CLI and experiments. */
import { TdaError } from '../errors';
import { DataInf } from './dataInf';
import { EkfacInfluence } from './ekfac';
import { ExactInfluence } from './exact';
import { GradCos, GradDot } from './gradDot';
import { GradientAttributor, ScoringOptions } from './gradientAttributor';
import { Lissa, LissaOptions } from './lissa';

export const GRADIENT_METHODS = ['gradDot', 'gradCos', 'dataInf', 'lissa', 'exact', 'ekfac'] as const;
export type GradientMethod = (typeof GRADIENT_METHODS)[number];

export interface MethodOptions extends LissaOptions, ScoringOptions {
  maxBlockSize?: number;
}

export function createGradientAttributor(method: string, opts: MethodOptions = {}): GradientAttributor {
  switch (method as GradientMethod) {
    case 'gradDot':
      return new GradDot({ workers: opts.workers });
    case 'gradCos':
      return new GradCos({ workers: opts.workers });
    case 'dataInf':
      return new DataInf(opts);
    case 'lissa':
      return new Lissa(opts);
    case 'exact':
      return new ExactInfluence(opts);
    case 'ekfac':
      return new EkfacInfluence(opts);
  }
  throw new TdaError(`unknown method '${method}' (use ${GRADIENT_METHODS.join(', ')})`, { field: 'method' });
}

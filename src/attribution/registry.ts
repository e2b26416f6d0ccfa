/**
 * Every scoring method, listed once. A method is one file exporting a MethodDescriptor
 * (method.ts); adding one here makes it a `tda-lab score --method` choice with its flags,
 * defaults and help, and available to the experiments through createScorer.
 */
import { TdaError } from '../errors';
import { bm25Method } from './bm25';
import { cgMethod } from './conjugateGradient';
import { dataInfMethod } from './dataInf';
import { densityMethod } from './density';
import { kronGradMethod } from './kronGrad';
import { ekfacMethod } from './ekfac';
import { exactMethod } from './exact';
import { gradCosMethod, gradDotMethod } from './gradDot';
import { GradientAttributor } from './gradientAttributor';
import { lessMethod } from './less';
import { lissaMethod } from './lissa';
import { MethodDescriptor, resolveOptions, Scorer } from './method';
import { repSimMethod } from './repSim';
import { trackStarMethod } from './trackstar';

export const METHODS: readonly MethodDescriptor[] = [gradDotMethod, gradCosMethod, dataInfMethod, lissaMethod, cgMethod, exactMethod, kronGradMethod, ekfacMethod, repSimMethod, bm25Method, densityMethod, lessMethod, trackStarMethod];

/** Names of the methods that score from per-example gradients. */
export const GRADIENT_METHODS = METHODS.filter((m) => m.input === 'gradients').map((m) => m.name) as readonly string[];

export function methodByName(name: string): MethodDescriptor {
  const m = METHODS.find((d) => d.name === name);
  if (!m) throw new TdaError(`unknown method '${name}' (use ${METHODS.map((d) => d.name).join(', ')})`, { field: 'method' });
  return m;
}

/** A method built with `options` (checked against its descriptor; defaults filled in). */
export function createScorer(name: string, options: Record<string, unknown> = {}): Scorer {
  const method = methodByName(name);
  return method.create(resolveOptions(method, options));
}

/** A gradient method built with `options`; refuses a method that scores from something else. */
export function createGradientAttributor(name: string, options: Record<string, unknown> = {}): GradientAttributor {
  const method = methodByName(name);
  if (method.input !== 'gradients') throw new TdaError(`'${name}' scores from ${method.input}, not from gradients`, { field: 'method' });
  return method.create(resolveOptions(method, options)) as GradientAttributor;
}

/**
 * What a scoring method declares about itself, once: its name, a one-line summary, what it
 * reads (per-example gradients, embeddings or texts), its options with their defaults and
 * limits, and how to build it. The registry (registry.ts) lists the descriptors; the CLI
 * derives its choices, flags, defaults and help from them, and every result records the
 * fully resolved settings (Scorer.settings()).
 */
import { TdaError } from '../errors';
import { Attributor } from './types';

/**
 * What a method scores from: per-example gradients, per-example embeddings, raw texts, or
 * `checkpoints`: per-example gradients at training checkpoints with the optimizer state
 * saved there (OptimizerCheckpoint; through the library API, not `tda-lab score`), or
 * `gradients+factors`: per-example gradients with factors computed from the model and the
 * training data (ekfac: `cache({ train, factors })`; `tda-lab score --factors <file>`).
 */
export type ScorerInput = 'gradients' | 'embeddings' | 'texts' | 'checkpoints' | 'gradients+factors';

export type OptionValue = number | string;

export interface OptionSpec {
  /** Key in the options object; the command-line flag is its kebab-case form (dampingScale -> --damping-scale). */
  key: string;
  description: string;
  type: 'number' | 'integer' | 'choice';
  /** Applied when the option is not given; absent = the method decides (e.g. workers: by job size). */
  default?: OptionValue;
  /** Smallest allowed value (numbers). */
  min?: number;
  /** The minimum itself is not allowed (a positive number: min 0, exclusive). */
  exclusiveMin?: boolean;
  choices?: readonly string[];
  /** A choice option that also takes a positive number (e.g. a bandwidth: 'scott' or 0.5). */
  allowNumber?: boolean;
}

/** Settings a result is stored with: plain JSON. */
export type Settings = Record<string, unknown>;

/** A scoring method ready to use: cache the training side, attribute queries, and say how it was set up. */
export interface Scorer<TTrain = unknown, TTest = TTrain> extends Attributor<TTrain, TTest> {
  /** The fully resolved settings (options with defaults, and what cache/attribute found: damping, convergence). */
  settings(): Settings;
}

export interface MethodDescriptor {
  name: string;
  summary: string;
  input: ScorerInput;
  options: readonly OptionSpec[];
  create(options: Record<string, OptionValue | undefined>): Scorer;
}

/** The command-line flag of an option. */
export function optionFlag(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** One option's value checked against its spec (a string from the command line is parsed first). */
export function parseOption(spec: OptionSpec, raw: unknown, method: string): OptionValue {
  const field = optionFlag(spec.key);
  if (spec.type === 'choice') {
    const number = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
    if (spec.allowNumber && Number.isFinite(number) && number > 0) return number;
    if (typeof raw !== 'string' || !spec.choices?.includes(raw)) {
      throw new TdaError(`${method}: must be one of ${spec.choices?.join(', ')}${spec.allowNumber ? ' or a positive number' : ''}, got ${JSON.stringify(raw)}`, { field });
    }
    return raw;
  }
  const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
  if (typeof value !== 'number' || !Number.isFinite(value) || (spec.type === 'integer' && !Number.isInteger(value))) {
    throw new TdaError(`${method}: must be ${spec.type === 'integer' ? 'a whole number' : 'a number'}, got ${JSON.stringify(raw)}`, { field });
  }
  if (spec.min !== undefined && (value < spec.min || (spec.exclusiveMin && value === spec.min))) {
    throw new TdaError(`${method}: must be ${spec.exclusiveMin ? '>' : '>='} ${spec.min}, got ${value}`, { field });
  }
  return value;
}

/**
 * The options of one run of a method: every given option checked (one the method does not
 * take is refused, naming it), defaults filled in.
 */
export function resolveOptions(method: MethodDescriptor, given: Record<string, unknown>): Record<string, OptionValue | undefined> {
  const known = new Map(method.options.map((o) => [o.key, o]));
  for (const key of Object.keys(given)) {
    if (given[key] !== undefined && !known.has(key)) {
      const takes = method.options.map((o) => optionFlag(o.key)).join(', ') || 'no options';
      throw new TdaError(`${method.name} does not take this option (it takes ${takes})`, { field: optionFlag(key) });
    }
  }
  return Object.fromEntries(method.options.map((o) => [o.key, given[o.key] === undefined ? o.default : parseOption(o, given[o.key], method.name)]));
}

/** Options several methods share, declared once. */
export const WORKERS_OPTION: OptionSpec = {
  key: 'workers',
  description: 'worker threads for the products with the training gradients (0 = this thread; default: every core for large jobs)',
  type: 'integer',
  min: 0,
};

/** The seed of a method's own random projection (LESS, TrackStar). */
export const PROJECTION_SEED_OPTION: OptionSpec = {
  key: 'projectionSeed',
  description: 'seed of the random projection',
  type: 'integer',
  default: 0,
  min: 0,
};

/**
 * Reads a Hugging Face `config.json` for the LLaMA family (llama, mistral, qwen2) into a
 * ModelConfig. Defaults follow the transformers config classes; anything that would change
 * the forward pass in a way we do not implement (rope scalings other than linear, dynamic
 * and llama3, other activations, mixed sliding-window layers) is rejected here rather than
 * silently computed wrong.
 */
import * as fs from 'fs';
import * as path from 'path';
import { showValue, TdaError } from '../errors';
import { ModelConfig, RopeScaling } from './types';

export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2'] as const;

/** Accepts the model directory or the config.json path itself. */
export function readModelConfig(dirOrFile: string): ModelConfig {
  const file = isDir(dirOrFile) ? path.join(dirOrFile, 'config.json') : dirOrFile;
  if (!fs.existsSync(file)) throw new TdaError('model config not found (expected a Hugging Face config.json)', { file });
  return parseModelConfig(readJsonFile(file), file);
}

export function parseModelConfig(json: unknown, file: string): ModelConfig {
  if (!isObject(json)) throw new TdaError('config must be a JSON object', { file });
  const f = new Fields(json, file);

  const modelType = json.model_type;
  if (typeof modelType !== 'string' || !(SUPPORTED_MODEL_TYPES as readonly string[]).includes(modelType)) {
    throw new TdaError(`unsupported model type ${showValue(modelType)}; supported: ${SUPPORTED_MODEL_TYPES.join(', ')}`, {
      file,
      field: 'model_type',
    });
  }
  const type = modelType as ModelConfig['modelType'];

  const hiddenSize = f.posInt('hidden_size');
  const numHeads = f.posInt('num_attention_heads');
  const numKvHeads = f.posInt('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new TdaError(`num_attention_heads (${numHeads}) must be divisible by num_key_value_heads (${numKvHeads})`, {
      file,
      field: 'num_key_value_heads',
    });
  }
  const headDim = headDimOf(f, hiddenSize, numHeads);

  const hiddenAct = json.hidden_act ?? 'silu';
  if (hiddenAct !== 'silu') {
    throw new TdaError(`activation ${showValue(hiddenAct)} is not supported (only silu)`, { file, field: 'hidden_act' });
  }

  const rope = ropeOf(json, f, file);
  const attentionBias = f.bool('attention_bias', false);

  return {
    modelType: type,
    hiddenSize,
    intermediateSize: f.posInt('intermediate_size'),
    numLayers: f.posInt('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: f.posInt('vocab_size'),
    rmsNormEps: f.posNumber('rms_norm_eps', 1e-6),
    ropeTheta: rope.theta,
    ropeScaling: rope.scaling,
    maxPositionEmbeddings: f.posInt('max_position_embeddings', 2048),
    tieWordEmbeddings: f.bool('tie_word_embeddings', false),
    // Qwen2 always has q/k/v biases and never an o_proj bias; llama/mistral use attention_bias for all four.
    qkvBias: type === 'qwen2' ? true : attentionBias,
    oBias: type === 'qwen2' ? false : attentionBias,
    mlpBias: f.bool('mlp_bias', false),
    hiddenAct: 'silu',
    slidingWindow: slidingWindowOf(type, json, f, file),
  };
}

/** head_dim when given (may differ from hidden/heads), else hidden/heads which must divide exactly. */
function headDimOf(f: Fields, hiddenSize: number, numHeads: number): number {
  const given = f.json.head_dim !== undefined && f.json.head_dim !== null;
  if (!given && hiddenSize % numHeads !== 0) {
    throw new TdaError(`hidden_size (${hiddenSize}) is not divisible by num_attention_heads (${numHeads}) and no head_dim is given`, {
      file: f.file,
      field: 'num_attention_heads',
    });
  }
  const headDim = given ? f.posInt('head_dim') : hiddenSize / numHeads;
  // Rotary embeddings rotate pairs of features.
  if (headDim % 2 !== 0) throw new TdaError(`head dimension must be even, got ${headDim}`, { file: f.file, field: given ? 'head_dim' : 'num_attention_heads' });
  return headDim;
}

/**
 * rope_theta and the rotary scaling. Older configs write `rope_scaling: {type|rope_type,
 * factor, ...}` next to a top-level rope_theta; newer transformers write `rope_parameters`
 * with rope_theta inside. `{rope_type: "default"}` means no scaling. Types that change more
 * than the frequencies (yarn and longrope also scale the attention) are refused.
 */
function ropeOf(json: Record<string, unknown>, f: Fields, file: string): { theta: number; scaling: RopeScaling | null } {
  const found: { key: string; scaling: RopeScaling | null }[] = [];
  for (const key of ['rope_scaling', 'rope_parameters']) {
    const rs = json[key];
    if (rs === undefined || rs === null) continue;
    if (!isObject(rs)) throw new TdaError('must be an object or null', { file, field: key });
    found.push({ key, scaling: ropeScalingOf(new Fields(rs, file, `${key}.`), key) });
  }
  if (found.length === 2 && JSON.stringify(found[0].scaling) !== JSON.stringify(found[1].scaling)) {
    throw new TdaError('disagrees with rope_scaling; give one of them', { file, field: 'rope_parameters' });
  }
  const partial = [json.partial_rotary_factor, isObject(json.rope_parameters) ? json.rope_parameters.partial_rotary_factor : undefined];
  if (partial.some((p) => p !== undefined && p !== null && p !== 1)) {
    throw new TdaError('partial rotary embeddings are not supported (only 1)', { file, field: 'partial_rotary_factor' });
  }
  const params = json.rope_parameters;
  const theta =
    isObject(params) && params.rope_theta !== undefined && json.rope_theta === undefined
      ? new Fields(params, file, 'rope_parameters.').posNumber('rope_theta')
      : f.posNumber('rope_theta', 10000);
  return { theta, scaling: found.length > 0 ? found[0].scaling : null };
}

const ROPE_TYPES = ['default', 'linear', 'dynamic', 'llama3'];

function ropeScalingOf(f: Fields, key: string): RopeScaling | null {
  const kind = f.json.rope_type ?? f.json.type;
  if (typeof kind !== 'string' || !ROPE_TYPES.includes(kind)) {
    throw new TdaError(`rope scaling type ${showValue(kind)} is not supported (supported: ${ROPE_TYPES.join(', ')})`, { file: f.file, field: key });
  }
  if (kind === 'default') {
    if (key === 'rope_scaling' && f.json.factor !== undefined && f.json.factor !== 1) {
      throw new TdaError('rope type "default" with a factor other than 1 is contradictory', { file: f.file, field: 'rope_scaling.factor' });
    }
    return null;
  }
  const factor = f.posNumber('factor');
  if (kind === 'linear' || kind === 'dynamic') return { type: kind, factor };
  const lowFreqFactor = f.posNumber('low_freq_factor');
  const highFreqFactor = f.posNumber('high_freq_factor');
  // The blend between the two wavelengths divides by their difference.
  if (!(highFreqFactor > lowFreqFactor)) {
    throw new TdaError(`must be larger than low_freq_factor (${lowFreqFactor}), got ${highFreqFactor}`, { file: f.file, field: `${key}.high_freq_factor` });
  }
  return { type: 'llama3', factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: f.posInt('original_max_position_embeddings') };
}

/**
 * Mistral: `sliding_window` (transformers default 4096 when absent, null = full attention).
 * Qwen2: only with `use_sliding_window`, and then transformers applies it to layers
 * >= max_window_layers (default 28); we support all-or-nothing.
 */
function slidingWindowOf(type: ModelConfig['modelType'], json: Record<string, unknown>, f: Fields, file: string): number | null {
  if (type === 'llama') return null;
  if (type === 'mistral') {
    if (json.sliding_window === null) return null;
    return f.posInt('sliding_window', 4096);
  }
  if (!f.bool('use_sliding_window', false) || json.sliding_window === null) return null;
  const window = f.posInt('sliding_window', 4096);
  const numLayers = f.posInt('num_hidden_layers');
  const maxWindowLayers = f.nonNegInt('max_window_layers', 28);
  if (maxWindowLayers >= numLayers) return null; // no layer reaches the sliding-window range
  if (maxWindowLayers === 0) return window;
  throw new TdaError(
    `sliding window on only some layers (layers >= ${maxWindowLayers} of ${numLayers}) is not supported`,
    { file, field: 'max_window_layers' },
  );
}

/** Typed field readers that name the file and field in every error. */
class Fields {
  constructor(
    readonly json: Record<string, unknown>,
    readonly file: string,
    /** Prefix of nested fields in messages, e.g. `rope_scaling.`. */
    readonly prefix = '',
  ) {}

  private get(key: string, fallback: unknown): unknown {
    const v = this.json[key];
    if (v === undefined || v === null) {
      if (fallback === undefined) throw new TdaError('required field is missing', { file: this.file, field: this.prefix + key });
      return fallback;
    }
    return v;
  }

  posInt(key: string, fallback?: number): number {
    const v = this.get(key, fallback);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      throw new TdaError(`must be a positive integer, got ${showValue(v)}`, { file: this.file, field: this.prefix + key });
    }
    return v;
  }

  nonNegInt(key: string, fallback?: number): number {
    const v = this.get(key, fallback);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw new TdaError(`must be a non-negative integer, got ${showValue(v)}`, { file: this.file, field: this.prefix + key });
    }
    return v;
  }

  posNumber(key: string, fallback?: number): number {
    const v = this.get(key, fallback);
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new TdaError(`must be a positive number, got ${showValue(v)}`, { file: this.file, field: this.prefix + key });
    }
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.get(key, fallback);
    if (typeof v !== 'boolean') throw new TdaError(`must be true or false, got ${showValue(v)}`, { file: this.file, field: this.prefix + key });
    return v;
  }
}

// Small shared JSON helpers (also used by adapter.ts).

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

export function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TdaError(`cannot read file: ${(e as Error).message}`, { file });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TdaError(`invalid JSON: ${(e as Error).message}`, { file });
  }
}

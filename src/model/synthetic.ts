/**
 * Randomly initialised checkpoints in the Hugging Face layout, for benchmarks, tests and
 * as the starting point of from-scratch training. Weights ~ N(0, std^2) like HF's
 * `initializer_range`; norms are ones.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DType, TensorToWrite, writeSafetensors } from '../io/safetensors';
import { writeShardedSafetensors } from '../io/weights';
import { linearWeightShape } from './baseWeights';
import { hasBias, modulePath } from './modules';
import { Rng } from '../random';
import { LINEAR_MODULES, ModelConfig, RopeScaling } from './types';

/** The `config.json` a Hugging Face model of this architecture would carry. */
export function hfConfigJson(cfg: ModelConfig): Record<string, unknown> {
  const json: Record<string, unknown> = {
    architectures: [{ llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM' }[cfg.modelType]],
    model_type: cfg.modelType,
    hidden_size: cfg.hiddenSize,
    intermediate_size: cfg.intermediateSize,
    num_hidden_layers: cfg.numLayers,
    num_attention_heads: cfg.numHeads,
    num_key_value_heads: cfg.numKvHeads,
    head_dim: cfg.headDim,
    vocab_size: cfg.vocabSize,
    rms_norm_eps: cfg.rmsNormEps,
    rope_theta: cfg.ropeTheta,
    max_position_embeddings: cfg.maxPositionEmbeddings,
    hidden_act: 'silu',
    tie_word_embeddings: cfg.tieWordEmbeddings,
    torch_dtype: 'float32',
  };
  if (cfg.modelType === 'llama') {
    json.attention_bias = cfg.oBias;
    json.mlp_bias = cfg.mlpBias;
  }
  if (cfg.ropeScaling) json.rope_scaling = ropeScalingJson(cfg.ropeScaling);
  if (cfg.modelType !== 'llama') json.sliding_window = cfg.slidingWindow;
  if (cfg.modelType === 'qwen2') json.use_sliding_window = cfg.slidingWindow !== null;
  return json;
}

/** `rope_scaling` as transformers writes it. */
function ropeScalingJson(s: RopeScaling): Record<string, unknown> {
  if (s.type !== 'llama3') return { rope_type: s.type, factor: s.factor };
  return {
    rope_type: 'llama3',
    factor: s.factor,
    low_freq_factor: s.lowFreqFactor,
    high_freq_factor: s.highFreqFactor,
    original_max_position_embeddings: s.originalMaxPositionEmbeddings,
  };
}

/** A small LLaMA config with sensible defaults; override any field. */
export function llamaConfig(overrides: Partial<ModelConfig> = {}): ModelConfig {
  const base: ModelConfig = {
    modelType: 'llama',
    hiddenSize: 256,
    intermediateSize: 688,
    numLayers: 4,
    numHeads: 4,
    numKvHeads: 4,
    headDim: 64,
    vocabSize: 4000,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositionEmbeddings: 2048,
    tieWordEmbeddings: false,
    qkvBias: false,
    oBias: false,
    mlpBias: false,
    hiddenAct: 'silu',
    slidingWindow: null,
  };
  const cfg = { ...base, ...overrides };
  if (overrides.headDim === undefined) cfg.headDim = cfg.hiddenSize / cfg.numHeads;
  return cfg;
}

export { parameterCount } from './modules';

/** Random base weights under HF tensor names. */
export function randomBaseTensors(cfg: ModelConfig, seed: number, std = 0.02): Map<string, { shape: number[]; data: Float32Array }> {
  const rng = new Rng(seed);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  const normal = (shape: number[]) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = rng.normal() * std;
    return { shape, data };
  };
  const ones = (n: number) => ({ shape: [n], data: new Float32Array(n).fill(1) });
  out.set('model.embed_tokens.weight', normal([cfg.vocabSize, cfg.hiddenSize]));
  for (let l = 0; l < cfg.numLayers; l++) {
    out.set(`model.layers.${l}.input_layernorm.weight`, ones(cfg.hiddenSize));
    out.set(`model.layers.${l}.post_attention_layernorm.weight`, ones(cfg.hiddenSize));
    for (const m of LINEAR_MODULES) {
      const shape = linearWeightShape(cfg, m);
      out.set(`${modulePath(l, m)}.weight`, normal(shape));
      if (hasBias(cfg, m)) out.set(`${modulePath(l, m)}.bias`, normal([shape[0]]));
    }
  }
  out.set('model.norm.weight', ones(cfg.hiddenSize));
  if (!cfg.tieWordEmbeddings) out.set('lm_head.weight', normal([cfg.vocabSize, cfg.hiddenSize]));
  return out;
}

/** Writes `config.json` and `model.safetensors` (in `dtype`) for a random model into `dir`. */
export function writeRandomCheckpoint(dir: string, cfg: ModelConfig, seed: number, dtype: DType = 'F32'): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hfConfigJson(cfg), null, 1));
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, t] of randomBaseTensors(cfg, seed)) tensors[name] = { dtype, shape: t.shape, data: t.data };
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
}

/**
 * Model shapes for benchmarks and scale tests. `0.5b` is LLaMA-shaped (SwiGLU MLP, untied
 * LM head, 32k vocabulary) with 502M parameters: 2.0 GB in float32, 1.0 GB in BF16. The
 * named presets carry the architecture fields of the public checkpoints' `config.json`
 * (weights random): TinyLlama-1.1B (1.10B parameters), Llama-3.2-1B (1.24B, tied, llama3
 * rope scaling), Qwen2.5-1.5B (1.54B, tied, q/k/v biases) and Llama-2-7B (6.74B).
 */
export const SIZE_PRESETS: Record<string, Partial<ModelConfig>> = {
  '5m': { hiddenSize: 256, intermediateSize: 688, numLayers: 4, numHeads: 4, numKvHeads: 4, headDim: 64, vocabSize: 4000 },
  '50m': { hiddenSize: 512, intermediateSize: 1376, numLayers: 8, numHeads: 8, numKvHeads: 8, headDim: 64, vocabSize: 24000 },
  '0.5b': { hiddenSize: 1024, intermediateSize: 4096, numLayers: 26, numHeads: 16, numKvHeads: 16, headDim: 64, vocabSize: 32000 },
  'tinyllama-1.1b': {
    hiddenSize: 2048,
    intermediateSize: 5632,
    numLayers: 22,
    numHeads: 32,
    numKvHeads: 4,
    headDim: 64,
    vocabSize: 32000,
    rmsNormEps: 1e-5,
    maxPositionEmbeddings: 2048,
  },
  'llama-3.2-1b': {
    hiddenSize: 2048,
    intermediateSize: 8192,
    numLayers: 16,
    numHeads: 32,
    numKvHeads: 8,
    headDim: 64,
    vocabSize: 128256,
    rmsNormEps: 1e-5,
    ropeTheta: 500000,
    ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
    maxPositionEmbeddings: 131072,
    tieWordEmbeddings: true,
  },
  'qwen2.5-1.5b': {
    modelType: 'qwen2',
    hiddenSize: 1536,
    intermediateSize: 8960,
    numLayers: 28,
    numHeads: 12,
    numKvHeads: 2,
    headDim: 128,
    vocabSize: 151936,
    rmsNormEps: 1e-6,
    ropeTheta: 1e6,
    maxPositionEmbeddings: 131072,
    tieWordEmbeddings: true,
    qkvBias: true,
  },
  'llama2-7b': {
    hiddenSize: 4096,
    intermediateSize: 11008,
    numLayers: 32,
    numHeads: 32,
    numKvHeads: 32,
    headDim: 128,
    vocabSize: 32000,
    rmsNormEps: 1e-5,
    maxPositionEmbeddings: 4096,
  },
};

/** 32-bit FNV-1a of a string, to give every tensor its own seed. */
function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

const TORCH_DTYPE: Partial<Record<DType, string>> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

export interface LargeCheckpointOptions {
  dtype?: DType;
  /** Bytes per shard file (default 1 GB, as transformers' save_pretrained shards). */
  maxShardBytes?: number;
  std?: number;
  /** Called after each tensor is made: how many are made, of how many. */
  onTensor?: (made: number, total: number) => void;
}

/**
 * Writes a random checkpoint of any size in the Hugging Face layout (config.json, sharded
 * model-0000i-of-0000n.safetensors and the index). Each tensor is made only when written
 * and seeded by (seed, its name), so memory holds one tensor at a time and the values do
 * not depend on the write order. (writeRandomCheckpoint draws all tensors from one stream.)
 */
export function writeLargeRandomCheckpoint(dir: string, cfg: ModelConfig, seed: number, opts: LargeCheckpointOptions = {}): { shards: string[]; index: string } {
  const { dtype = 'BF16', maxShardBytes = 1e9, std = 0.02 } = opts;
  fs.mkdirSync(dir, { recursive: true });
  const json = { ...hfConfigJson(cfg), torch_dtype: TORCH_DTYPE[dtype] ?? 'float32' };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(json, null, 1));
  const tensors: Record<string, TensorToWrite> = {};
  let made = 0;
  const add = (name: string, shape: number[], fill: 'normal' | 'ones') => {
    tensors[name] = {
      dtype,
      shape,
      data: () => {
        const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
        if (fill === 'ones') data.fill(1);
        else {
          const rng = new Rng((seed * 0x9e3779b1 + nameHash(name)) >>> 0);
          for (let i = 0; i < data.length; i++) data[i] = rng.normal() * std;
        }
        opts.onTensor?.(++made, Object.keys(tensors).length);
        return data;
      },
    };
  };
  add('model.embed_tokens.weight', [cfg.vocabSize, cfg.hiddenSize], 'normal');
  for (let l = 0; l < cfg.numLayers; l++) {
    add(`model.layers.${l}.input_layernorm.weight`, [cfg.hiddenSize], 'ones');
    add(`model.layers.${l}.post_attention_layernorm.weight`, [cfg.hiddenSize], 'ones');
    for (const m of LINEAR_MODULES) {
      const shape = linearWeightShape(cfg, m);
      add(`${modulePath(l, m)}.weight`, shape, 'normal');
      if (hasBias(cfg, m)) add(`${modulePath(l, m)}.bias`, [shape[0]], 'normal');
    }
  }
  add('model.norm.weight', [cfg.hiddenSize], 'ones');
  if (!cfg.tieWordEmbeddings) add('lm_head.weight', [cfg.vocabSize, cfg.hiddenSize], 'normal');
  return writeShardedSafetensors(dir, tensors, { maxShardBytes });
}

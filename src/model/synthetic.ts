/**
 * Randomly initialised checkpoints in the Hugging Face layout, for benchmarks, tests and
 * as the starting point of from-scratch training. Weights ~ N(0, std^2) like HF's
 * `initializer_range`; norms are ones.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DType, TensorToWrite, writeSafetensors } from '../io/safetensors';
import { linearWeightShape } from './baseWeights';
import { modulePath } from './modules';
import { Rng } from './random';
import { LINEAR_MODULES, ModelConfig } from './types';

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
  if (cfg.modelType !== 'llama') json.sliding_window = cfg.slidingWindow;
  if (cfg.modelType === 'qwen2') json.use_sliding_window = cfg.slidingWindow !== null;
  return json;
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

export function parameterCount(cfg: ModelConfig): number {
  let n = cfg.vocabSize * cfg.hiddenSize * (cfg.tieWordEmbeddings ? 1 : 2) + cfg.hiddenSize;
  for (const m of LINEAR_MODULES) {
    const [o, i] = linearWeightShape(cfg, m);
    n += cfg.numLayers * o * i;
  }
  return n + cfg.numLayers * 2 * cfg.hiddenSize;
}

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
      const attn = m === 'q_proj' || m === 'k_proj' || m === 'v_proj';
      const biased = attn ? cfg.qkvBias : m === 'o_proj' ? cfg.oBias : cfg.mlpBias;
      if (biased) out.set(`${modulePath(l, m)}.bias`, normal([shape[0]]));
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

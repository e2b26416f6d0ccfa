/** Names and shapes of a LLaMA-family model's linear layers, shared by weights and adapters. */
import { LINEAR_MODULES, LinearModule, ModelConfig } from './types';

/** HF module path of a linear layer, e.g. `model.layers.0.self_attn.q_proj`. */
export function modulePath(layer: number, module: LinearModule): string {
  const group = module === 'gate_proj' || module === 'up_proj' || module === 'down_proj' ? 'mlp' : 'self_attn';
  return `model.layers.${layer}.${group}.${module}`;
}

/** Every linear module of the model, in layer order then LINEAR_MODULES order. */
export function allModules(model: ModelConfig): { path: string; layer: number; module: LinearModule }[] {
  const out: { path: string; layer: number; module: LinearModule }[] = [];
  for (let layer = 0; layer < model.numLayers; layer++) {
    for (const module of LINEAR_MODULES) out.push({ path: modulePath(layer, module), layer, module });
  }
  return out;
}

/** in/out features of a linear layer (its weight is [out, in]). */
export function linearShape(cfg: ModelConfig, module: LinearModule): { inFeatures: number; outFeatures: number } {
  const q = cfg.numHeads * cfg.headDim;
  const kv = cfg.numKvHeads * cfg.headDim;
  switch (module) {
    case 'q_proj':
      return { inFeatures: cfg.hiddenSize, outFeatures: q };
    case 'k_proj':
    case 'v_proj':
      return { inFeatures: cfg.hiddenSize, outFeatures: kv };
    case 'o_proj':
      return { inFeatures: q, outFeatures: cfg.hiddenSize };
    case 'gate_proj':
    case 'up_proj':
      return { inFeatures: cfg.hiddenSize, outFeatures: cfg.intermediateSize };
    case 'down_proj':
      return { inFeatures: cfg.intermediateSize, outFeatures: cfg.hiddenSize };
  }
}


/** Parameters of the base model (weights, norms, biases), as the config describes it. */
export function parameterCount(cfg: ModelConfig): number {
  let n = cfg.vocabSize * cfg.hiddenSize * (cfg.tieWordEmbeddings ? 1 : 2) + cfg.hiddenSize;
  for (const m of LINEAR_MODULES) {
    const { inFeatures, outFeatures } = linearShape(cfg, m);
    n += cfg.numLayers * inFeatures * outFeatures;
    if (hasBias(cfg, m)) n += cfg.numLayers * outFeatures;
  }
  return n + cfg.numLayers * 2 * cfg.hiddenSize;
}

/** Whether the config gives this linear layer a bias (Qwen2: q/k/v; attention_bias / mlp_bias flags). */
export function hasBias(cfg: ModelConfig, module: LinearModule): boolean {
  if (module === 'q_proj' || module === 'k_proj' || module === 'v_proj') return cfg.qkvBias;
  if (module === 'o_proj') return cfg.oBias;
  return cfg.mlpBias;
}

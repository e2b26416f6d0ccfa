/** Architecture settings read from a Hugging Face `config.json` (LLaMA / Mistral / Qwen2). */
export interface ModelConfig {
  modelType: 'llama' | 'mistral' | 'qwen2';
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  /** Grouped-query attention: K/V heads, each shared by numHeads / numKvHeads query heads. */
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** Rotary scaling (`rope_scaling` / `rope_parameters`); absent or null = plain RoPE. */
  ropeScaling?: RopeScaling | null;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry a bias (always for qwen2; `attention_bias` for llama). */
  qkvBias: boolean;
  /** o_proj carries a bias (llama `attention_bias`). */
  oBias: boolean;
  /** MLP projections carry a bias (llama `mlp_bias`). */
  mlpBias: boolean;
  hiddenAct: 'silu';
  /** Mistral/Qwen2 sliding window; null = full causal attention. */
  slidingWindow: number | null;
}

/**
 * The rotary scalings transformers implements for these families (its `rope_type`):
 * `linear` divides the frequencies (i.e. the positions) by `factor`; `dynamic` (NTK-aware)
 * raises theta once a sequence is longer than max_position_embeddings; `llama3` divides the
 * low frequencies by `factor`, keeps the high ones and blends the band in between.
 */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'dynamic'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

/** The linear layers LoRA can target, named as in Hugging Face checkpoints. */
export const LINEAR_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type LinearModule = (typeof LINEAR_MODULES)[number];

/** PEFT `adapter_config.json`, the fields that matter for LoRA. */
export interface LoraConfig {
  r: number;
  loraAlpha: number;
  /** A list of module names, or a regex string matched against full module paths (PEFT semantics). */
  targetModules: string[] | string;
  loraDropout: number;
  useRslora: boolean;
  /** Optional restriction to some layer indices (PEFT `layers_to_transform`). */
  layersToTransform: number[] | null;
  baseModelNameOrPath: string | null;
  /** scale applied to (x A^T) B^T: alpha / r, or alpha / sqrt(r) with rsLoRA. */
  scaling: number;
}

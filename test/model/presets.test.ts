import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openWeights } from '../../src/io/weights';
import { loadAdapter, saveAdapter } from '../../src/model/adapter';
import { parseModelConfig, readModelConfig } from '../../src/model/config';
import { LlamaModel } from '../../src/model/llama';
import { computeLosses } from '../../src/model/loss';
import { randomAdapter } from '../../src/model/randomAdapter';
import { llamaConfig, parameterCount, SIZE_PRESETS, writeLargeRandomCheckpoint } from '../../src/model/synthetic';
import { tmpDir } from '../helpers/fixtures';

/** The architecture fields of the public checkpoints' config.json files (Hugging Face hub). */
const PUBLIC_CONFIGS: Record<string, Record<string, unknown>> = {
  // TinyLlama/TinyLlama-1.1B-Chat-v1.0
  'tinyllama-1.1b': {
    architectures: ['LlamaForCausalLM'],
    attention_bias: false,
    hidden_act: 'silu',
    hidden_size: 2048,
    intermediate_size: 5632,
    max_position_embeddings: 2048,
    model_type: 'llama',
    num_attention_heads: 32,
    num_hidden_layers: 22,
    num_key_value_heads: 4,
    rms_norm_eps: 1e-5,
    rope_scaling: null,
    rope_theta: 10000.0,
    tie_word_embeddings: false,
    vocab_size: 32000,
  },
  // meta-llama/Llama-3.2-1B
  'llama-3.2-1b': {
    architectures: ['LlamaForCausalLM'],
    attention_bias: false,
    head_dim: 64,
    hidden_act: 'silu',
    hidden_size: 2048,
    intermediate_size: 8192,
    max_position_embeddings: 131072,
    mlp_bias: false,
    model_type: 'llama',
    num_attention_heads: 32,
    num_hidden_layers: 16,
    num_key_value_heads: 8,
    rms_norm_eps: 1e-5,
    rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
    rope_theta: 500000.0,
    tie_word_embeddings: true,
    vocab_size: 128256,
  },
  // Qwen/Qwen2.5-1.5B
  'qwen2.5-1.5b': {
    architectures: ['Qwen2ForCausalLM'],
    hidden_act: 'silu',
    hidden_size: 1536,
    intermediate_size: 8960,
    max_position_embeddings: 131072,
    max_window_layers: 28,
    model_type: 'qwen2',
    num_attention_heads: 12,
    num_hidden_layers: 28,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000.0,
    sliding_window: 131072,
    tie_word_embeddings: true,
    use_sliding_window: false,
    vocab_size: 151936,
  },
  // meta-llama/Llama-2-7b-hf
  'llama2-7b': {
    architectures: ['LlamaForCausalLM'],
    hidden_act: 'silu',
    hidden_size: 4096,
    intermediate_size: 11008,
    max_position_embeddings: 4096,
    model_type: 'llama',
    num_attention_heads: 32,
    num_hidden_layers: 32,
    num_key_value_heads: 32,
    rms_norm_eps: 1e-5,
    rope_scaling: null,
    tie_word_embeddings: false,
    vocab_size: 32000,
  },
};

/** Parameter counts the model cards and papers give. */
const PUBLIC_PARAMETERS: Record<string, number> = {
  'tinyllama-1.1b': 1_100_048_384,
  'llama-3.2-1b': 1_235_814_400,
  'qwen2.5-1.5b': 1_543_714_304,
  'llama2-7b': 6_738_415_616,
};

describe('size presets with the public shapes', () => {
  let work: string;
  before(() => (work = tmpDir()));
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  for (const name of Object.keys(PUBLIC_CONFIGS)) {
    it(`${name}: the config a public checkpoint carries, and its parameter count`, () => {
      const cfg = llamaConfig(SIZE_PRESETS[name]);
      assert.deepEqual(cfg, parseModelConfig(PUBLIC_CONFIGS[name], `${name}/config.json`));
      assert.equal(parameterCount(cfg), PUBLIC_PARAMETERS[name]);
    });

    it(`${name}: the writer's layout (config, shards, index, tied head, biases) on a shrunken copy`, () => {
      // The preset's heads, head_dim, rope and tying with a tiny width, depth and vocabulary.
      const cfg = llamaConfig({ ...SIZE_PRESETS[name], numLayers: 2, hiddenSize: 64, intermediateSize: 96, vocabSize: 100 });
      const dir = path.join(work, name);
      let made = 0;
      const { shards } = writeLargeRandomCheckpoint(dir, cfg, 7, { dtype: 'BF16', maxShardBytes: 300e3, onTensor: () => made++ });
      assert.ok(shards.length > 1);
      assert.ok(fs.existsSync(path.join(dir, 'model.safetensors.index.json')));
      assert.deepEqual(readModelConfig(dir), cfg);
      assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).torch_dtype, 'bfloat16');
      const weights = openWeights(dir);
      const names = weights.names();
      // q/k/v/o follow head_dim, not hidden / heads (64 / 32 = 2 here).
      assert.deepEqual(weights.info('model.layers.0.self_attn.q_proj.weight').shape, [cfg.numHeads * cfg.headDim, 64]);
      assert.deepEqual(weights.info('model.layers.0.self_attn.v_proj.weight').shape, [cfg.numKvHeads * cfg.headDim, 64]);
      assert.deepEqual(weights.info('model.layers.0.self_attn.o_proj.weight').shape, [64, cfg.numHeads * cfg.headDim]);
      weights.close();
      assert.equal(made, names.length, 'each tensor made once');
      assert.equal(names.includes('lm_head.weight'), !cfg.tieWordEmbeddings);
      assert.equal(names.includes('model.layers.1.self_attn.k_proj.bias'), cfg.qkvBias);
      assert.ok(!names.includes('model.layers.0.self_attn.o_proj.bias'));
      const model = LlamaModel.load(dir);
      const losses = computeLosses(model, null, [{ inputIds: [1, 5, 9, 13, 17, 21], promptLength: 2 }]);
      model.dispose();
      assert.ok(Number.isFinite(losses[0]) && losses[0] > 0);
    });
  }

  it('random adapters: r=8 on q/k/v/o by default, seeded, B non-zero, readable as a PEFT adapter', () => {
    const cfg = llamaConfig({ ...SIZE_PRESETS['tinyllama-1.1b'], numLayers: 2, hiddenSize: 64, intermediateSize: 96, vocabSize: 100 });
    const a = randomAdapter(cfg, { seed: 5, bStd: 0.02 });
    assert.equal(a.config.r, 8);
    assert.equal(a.config.scaling, 2);
    assert.deepEqual(a.modules.map((m) => m.module), ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'q_proj', 'k_proj', 'v_proj', 'o_proj']);
    // k_proj: 4 K/V heads of head_dim 64 from a 64-wide model.
    assert.deepEqual([a.modules[1].inFeatures, a.modules[1].outFeatures], [64, 256]);
    const allB = a.modules.flatMap((m) => [...m.B]);
    const std = Math.sqrt(allB.reduce((s, x) => s + x * x, 0) / allB.length);
    assert.ok(Math.abs(std - 0.02) < 0.002, `B std ${std}`);
    assert.ok(a.modules.every((m) => m.A.every((x) => Math.abs(x) <= 1 / Math.sqrt(m.inFeatures))));
    assert.deepEqual(randomAdapter(cfg, { seed: 5, bStd: 0.02 }).modules[3].B, a.modules[3].B);
    assert.notDeepEqual(randomAdapter(cfg, { seed: 6, bStd: 0.02 }).modules[3].B, a.modules[3].B);
    const dir = path.join(work, 'adapter');
    saveAdapter(dir, a);
    const back = loadAdapter(dir, cfg);
    assert.deepEqual(back.modules[7].B, a.modules[7].B);
  });
});

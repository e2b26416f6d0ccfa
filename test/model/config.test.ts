import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseModelConfig, readModelConfig } from '../../src/model/config';
import { FIXTURE, tempDirs, throwsTda, writeJson } from '../helpers/errors';

const F = 'cfg/config.json';

/** Small but realistic shapes of the three families (field sets as transformers writes them). */
const MISTRAL = {
  architectures: ['MistralForCausalLM'],
  model_type: 'mistral',
  hidden_size: 128,
  intermediate_size: 344,
  num_hidden_layers: 2,
  num_attention_heads: 8,
  num_key_value_heads: 2,
  vocab_size: 1000,
  rms_norm_eps: 1e-5,
  rope_theta: 1000000.0,
  max_position_embeddings: 32768,
  sliding_window: 4096,
  hidden_act: 'silu',
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
};

const QWEN2 = {
  architectures: ['Qwen2ForCausalLM'],
  model_type: 'qwen2',
  hidden_size: 96,
  intermediate_size: 256,
  num_hidden_layers: 3,
  num_attention_heads: 6,
  num_key_value_heads: 2,
  vocab_size: 1500,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  max_position_embeddings: 32768,
  max_window_layers: 21,
  sliding_window: 32768,
  use_sliding_window: false,
  hidden_act: 'silu',
  tie_word_embeddings: true,
  bos_token_id: 151643,
  eos_token_id: 151643,
};

const LLAMA = {
  model_type: 'llama',
  hidden_size: 64,
  intermediate_size: 172,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  vocab_size: 97,
};

describe('model config', () => {
  const tmp = tempDirs();
  afterEach(() => tmp.cleanup());

  it('reads the llama-tiny fixture from the directory or the file', () => {
    const c = readModelConfig(FIXTURE);
    assert.deepEqual(c, {
      modelType: 'llama',
      hiddenSize: 64,
      intermediateSize: 172,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: 2,
      headDim: 16,
      vocabSize: 97,
      rmsNormEps: 1e-6,
      ropeTheta: 10000,
      ropeScaling: null,
      maxPositionEmbeddings: 128,
      tieWordEmbeddings: false,
      qkvBias: false,
      oBias: false,
      mlpBias: false,
      hiddenAct: 'silu',
      slidingWindow: null,
    });
    assert.deepEqual(readModelConfig(path.join(FIXTURE, 'config.json')), c);
  });

  it('applies transformers defaults for optional llama fields', () => {
    const c = parseModelConfig(LLAMA, F);
    assert.equal(c.numKvHeads, 4);
    assert.equal(c.headDim, 16);
    assert.equal(c.rmsNormEps, 1e-6);
    assert.equal(c.ropeTheta, 10000);
    assert.equal(c.maxPositionEmbeddings, 2048);
    assert.equal(c.tieWordEmbeddings, false);
    assert.equal(c.slidingWindow, null);
  });

  it('llama attention_bias / mlp_bias / head_dim', () => {
    const c = parseModelConfig({ ...LLAMA, attention_bias: true, mlp_bias: true, head_dim: 32 }, F);
    assert.equal(c.qkvBias, true);
    assert.equal(c.oBias, true);
    assert.equal(c.mlpBias, true);
    assert.equal(c.headDim, 32);
  });

  it('parses a mistral config (GQA, rope_theta 1e6, sliding window)', () => {
    const c = parseModelConfig(MISTRAL, F);
    assert.equal(c.modelType, 'mistral');
    assert.equal(c.numHeads, 8);
    assert.equal(c.numKvHeads, 2);
    assert.equal(c.headDim, 16);
    assert.equal(c.ropeTheta, 1e6);
    assert.equal(c.rmsNormEps, 1e-5);
    assert.equal(c.qkvBias, false);
    assert.equal(c.oBias, false);
    assert.equal(c.slidingWindow, 4096);
    assert.equal(parseModelConfig({ ...MISTRAL, sliding_window: null }, F).slidingWindow, null);
    const { sliding_window: _, ...noWindow } = MISTRAL;
    assert.equal(parseModelConfig(noWindow, F).slidingWindow, 4096); // MistralConfig default
  });

  it('parses a qwen2 config (q/k/v bias, no o bias, tied embeddings)', () => {
    const c = parseModelConfig(QWEN2, F);
    assert.equal(c.modelType, 'qwen2');
    assert.equal(c.qkvBias, true);
    assert.equal(c.oBias, false);
    assert.equal(c.mlpBias, false);
    assert.equal(c.numKvHeads, 2);
    assert.equal(c.headDim, 16);
    assert.equal(c.ropeTheta, 1e6);
    assert.equal(c.tieWordEmbeddings, true);
    assert.equal(c.slidingWindow, null, 'use_sliding_window false');
    // attention_bias is a llama field; qwen2 ignores it.
    assert.equal(parseModelConfig({ ...QWEN2, attention_bias: true }, F).oBias, false);
  });

  it('qwen2 sliding window: all layers or none', () => {
    assert.equal(parseModelConfig({ ...QWEN2, use_sliding_window: true, sliding_window: 1024, max_window_layers: 0 }, F).slidingWindow, 1024);
    // max_window_layers >= num layers: no layer slides (transformers semantics).
    assert.equal(parseModelConfig({ ...QWEN2, use_sliding_window: true, sliding_window: 1024 }, F).slidingWindow, null);
    throwsTda(() => parseModelConfig({ ...QWEN2, use_sliding_window: true, max_window_layers: 1 }, F), F, "'max_window_layers'");
  });

  it('rejects unknown model types, listing the supported ones', () => {
    const e = throwsTda(() => parseModelConfig({ ...LLAMA, model_type: 'gpt2' }, F), F, "'model_type'", 'gpt2', 'llama, mistral, qwen2');
    assert.equal(e.field, 'model_type');
    throwsTda(() => parseModelConfig({ ...LLAMA, model_type: undefined }, F), F, "'model_type'");
  });

  it('rejects missing or invalid fields, naming them', () => {
    const { hidden_size: _, ...noHidden } = LLAMA;
    throwsTda(() => parseModelConfig(noHidden, F), F, "'hidden_size'", 'missing');
    throwsTda(() => parseModelConfig({ ...LLAMA, num_hidden_layers: 2.5 }, F), F, "'num_hidden_layers'", 'positive integer');
    throwsTda(() => parseModelConfig({ ...LLAMA, vocab_size: 0 }, F), F, "'vocab_size'");
    throwsTda(() => parseModelConfig({ ...LLAMA, intermediate_size: '172' }, F), F, "'intermediate_size'");
    throwsTda(() => parseModelConfig({ ...LLAMA, rms_norm_eps: -1 }, F), F, "'rms_norm_eps'");
    throwsTda(() => parseModelConfig({ ...LLAMA, tie_word_embeddings: 'yes' }, F), F, "'tie_word_embeddings'");
    throwsTda(() => parseModelConfig([LLAMA], F), F, 'object');
  });

  it('rejects a bad GQA ratio and heads that do not divide hidden', () => {
    throwsTda(() => parseModelConfig({ ...LLAMA, num_key_value_heads: 3 }, F), F, "'num_key_value_heads'", 'divisible');
    throwsTda(() => parseModelConfig({ ...LLAMA, num_attention_heads: 5 }, F), F, "'num_attention_heads'", 'divisible');
    // An explicit head_dim lifts the divisibility requirement (as in transformers).
    assert.equal(parseModelConfig({ ...LLAMA, num_attention_heads: 5, num_key_value_heads: 1, head_dim: 16 }, F).headDim, 16);
  });

  it('reads llama3 rope scaling (Llama-3.2-1B config)', () => {
    const rope_scaling = { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' };
    const c = parseModelConfig({ ...LLAMA, rope_theta: 500000.0, rope_scaling }, F);
    assert.deepEqual(c.ropeScaling, { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    assert.equal(c.ropeTheta, 500000);
    throwsTda(() => parseModelConfig({ ...LLAMA, rope_scaling: { ...rope_scaling, low_freq_factor: undefined } }, F), F, "'rope_scaling.low_freq_factor'", 'missing');
    throwsTda(() => parseModelConfig({ ...LLAMA, rope_scaling: { ...rope_scaling, original_max_position_embeddings: 8192.5 } }, F), "'rope_scaling.original_max_position_embeddings'");
    throwsTda(() => parseModelConfig({ ...LLAMA, rope_scaling: { ...rope_scaling, high_freq_factor: 1 } }, F), "'rope_scaling.high_freq_factor'", 'larger than low_freq_factor');
  });

  it('reads linear and dynamic rope scaling, in the old (type) and new (rope_type) spelling', () => {
    assert.deepEqual(parseModelConfig({ ...LLAMA, rope_scaling: { type: 'linear', factor: 2.0 } }, F).ropeScaling, { type: 'linear', factor: 2 });
    assert.deepEqual(parseModelConfig({ ...LLAMA, rope_scaling: { rope_type: 'dynamic', factor: 4 } }, F).ropeScaling, { type: 'dynamic', factor: 4 });
    throwsTda(() => parseModelConfig({ ...LLAMA, rope_scaling: { type: 'linear' } }, F), F, "'rope_scaling.factor'", 'missing');
    throwsTda(() => parseModelConfig({ ...LLAMA, rope_scaling: { type: 'dynamic', factor: -1 } }, F), "'rope_scaling.factor'", 'positive');
  });

  it('reads rope_parameters (newer transformers: rope_theta inside)', () => {
    const c = parseModelConfig({ ...LLAMA, rope_parameters: { rope_type: 'linear', factor: 8, rope_theta: 5e5 } }, F);
    assert.deepEqual(c.ropeScaling, { type: 'linear', factor: 8 });
    assert.equal(c.ropeTheta, 5e5);
    // Both spellings may be present; they must agree.
    const same = parseModelConfig({ ...LLAMA, rope_scaling: { type: 'linear', factor: 8 }, rope_parameters: { rope_type: 'linear', factor: 8, rope_theta: 5e5 } }, F);
    assert.deepEqual(same.ropeScaling, { type: 'linear', factor: 8 });
    throwsTda(
      () => parseModelConfig({ ...LLAMA, rope_scaling: { type: 'linear', factor: 8 }, rope_parameters: { rope_type: 'dynamic', factor: 8 } }, F),
      F,
      "'rope_parameters'",
      'disagrees',
    );
  });

  it('refuses other rope types naming the field, and accepts the "default" one', () => {
    throwsTda(() => parseModelConfig({ ...LLAMA, rope_scaling: { rope_type: 'yarn', factor: 4.0 } }, F), F, "'rope_scaling'", 'rope scaling type "yarn" is not supported', 'llama3');
    throwsTda(() => parseModelConfig({ ...LLAMA, rope_parameters: { rope_type: 'longrope', rope_theta: 1e4 } }, F), "'rope_parameters'", '"longrope"');
    throwsTda(() => parseModelConfig({ ...LLAMA, rope_scaling: { factor: 2.0 } }, F), "'rope_scaling'", 'undefined');
    throwsTda(() => parseModelConfig({ ...LLAMA, rope_scaling: 'linear' }, F), "'rope_scaling'", 'object');
    throwsTda(() => parseModelConfig({ ...LLAMA, rope_scaling: { type: 'default', factor: 2 } }, F), "'rope_scaling.factor'");
    throwsTda(() => parseModelConfig({ ...LLAMA, partial_rotary_factor: 0.5 }, F), "'partial_rotary_factor'");
    assert.equal(parseModelConfig({ ...LLAMA, rope_scaling: null }, F).ropeScaling, null);
    assert.equal(parseModelConfig({ ...LLAMA, rope_scaling: { rope_type: 'default' } }, F).ropeScaling, null);
    assert.equal(parseModelConfig({ ...LLAMA, rope_parameters: { rope_type: 'default', rope_theta: 5e5 } }, F).ropeTheta, 5e5);
  });

  it('head_dim must be even (rotary embeddings rotate pairs)', () => {
    throwsTda(() => parseModelConfig({ ...LLAMA, head_dim: 15 }, F), F, "'head_dim'", 'even');
    throwsTda(() => parseModelConfig({ ...LLAMA, hidden_size: 60 }, F), "'num_attention_heads'", 'even');
  });

  it('rejects activations other than silu', () => {
    throwsTda(() => parseModelConfig({ ...LLAMA, hidden_act: 'gelu' }, F), F, "'hidden_act'", 'gelu');
  });

  it('names the path when config.json is missing or not JSON', () => {
    const dir = tmp.make();
    throwsTda(() => readModelConfig(dir), path.join(dir, 'config.json'), 'not found');
    writeJson(path.join(dir, 'config.json'), LLAMA);
    assert.equal(readModelConfig(dir).hiddenSize, 64);
    fs.writeFileSync(path.join(dir, 'config.json'), '{"model_type": ');
    throwsTda(() => readModelConfig(dir), path.join(dir, 'config.json'), 'invalid JSON');
  });
});

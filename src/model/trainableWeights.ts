/**
 * Base weights as tf.Variables, for pretraining a model from scratch, and their export
 * back to the Hugging Face layout. Linear weights are kept transposed (wT = W^T) because
 * that is the layout the forward pass multiplies by.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { TdaError } from '../errors';
import { DType, TensorToWrite, writeSafetensors } from '../io/safetensors';
import { download } from '../runtime/ops';
import { BaseWeights, LayerWeights } from './baseWeights';
import { LlamaModel } from './llama';
import { modulePath } from './modules';
import { hfConfigJson, randomBaseTensors } from './synthetic';
import { LINEAR_MODULES, LinearModule, ModelConfig } from './types';

/** A variable that owns its value: tf.variable() shares the initial tensor's data without taking ownership. */
function ownedVariable(initial: tf.Tensor, name: string): tf.Variable {
  const v = tf.variable(initial, true, name);
  initial.dispose();
  return v;
}

/** A trainable model initialised with N(0, std^2) weights (seeded). */
export function createTrainableModel(config: ModelConfig, seed: number, std = 0.02): LlamaModel {
  if (config.tieWordEmbeddings) throw new TdaError('trainable models must have untied embeddings', { field: 'tie_word_embeddings' });
  const t = randomBaseTensors(config, seed, std);
  const variable = (name: string) => {
    const x = t.get(name);
    if (!x) throw new TdaError('missing initial tensor', { field: name });
    return ownedVariable(tf.tensor(x.data, x.shape), name);
  };
  const transposedVariable = (name: string) => {
    const x = t.get(name)!;
    return ownedVariable(tf.tidy(() => tf.transpose(tf.tensor2d(x.data, x.shape as [number, number]))), name) as tf.Variable<tf.Rank.R2>;
  };
  const layers: LayerWeights[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    const linear = {} as LayerWeights['linear'];
    const bias: LayerWeights['bias'] = {};
    for (const m of LINEAR_MODULES) {
      const wT = transposedVariable(`${modulePath(l, m)}.weight`);
      linear[m] = { wT };
      if (t.has(`${modulePath(l, m)}.bias`)) bias[m] = variable(`${modulePath(l, m)}.bias`) as tf.Variable<tf.Rank.R1>;
    }
    layers.push({
      inputNorm: variable(`model.layers.${l}.input_layernorm.weight`) as tf.Variable<tf.Rank.R1>,
      postAttentionNorm: variable(`model.layers.${l}.post_attention_layernorm.weight`) as tf.Variable<tf.Rank.R1>,
      linear,
      bias,
    });
  }
  const lmHeadT = transposedVariable('lm_head.weight');
  const weights: BaseWeights = {
    embed: variable('model.embed_tokens.weight') as tf.Variable<tf.Rank.R2>,
    layers,
    finalNorm: variable('model.norm.weight') as tf.Variable<tf.Rank.R1>,
    lmHead: { wT: lmHeadT },
  };
  return new LlamaModel(config, weights, { trainable: true });
}

/** Every variable of a trainable model, for the optimizer. */
export function trainableVariables(model: LlamaModel): tf.Variable[] {
  const w = model.weights;
  const out: tf.Tensor[] = [w.embed as tf.Tensor2D, w.finalNorm, w.lmHead.wT!];
  for (const layer of w.layers) {
    out.push(layer.inputNorm, layer.postAttentionNorm);
    for (const m of LINEAR_MODULES) {
      out.push(layer.linear[m].wT!);
      const b = layer.bias[m as LinearModule];
      if (b) out.push(b);
    }
  }
  return out as tf.Variable[];
}

/** The model's current weights under HF names and layouts ([out, in] linear weights). */
export function baseWeightTensors(model: LlamaModel): Map<string, { shape: number[]; data: Float32Array }> {
  const w = model.weights;
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  const put = (name: string, t: tf.Tensor) => out.set(name, { shape: t.shape, data: download(() => tf.clone(t)) });
  const putLinear = (name: string, wT: tf.Tensor2D) => {
    out.set(name, { shape: [wT.shape[1], wT.shape[0]], data: download(() => tf.transpose(wT)) });
  };
  put('model.embed_tokens.weight', w.embed as tf.Tensor2D);
  w.layers.forEach((layer, l) => {
    put(`model.layers.${l}.input_layernorm.weight`, layer.inputNorm);
    put(`model.layers.${l}.post_attention_layernorm.weight`, layer.postAttentionNorm);
    for (const m of LINEAR_MODULES) {
      putLinear(`${modulePath(l, m)}.weight`, layer.linear[m].wT!);
      const b = layer.bias[m];
      if (b) put(`${modulePath(l, m)}.bias`, b);
    }
  });
  put('model.norm.weight', w.finalNorm);
  if (!model.config.tieWordEmbeddings) putLinear('lm_head.weight', w.lmHead.wT!);
  return out;
}

/** Writes `config.json` and `model.safetensors` in the Hugging Face layout. */
export function saveBaseModel(dir: string, model: LlamaModel, dtype: DType = 'F32'): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hfConfigJson(model.config), null, 2) + '\n');
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, t] of baseWeightTensors(model)) tensors[name] = { dtype, shape: t.shape, data: t.data };
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
}

/**
 * Moving a model and an adapter to worker threads: every weight tensor's values are packed
 * into one SharedArrayBuffer (read by all workers, copied once into each worker's own
 * tfjs heap). Linear weights travel as W^T, the one layout both trainable and frozen
 * models keep them in.
 */
import * as tf from '@tensorflow/tfjs';
import type { LoraAdapter } from './adapter';
import type { BaseWeights, LayerWeights } from './baseWeights';
import { LlamaModel } from './llama';
import { LINEAR_MODULES, LinearModule, ModelConfig } from './types';
import { FrozenMatrix, frozenTied, readFloat32, transpose2d } from '../runtime/ops';
import { keepsBothLayouts } from './baseWeights';

export interface PackedTensor {
  name: string;
  shape: number[];
  offset: number;
}

export interface ModelPayload {
  config: ModelConfig;
  tensors: PackedTensor[];
  buffer: SharedArrayBuffer;
}

function named(w: BaseWeights, config: ModelConfig): [string, tf.Tensor][] {
  const out: [string, tf.Tensor][] = [['embed', w.embed], ['finalNorm', w.finalNorm]];
  if (!config.tieWordEmbeddings) out.push(['lmHead', w.lmHead.wT!]);
  w.layers.forEach((layer, l) => {
    out.push([`${l}.inputNorm`, layer.inputNorm], [`${l}.postAttentionNorm`, layer.postAttentionNorm]);
    for (const m of LINEAR_MODULES) {
      out.push([`${l}.${m}`, layer.linear[m].wT!]);
      const bias = layer.bias[m];
      if (bias) out.push([`${l}.${m}.bias`, bias]);
    }
  });
  return out;
}

/** Packs a model's weights for workers. */
export function modelPayload(model: LlamaModel): ModelPayload {
  const entries = named(model.weights, model.config);
  const total = entries.reduce((a, [, t]) => a + t.size, 0);
  const buffer = new SharedArrayBuffer(total * 4);
  const all = new Float32Array(buffer);
  const tensors: PackedTensor[] = [];
  let offset = 0;
  for (const [name, t] of entries) {
    all.set(readFloat32(t), offset);
    tensors.push({ name, shape: [...t.shape], offset });
    offset += t.size;
  }
  return { config: model.config, tensors, buffer };
}

/** Rebuilds the model from a payload (in a worker), as a frozen (non-trainable) model. */
export function modelFromPayload(p: ModelPayload): LlamaModel {
  const all = new Float32Array(p.buffer);
  const byName = new Map(p.tensors.map((t) => [t.name, t]));
  const tensor = (name: string) => {
    const t = byName.get(name);
    if (!t) throw new Error(`model payload has no tensor '${name}'`);
    const size = t.shape.reduce((a, b) => a * b, 1);
    return tf.tensor(all.slice(t.offset, t.offset + size), t.shape);
  };
  const both = keepsBothLayouts(p.config);
  const frozen = (name: string): FrozenMatrix => {
    const wT = tensor(name) as tf.Tensor2D;
    return both ? { wT, w: tf.tidy(() => transpose2d(wT)) } : { wT };
  };
  const embed = tensor('embed') as tf.Tensor2D;
  const layers: LayerWeights[] = [];
  for (let l = 0; l < p.config.numLayers; l++) {
    const linear = {} as Record<LinearModule, FrozenMatrix>;
    const bias: Partial<Record<LinearModule, tf.Tensor1D>> = {};
    for (const m of LINEAR_MODULES) {
      linear[m] = frozen(`${l}.${m}`);
      if (byName.has(`${l}.${m}.bias`)) bias[m] = tensor(`${l}.${m}.bias`) as tf.Tensor1D;
    }
    layers.push({ inputNorm: tensor(`${l}.inputNorm`) as tf.Tensor1D, postAttentionNorm: tensor(`${l}.postAttentionNorm`) as tf.Tensor1D, linear, bias });
  }
  const lmHead: FrozenMatrix = p.config.tieWordEmbeddings ? frozenTied(embed, both) : frozen('lmHead');
  const weights: BaseWeights = { embed, layers, finalNorm: tensor('finalNorm') as tf.Tensor1D, lmHead };
  return new LlamaModel(p.config, weights);
}

/** The adapter without its directory (workers never read files). */
export function adapterPayload(adapter: LoraAdapter): LoraAdapter {
  return { config: adapter.config, modules: adapter.modules };
}

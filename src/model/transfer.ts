/**
 * Moving a model and an adapter to worker threads: every weight tensor's values are packed
 * into one SharedArrayBuffer (read by all workers, copied once into each worker's own
 * tfjs heap). Linear weights travel as W^T, the one layout both trainable and frozen
 * models keep them in. Memory-mapped weights (runtime/externalWeights.ts) do not travel:
 * the mapping is process-wide, so workers read the one the model holds (which must outlive
 * them, as the owner of a worker pool does) and all threads share one copy.
 */
import * as tf from '@tensorflow/tfjs';
import type { LoraAdapter } from './adapter';
import type { BaseWeights, LayerWeights } from './baseWeights';
import { LlamaModel } from './llama';
import { LINEAR_MODULES, LinearModule, ModelConfig } from './types';
import { ExternalMatrix } from '../runtime/externalWeights';
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
  /** Weights left in their files, by the same names as `tensors`. */
  external: Record<string, ExternalMatrix>;
}

function named(w: BaseWeights, config: ModelConfig, external: Record<string, ExternalMatrix>): [string, tf.Tensor][] {
  const out: [string, tf.Tensor][] = [['finalNorm', w.finalNorm]];
  if (w.embed instanceof tf.Tensor) out.push(['embed', w.embed]);
  else external.embed = w.embed;
  const frozen = (name: string, f: FrozenMatrix) => {
    if (f.ext) external[name] = f.ext;
    else out.push([name, f.wT!]);
  };
  if (!config.tieWordEmbeddings) frozen('lmHead', w.lmHead);
  w.layers.forEach((layer, l) => {
    out.push([`${l}.inputNorm`, layer.inputNorm], [`${l}.postAttentionNorm`, layer.postAttentionNorm]);
    for (const m of LINEAR_MODULES) {
      frozen(`${l}.${m}`, layer.linear[m]);
      const bias = layer.bias[m];
      if (bias) out.push([`${l}.${m}.bias`, bias]);
    }
  });
  return out;
}

/** Packs a model's weights for workers. */
export function modelPayload(model: LlamaModel): ModelPayload {
  const external: Record<string, ExternalMatrix> = {};
  const entries = named(model.weights, model.config, external);
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
  return { config: model.config, tensors, buffer, external };
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
  // The sending model's mappings, not owned here (no `mappings`, so dispose leaves them).
  const mapped = (name: string): ExternalMatrix => p.external[name];
  const frozen = (name: string): FrozenMatrix => {
    if (p.external[name]) return { ext: mapped(name) };
    const wT = tensor(name) as tf.Tensor2D;
    return both ? { wT, w: tf.tidy(() => transpose2d(wT)) } : { wT };
  };
  const embed = p.external.embed ? mapped('embed') : (tensor('embed') as tf.Tensor2D);
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
  const tied = (): FrozenMatrix => (embed instanceof tf.Tensor ? frozenTied(embed, both) : { ext: embed });
  const lmHead: FrozenMatrix = p.config.tieWordEmbeddings ? tied() : frozen('lmHead');
  const weights: BaseWeights = { embed, layers, finalNorm: tensor('finalNorm') as tf.Tensor1D, lmHead };
  return new LlamaModel(p.config, weights);
}

/** The adapter without its directory (workers never read files). */
export function adapterPayload(adapter: LoraAdapter): LoraAdapter {
  return { config: adapter.config, modules: adapter.modules };
}

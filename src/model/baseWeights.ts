/** Loads a Hugging Face LLaMA-family checkpoint's weights into tfjs tensors, checking every shape. */
import * as tf from '@tensorflow/tfjs';
import { TdaError } from '../errors';
import { openWeights, WeightSource } from '../io/weights';
import { nativeActive } from '../runtime/backend';
import { FrozenMatrix, frozenFromHf, frozenTied } from '../runtime/ops';
import { hasBias, linearShape, modulePath, parameterCount } from './modules';
import { LINEAR_MODULES, LinearModule, ModelConfig } from './types';
import { readModelConfig } from './config';
import { checkWeightsFit } from './memoryBudget';

/**
 * How frozen matrices are kept (runtime/ops.ts FrozenMatrix): 'both' layouts (fastest on
 * XNNPACK), 'single' (half the memory), or 'auto': single on native BLAS, where reading a
 * matrix transposed is free; else both while the float32 weights take at most
 * BOTH_LAYOUTS_MAX_BYTES, which leaves a 4 GB wasm heap room for activations.
 */
export type WeightLayout = 'both' | 'single' | 'auto';
export const BOTH_LAYOUTS_MAX_BYTES = 1 << 30;

export function keepsBothLayouts(cfg: ModelConfig, layout: WeightLayout = 'auto'): boolean {
  if (layout !== 'auto') return layout === 'both';
  return !nativeActive() && fitsWorkerCopies(cfg);
}

/** Whether the model is small enough (float32 weights up to BOTH_LAYOUTS_MAX_BYTES) for a copy per worker thread. */
export function fitsWorkerCopies(cfg: ModelConfig): boolean {
  return parameterCount(cfg) * 4 <= BOTH_LAYOUTS_MAX_BYTES;
}

export interface LayerWeights {
  inputNorm: tf.Tensor1D;
  postAttentionNorm: tf.Tensor1D;
  linear: Record<LinearModule, FrozenMatrix>;
  bias: Partial<Record<LinearModule, tf.Tensor1D>>;
}

export interface BaseWeights {
  embed: tf.Tensor2D;
  layers: LayerWeights[];
  finalNorm: tf.Tensor1D;
  lmHead: FrozenMatrix;
}

/** Reads one tensor, checking it exists and has the expected shape. */
function readChecked(src: WeightSource, name: string, shape: number[]): Float32Array {
  if (!src.has(name)) throw new TdaError('missing weight in checkpoint', { file: describeSource(src), field: name });
  const info = src.info(name);
  if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
    throw new TdaError(`shape [${info.shape}] does not match the config, expected [${shape}]`, { file: info.file, field: name });
  }
  return src.readFloat32(name);
}

function describeSource(src: WeightSource): string {
  const first = src.names()[0];
  return first ? src.info(first).file : 'checkpoint';
}

/**
 * Reads all base weights from `src` into tfjs tensors, tensor by tensor: each is read from
 * its file at its offset, converted to float32 and handed to the backend before the next
 * is read, so a checkpoint never sits in memory twice (peak: the weights plus one tensor).
 */
export function loadBaseWeights(src: WeightSource, cfg: ModelConfig, layout: WeightLayout = 'auto'): BaseWeights {
  const both = keepsBothLayouts(cfg, layout);
  const H = cfg.hiddenSize;
  const t1 = (name: string, n: number) => tf.tensor1d(readChecked(src, name, [n]));
  const t2 = (name: string, shape: [number, number]) => tf.tensor2d(readChecked(src, name, shape), shape);
  const embed = t2('model.embed_tokens.weight', [cfg.vocabSize, H]);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < cfg.numLayers; l++) {
    const linear = {} as Record<LinearModule, FrozenMatrix>;
    const bias: Partial<Record<LinearModule, tf.Tensor1D>> = {};
    for (const m of LINEAR_MODULES) {
      const shape = linearWeightShape(cfg, m);
      linear[m] = frozenFromHf(t2(`${modulePath(l, m)}.weight`, shape), both);
      if (hasBias(cfg, m)) bias[m] = t1(`${modulePath(l, m)}.bias`, shape[0]);
    }
    layers.push({
      inputNorm: t1(`model.layers.${l}.input_layernorm.weight`, H),
      postAttentionNorm: t1(`model.layers.${l}.post_attention_layernorm.weight`, H),
      linear,
      bias,
    });
  }
  const finalNorm = t1('model.norm.weight', H);
  let lmHead: FrozenMatrix;
  if (cfg.tieWordEmbeddings || !src.has('lm_head.weight')) {
    if (!cfg.tieWordEmbeddings) {
      throw new TdaError('missing weight in checkpoint (config says tie_word_embeddings is false)', {
        file: describeSource(src),
        field: 'lm_head.weight',
      });
    }
    lmHead = frozenTied(embed, both);
  } else {
    lmHead = frozenFromHf(t2('lm_head.weight', [cfg.vocabSize, H]), both);
  }
  return { embed, layers, finalNorm, lmHead };
}

/** [out, in] shape of a linear layer's weight. */
export function linearWeightShape(cfg: ModelConfig, module: LinearModule): [number, number] {
  const { inFeatures, outFeatures } = linearShape(cfg, module);
  return [outFeatures, inFeatures];
}

/** Reads `config.json` and the weights of a Hugging Face model directory. */
export function loadBaseModelFiles(dir: string, layout: WeightLayout = 'auto'): { config: ModelConfig; weights: BaseWeights } {
  const config = readModelConfig(dir);
  if (tf.getBackend() === 'wasm') checkWeightsFit(config, dir);
  const src = openWeights(dir);
  try {
    return { config, weights: loadBaseWeights(src, config, layout) };
  } finally {
    src.close();
  }
}

export function disposeBaseWeights(w: BaseWeights): void {
  const seen = new Set<tf.Tensor>();
  const add = (t: tf.Tensor | undefined) => t && seen.add(t);
  add(w.embed);
  add(w.finalNorm);
  add(w.lmHead.w);
  add(w.lmHead.wT);
  for (const layer of w.layers) {
    add(layer.inputNorm);
    add(layer.postAttentionNorm);
    for (const m of LINEAR_MODULES) {
      add(layer.linear[m].w);
      add(layer.linear[m].wT);
      add(layer.bias[m]);
    }
  }
  seen.forEach((t) => t.dispose());
}

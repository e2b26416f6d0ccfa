/** Loads a Hugging Face LLaMA-family checkpoint's weights into tfjs tensors, checking every shape. */
import * as tf from '@tensorflow/tfjs';
import { TdaError } from '../errors';
import { openWeights, WeightSource } from '../io/weights';
import { nativeActive } from '../runtime/backend';
import { EXTERNAL_DTYPES, ExternalDtype, ExternalMatrix, externalWeightsAvailable, mapFile, unmapFile } from '../runtime/externalWeights';
import { EmbeddingTable, FrozenMatrix, frozenFromHf, frozenTied } from '../runtime/ops';
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

/**
 * Where the embedding, linear and LM-head weights live: 'heap', read into the wasm heap as
 * float32 (at most ~0.9B parameters fit); 'mapped', left in the checkpoint files, memory-
 * mapped in their stored dtype and read in place by the native kernels
 * (runtime/externalWeights.ts; shared by all worker threads, no size limit but memory);
 * 'auto', mapped whenever the native kernels are active, else heap.
 */
export type WeightStorage = 'heap' | 'mapped' | 'auto';

export interface LoadOptions {
  layout?: WeightLayout;
  storage?: WeightStorage;
}

function resolveStorage(storage: WeightStorage = 'auto'): 'heap' | 'mapped' {
  if (storage === 'heap') return 'heap';
  if (externalWeightsAvailable()) return 'mapped';
  if (storage === 'mapped') {
    throw new TdaError('mapped weights need the native kernels on the wasm backend (npm install with gcc and libopenblas-dev)', { field: 'storage' });
  }
  return 'heap';
}

export interface LayerWeights {
  inputNorm: tf.Tensor1D;
  postAttentionNorm: tf.Tensor1D;
  linear: Record<LinearModule, FrozenMatrix>;
  bias: Partial<Record<LinearModule, tf.Tensor1D>>;
}

export interface BaseWeights {
  embed: EmbeddingTable;
  layers: LayerWeights[];
  finalNorm: tf.Tensor1D;
  lmHead: FrozenMatrix;
  /** Ids of the file mappings the weights read (mapped storage), released by disposeBaseWeights. */
  mappings?: number[];
}

/** Whether the model's large weights are memory-mapped rather than in the heap. */
export function isMapped(w: BaseWeights): boolean {
  return (w.mappings?.length ?? 0) > 0;
}

/** Reads one tensor, checking it exists and has the expected shape. */
function readChecked(src: WeightSource, name: string, shape: number[]): Float32Array {
  checkedInfo(src, name, shape);
  return src.readFloat32(name);
}

function describeSource(src: WeightSource): string {
  const first = src.names()[0];
  return first ? src.info(first).file : 'checkpoint';
}

/** Checks a tensor exists with the expected shape; returns where it lives. */
function checkedInfo(src: WeightSource, name: string, shape: number[]) {
  if (!src.has(name)) throw new TdaError('missing weight in checkpoint', { file: describeSource(src), field: name });
  const info = src.info(name);
  if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
    throw new TdaError(`shape [${info.shape}] does not match the config, expected [${shape}]`, { file: info.file, field: name });
  }
  return info;
}

/**
 * Reads all base weights from `src`. Heap storage: tensor by tensor, each read from its
 * file at its offset, converted to float32 and handed to the backend before the next is
 * read, so a checkpoint never sits in memory twice (peak: the weights plus one tensor).
 * Mapped storage: the embedding, linear and LM-head weights stay in the files (F32, BF16
 * or F16; other dtypes are read into the heap), only norms and biases are read.
 */
export function loadBaseWeights(src: WeightSource, cfg: ModelConfig, layout: WeightLayout = 'auto', storage: WeightStorage = 'auto'): BaseWeights {
  const mapped = resolveStorage(storage) === 'mapped';
  const both = keepsBothLayouts(cfg, layout);
  const H = cfg.hiddenSize;
  const mappings = new Map<string, number>();
  const external = (name: string, shape: [number, number]): ExternalMatrix | null => {
    const info = checkedInfo(src, name, shape);
    if (!mapped || !(info.dtype in EXTERNAL_DTYPES)) return null;
    let mapId = mappings.get(info.file);
    if (mapId === undefined) {
      mapId = mapFile(info.file);
      mappings.set(info.file, mapId);
    }
    return { file: info.file, mapId, byteOffset: info.byteOffset, dtype: info.dtype as ExternalDtype, rows: shape[0], cols: shape[1], name };
  };
  const t1 = (name: string, n: number) => tf.tensor1d(readChecked(src, name, [n]));
  const t2 = (name: string, shape: [number, number]) => tf.tensor2d(readChecked(src, name, shape), shape);
  const frozen = (name: string, shape: [number, number]): FrozenMatrix => {
    const ext = external(name, shape);
    return ext ? { ext } : frozenFromHf(t2(name, shape), both);
  };
  try {
    // In a scope, so that a checkpoint failing halfway leaves no tensors behind.
    return tf.tidy(() => loadAll() as unknown as tf.TensorContainer) as unknown as BaseWeights;
  } catch (e) {
    mappings.forEach((id) => unmapFile(id));
    throw e;
  }

  function loadAll(): BaseWeights {
    const embedName = 'model.embed_tokens.weight';
    const embed: EmbeddingTable = external(embedName, [cfg.vocabSize, H]) ?? t2(embedName, [cfg.vocabSize, H]);
    const layers: LayerWeights[] = [];
    for (let l = 0; l < cfg.numLayers; l++) {
      const linear = {} as Record<LinearModule, FrozenMatrix>;
      const bias: Partial<Record<LinearModule, tf.Tensor1D>> = {};
      for (const m of LINEAR_MODULES) {
        const shape = linearWeightShape(cfg, m);
        linear[m] = frozen(`${modulePath(l, m)}.weight`, shape);
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
      lmHead = embed instanceof tf.Tensor ? frozenTied(embed, both) : { ext: embed };
    } else {
      lmHead = frozen('lm_head.weight', [cfg.vocabSize, H]);
    }
    return { embed, layers, finalNorm, lmHead, mappings: [...mappings.values()] };
  }
}

/** [out, in] shape of a linear layer's weight. */
export function linearWeightShape(cfg: ModelConfig, module: LinearModule): [number, number] {
  const { inFeatures, outFeatures } = linearShape(cfg, module);
  return [outFeatures, inFeatures];
}

/** Reads `config.json` and the weights of a Hugging Face model directory. */
export function loadBaseModelFiles(dir: string, opts: LoadOptions = {}): { config: ModelConfig; weights: BaseWeights } {
  const config = readModelConfig(dir);
  const storage = resolveStorage(opts.storage);
  if (tf.getBackend() === 'wasm' && storage === 'heap') checkWeightsFit(config, dir);
  const src = openWeights(dir);
  try {
    return { config, weights: loadBaseWeights(src, config, opts.layout, storage) };
  } finally {
    src.close();
  }
}

export function disposeBaseWeights(w: BaseWeights): void {
  const seen = new Set<tf.Tensor>();
  const add = (t: tf.Tensor | undefined) => t && seen.add(t);
  if (w.embed instanceof tf.Tensor) add(w.embed);
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
  w.mappings?.forEach((id) => unmapFile(id));
  w.mappings = [];
}

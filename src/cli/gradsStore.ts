/**
 * `tda-lab grads --store DIR`: per-example LoRA gradients streamed into a gradient store
 * (attribution/store), shard by shard, instead of one file held in memory. Resumable: a
 * re-run of the same command skips the shards already recorded; Ctrl-C stops after the
 * current batch and keeps every finished shard.
 */
import { GradientStore, storeSettings } from '../gradients/store';
import { StoreDType } from '../gradients/store/manifest';
import { ProjectionSpec } from '../gradients/projection';
import { LabelMask } from '../data/batch';
import { TdaError } from '../errors';
import { loadGradsInputs } from './grads';
import { WeightStorage } from '../model/baseWeights';
import { progressBar } from './progress';

export interface GradsStoreOptions {
  model: string;
  adapter: string;
  data: string;
  store: string;
  mask?: LabelMask;
  batchSize?: number;
  /** Examples per store shard file (default 256). */
  shardSize?: number;
  dtype?: StoreDType;
  /** Random projection of every block to this many dimensions (gaussian, seed 0). */
  projectDim?: number;
  progress?: boolean;
  signal?: AbortSignal;
  /** Where frozen weights live (model/baseWeights.ts WeightStorage; default auto). */
  weights?: WeightStorage;
  /** Layer recomputation in the backward pass (gradients/compute.ts; default auto). */
  recompute?: boolean | 'auto';
}

export interface GradsStoreSummary {
  examples: number;
  computedShards: number;
  reusedShards: number;
  seconds: number;
}

export async function runGradsToStore(o: GradsStoreOptions): Promise<GradsStoreSummary> {
  const started = Date.now();
  const { model, adapter, tokenizer, examples } = loadGradsInputs(o.model, o.adapter, o.data, o.weights);
  try {
    if (examples.length === 0) throw new TdaError('the dataset has no examples', { file: o.data });
    const projection: ProjectionSpec | null = o.projectDim ? { kind: 'gaussian', dim: o.projectDim, seed: 0 } : null;
    const settings = storeSettings({ modelDir: o.model, adapterDir: o.adapter, examples, mask: o.mask ?? 'response', dtype: o.dtype, projection, shardSize: o.shardSize });
    const store = GradientStore.open(o.store, settings);
    const bar = progressBar('gradients', o.progress ?? true);
    try {
      const report = await store.compute(model, adapter, examples, {
        batchSize: o.batchSize,
        padId: tokenizer?.padId ?? 0,
        recompute: o.recompute,
        onProgress: (done, total) => bar.update(done, total),
        signal: o.signal,
      });
      return { examples: examples.length, computedShards: report.computed.length, reusedShards: report.reused.length, seconds: (Date.now() - started) / 1000 };
    } catch (e) {
      if (o.signal?.aborted) {
        const done = GradientStore.openExisting(o.store);
        throw new TdaError(`interrupted: ${done.shardCount - done.missingShards().length} of ${done.shardCount} shards are complete; run the same command again to resume`, { file: o.store });
      }
      throw e;
    } finally {
      bar.stop();
    }
  } finally {
    model.dispose();
  }
}

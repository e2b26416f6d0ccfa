/**
 * Retraining as ground truth: fine-tune a fresh LoRA adapter on a subset of the training
 * examples (same recipe, initialisation and seed as the full-set run), then measure every
 * query's loss and, where asked, its greedy answer. `Retrainer` runs many such jobs on
 * worker threads (one model copy each; see runtime/workers.ts).
 */
import * as tf from '@tensorflow/tfjs';
import type { TokenSequence } from '../data/batch';
import { initAdapter, parseLoraConfig } from '../model/adapter';
import { generate } from '../model/generate';
import { LlamaModel } from '../model/llama';
import { computeLosses } from '../model/loss';
import { modelPayload, ModelPayload } from '../model/transfer';
import { BackendName } from '../runtime/backend';
import { WorkerPool } from '../runtime/workers';
import { finetuneLora } from '../train/finetune';

export interface RetrainRecipe {
  /** adapter_config.json fields of the LoRA adapter to train. */
  lora: Record<string, unknown>;
  epochs: number;
  batchSize: number;
  lr: number;
  padId: number;
  eosId: number | null;
  maxNewTokens: number;
}

export interface RetrainData {
  train: TokenSequence[];
  /** Each query's prompt plus the response whose loss is measured. */
  queries: TokenSequence[];
  recipe: RetrainRecipe;
}

export interface RetrainWorkerInit extends RetrainData {
  backend: BackendName;
  model: ModelPayload;
}

export interface RetrainTask {
  /** Training indices to fine-tune on (the trainer shuffles them with the seed). */
  kept: number[];
  /** Seeds the adapter's initialisation and the data order, as in the full-set run. */
  seed: number;
  /** Query indices whose greedy answer is wanted. */
  generate: number[];
}

export interface RetrainOutcome {
  losses: Float64Array;
  /** Answer token ids, one per entry of the task's `generate`. */
  answers: number[][];
}

/** One retraining, the same in a worker and in process. */
export function retrainOnce(model: LlamaModel, data: RetrainData, task: RetrainTask): RetrainOutcome {
  const { recipe } = data;
  const start = initAdapter(model.config, parseLoraConfig(recipe.lora, 'retrain'), task.seed);
  const kept = [...task.kept].sort((a, b) => a - b).map((i) => data.train[i]);
  const { adapter } = finetuneLora(model, start, kept, { epochs: recipe.epochs, batchSize: recipe.batchSize, lr: recipe.lr, seed: task.seed, padId: recipe.padId });
  const losses = Float64Array.from(computeLosses(model, adapter, data.queries, { batchSize: 32, padId: recipe.padId }));
  const prompts = task.generate.map((q) => data.queries[q].inputIds.slice(0, data.queries[q].promptLength));
  const answers = prompts.length ? generate(model, adapter, prompts, { maxNewTokens: recipe.maxNewTokens, eosId: recipe.eosId, mode: 'greedy', padId: recipe.padId }) : [];
  return { losses, answers };
}

/** A pool of retraining workers for one data set and recipe. */
export class Retrainer {
  private constructor(private readonly pool: WorkerPool<RetrainTask, RetrainOutcome>) {}

  static async start(model: LlamaModel, data: RetrainData, workers: number): Promise<Retrainer> {
    const init: RetrainWorkerInit = { ...data, backend: tf.getBackend() as BackendName, model: modelPayload(model) };
    return new Retrainer(await WorkerPool.start<RetrainTask, RetrainOutcome>(require.resolve('./retrainWorker'), workers, init));
  }

  get workers(): number {
    return this.pool.size;
  }

  run(task: RetrainTask): Promise<RetrainOutcome> {
    return this.pool.run(task);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

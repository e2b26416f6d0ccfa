/**
 * Worker entry for per-example LoRA gradients (see compute.ts, computeLoraGradients
 * with `workers`): set up with a model payload, an adapter and the backend name; each task
 * is one batch of token sequences, and its losses and gradients come back as transferred
 * buffers. Same code and same batches as in-process, so the same numbers.
 */
import type { LabelMask, TokenSequence } from '../data/batch';
import type { LoraAdapter } from '../model/adapter';
import { passGradients } from './compute';
import type { ComputedGradients } from './types';
import { LlamaModel } from '../model/llama';
import { LoraState, loraStateFromAdapter } from '../model/loraState';
import { BackendName, initBackend } from '../runtime/backend';
import { modelFromPayload, ModelPayload } from '../model/transfer';
import { serveWorker } from '../runtime/workers';

export interface GradientWorkerInit {
  backend: BackendName;
  model: ModelPayload;
  adapter: LoraAdapter;
}

export interface GradientTask {
  sequences: TokenSequence[];
  mask: LabelMask;
  padId: number;
  recompute: boolean | 'auto';
}

interface State {
  model: LlamaModel;
  lora: LoraState;
}

serveWorker<State, GradientTask>(
  async (data) => {
    const init = data as GradientWorkerInit;
    await initBackend(init.backend);
    const model = modelFromPayload(init.model);
    return { model, lora: loraStateFromAdapter(init.adapter) };
  },
  (state, task) => {
    const result: ComputedGradients = passGradients(state.model, state.lora, task);
    const transfer = [result.losses.buffer as ArrayBuffer, ...result.blocks.map((b) => b.data.buffer as ArrayBuffer)];
    return { result, transfer };
  },
);

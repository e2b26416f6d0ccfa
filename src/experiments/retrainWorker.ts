/**
 * Worker entry for retraining (see retrain.ts): set up once with the base model, the
 * fine-tuning and query sequences and the training recipe; each task is one retraining.
 */
import { modelFromPayload } from '../model/transfer';
import { initBackend } from '../runtime/backend';
import { serveWorker } from '../runtime/workers';
import { LlamaModel } from '../model/llama';
import { retrainOnce, RetrainTask, RetrainWorkerInit } from './retrain';

interface State {
  model: LlamaModel;
  init: RetrainWorkerInit;
}

serveWorker<State, RetrainTask>(
  async (data) => {
    const init = data as RetrainWorkerInit;
    await initBackend(init.backend);
    return { model: modelFromPayload(init.model), init };
  },
  (state, task) => {
    const result = retrainOnce(state.model, state.init, task);
    return { result, transfer: [result.losses.buffer as ArrayBuffer] };
  },
);

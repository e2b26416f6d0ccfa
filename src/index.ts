/**
 * tda-lab: training data attribution for LoRA-tuned language models.
 *
 * Public API. Everything here works on real Hugging Face and PEFT files:
 *   const model = LlamaModel.load('path/to/model');
 *   const adapter = loadAdapter('path/to/adapter', model.config);
 *   const grads = await computeLoraGradients(model, adapter, examples, { mask: 'response' });
 */
export { TdaError } from './errors';
export { initBackend, currentBackend, BackendChoice, BackendName } from './runtime/backend';
export { SafetensorsFile, writeSafetensors, DType, TensorInfo, TensorToWrite } from './io/safetensors';
export { openWeights, openWeightsFile, writeShardedSafetensors, WeightSource } from './io/weights';
export { readModelConfig, parseModelConfig, SUPPORTED_MODEL_TYPES } from './model/config';
export { ModelConfig, RopeScaling, LoraConfig, LinearModule, LINEAR_MODULES } from './model/types';
export { inverseFrequencies, rotaryTables } from './model/rope';
export { modulePath, linearShape, allModules } from './model/modules';
export { loadAdapter, saveAdapter, initAdapter, readLoraConfig, parseLoraConfig, adapterKey, LoraAdapter, LoraModuleWeights } from './model/adapter';
export { listCheckpoints, isAdapterDir, CheckpointInfo } from './model/checkpoints';
export { readOptimizerState, writeOptimizerState, momentsOf, OptimizerState, TensorMoments, OPTIMIZER_STATE_FILE } from './model/optimizerState';
export { LlamaModel, BatchConstants, disposeBatchConstants } from './model/llama';
export { loraStateFromAdapter, replicatePerExample, disposeLoraState, LoraState, LoraCapture } from './model/loraState';
export { captureBatch, sampleLabels, BatchCapture, ModuleCapture, CaptureOptions } from './model/capture';
export { exampleLosses, batchLosses, computeLosses, lossRows, disposeLossRows, lossConstants, disposeLossConstants, LossRows, LossConstants, LossOptions } from './model/loss';
export { WeightLayout, keepsBothLayouts, BOTH_LAYOUTS_MAX_BYTES } from './model/baseWeights';
export { checkActivationBudget, activationBytesPerRow, WASM_HEAP_BYTES } from './model/memoryBudget';
export { llamaConfig, hfConfigJson, randomBaseTensors, writeRandomCheckpoint, writeLargeRandomCheckpoint, parameterCount, SIZE_PRESETS } from './model/synthetic';
export { randomAdapter, RandomAdapterOptions } from './model/randomAdapter';
export { Rng } from './random';
export { makeBatch, LabelMask, TokenBatch, TokenSequence } from './data/batch';
export { readExamplesJsonl, validateTokenIds, Example } from './data/examples';
export { loadTokenizer, tokenizerFromJson, TextTokenizer } from './data/tokenizer';
export { buildWordLevelTokenizerJson, buildWordLevelTokenizerConfig } from './data/wordTokenizer';
export { computeEmbeddings, checkEmbeddingSet, EmbeddingOptions, EmbeddingSet, Pooling } from './model/embeddings';
export * from './gradients';
export * from './attribution';
export * from './eval';
export * from './dda';
export * from './viz';
export * from './train';
export { generate, GenerateOptions } from './model/generate';
export { createTrainableModel, trainableVariables, saveBaseModel, baseWeightTensors } from './model/trainableWeights';
export * as world from './experiments/world';
// The embedded default model and the experiments on it (used by the notebooks).
export { loadEmbeddedDefault, factRecall, EmbeddedDefault, EMBEDDED_DIR } from './experiments/embedded';
export { runDdaExperiment, DdaExperimentOptions, DdaExperimentResult, VARIANTS, READINGS, Reading } from './experiments/dda';
export { runIfLlmExperiment, IfLlmOptions as IfLlmExperimentOptions, IfLlmResult } from './experiments/ifLlm';
export { runLmd3Experiment, Lmd3Options as Lmd3ExperimentOptions, Lmd3Result } from './experiments/lmd3';
export { groupTokens, tokenWeights, topIndices, GroupTokens, GroupTokensOptions } from './experiments/runTokens';
export { runLdsExperiment, LdsExperimentOptions, LdsExperimentResult, LdsRun } from './experiments/lds';
export { writeLdsRun, writeLdsSummary } from './experiments/ldsFiles';
export { Retrainer, retrainOnce, RetrainData, RetrainRecipe, RetrainTask, RetrainOutcome } from './experiments/retrain';
export { encodeExample, withResponseIds, loraGradientSet, gradientScores, queryMetrics, PromptResponse } from './experiments/pipeline';
export { frameRows } from './eval/frame';
export { linearRegression, LinearFit } from './eval/regression';

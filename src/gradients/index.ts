/**
 * The gradients stage: per-example LoRA gradients computed (in this thread or on workers),
 * checked, projected, written to files or streamed into a resumable store, and read back
 * as GradientSets and GradientSources for the scorers.
 */
export * from './types';
export { computeLoraGradients, batchLoraGradients, adapterBlocks, GradientWorkers, WORKER_MIN_BATCHES, GradientOptions } from './compute';
export { checkCompatible, checkFinite } from './checks';
export { computeTokenGradients, meanOfTokens, TokenGradients, TokenGradientOptions } from './perToken';
export { readGradientFile, writeGradientFile, GradientFile, GRADS_FORMAT } from './file';
export * from './store';

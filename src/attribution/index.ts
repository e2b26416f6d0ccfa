/**
 * Attribution methods. Every score matrix is [nTest, nTrain]; positive = the training
 * example helps the test output. Gradient methods follow `cache(train)` then
 * `attribute(test)`; a new method is one small file extending GradientAttributor.
 */
export * from './types';
export { GradientAttributor, DampedAttributor, dotScores, topKScores, ScoringEngine, ScoringOptions, BlockAdjust } from './gradientAttributor';
export { TopKScores, TopKAccumulator, checkK } from './topK';
export { blockDamping, DEFAULT_DAMPING_SCALE, DampingOptions } from './damping';
export { GradDot, GradCos, exampleNorms } from './gradDot';
export { tracinCP, TracInCheckpoint } from './tracin';
export { DataInf } from './dataInf';
export { Lissa, LissaOptions, LissaBlockReport, topEigenvalue } from './lissa';
export { ExactInfluence, ExactOptions } from './exact';
export { EkfacInfluence } from './ekfac';
export { createGradientAttributor, GRADIENT_METHODS, GradientMethod, MethodOptions } from './methods';
export { RepSim, repSimScores, RepSimKind } from './repSim';
export { Bm25, bm25Scores, bm25Tokenize, Bm25Options } from './bm25';
export { KernelDensity, logDensity, logKernelMatrix, kdeBandwidth, BandwidthRule, DensityOptions } from './density';
export { writeScoreFile, readScoreFile, writeTopKFile, readTopKFile, refuseTopK, SCORES_FORMAT, TOPK_FORMAT } from './scoreFile';

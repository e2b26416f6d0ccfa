/**
 * Attribution methods. Every score matrix is [nTest, nTrain]; positive = the training
 * example helps the test output. Gradient methods follow `cache(train)` then
 * `attribute(test)`. A new method is one file exporting its MethodDescriptor (method.ts)
 * plus one line in registry.ts.
 */
export * from './types';
export { GradientAttributor, DampedAttributor, dotScores, topKScores, ScoringEngine, ScoringOptions, BlockAdjust } from './gradientAttributor';
export { TopKScores, TopKAccumulator, checkK } from './topK';
export { blockDamping, DEFAULT_DAMPING_SCALE, DAMPING_SCALE_OPTION, DampingOptions } from './damping';
export { GradDot, GradCos, exampleNorms } from './gradDot';
export { QueryTokens, PairTokens, TokenSplit, TOKEN_METHODS, tokenScorer, checkTokenMethod } from './tokens';
export { TokenExplainer, TokenExplainerOptions, TokenRow, TokenSide, PairTokenReport, ExamplesWithGradients } from './tokenExplainer';
export { tracinCP, tracinFromScores, TracInCheckpoint } from './tracin';
export { DataInf } from './dataInf';
export { Less, LessOptions, LESS_DEFAULTS, adamUpdateDirection } from './less';
export { TrackStar, TrackStarOptions, TRACKSTAR_DEFAULTS, secondMomentCorrected } from './trackstar';
export { OptimizerCheckpoint } from './optimizerCheckpoint';
export { projectExamples, normalizeRows } from './featureProjection';
export { Lissa, LISSA_DEFAULTS, LissaOptions, LissaBlockReport, topEigenvalue } from './lissa';
export { ConjugateGradient, cgRows } from './conjugateGradient';
export { IterativeSolver, IterativeSolverOptions, BlockConvergence, Unconverged, DEFAULT_TOLERANCE, DEFAULT_MAX_ITERATIONS, mergeConvergence } from './iterativeSolver';
export { relativeResiduals } from './dampedResidual';
export { ExactInfluence, ExactOptions, DEFAULT_MAX_BLOCK_SIZE } from './exact';
export { KronGradInfluence } from './kronGrad';
export { EkfacInfluence, EkfacOptions, FactoredTrain, ekfacDamping, checkFactorsMatch } from './ekfac';
export { computeEkfacFactors, capturedGradients, EkfacAccumulator, TensorRows, TensorShape, adapterTensorShapes, symmetricEigen, EkfacFactors, EkfacTensorFactors, EkfacFactorSettings, EkfacFactorOptions, FisherKind, FISHER_KINDS } from './ekfacFactors';
export { readEkfacFactors, writeEkfacFactors, EKFAC_FORMAT } from './ekfacFile';
export { METHODS, GRADIENT_METHODS, methodByName, createScorer, createGradientAttributor } from './registry';
export { MethodDescriptor, OptionSpec, OptionValue, Scorer, ScorerInput, Settings, resolveOptions, parseOption, optionFlag, WORKERS_OPTION, PROJECTION_SEED_OPTION } from './method';
export { RepSim, repSimScores, RepSimKind } from './repSim';
export { Bm25, bm25Scores, bm25Tokenize, Bm25Options } from './bm25';
export { KernelDensity, logDensity, logKernelMatrix, kdeBandwidth, BandwidthRule, DensityOptions } from './density';
export { writeScoreFile, readScoreFile, writeTopKFile, readTopKFile, refuseTopK, SCORES_FORMAT, TOPK_FORMAT } from './scoreFile';

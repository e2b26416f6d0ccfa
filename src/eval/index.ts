/**
 * Evaluation of attribution scores: ranking metrics per query (ROC AUC, ROC curve, average
 * precision, recall@k, precision@k), class metrics (Acc, Cover), per-query tables as danfo
 * DataFrames, seeded bootstrap intervals over queries, and the linear datamodeling score
 * (LDS) against retraining.
 * DataFrames, seeded bootstrap intervals over queries and over runs, and verdicts worded from intervals.
 */
export { rocAuc, rocCurve, trapezoidArea, averagePrecision, recallAtK, precisionAtK, positivesInTopK, RocCurve, TieRule, TopKOptions } from './auc';
export { classAccCover, perQueryClassMetrics, defaultCoverK, ClassLabel, ClassMetrics, ClassMetricsOptions } from './classMetrics';
export {
  perQueryMetrics,
  perQueryColumns,
  pooledAuc,
  metricMeans,
  metricSummary,
  DEFAULT_RECALL_K,
  PerQueryColumns,
  PerQueryOptions,
} from './perQuery';
export {
  bootstrapCI,
  bootstrapMeanCI,
  normalMeanCI,
  quantileSorted,
  dropNaN,
  mean,
  nanMean,
  BootstrapOptions,
  Interval,
  MeanInterval,
  NormalIntervalOptions,
} from './bootstrap';
export { checkScoresForMetrics, checkPositives, positiveMask, Where } from './validate';
export { descendingOrder, topK, argmax } from './ranking';
// Spearman and average ranks are exported at the top level from viz/explorer (same definition).
export { pearson } from './correlation';
export { checkSubsets, ldsInterval, ldsPerQuery, subsetScoreSums, LdsInterval, LdsScores } from './lds';
export { DataFrame, danfo, frameFromColumns, frameColumn } from './frame';
export { runBootstrapMeanCI, pairedRunDifferences, RunBootstrapOptions, RunInterval, RunWeighting } from './runBootstrap';
export { verdictOf, wordClaim, describeDifference, describeEstimate, Verdict, ClaimOptions } from './claims';

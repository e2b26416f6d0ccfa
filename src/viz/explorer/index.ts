/** The attribution explorer: one data model, rendered as a page or in a notebook cell. */
export * from './model';
export { spearman, overlapShare, averageRanks } from './agreement';
export { explorerFragment, renderExplorerPage, writeExplorer } from './page';
export { showExplorer } from './notebook';

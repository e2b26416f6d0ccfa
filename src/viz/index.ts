/** One figure builder, two outputs: notebooks (tslab) and the self-contained HTML report. */
export * from './figures';
export { figureHtml, tableHtml, plotlyScript, escapeHtml } from './html';
export { renderReport, writeReport, Report, ReportSection } from './report';
export { ensureNotebookAssets, showFigure, showTable, showHtml, showMarkdown, notebookProgress, notebookTableHtml, yieldToKernel, NotebookProgress } from './notebook';
export * from './explorer';

/** The explorer in a notebook cell (tslab): the same fragment as the page, plotly loaded once per kernel session. */
import { ensureNotebookAssets, showHtml } from '../notebook';
import { explorerFragment } from './page';
import { ExplorerData } from './model';

export function showExplorer(data: ExplorerData): void {
  ensureNotebookAssets();
  showHtml(explorerFragment(data));
}

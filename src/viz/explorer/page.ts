/**
 * The explorer as HTML: a fragment (root div, its data as JSON, the script that mounts it)
 * that a notebook cell shows as is, and a self-contained page that adds plotly.js once.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeTextAtomic } from '../../io/fsutil';
import { escapeHtml, plotlyScript } from '../html';
import { EXPLORER_CSS, EXPLORER_SCRIPT } from './client';
import { ExplorerData } from './model';

let counter = 0;

/** JSON that is safe inside a <script> element: no "<" can close or open a tag. */
function scriptJson(v: unknown): string {
  return JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** The explorer without plotly.js: needs `Plotly` on the page for its heatmaps (and says so otherwise). */
export function explorerFragment(data: ExplorerData): string {
  const id = `tda-explorer-${process.pid}-${++counter}`;
  return (
    `<style>${EXPLORER_CSS}</style>\n` +
    `<div class="tda-explorer" id="${id}"><p>Loading the explorer (needs JavaScript)...</p></div>\n` +
    `<script type="application/json" id="${id}-data">${scriptJson(data)}</script>\n` +
    `<script>${EXPLORER_SCRIPT}(${JSON.stringify(id)});</script>\n`
  );
}

/** A self-contained page: opens offline, plotly.js inlined once. */
export function renderExplorerPage(data: ExplorerData): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(data.title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body { margin: 16px 24px; } .tda-explorer h1 { font-size: 22px; margin: 0 0 4px; }</style>
<script>${plotlyScript()}</script>
</head><body>
${explorerFragment(data)}
</body></html>
`;
}

/** Writes the page atomically; returns the file name. */
export function writeExplorer(file: string, data: ExplorerData): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeTextAtomic(file, renderExplorerPage(data));
  return file;
}

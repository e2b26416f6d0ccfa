/**
 * Rich output in Jupyter notebooks running the tslab kernel. plotly.js is inlined once per
 * notebook (kernel session); each figure is then a small div. The last expression of a
 * tslab cell prints as text, so rich output is always displayed explicitly.
 */
import type { DataFrame } from 'danfojs-node';
import { frameRows } from '../eval/frame';
import { Figure } from './figures';
import { Cell, figureHtml, plotlyScript, TABLE_CSS, tableHtml } from './html';

interface TslabDisplay {
  html(s: string): void;
  text(s: string): void;
}

function tslab(): { display: TslabDisplay; newDisplay(): TslabDisplay } {
  // Only available inside the tslab kernel.
  return require('tslab');
}

let plotlyShown = false;

/** Loads plotly.js and the table style into the notebook, once. */
export function ensureNotebookAssets(): void {
  if (plotlyShown) return;
  tslab().display.html(`<style>${TABLE_CSS}</style><script>${plotlyScript()}</script>`);
  plotlyShown = true;
}

export function showFigure(fig: Figure, height = 420): void {
  ensureNotebookAssets();
  tslab().display.html(figureHtml(fig, height));
}

export function showTable(table: DataFrame | Record<string, Cell>[], digits = 3): void {
  ensureNotebookAssets();
  const rows = Array.isArray(table) ? table : frameRows(table);
  tslab().display.html(tableHtml(rows, digits));
}

export function showHtml(html: string): void {
  tslab().display.html(html);
}

/** A progress bar that redraws in place in the notebook output. */
export function notebookProgress(label: string): { update(done: number, total: number): void; stop(): void } {
  const d = tslab().newDisplay();
  let last = -1;
  const draw = (done: number, total: number) => {
    const pct = total > 0 ? Math.round((100 * done) / total) : 100;
    if (pct === last) return;
    last = pct;
    d.html(
      `<div style="font:13px sans-serif">${label}: ${done}/${total}` +
        `<div style="background:#eee;width:320px;height:8px;border-radius:4px">` +
        `<div style="background:#4a7bd0;width:${(320 * pct) / 100}px;height:8px;border-radius:4px"></div></div></div>`,
    );
  };
  return { update: draw, stop: () => undefined };
}

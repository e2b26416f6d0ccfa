/**
 * Rich output in Jupyter notebooks running the tslab kernel (`npm run kernel:install`).
 *
 * - plotly.js is inlined once per kernel session (the first figure or table loads it, with
 *   the table style); each figure is then a small div plus a `Plotly.newPlot` call. The
 *   figure specs are the same ones the HTML report draws (src/viz/figures.ts).
 * - The last expression of a tslab cell comes back as printed text, never as rich output,
 *   so tables and figures are always shown explicitly with these functions.
 * - Outputs go out over the kernel's message socket only when the event loop turns: a long
 *   synchronous computation shows nothing until it ends. `notebookProgress(...).update`
 *   returns a promise that yields to the event loop; `await` it inside long loops so the
 *   bar redraws in place while the loop runs.
 *
 * Outside a tslab kernel (plain Node, tests) every function throws a TdaError saying so.
 */
import type { DataFrame } from 'danfojs-node';
import { TdaError } from '../errors';
import { frameRows } from '../eval/frame';
import { Figure } from './figures';
import { Cell, escapeHtml, plotlyScript, TABLE_CSS } from './html';

interface TslabDisplay {
  html(s: string): void;
  text(s: string): void;
  markdown(s: string): void;
}

const NOT_IN_KERNEL = 'notebook display works only inside the tslab kernel (npm run kernel:install, then open the notebook with "TypeScript (tda-lab)")';

function tslab(): { display: TslabDisplay; newDisplay(): TslabDisplay } {
  try {
    return require('tslab');
  } catch {
    throw new TdaError(NOT_IN_KERNEL, { field: 'tslab' });
  }
}

/** Runs a display call; outside a running kernel tslab throws "Not ready", reported as a TdaError. */
function send(f: () => void): void {
  try {
    f();
  } catch (e) {
    if (e instanceof TdaError) throw e;
    throw new TdaError(`${NOT_IN_KERNEL}: ${(e as Error).message}`, { field: 'tslab' });
  }
}

/** Extra style for notebook tables: text cells left-aligned and wrapped. */
const NOTEBOOK_TABLE_CSS = `
.tda-table td.tda-text, .tda-table th.tda-text { text-align: left; white-space: normal; max-width: 640px; }
.tda-table caption { caption-side: top; text-align: left; font-weight: 600; padding: 4px 0; }
.tda-progress { font: 13px/1.5 Inter, Helvetica, Arial, sans-serif; }
.tda-progress .tda-bar { background: #e6e9ee; width: 360px; height: 8px; border-radius: 4px; }
.tda-progress .tda-bar div { background: #4a7bd0; height: 8px; border-radius: 4px; }
`;

let assetsShown = false;

/**
 * Loads plotly.js and the table style into the notebook page, once per kernel session.
 * Pass `force` to load them again (e.g. after reloading the page without restarting the kernel).
 */
export function ensureNotebookAssets(force = false): void {
  if (assetsShown && !force) return;
  send(() => tslab().display.html(`<style>${TABLE_CSS}${NOTEBOOK_TABLE_CSS}</style>\n<script>${plotlyScript()}</script>`));
  assetsShown = true;
}

let figureCounter = 0;

/**
 * The figure's layout with its title left-aligned over the plot area (unless the spec places
 * it), so a long title does not run under plotly's tool bar at the top right.
 */
function notebookLayout(layout: Record<string, unknown>): Record<string, unknown> {
  const title = layout.title;
  if (!title || typeof title !== 'object' || 'x' in title) return layout;
  return { ...layout, title: { ...title, x: 0, xref: 'paper', xanchor: 'left' } };
}

/** A div and the call that draws the figure; says so in the div if plotly.js is not on the page. */
function notebookFigureHtml(fig: Figure, height: number): string {
  const id = `tda-nbfig-${process.pid}-${++figureCounter}`;
  const json = (v: unknown) => JSON.stringify(v).replace(/<\//g, '<\\/');
  return (
    `<div id="${id}" class="tda-figure" style="width:100%;max-width:980px;height:${height}px"></div>\n` +
    `<script>(function () {\n` +
    `  var el = document.getElementById(${json(id)});\n` +
    `  if (typeof Plotly === 'undefined') { el.style.height = 'auto'; el.textContent = 'plotly.js is not loaded on this page: run tda.ensureNotebookAssets(true) and this cell again (or trust the notebook).'; return; }\n` +
    `  Plotly.newPlot(el, ${json(fig.data)}, ${json(notebookLayout(fig.layout))}, {responsive: true, displaylogo: false});\n` +
    `})();</script>`
  );
}

/** Shows a plotly figure spec (from src/viz/figures.ts) in the cell's output. */
export function showFigure(fig: Figure, height = 420): void {
  ensureNotebookAssets();
  send(() => tslab().display.html(notebookFigureHtml(fig, height)));
}

function formatCell(v: Cell, digits: number): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : Number.isNaN(v) ? 'NaN' : v.toFixed(digits);
  return v === null || v === undefined ? '' : escapeHtml(String(v));
}

/**
 * The HTML of a notebook table (`<table class="tda-table">`): columns holding only text are
 * left-aligned and wrap, numeric columns are right-aligned.
 */
export function notebookTableHtml(rows: Record<string, Cell>[], digits = 3, caption?: string): string {
  if (rows.length === 0) return '<p><em>(no rows)</em></p>';
  const cols = Object.keys(rows[0]);
  const isText = cols.map((c) => rows.some((r) => typeof r[c] === 'string') && rows.every((r) => typeof r[c] !== 'number'));
  const cls = (j: number) => (isText[j] ? ' class="tda-text"' : '');
  const head = cols.map((c, j) => `<th${cls(j)}>${escapeHtml(c)}</th>`).join('');
  const body = rows.map((r) => `<tr>${cols.map((c, j) => `<td${cls(j)}>${formatCell(r[c], digits)}</td>`).join('')}</tr>`).join('\n');
  const cap = caption ? `<caption>${escapeHtml(caption)}</caption>` : '';
  return `<table class="tda-table">${cap}<thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

/**
 * Shows a danfo DataFrame or an array of row objects as an HTML table. Numbers that are not
 * integers get `digits` decimals; long strings are left-aligned and wrap.
 */
export function showTable(table: DataFrame | Record<string, Cell>[], digits = 3, caption?: string): void {
  ensureNotebookAssets();
  const rows = Array.isArray(table) ? table : frameRows(table);
  send(() => tslab().display.html(notebookTableHtml(rows, digits, caption)));
}

/** Shows raw HTML. */
export function showHtml(html: string): void {
  send(() => tslab().display.html(html));
}

/** Shows Markdown (rendered by the notebook front end). */
export function showMarkdown(markdown: string): void {
  send(() => tslab().display.markdown(markdown));
}

export interface NotebookProgress {
  /** Redraws the bar in place (only when the percentage changes); await it to let the output go out now. */
  update(done: number, total: number, detail?: string): Promise<void>;
  /** Marks the bar finished, with the elapsed time. */
  stop(detail?: string): void;
}

/** Yields to the event loop, so queued notebook output is sent. */
export function yieldToKernel(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A progress bar that redraws in place in the notebook output. */
export function notebookProgress(label: string): NotebookProgress {
  const d = tslab().newDisplay();
  const started = Date.now();
  let last = '';
  const draw = (done: number, total: number, detail: string, finished: boolean) => {
    const pct = total > 0 ? Math.min(100, Math.round((100 * done) / total)) : 100;
    const secs = ((Date.now() - started) / 1000).toFixed(finished ? 1 : 0);
    const text = `${escapeHtml(label)}: ${done}/${total}${detail ? ` &middot; ${escapeHtml(detail)}` : ''} &middot; ${secs} s${finished ? ' &#10003;' : ''}`;
    const key = `${pct}|${detail}|${finished}`;
    if (key === last) return false;
    last = key;
    send(() => d.html(`<div class="tda-progress">${text}<div class="tda-bar"><div style="width:${(360 * pct) / 100}px"></div></div></div>`));
    return true;
  };
  let lastDone = 0;
  let lastTotal = 0;
  return {
    update: (done, total, detail = '') => {
      lastDone = done;
      lastTotal = total;
      return draw(done, total, detail, false) ? yieldToKernel() : Promise.resolve();
    },
    stop: (detail = '') => {
      draw(lastTotal || lastDone, lastTotal || lastDone, detail, true);
    },
  };
}

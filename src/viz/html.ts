/** HTML building blocks shared by the report file and notebook output. */
import * as fs from 'node:fs';
import { Figure } from './figures';

let plotlySource: string | undefined;

/** plotly.js (the minified dist bundle), read once from the installed package. */
export function plotlyScript(): string {
  plotlySource ??= fs.readFileSync(require.resolve('plotly.js-dist-min/plotly.min.js'), 'utf8');
  return plotlySource;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

let figureCounter = 0;

/** A div plus the call that draws the figure into it (plotly must already be loaded). */
export function figureHtml(fig: Figure, height = 420): string {
  const id = `tda-fig-${process.pid}-${++figureCounter}`;
  // JSON in a script: escape "</" so a string can never close the tag.
  const json = (v: unknown) => JSON.stringify(v).replace(/<\//g, '<\\/');
  return (
    `<div id="${id}" class="tda-figure" style="width:100%;height:${height}px"></div>\n` +
    `<script>Plotly.newPlot(${json(id)}, ${json(fig.data)}, ${json(fig.layout)}, {responsive: true, displaylogo: false});</script>`
  );
}

export type Cell = string | number | boolean | null | undefined;

function formatCell(v: Cell, digits: number): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : Number.isNaN(v) ? 'NaN' : v.toFixed(digits);
  return v === null || v === undefined ? '' : escapeHtml(String(v));
}

/** An HTML table from row objects. */
export function tableHtml(rows: Record<string, Cell>[], digits = 3): string {
  if (rows.length === 0) return '<p><em>(no rows)</em></p>';
  const cols = Object.keys(rows[0]);
  const head = cols.map((c) => `<th>${escapeHtml(c)}</th>`).join('');
  const body = rows.map((r) => `<tr>${cols.map((c) => `<td>${formatCell(r[c], digits)}</td>`).join('')}</tr>`).join('\n');
  return `<table class="tda-table"><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

export const TABLE_CSS = `
.tda-table { border-collapse: collapse; font: 13px/1.4 Inter, Helvetica, Arial, sans-serif; margin: 8px 0 16px; }
.tda-table th, .tda-table td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; }
.tda-table th { background: #f4f6f8; font-weight: 600; }
.tda-table td:first-child, .tda-table th:first-child { text-align: left; }
`;

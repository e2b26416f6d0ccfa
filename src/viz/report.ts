/**
 * A single self-contained HTML report: plotly.js inlined once, every figure a div, every
 * table plain HTML. It opens offline. Written atomically.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeTextAtomic } from '../io/fsutil';
import { Figure } from './figures';
import { Cell, escapeHtml, figureHtml, plotlyScript, TABLE_CSS, tableHtml } from './html';

export interface ReportSection {
  heading: string;
  /** Paragraphs of plain text. */
  text?: string[];
  table?: Record<string, Cell>[];
  figures?: Figure[];
}

export interface Report {
  title: string;
  subtitle?: string;
  sections: ReportSection[];
}

export function renderReport(r: Report): string {
  const sections = r.sections
    .map((s) => {
      const parts = [`<h2>${escapeHtml(s.heading)}</h2>`];
      for (const p of s.text ?? []) parts.push(`<p>${escapeHtml(p)}</p>`);
      if (s.table) parts.push(tableHtml(s.table));
      for (const f of s.figures ?? []) parts.push(figureHtml(f));
      return `<section>\n${parts.join('\n')}\n</section>`;
    })
    .join('\n');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(r.title)}</title>
<style>
body { font: 15px/1.5 Inter, Helvetica, Arial, sans-serif; max-width: 1100px; margin: 24px auto; padding: 0 16px; color: #222; }
h1 { margin-bottom: 0; } .subtitle { color: #666; margin-top: 4px; }
section { margin: 28px 0; } ${TABLE_CSS}
</style>
<script>${plotlyScript()}</script>
</head><body>
<h1>${escapeHtml(r.title)}</h1>
${r.subtitle ? `<p class="subtitle">${escapeHtml(r.subtitle)}</p>` : ''}
${sections}
</body></html>
`;
}

export function writeReport(file: string, r: Report): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeTextAtomic(file, renderReport(r));
}

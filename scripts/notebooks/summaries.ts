/**
 * The numbers notebooks/README.md quotes. Each notebook ends by printing one line
 * `SUMMARY NN: ...; ran in N s`; the README quotes those lines (without the timing) in a
 * code block. `checkSummaries` compares the README with executed notebooks, and
 * `updateReadmeSummaries` rewrites the README's lines from them (after a deliberate change
 * of results: `npx tsx scripts/notebooks/run-notebooks.ts --update-readme`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NOTEBOOK_DIR } from './jupyter';

export const NOTEBOOK_README = path.join(NOTEBOOK_DIR, 'README.md');
const LINE = /^SUMMARY (\d\d): .*$/;

/** The summary lines the README quotes, by notebook number ("03"). */
export function readmeSummaries(readme = NOTEBOOK_README): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of fs.readFileSync(readme, 'utf8').split('\n')) {
    const m = line.trim().match(LINE);
    if (m) out.set(m[1], line.trim());
  }
  return out;
}

/** The summary line an executed notebook printed, without its run time; null if none. */
export function notebookSummary(executedFile: string): string | null {
  const nb = JSON.parse(fs.readFileSync(executedFile, 'utf8')) as { cells: { outputs?: { output_type: string; text?: string | string[] }[] }[] };
  for (const cell of nb.cells) {
    for (const o of cell.outputs ?? []) {
      if (o.output_type !== 'stream' || o.text === undefined) continue;
      const text = Array.isArray(o.text) ? o.text.join('') : o.text;
      for (const line of text.split('\n')) {
        if (LINE.test(line)) return line.replace(/; ran in \d+ s$/, '').trim();
      }
    }
  }
  return null;
}

/** The notebook number of an executed notebook file ("03-debias-vs-denoise.ipynb" -> "03"). */
export function notebookNumber(file: string): string {
  return path.basename(file).slice(0, 2);
}

/**
 * Whether two summary lines say the same: the same words, and every number within 0.003 +
 * 0.5% of the quoted one. Native BLAS picks kernels (and with them the order of its sums) by
 * CPU, so an ill-conditioned quantity such as exact influence's AUC can move in its third
 * decimal from one machine kind to another; a change of result moves more than that.
 */
export function summariesAgree(claimed: string, actual: string): boolean {
  const NUMBER = /-?\d+(?:\.\d+)?(?:e[-+]?\d+)?/g;
  if (claimed.replace(NUMBER, '#') !== actual.replace(NUMBER, '#')) return false;
  const a = claimed.match(NUMBER) ?? [];
  const b = actual.match(NUMBER) ?? [];
  return a.length === b.length && a.every((x, i) => Math.abs(Number(x) - Number(b[i])) <= 0.003 + 0.005 * Math.abs(Number(x)));
}

/** Mismatches between the README's quoted lines and these executed notebooks (empty = all agree). */
export function checkSummaries(executedFiles: string[], readme = NOTEBOOK_README): string[] {
  const quoted = readmeSummaries(readme);
  const problems: string[] = [];
  for (const file of executedFiles) {
    const num = notebookNumber(file);
    const actual = notebookSummary(file);
    const claimed = quoted.get(num);
    if (actual === null) problems.push(`${path.basename(file)} printed no "SUMMARY ${num}:" line`);
    else if (claimed === undefined) problems.push(`${path.relative(process.cwd(), readme)} quotes no "SUMMARY ${num}:" line`);
    else if (!summariesAgree(claimed, actual)) {
      problems.push(`${path.basename(file)}: the README says\n    ${claimed}\n  but the notebook printed\n    ${actual}`);
    }
  }
  return problems;
}

/** Replaces the README's quoted lines with those of the executed notebooks. */
export function updateReadmeSummaries(executedFiles: string[], readme = NOTEBOOK_README): number {
  const fresh = new Map(executedFiles.map((f) => [notebookNumber(f), notebookSummary(f)] as const));
  let changed = 0;
  const lines = fs.readFileSync(readme, 'utf8').split('\n').map((line) => {
    const m = line.trim().match(LINE);
    const next = m ? fresh.get(m[1]) : null;
    if (!m || !next || next === line.trim()) return line;
    changed++;
    return next;
  });
  fs.writeFileSync(readme, lines.join('\n'));
  return changed;
}

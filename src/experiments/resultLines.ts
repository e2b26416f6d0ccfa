/**
 * The lines a README may quote from a run. Every `reproduce` run writes `summary.txt`: one
 * line per result, `RESULT <experiment>/<key>: <text>` (an interval, a paired difference and
 * its verdict). A run whose numbers the README reports is committed as
 * `docs/results/<experiment>-summary.txt`, and the README quotes its lines verbatim;
 * `checkQuotedResults` finds every quoted line that the committed summaries do not hold
 * word for word, so a table cannot drift from the run it claims to come from.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TdaError } from '../errors';

export const SUMMARY_FILE = 'summary.txt';
/** Where committed run summaries live, relative to the repository root. */
export const COMMITTED_RESULTS_DIR = path.join('docs', 'results');

const LINE = /^RESULT ([a-z0-9-]+\/[^:]+): (.+)$/;

/** `RESULT dda/denoise-plain dataInf ft: ...`; the key may hold spaces but no colon. */
export function resultLine(experiment: string, key: string, text: string): string {
  if (!/^[a-z0-9-]+$/.test(experiment)) throw new TdaError(`experiment '${experiment}' must be lower-case letters, digits and dashes`, { field: 'experiment' });
  if (key.includes(':') || key.trim() !== key || key === '') throw new TdaError(`key '${key}' must be non-empty, without a colon or outer spaces`, { field: 'key' });
  if (text.includes('\n')) throw new TdaError('a result line must be one line', { field: 'text' });
  return `RESULT ${experiment}/${key}: ${text}`;
}

/** The result lines of a text (a summary file or a README), by id (`dda/<key>`); trimmed. */
export function parseResultLines(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const m = line.match(LINE);
    if (m) out.set(m[1], line);
  }
  return out;
}

/**
 * Mismatches between the result lines a README quotes and the summaries (empty = every
 * quoted line is in a summary, word for word). `where` names the README in messages.
 */
export function checkQuotedResults(readme: string, summaries: string[], where = 'README.md'): string[] {
  const known = new Map<string, string>();
  for (const s of summaries) for (const [id, line] of parseResultLines(s)) known.set(id, line);
  const problems: string[] = [];
  for (const [id, quoted] of parseResultLines(readme)) {
    const actual = known.get(id);
    if (actual === undefined) problems.push(`${where} quotes '${id}', which no committed summary has`);
    else if (actual !== quoted) problems.push(`${where} says\n    ${quoted}\n  but the committed summary says\n    ${actual}`);
  }
  return problems;
}

/** The committed summaries under `root/docs/results/*-summary.txt`, as texts. */
export function committedSummaries(root: string): string[] {
  const dir = path.join(root, COMMITTED_RESULTS_DIR);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('-summary.txt'))
    .sort()
    .map((f) => fs.readFileSync(path.join(dir, f), 'utf8'));
}

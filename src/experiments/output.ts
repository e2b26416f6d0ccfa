/** Writes an experiment's tables (CSV) and figures (one self-contained HTML report) to a run directory. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataFrame, frameRows } from '../eval/frame';
import { Report, writeReport } from '../viz/report';
import { parseTempName, processAlive, tempFileFor, writeTextAtomic } from '../io/fsutil';

function csvCell(v: unknown): string {
  const s = typeof v === 'number' ? (Number.isNaN(v) ? 'NaN' : String(v)) : String(v ?? '');
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function frameToCsv(df: DataFrame): string {
  const rows = frameRows(df);
  const cols = df.columns;
  return [cols.join(','), ...rows.map((r) => cols.map((c) => csvCell(r[c])).join(','))].join('\n') + '\n';
}

/**
 * A run folder is filled under a hidden temp name and renamed to `runs/<timestamp>-<name>`
 * only once complete: an interrupted run leaves no visible half-written folder. Hidden
 * folders of runs that were killed (their process is gone) are removed here.
 */
export function startRunDir(root: string, name: string): { dir: string; final: string } {
  fs.mkdirSync(root, { recursive: true });
  for (const entry of fs.readdirSync(root)) {
    const t = parseTempName(entry);
    if (t && RUN_DIR_RE.test(t.target) && !processAlive(t.pid)) fs.rmSync(path.join(root, entry), { recursive: true, force: true });
  }
  // `runs/<timestamp>-<name>`, timestamp in UTC (sortable).
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  let final = path.join(root, `${stamp}-${name}`);
  // Two runs started within the same second get distinct folders.
  for (let i = 2; fs.existsSync(final); i++) final = path.join(root, `${stamp}-${name}-${i}`);
  const dir = tempFileFor(final);
  fs.mkdirSync(dir);
  return { dir, final };
}

const RUN_DIR_RE = /^\d{8}-\d{6}-/;

/** Makes a finished run folder visible under its final name (with a suffix if a run started in the same second took it). */
export function finishRunDir(run: { dir: string; final: string }): string {
  for (let i = 1; ; i++) {
    const target = i === 1 ? run.final : `${run.final}-${i}`;
    if (fs.existsSync(target)) continue;
    try {
      fs.renameSync(run.dir, target);
      return target;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
    }
  }
}

export function writeTables(dir: string, tables: Record<string, DataFrame>): string[] {
  fs.mkdirSync(dir, { recursive: true });
  return Object.entries(tables).map(([name, df]) => {
    const file = path.join(dir, `${name}.csv`);
    writeTextAtomic(file, frameToCsv(df));
    return file;
  });
}

export function writeJson(file: string, value: unknown): void {
  writeTextAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

export function writeRunReport(dir: string, report: Report): string {
  const file = path.join(dir, 'report.html');
  writeReport(file, report);
  return file;
}

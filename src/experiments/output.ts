/** Writes an experiment's tables (CSV) and figures (one self-contained HTML report) to a run directory. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataFrame, frameRows } from '../eval/frame';
import { Report, writeReport } from '../viz/report';

function csvCell(v: unknown): string {
  const s = typeof v === 'number' ? (Number.isNaN(v) ? 'NaN' : String(v)) : String(v ?? '');
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function frameToCsv(df: DataFrame): string {
  const rows = frameRows(df);
  const cols = df.columns;
  return [cols.join(','), ...rows.map((r) => cols.map((c) => csvCell(r[c])).join(','))].join('\n') + '\n';
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

/** `runs/<timestamp>` under `root` (timestamp in UTC, sortable). */
export function newRunDir(root: string, name: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  const dir = path.join(root, `${stamp}-${name}`);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export function writeTables(dir: string, tables: Record<string, DataFrame>): string[] {
  fs.mkdirSync(dir, { recursive: true });
  return Object.entries(tables).map(([name, df]) => {
    const file = path.join(dir, `${name}.csv`);
    writeAtomic(file, frameToCsv(df));
    return file;
  });
}

export function writeJson(file: string, value: unknown): void {
  writeAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

export function writeRunReport(dir: string, report: Report): string {
  const file = path.join(dir, 'report.html');
  writeReport(file, report);
  return file;
}

/**
 * danfo DataFrames for metric tables. danfojs-node takes ~1.5 s to load, so it is required
 * on first use, not at import: commands that never build a table (e.g. `tda-lab grads`)
 * do not pay for it.
 */
import type { DataFrame } from 'danfojs-node';
import { TdaError } from '../errors';

export type { DataFrame } from 'danfojs-node';

let danfoModule: typeof import('danfojs-node') | undefined;

/** The danfojs-node module, loaded once. */
export function danfo(): typeof import('danfojs-node') {
  danfoModule ??= require('danfojs-node') as typeof import('danfojs-node');
  return danfoModule;
}

/** A DataFrame from equal-length columns (numbers or strings), in the key order of `columns`. */
export function frameFromColumns(columns: Record<string, ArrayLike<number> | readonly string[]>): DataFrame {
  const names = Object.keys(columns);
  const n = names.length ? columns[names[0]].length : 0;
  if (n === 0) throw new TdaError('cannot make a table with no rows', { field: names[0] ?? 'columns' });
  const data: Record<string, (number | string)[]> = {};
  for (const name of names) {
    if (columns[name].length !== n) throw new TdaError(`has ${columns[name].length} rows, expected ${n}`, { field: name });
    data[name] = Array.from(columns[name] as ArrayLike<number | string>);
  }
  return new (danfo().DataFrame)(data, { columns: names });
}

/** One column of a DataFrame as plain numbers. */
export function frameColumn(df: DataFrame, name: string): number[] {
  if (!df.columns.includes(name)) throw new TdaError(`no such column (have ${df.columns.join(', ')})`, { field: name });
  return (df.column(name).values as unknown[]).map(Number);
}

/** Rows of a DataFrame as plain objects (for HTML and text tables). */
export function frameRows(df: DataFrame): Record<string, number | string>[] {
  const cols = df.columns;
  const values = df.values as unknown as (number | string)[][];
  return values.map((row) => Object.fromEntries(cols.map((c, j) => [c, row[j]])));
}

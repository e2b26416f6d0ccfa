/** The non-blank lines of a JSONL file, parsed, with their 1-based line numbers for error messages. */
import * as fs from 'node:fs';
import { TdaError } from '../errors';

export function readJsonlObjects(path: string): { value: Record<string, unknown>; line: number }[] {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw new TdaError(`cannot read examples: ${(e as Error).message}`, { file: path });
  }
  const out: { value: Record<string, unknown>; line: number }[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (raw.trim() === '') return; // blank lines (and the trailing newline) are fine
    const field = `line ${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      throw new TdaError(`invalid JSON: ${(e as Error).message}`, { file: path, field });
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TdaError('each line must be a JSON object', { file: path, field });
    out.push({ value: value as Record<string, unknown>, line: i + 1 });
  });
  if (!out.length) throw new TdaError('no examples (the file is empty or has only blank lines)', { file: path });
  return out;
}

/**
 * The texts the explorer shows, from JSONL: one `{"prompt": ..., "response": ...}` object per
 * line (the format `tda-lab grads` reads), optionally with `"label"` (e.g. "hallucination" or
 * a class) and `"positives"` (known positive training indices of a query).
 */
import * as fs from 'node:fs';
import { TdaError } from '../../errors';
import { writeTextAtomic } from '../../io/fsutil';

export interface TextExample {
  prompt: string;
  response: string;
  label?: string;
  positives?: number[];
}

export function readTextJsonl(file: string): TextExample[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TdaError(`cannot read: ${(e as Error).message}`, { file });
  }
  const out: TextExample[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (raw.trim() === '') return;
    const field = (name: string) => `line ${i + 1}: ${name}`;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(raw);
    } catch (e) {
      throw new TdaError(`invalid JSON: ${(e as Error).message}`, { file, field: `line ${i + 1}` });
    }
    if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new TdaError('must be a JSON object', { file, field: `line ${i + 1}` });
    if (typeof o.prompt !== 'string') throw new TdaError('must be a string (the explorer shows texts; input_ids lines have none)', { file, field: field('prompt') });
    if (typeof o.response !== 'string') throw new TdaError('must be a string', { file, field: field('response') });
    const ex: TextExample = { prompt: o.prompt, response: o.response };
    if (o.label !== undefined) {
      if (typeof o.label !== 'string') throw new TdaError('must be a string', { file, field: field('label') });
      ex.label = o.label;
    }
    if (o.positives !== undefined) {
      if (!Array.isArray(o.positives) || !o.positives.every((p) => Number.isInteger(p) && p >= 0)) throw new TdaError('must be a list of training indices', { file, field: field('positives') });
      ex.positives = o.positives as number[];
    }
    out.push(ex);
  });
  if (out.length === 0) throw new TdaError('holds no examples', { file });
  return out;
}

export function writeTextJsonl(file: string, examples: TextExample[]): void {
  writeTextAtomic(file, examples.map((e) => JSON.stringify(e)).join('\n') + '\n');
}

/** How a training example reads in the explorer. */
export const exampleText = (e: { prompt: string; response: string }) => `${e.prompt} ${e.response}`;

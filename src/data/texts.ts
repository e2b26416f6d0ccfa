/** The raw texts of a JSONL example file (`prompt` + ' ' + `response` per line), for lexical methods such as BM25. */
import * as fs from 'node:fs';
import { TdaError } from '../errors';

export function readTextsJsonl(path: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw new TdaError(`cannot read examples: ${(e as Error).message}`, { file: path });
  }
  const texts: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (raw.trim() === '') return;
    const field = `line ${i + 1}`;
    let o: unknown;
    try {
      o = JSON.parse(raw);
    } catch (e) {
      throw new TdaError(`invalid JSON: ${(e as Error).message}`, { file: path, field });
    }
    const r = o as Record<string, unknown> | null;
    if (typeof r !== 'object' || r === null || typeof r.prompt !== 'string' || typeof r.response !== 'string') {
      throw new TdaError('a text method needs "prompt" and "response" strings on every line (token ids have no text)', { file: path, field });
    }
    texts.push(`${r.prompt} ${r.response}`);
  });
  if (!texts.length) throw new TdaError('no examples (the file is empty or has only blank lines)', { file: path });
  return texts;
}

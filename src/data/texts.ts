/** The raw texts of a JSONL example file (`prompt` + ' ' + `response` per line), for lexical methods such as BM25. */
import { TdaError } from '../errors';
import { readJsonlObjects } from './jsonl';

export function readTextsJsonl(path: string): string[] {
  return readJsonlObjects(path).map(({ value, line }) => {
    if (typeof value.prompt !== 'string' || typeof value.response !== 'string') {
      throw new TdaError('a text method needs "prompt" and "response" strings on every line (token ids have no text)', { file: path, field: `line ${line}` });
    }
    return `${value.prompt} ${value.response}`;
  });
}

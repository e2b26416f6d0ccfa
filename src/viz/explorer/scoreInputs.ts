/** Score files (`tda-lab score`, full or `--top-k`) as explorer columns. */
import * as path from 'node:path';
import { readScoreFile, readTopKFile, TOPK_FORMAT } from '../../attribution/scoreFile';
import { SafetensorsFile } from '../../io/safetensors';
import { ExplorerScoreInput } from './model';

/** One column: the method from the file's metadata (else its name), the setting from `view` (else "plain"). */
export function readScoreColumn(file: string, fallback: { method?: string; view?: string } = {}): ExplorerScoreInput {
  const f = SafetensorsFile.open(file);
  const format = f.metadata.format;
  f.close();
  const method = (m: Record<string, string>) => fallback.method ?? m.method ?? path.basename(file).replace(/\.safetensors$/, '');
  const view = (m: Record<string, string>) => fallback.view ?? m.view ?? 'plain';
  if (format === TOPK_FORMAT) {
    const { topK, metadata } = readTopKFile(file);
    return { method: method(metadata), view: view(metadata), topK };
  }
  const { scores, metadata } = readScoreFile(file);
  return { method: method(metadata), view: view(metadata), full: scores };
}

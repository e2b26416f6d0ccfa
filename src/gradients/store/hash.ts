/**
 * Content hashes (sha256, hex) of what produces a set of gradients: the base model's
 * directory, the adapter's directory and the dataset. A gradient store records them so it
 * can refuse to mix gradients of different models, adapters or data.
 *
 * Files are streamed through the hash in fixed-size pieces, so multi-GB checkpoints never
 * sit in memory. JSON files (config.json, adapter_config.json, the shard index) are hashed
 * in canonical form (sorted keys, no whitespace): re-saving a config with another indent
 * does not invalidate a cache, changing any value does. Nothing is cached between calls.
 */
import { createHash, Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TokenSequence } from '../../data/batch';
import { showValue, TdaError } from '../../errors';

const PIECE = 8 * 1024 * 1024;

/**
 * JSON with object keys sorted at every level and no whitespace: equal values give equal text.
 * Non-finite numbers (which JSON cannot represent) are an error.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TdaError(`cannot hash the non-finite number ${value}`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
  }
  throw new TdaError(`cannot hash a value of type ${typeof value}`);
}

export function sha256Hex(text: string | Uint8Array): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Feed a file into `hash` piece by piece. */
function updateWithFile(hash: Hash, file: string): void {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new TdaError(`cannot read file to hash it: ${(e as Error).message}`, { file });
  }
  try {
    const buf = Buffer.allocUnsafe(PIECE);
    let pos = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, PIECE, pos);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      pos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** sha256 of a file's bytes, streamed. */
export function hashFile(file: string): string {
  const h = createHash('sha256');
  updateWithFile(h, file);
  return h.digest('hex');
}

/** sha256 of a JSON file's canonical form. */
export function hashJsonFile(file: string): string {
  let value: unknown;
  try {
    value = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new TdaError(`cannot read JSON to hash it: ${(e as Error).message}`, { file });
  }
  return sha256Hex(canonicalJson(value));
}

/** One hash over named parts (file name -> its hash), independent of listing order. */
function combine(kind: string, parts: Record<string, string>): string {
  return sha256Hex(canonicalJson({ kind, parts }));
}

function requireFile(file: string, what: string): void {
  if (!fs.existsSync(file)) throw new TdaError(`${what} not found; cannot hash`, { file });
}

/**
 * Hash of a Hugging Face model directory: `config.json` plus the weights, either
 * `model.safetensors` or every shard listed in `model.safetensors.index.json` (the index's
 * weight_map counts, its informational metadata does not). Tokenizer files are not part of
 * it: gradients depend on token ids, which the dataset hash covers.
 */
export function hashModelDir(dir: string): string {
  const config = path.join(dir, 'config.json');
  requireFile(config, 'model config');
  const parts: Record<string, string> = { 'config.json': hashJsonFile(config) };
  const index = path.join(dir, 'model.safetensors.index.json');
  const single = path.join(dir, 'model.safetensors');
  if (fs.existsSync(index)) {
    let weightMap: unknown;
    try {
      weightMap = (JSON.parse(fs.readFileSync(index, 'utf8')) as { weight_map?: unknown }).weight_map;
    } catch (e) {
      throw new TdaError(`cannot read shard index: ${(e as Error).message}`, { file: index });
    }
    if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
      throw new TdaError('must be an object mapping tensor names to shard files', { file: index, field: 'weight_map' });
    }
    parts['model.safetensors.index.json#weight_map'] = sha256Hex(canonicalJson(weightMap));
    const shards = [...new Set(Object.values(weightMap as Record<string, unknown>))].sort();
    for (const shard of shards) {
      if (typeof shard !== 'string' || shard !== path.basename(shard) || shard === '' || shard === '.' || shard === '..') {
        throw new TdaError(`shard must be a file name in the checkpoint directory, got ${showValue(shard)}`, { file: index, field: 'weight_map' });
      }
      const file = path.join(dir, shard);
      requireFile(file, `shard '${shard}' listed in the index`);
      parts[shard] = hashFile(file);
    }
  } else if (fs.existsSync(single)) {
    parts['model.safetensors'] = hashFile(single);
  } else {
    throw new TdaError('no weights found to hash: expected model.safetensors or model.safetensors.index.json', { file: dir });
  }
  return combine('model', parts);
}

/** Hash of a PEFT adapter directory: `adapter_config.json` (canonical) and `adapter_model.safetensors`. */
export function hashAdapterDir(dir: string): string {
  const config = path.join(dir, 'adapter_config.json');
  const weights = path.join(dir, 'adapter_model.safetensors');
  requireFile(config, 'adapter config');
  requireFile(weights, 'adapter weights');
  return combine('adapter', { 'adapter_config.json': hashJsonFile(config), 'adapter_model.safetensors': hashFile(weights) });
}

/**
 * Hash of a dataset: sha256 of the canonical JSON array
 * `[{"input_ids":[...],"prompt_length":N}, ...]` in dataset order, built one example at a
 * time. Order matters: the gradient store is indexed by position.
 */
export function hashDataset(examples: readonly TokenSequence[]): string {
  const h = createHash('sha256');
  h.update('[');
  examples.forEach((ex, i) => {
    if (!ex || !Array.isArray(ex.inputIds) || !Number.isInteger(ex.promptLength)) {
      throw new TdaError(`example ${i} is not a token sequence ({inputIds: number[], promptLength: integer})`, { field: 'examples' });
    }
    if (i > 0) h.update(',');
    h.update(canonicalJson({ input_ids: ex.inputIds, prompt_length: ex.promptLength }));
  });
  h.update(']');
  return h.digest('hex');
}

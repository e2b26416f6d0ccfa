/**
 * One view over a checkpoint's weights, whether it is a single `model.safetensors` or shards
 * listed in `model.safetensors.index.json`. Tensors are read one at a time on demand.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { showValue, TdaError } from '../errors';
import { writeFileAtomic, writeFully } from './fsutil';
import { SafetensorsFile, TensorInfo } from './safetensors';
import { TensorToWrite, tensorByteLength, writeSafetensors } from './writer';

export interface WeightSource {
  names(): string[];
  has(name: string): boolean;
  /** Where the tensor lives, including the shard file it is in. */
  info(name: string): TensorInfo & { file: string };
  readFloat32(name: string): Float32Array;
  close(): void;
}

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

/** A WeightSource over one safetensors file. */
export function openWeightsFile(file: string): WeightSource {
  const st = SafetensorsFile.open(file);
  return {
    names: () => st.names(),
    has: (name) => st.has(name),
    info: (name) => ({ ...st.info(name), file }),
    readFloat32: (name) => st.readFloat32(name),
    close: () => st.close(),
  };
}

/** Parse the index: `{"metadata": {...}, "weight_map": {tensor: shardFileName}}`. */
function readIndex(indexPath: string): Map<string, string> {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
  } catch (e) {
    throw new TdaError(`cannot read shard index: ${(e as Error).message}`, { file: indexPath });
  }
  const map = (raw as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new TdaError('must be an object mapping tensor names to shard files', { file: indexPath, field: 'weight_map' });
  }
  const out = new Map<string, string>();
  for (const [name, shard] of Object.entries(map)) {
    // Shards are plain file names next to the index; anything else could point outside the checkpoint.
    if (typeof shard !== 'string' || shard === '' || shard !== path.basename(shard) || shard === '..' || shard === '.') {
      throw new TdaError(`shard must be a file name in the checkpoint directory, got ${showValue(shard)}`, {
        file: indexPath,
        field: `weight_map.${name}`,
      });
    }
    out.set(name, shard);
  }
  return out;
}

/**
 * Open every shard's header up front: headers are small, and a broken checkpoint should fail
 * at open with the shard and tensor named, not halfway through loading a model.
 */
function openSharded(dir: string, indexPath: string): WeightSource {
  const weightMap = readIndex(indexPath);
  const shards = new Map<string, SafetensorsFile>();
  const closeAll = () => shards.forEach((s) => s.close());
  try {
    for (const [name, shard] of weightMap) {
      let st = shards.get(shard);
      if (!st) {
        const file = path.join(dir, shard);
        if (!fs.existsSync(file)) {
          throw new TdaError(`shard file '${shard}' listed in ${INDEX_FILE} does not exist`, { file, field: name });
        }
        st = SafetensorsFile.open(file);
        shards.set(shard, st);
      }
      if (!st.has(name)) {
        throw new TdaError(`tensor listed in ${INDEX_FILE} is missing from shard '${shard}'`, { file: st.path, field: name });
      }
    }
  } catch (e) {
    closeAll();
    throw e;
  }
  const shardOf = (name: string): SafetensorsFile => {
    const shard = weightMap.get(name);
    if (shard === undefined) throw new TdaError('no such tensor in the checkpoint index', { file: indexPath, field: name });
    return shards.get(shard)!;
  };
  return {
    names: () => [...weightMap.keys()].sort(),
    has: (name) => weightMap.has(name),
    info: (name) => {
      const st = shardOf(name);
      return { ...st.info(name), file: st.path };
    },
    readFloat32: (name) => shardOf(name).readFloat32(name),
    close: closeAll,
  };
}

/** Open a Hugging Face checkpoint directory's weights (sharded index, else model.safetensors). */
export function openWeights(dir: string): WeightSource {
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch (e) {
    throw new TdaError(`cannot read checkpoint directory: ${(e as Error).message}`, { file: dir });
  }
  if (entries.includes(INDEX_FILE)) return openSharded(dir, path.join(dir, INDEX_FILE));
  if (entries.includes(SINGLE_FILE)) return openWeightsFile(path.join(dir, SINGLE_FILE));
  const pickled = entries.filter((f) => /\.(bin|pt|pth|ckpt)$/.test(f));
  if (pickled.length > 0) {
    throw new TdaError(
      `only PyTorch pickle weights found (${pickled.join(', ')}); pickles cannot be read safely here. ` +
        'Convert the checkpoint to safetensors in Python: model.save_pretrained(out_dir, safe_serialization=True)',
      { file: dir },
    );
  }
  const other = entries.filter((f) => f.endsWith('.safetensors'));
  const hint = other.length ? `; found ${other.join(', ')} (open a single file with openWeightsFile)` : '';
  throw new TdaError(`no weights found: expected ${SINGLE_FILE} or ${INDEX_FILE}${hint}`, { file: dir });
}

export interface ShardOptions {
  /** Start a new shard when adding a tensor would exceed this many data bytes (a bigger tensor gets its own shard). */
  maxShardBytes: number;
  /** File name prefix; files are `<prefix>-00001-of-0000N.safetensors` and `<prefix>.safetensors.index.json`. */
  prefix?: string;
  /** Stored in every shard's `__metadata__`; defaults to {format: 'pt'} like transformers. */
  metadata?: Record<string, string>;
}

/**
 * Write `tensors` as sharded safetensors plus the index, like `save_pretrained(max_shard_size=...)`.
 * Tensors are assigned greedily in sorted-name order. Each file is written atomically; the index
 * goes last, so a crash never leaves an index pointing at missing shards. Returns the file paths.
 */
export function writeShardedSafetensors(
  dir: string,
  tensors: Record<string, TensorToWrite>,
  options: ShardOptions,
): { shards: string[]; index: string } {
  const { maxShardBytes, prefix = 'model', metadata = { format: 'pt' } } = options;
  const indexPath = path.join(dir, `${prefix}.safetensors.index.json`);
  if (!(maxShardBytes > 0)) throw new TdaError(`maxShardBytes must be positive, got ${maxShardBytes}`, { file: indexPath });
  const groups: string[][] = [];
  let current: string[] = [];
  let currentBytes = 0;
  let total = 0;
  for (const name of Object.keys(tensors).sort()) {
    const bytes = tensorByteLength(name, tensors[name], indexPath);
    if (current.length > 0 && currentBytes + bytes > maxShardBytes) {
      groups.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(name);
    currentBytes += bytes;
    total += bytes;
  }
  if (current.length > 0 || groups.length === 0) groups.push(current);

  fs.mkdirSync(dir, { recursive: true });
  const pad = (i: number) => String(i).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  const shards = groups.map((names, i) => {
    const file = `${prefix}-${pad(i + 1)}-of-${pad(groups.length)}.safetensors`;
    writeSafetensors(path.join(dir, file), Object.fromEntries(names.map((n) => [n, tensors[n]])), metadata);
    for (const n of names) weightMap[n] = file;
    return path.join(dir, file);
  });
  const index = JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n';
  writeFileAtomic(indexPath, (fd) => writeFully(fd, Buffer.from(index, 'utf8')));
  return { shards, index: indexPath };
}

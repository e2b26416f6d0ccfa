/**
 * `manifest.json` of a gradient store: every setting that produced the gradients, the
 * block layout, and the shards completed so far. It is rewritten atomically (temp file +
 * rename) after each shard, so a killed run leaves either the old or the new manifest.
 */
import type { BlockLayout } from '../types';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LabelMask } from '../../data/batch';
import { showValue, TdaError } from '../../errors';
import { DTYPE_BYTES } from '../../io/dtype';
import { writeFileAtomic, writeFully } from '../../io/fsutil';
import { describeProjection, ProjectionSpec, validateProjectionSpec } from '../projection';

export const MANIFEST_FILE = 'manifest.json';
export const STORE_FORMAT = 'tda-lab-gradient-store';
/** Bump when the shard layout or the projection's definition changes. */
export const STORE_FORMAT_VERSION = 1;
export const DEFAULT_SHARD_SIZE = 256;

/** How gradient values are stored on disk (they are always read back as float32). */
export type StoreDType = 'F32' | 'F16' | 'BF16';
export const STORE_DTYPES: readonly StoreDType[] = ['F32', 'F16', 'BF16'];

/** Everything that determines a store's contents. Two runs with equal settings produce the same gradients. */
export interface StoreSettings {
  /** hashModelDir of the base model. */
  modelHash: string;
  /** hashAdapterDir of the adapter (checkpoint) the gradients are taken at. */
  adapterHash: string;
  /** hashDataset of the examples. */
  datasetHash: string;
  /** Number of examples. */
  n: number;
  mask: LabelMask;
  dtype: StoreDType;
  projection: ProjectionSpec | null;
  /** Consecutive examples per shard file. */
  shardSize: number;
}

/** Settings as callers give them: dtype, projection and shardSize have defaults (F32, none, 256). */
export type StoreSettingsInput = Omit<StoreSettings, 'dtype' | 'projection' | 'shardSize'> & Partial<Pick<StoreSettings, 'dtype' | 'projection' | 'shardSize'>>;

/** A LoRA tensor's gradient block as computed (before any projection). */
/** A block as the manifest records it (name, per-example shape, flattened size). */
export type ManifestBlock = BlockLayout;

export interface ShardRecord {
  index: number;
  /** First example of the shard. */
  start: number;
  count: number;
  /** File name inside the store directory. */
  file: string;
  bytes: number;
  sha256: string;
}

export interface Manifest {
  format: typeof STORE_FORMAT;
  version: number;
  /** tda-lab version that created the store (informational: not compared on open). */
  tdaLabVersion: string;
  /** ISO time of creation. */
  created: string;
  settings: StoreSettings;
  /** Gradient blocks in store order; null until the first compute() learns them from the adapter. */
  blocks: ManifestBlock[] | null;
  /** Completed shards, sorted by index. */
  shards: ShardRecord[];
}

let cachedVersion: string | undefined;

/** The `version` of tda-lab's package.json (found from src/ or dist/ alike). */
export function tdaLabVersion(): string {
  if (cachedVersion === undefined) {
    cachedVersion = 'unknown';
    for (const rel of ['../../../package.json', '../../../../package.json']) {
      try {
        const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, rel), 'utf8'));
        if (pkg.name === 'tda-lab' && typeof pkg.version === 'string') {
          cachedVersion = pkg.version;
          break;
        }
      } catch {
        /* try the next location */
      }
    }
  }
  return cachedVersion as string;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Validates settings and fills in defaults. `where` names the file being read, if any. */
export function normalizeSettings(input: StoreSettingsInput, file?: string, prefix = ''): StoreSettings {
  const at = (field: string) => ({ file, field: prefix + field });
  if (typeof input !== 'object' || input === null) throw new TdaError('settings must be an object', { file, field: prefix.replace(/\.$/, '') || undefined });
  for (const field of ['modelHash', 'adapterHash', 'datasetHash'] as const) {
    const v = input[field];
    if (typeof v !== 'string' || !HEX64.test(v)) {
      throw new TdaError(`must be a sha256 hex digest (see hashModelDir / hashAdapterDir / hashDataset), got ${showValue(v)}`, at(field));
    }
  }
  if (!Number.isSafeInteger(input.n) || input.n <= 0) throw new TdaError(`must be a positive integer, got ${showValue(input.n)}`, at('n'));
  if (input.mask !== 'response' && input.mask !== 'full') throw new TdaError(`must be 'response' or 'full', got ${showValue(input.mask)}`, at('mask'));
  const dtype = input.dtype ?? 'F32';
  if (!STORE_DTYPES.includes(dtype)) throw new TdaError(`must be one of ${STORE_DTYPES.join(', ')}, got ${showValue(dtype)}`, at('dtype'));
  const projection = input.projection === undefined || input.projection === null ? null : validateProjectionSpec(input.projection, at('projection'));
  const shardSize = input.shardSize ?? DEFAULT_SHARD_SIZE;
  if (!Number.isSafeInteger(shardSize) || shardSize <= 0) throw new TdaError(`must be a positive integer, got ${showValue(shardSize)}`, at('shardSize'));
  return {
    modelHash: input.modelHash,
    adapterHash: input.adapterHash,
    datasetHash: input.datasetHash,
    n: input.n,
    mask: input.mask,
    dtype,
    projection,
    shardSize,
  };
}

export function newManifest(settings: StoreSettings): Manifest {
  return {
    format: STORE_FORMAT,
    version: STORE_FORMAT_VERSION,
    tdaLabVersion: tdaLabVersion(),
    created: new Date().toISOString(),
    settings,
    blocks: null,
    shards: [],
  };
}

export function shardCount(s: StoreSettings): number {
  return Math.ceil(s.n / s.shardSize);
}

export function shardFileName(index: number): string {
  return `shard-${String(index).padStart(5, '0')}.safetensors`;
}

/** Settings that differ, one line each: `label mask: stored 'response', requested 'full'`. */
export function settingsDiff(stored: StoreSettings, requested: StoreSettings): string[] {
  const q = (s: string) => `'${s}'`;
  const rows: [string, string, string][] = [
    ['model hash', q(stored.modelHash), q(requested.modelHash)],
    ['adapter hash', q(stored.adapterHash), q(requested.adapterHash)],
    ['dataset hash', q(stored.datasetHash), q(requested.datasetHash)],
    ['dataset size', String(stored.n), String(requested.n)],
    ['label mask', q(stored.mask), q(requested.mask)],
    ['storage dtype', q(stored.dtype), q(requested.dtype)],
    ['projection', describeProjection(stored.projection), describeProjection(requested.projection)],
    ['shard size', String(stored.shardSize), String(requested.shardSize)],
  ];
  return rows.filter(([, a, b]) => a !== b).map(([label, a, b]) => `${label}: stored ${a}, requested ${b}`);
}

/** Refuses (naming every differing setting and the directory) unless the settings are equal. */
export function checkSettings(dir: string, stored: StoreSettings, requested: StoreSettings): void {
  const diff = settingsDiff(stored, requested);
  if (diff.length) {
    throw new TdaError(
      `gradient store was made with different settings (${diff.join('; ')}); use another directory for these settings, or delete this one to recompute`,
      { file: dir },
    );
  }
}

export function writeManifest(dir: string, manifest: Manifest): void {
  const text = JSON.stringify(manifest, null, 1) + '\n';
  writeFileAtomic(path.join(dir, MANIFEST_FILE), (fd) => writeFully(fd, Buffer.from(text, 'utf8')));
}

/** Reads and validates `dir/manifest.json`; every problem names the file and the field. */
export function readManifest(dir: string): Manifest {
  const file = path.join(dir, MANIFEST_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new TdaError('not a gradient store: manifest.json is missing', { file });
    throw new TdaError(`cannot read manifest: ${err.message}`, { file });
  }
  return parseManifest(raw, file);
}

export function parseManifest(raw: unknown, file: string): Manifest {
  const m = raw as Partial<Manifest> | null;
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new TdaError('manifest must be a JSON object', { file });
  if (m.format !== STORE_FORMAT) throw new TdaError(`not a tda-lab gradient store manifest (format ${showValue(m.format)})`, { file, field: 'format' });
  if (m.version !== STORE_FORMAT_VERSION) {
    throw new TdaError(
      `store format version ${showValue(m.version)} cannot be read by this tda-lab (it reads version ${STORE_FORMAT_VERSION}); recompute into a new directory`,
      { file, field: 'version' },
    );
  }
  const settings = normalizeSettings(m.settings as StoreSettingsInput, file, 'settings.');
  const blocks = m.blocks === null ? null : parseBlocks(m.blocks, file);
  if (!Array.isArray(m.shards)) throw new TdaError('must be an array', { file, field: 'shards' });
  const count = shardCount(settings);
  const seen = new Set<number>();
  const shards = m.shards.map((s, i) => {
    const field = `shards[${i}]`;
    const r = s as Partial<ShardRecord> | null;
    if (typeof r !== 'object' || r === null) throw new TdaError('must be an object', { file, field });
    if (!Number.isSafeInteger(r.index) || (r.index as number) < 0 || (r.index as number) >= count || seen.has(r.index as number)) {
      throw new TdaError(`index must be a distinct shard number below ${count}, got ${showValue(r.index)}`, { file, field });
    }
    const index = r.index as number;
    seen.add(index);
    const start = index * settings.shardSize;
    const expectedCount = Math.min(settings.shardSize, settings.n - start);
    if (r.start !== start || r.count !== expectedCount) {
      throw new TdaError(`start/count must be ${start}/${expectedCount} for shard ${index}, got ${r.start}/${r.count}`, { file, field });
    }
    if (r.file !== shardFileName(index)) throw new TdaError(`file must be ${shardFileName(index)}, got ${showValue(r.file)}`, { file, field });
    if (!Number.isSafeInteger(r.bytes) || (r.bytes as number) <= 0) throw new TdaError(`bytes must be a positive integer, got ${showValue(r.bytes)}`, { file, field });
    if (typeof r.sha256 !== 'string' || !HEX64.test(r.sha256)) throw new TdaError('sha256 must be a hex digest', { file, field });
    return { index, start, count: expectedCount, file: r.file, bytes: r.bytes as number, sha256: r.sha256 };
  });
  if (shards.length && blocks === null) throw new TdaError('completed shards listed but no blocks recorded', { file, field: 'blocks' });
  // Each shard holds count x (every block's dim) values: a record too small for that is corrupt,
  // and checking it keeps sizes taken from this file tied to bytes that exist on disk.
  const perExample = blocks === null ? 0 : blocks.reduce((a, b) => a + (settings.projection?.dim ?? b.dim), 0) * DTYPE_BYTES[settings.dtype];
  const small = shards.findIndex((r) => r.bytes < r.count * perExample);
  if (small >= 0) {
    const r = shards[small];
    throw new TdaError(`shard ${r.index} records ${r.bytes} bytes, too few for ${r.count} examples of ${perExample} bytes`, { file, field: `shards[${small}]` });
  }
  shards.sort((a, b) => a.index - b.index);
  return {
    format: STORE_FORMAT,
    version: STORE_FORMAT_VERSION,
    tdaLabVersion: typeof m.tdaLabVersion === 'string' ? m.tdaLabVersion : 'unknown',
    created: typeof m.created === 'string' ? m.created : '',
    settings,
    blocks,
    shards,
  };
}

function parseBlocks(raw: unknown, file: string): ManifestBlock[] {
  if (!Array.isArray(raw) || raw.length === 0) throw new TdaError('must be null or a non-empty array of {name, shape, dim}', { file, field: 'blocks' });
  const names = new Set<string>();
  return raw.map((b, i) => {
    const field = `blocks[${i}]`;
    const x = b as Partial<ManifestBlock> | null;
    if (typeof x !== 'object' || x === null || typeof x.name !== 'string' || x.name === '' || x.name === 'loss' || names.has(x.name)) {
      throw new TdaError('must have a distinct non-empty name (not "loss")', { file, field });
    }
    names.add(x.name);
    if (!Array.isArray(x.shape) || !x.shape.every((d) => Number.isSafeInteger(d) && d > 0)) {
      throw new TdaError(`shape must be a list of positive integers, got ${showValue(x.shape)}`, { file, field });
    }
    const dim = x.shape.reduce((a, d) => a * d, 1);
    if (!Number.isSafeInteger(dim) || x.dim !== dim) throw new TdaError(`dim ${showValue(x.dim)} does not match shape [${x.shape.join(', ')}]`, { file, field });
    return { name: x.name, shape: [...x.shape], dim };
  });
}

/**
 * A directory of per-example LoRA gradients, computed shard by shard and resumable.
 *
 * Layout: `manifest.json` (see manifest.ts) and `shard-00000.safetensors`, ... Shard i holds
 * examples [i * shardSize, (i + 1) * shardSize): one tensor per gradient block named by its
 * PEFT adapter key, shaped [m, ...tensor shape] (or [m, k] when projected), stored in the
 * configured dtype, plus `loss` [m] in F32.
 *
 * Crash safety: a shard file is written atomically (temp + rename) and only then recorded
 * in the manifest (also atomic). A re-run skips recorded shards whose size and sha256 still
 * match, and recomputes everything else: a shard file not in the manifest (killed between
 * the two writes) or a corrupt one. Readers stream one shard at a time; a shard whose size
 * no longer matches the manifest, or that does not parse, is an error naming the file.
 *
 * One writer per directory at a time: compute() and importShard() hold the lock file `.lock`
 * (see io/lock.ts); a second writer is refused, naming the holder, and a lock left by a
 * crashed writer is taken over. Temp files are hidden (`.shard-00003.safetensors.tmp-...`), so
 * readers listing the directory never see a partial shard.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LabelMask, TokenSequence } from '../../data/batch';
import { TdaError } from '../../errors';
import { SafetensorsFile, TensorToWrite, writeSafetensors } from '../../io/safetensors';
import { parseTempName, processAlive } from '../../io/fsutil';
import { acquireLock, Lock } from '../../io/lock';
import { adapterKey, LoraAdapter } from '../../model/adapter';
import { adapterBlocks, computeLoraGradients, GradientOptions } from '../compute';
import { LlamaModel } from '../../model/llama';
import { hashAdapterDir, hashDataset, hashFile, hashModelDir } from './hash';
import {
  checkSettings,
  Manifest,
  MANIFEST_FILE,
  ManifestBlock,
  newManifest,
  normalizeSettings,
  readManifest,
  shardCount,
  shardFileName,
  ShardRecord,
  StoreDType,
  StoreSettings,
  StoreSettingsInput,
  writeManifest,
} from './manifest';
import { ProjectionSpec, Projector, ProjectorOptions } from '../projection';
import { GradientBlock, GradientSet } from '../types';

export interface ComputeOptions {
  /** Examples per forward/backward pass (default 8). Keep shardSize a multiple of it for batch-for-batch equal results. */
  batchSize?: number;
  padId?: number;
  /** Examples done (including shards reused from an earlier run) out of n; called after each batch. */
  onProgress?: (done: number, total: number) => void;
  /** Called after each shard is written and recorded in the manifest. */
  onShard?: (shard: ShardRecord) => void;
  /** Aborts between batches; finished shards stay recorded and a re-run resumes. */
  signal?: AbortSignal;
  /** Worker threads (compute.ts GradientOptions.workers; a GradientWorkers pool is reused across shards). */
  workers?: GradientOptions['workers'];
  /** Layer recomputation during the backward pass (compute.ts GradientOptions.recompute). */
  recompute?: GradientOptions['recompute'];
}

export interface ComputeReport {
  /** Shards computed by this call. */
  computed: number[];
  /** Shards already complete and verified, skipped. */
  reused: number[];
  /** Shards recorded as complete whose file failed verification (recomputed). */
  invalid: { index: number; reason: string }[];
}

/** One shard as read back: examples [start, start + set.n). */
export interface StoreShard {
  index: number;
  start: number;
  set: GradientSet;
}

export interface StoreSettingsOptions {
  modelDir: string;
  adapterDir: string;
  examples: readonly TokenSequence[];
  mask?: LabelMask;
  dtype?: StoreDType;
  projection?: ProjectionSpec | null;
  shardSize?: number;
}

/** Settings for a store from the model and adapter directories and the dataset (hashes them all). */
export function storeSettings(o: StoreSettingsOptions): StoreSettings {
  return normalizeSettings({
    modelHash: hashModelDir(o.modelDir),
    adapterHash: hashAdapterDir(o.adapterDir),
    datasetHash: hashDataset(o.examples),
    n: o.examples.length,
    mask: o.mask ?? 'response',
    dtype: o.dtype,
    projection: o.projection,
    shardSize: o.shardSize,
  });
}

// Temp files: hidden ones (`.name.tmp-pid-hex`), and visible ones (`name.tmp-pid-hex`) from stores written before temps were hidden.
const OLD_TEMP_RE = /\.tmp-(\d+)-[0-9a-f]+$/;
const OWN_FILE_RE = /^\.?(manifest\.json|shard-\d{5,}\.safetensors)(\.tmp-\d+-[0-9a-f]+)?$|^\.lock(\.takeover)?$/;
export const STORE_LOCK_FILE = '.lock';

export class GradientStore {
  private constructor(
    readonly dir: string,
    private m: Manifest,
  ) {}

  /**
   * Opens the store in `dir` for these settings, creating it (and the directory) when there
   * is no manifest yet. An existing store made with any different setting is refused with a
   * message naming each differing setting, stored vs requested.
   */
  static open(dir: string, settings: StoreSettingsInput): GradientStore {
    const requested = normalizeSettings(settings);
    if (fs.existsSync(path.join(dir, MANIFEST_FILE))) {
      const m = readManifest(dir);
      checkSettings(dir, m.settings, requested);
      return new GradientStore(dir, m);
    }
    if (fs.existsSync(dir)) {
      if (!fs.statSync(dir).isDirectory()) throw new TdaError('exists and is not a directory', { file: dir });
      const foreign = fs.readdirSync(dir).filter((f) => !OWN_FILE_RE.test(f));
      if (foreign.length) {
        throw new TdaError(
          `is not empty and has no ${MANIFEST_FILE} (found ${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', ...' : ''}); refusing to use it as a gradient store`,
          { file: dir },
        );
      }
    }
    fs.mkdirSync(dir, { recursive: true });
    const lock = lockStore(dir);
    try {
      // Another writer may have created it since we looked.
      if (fs.existsSync(path.join(dir, MANIFEST_FILE))) {
        const m = readManifest(dir);
        checkSettings(dir, m.settings, requested);
        return new GradientStore(dir, m);
      }
      const m = newManifest(requested);
      writeManifest(dir, m);
      return new GradientStore(dir, m);
    } finally {
      lock.release();
    }
  }

  /** Holds the store's lock while `fn` runs, with the manifest re-read under it (another writer may have finished shards since open()). */
  private async locked<T>(fn: () => Promise<T> | T): Promise<T> {
    const lock = lockStore(this.dir);
    try {
      this.reload();
      return await fn();
    } finally {
      lock.release();
    }
  }

  private lockedSync<T>(fn: () => T): T {
    const lock = lockStore(this.dir);
    try {
      this.reload();
      return fn();
    } finally {
      lock.release();
    }
  }

  private reload(): void {
    const m = readManifest(this.dir);
    checkSettings(this.dir, m.settings, this.m.settings);
    this.m = m;
  }

  /** Opens an existing store as it is, for readers (its settings come from the manifest). */
  static openExisting(dir: string): GradientStore {
    return new GradientStore(dir, readManifest(dir));
  }

  /** The manifest as last read or written (a copy). */
  get manifest(): Manifest {
    return structuredClone(this.m);
  }

  get settings(): StoreSettings {
    return structuredClone(this.m.settings);
  }

  get n(): number {
    return this.m.settings.n;
  }

  get shardCount(): number {
    return shardCount(this.m.settings);
  }

  /** Blocks as stored: original shapes, or [k] when projected. Null before the first compute(). */
  get blocks(): Omit<GradientBlock, 'data'>[] | null {
    const k = this.m.settings.projection?.dim;
    return this.m.blocks?.map((b) => (k === undefined ? { name: b.name, shape: [...b.shape], dim: b.dim } : { name: b.name, shape: [k], dim: k })) ?? null;
  }

  /** Shards not yet recorded as complete, in order. */
  missingShards(): number[] {
    const done = new Set(this.m.shards.map((s) => s.index));
    return Array.from({ length: this.shardCount }, (_, i) => i).filter((i) => !done.has(i));
  }

  isComplete(): boolean {
    return this.m.shards.length === this.shardCount;
  }

  /** A Projector with this store's projection (null if none), to project test gradients the same way. Dispose it when done. */
  projector(opts?: ProjectorOptions): Projector | null {
    return this.m.settings.projection ? new Projector(this.m.settings.projection, opts) : null;
  }

  /**
   * Computes every missing shard of `examples` (which must be the dataset the store was made
   * for) with `model` and `adapter` (which the caller vouches match the model and adapter
   * hashes; an adapter loaded from a directory is checked against the adapter hash).
   */
  async compute(model: LlamaModel, adapter: LoraAdapter, examples: readonly TokenSequence[], opts: ComputeOptions = {}): Promise<ComputeReport> {
    return this.locked(() => this.computeLocked(model, adapter, examples, opts));
  }

  private async computeLocked(model: LlamaModel, adapter: LoraAdapter, examples: readonly TokenSequence[], opts: ComputeOptions): Promise<ComputeReport> {
    const s = this.m.settings;
    const manifestFile = path.join(this.dir, MANIFEST_FILE);
    if (examples.length !== s.n || hashDataset(examples) !== s.datasetHash) {
      throw new TdaError(`the examples (${examples.length}) are not the dataset this store was made for (${s.n} examples, hash '${s.datasetHash}')`, {
        file: this.dir,
        field: 'examples',
      });
    }
    if (adapter.dir !== undefined) {
      const h = hashAdapterDir(adapter.dir);
      if (h !== s.adapterHash) {
        throw new TdaError(`adapter loaded from ${adapter.dir} has hash '${h}' but the store was made for adapter hash '${s.adapterHash}'`, {
          file: this.dir,
          field: 'adapter',
        });
      }
    }
    const layout = adapterBlocks(adapter);
    if (this.m.blocks === null) {
      this.m.blocks = layout;
      writeManifest(this.dir, this.m);
    } else {
      checkBlocks(this.m.blocks, layout, manifestFile);
    }
    removeStaleTemps(this.dir);

    const report: ComputeReport = { computed: [], reused: [], invalid: [] };
    const valid: ShardRecord[] = [];
    for (const rec of this.m.shards) {
      const reason = verifyShardFile(this.dir, rec);
      if (reason === null) valid.push(rec);
      else report.invalid.push({ index: rec.index, reason });
    }
    if (report.invalid.length) {
      this.m.shards = valid;
      writeManifest(this.dir, this.m);
    }
    const done = new Set(valid.map((r) => r.index));
    let examplesDone = valid.reduce((a, r) => a + r.count, 0);
    opts.onProgress?.(examplesDone, s.n);

    const projector = this.projector();
    try {
      for (let index = 0; index < this.shardCount; index++) {
        if (done.has(index)) {
          report.reused.push(index);
          continue;
        }
        opts.signal?.throwIfAborted();
        const start = index * s.shardSize;
        const count = Math.min(s.shardSize, s.n - start);
        const before = examplesDone;
        const grads = await computeLoraGradients(model, adapter, examples.slice(start, start + count), {
          mask: s.mask,
          batchSize: opts.batchSize,
          padId: opts.padId,
          workers: opts.workers,
          recompute: opts.recompute,
          onProgress: (d) => {
            opts.signal?.throwIfAborted();
            opts.onProgress?.(before + d, s.n);
          },
        });
        const stored = projector ? projector.projectSet(grads) : grads;
        const rec = this.writeShard(index, start, stored);
        this.m.shards = [...this.m.shards, rec].sort((a, b) => a.index - b.index);
        writeManifest(this.dir, this.m);
        examplesDone += count;
        report.computed.push(index);
        opts.onShard?.({ ...rec });
      }
    } finally {
      projector?.dispose();
    }
    return report;
  }

  private writeShard(index: number, start: number, set: GradientSet): ShardRecord {
    const file = shardFileName(index);
    const full = path.join(this.dir, file);
    const tensors: Record<string, TensorToWrite> = {};
    for (const b of set.blocks) tensors[b.name] = { dtype: this.m.settings.dtype, shape: [set.n, ...b.shape], data: b.data };
    tensors.loss = { dtype: 'F32', shape: [set.n], data: set.losses! };
    writeSafetensors(full, tensors, {
      format: 'tda-lab-gradient-shard',
      index: String(index),
      start: String(start),
      count: String(set.n),
      mask: this.m.settings.mask,
    });
    return { index, start, count: set.n, file, bytes: fs.statSync(full).size, sha256: hashFile(full) };
  }

  /** Reads one completed shard. A missing, resized or unparseable file is an error naming it. */
  readShard(index: number): GradientSet {
    return this.readShardAhead(index)();
  }

  /**
   * Starts reading one completed shard and returns the function that waits for it and gives
   * it (see SafetensorsFile.readFloat32Ahead: on the native path the tensors arrive on a
   * thread of their own while the caller works). Checks come first: a missing, resized or
   * unparseable file is an error naming it, before any read starts.
   */
  readShardAhead(index: number): () => GradientSet {
    const rec = this.m.shards.find((r) => r.index === index);
    if (!rec) throw new TdaError(`shard ${index} is not computed (run compute() first)`, { file: this.dir });
    const file = checkShardSize(this.dir, rec);
    const hint = RECOMPUTE_HINT;
    let st: SafetensorsFile;
    try {
      st = SafetensorsFile.open(file);
    } catch (e) {
      throw new TdaError(`gradient shard is corrupt (${(e as Error).message}); ${hint}`, { file });
    }
    const layout = this.blocks ?? [];
    let finish: () => Float32Array[];
    try {
      for (const b of layout) expectShape(st, b.name, [rec.count, ...b.shape], file, hint);
      expectShape(st, 'loss', [rec.count], file, hint);
      finish = st.readFloat32Ahead([...layout.map((b) => b.name), 'loss']);
    } catch (e) {
      st.close();
      throw e;
    }
    let set: GradientSet | null = null;
    return () => {
      if (set) return set;
      try {
        // The read is waited for before the file closes, even when it failed.
        const values = finish();
        set = { n: rec.count, blocks: layout.map((b, l) => ({ ...b, data: values[l] })), losses: values[layout.length] };
        return set;
      } finally {
        st.close();
      }
    };
  }

  /** Throws, naming the directory and the missing shards, unless every shard is recorded. */
  requireComplete(): void {
    // The shard count comes from the manifest (it may claim billions): name the first few missing without listing them all.
    const done = new Set(this.m.shards.map((s) => s.index));
    const first: number[] = [];
    for (let i = 0; i < this.shardCount && first.length < 6; i++) if (!done.has(i)) first.push(i);
    const missing = this.shardCount - done.size;
    if (missing > 0) {
      const list = missing > 5 ? `${first.slice(0, 5).join(', ')}, ...` : first.join(', ');
      throw new TdaError(`gradient store is incomplete: ${missing} of ${this.shardCount} shards missing (${list}); run compute() to finish it`, {
        file: this.dir,
      });
    }
  }

  /**
   * Completed shards in order, one at a time: scoring never needs all gradients in memory.
   * The next shard is read while the caller works on the current one (on the native path,
   * on a thread of its own), so a pass holds two shards. The store must be complete.
   */
  *iterateShards(): Generator<StoreShard> {
    this.requireComplete();
    const recs = this.m.shards;
    // A shard that cannot be read is an error when its turn comes, not while the one before streams.
    const ahead = (k: number): (() => GradientSet) => {
      try {
        return this.readShardAhead(recs[k].index);
      } catch (e) {
        return () => {
          throw e;
        };
      }
    };
    let next: (() => GradientSet) | null = recs.length ? ahead(0) : null;
    try {
      for (let k = 0; k < recs.length; k++) {
        const current = next!;
        next = null;
        const set = current();
        next = k + 1 < recs.length ? ahead(k + 1) : null;
        yield { index: recs[k].index, start: recs[k].start, set };
      }
    } finally {
      // Stopped early: the read in flight still ends (and closes its file).
      if (next) {
        try {
          next();
        } catch {
          /* nobody wants that shard now */
        }
      }
    }
  }

  /** Path of a recorded shard's file (for messages). */
  shardFile(index: number): string {
    const rec = this.m.shards.find((r) => r.index === index);
    return path.join(this.dir, rec ? rec.file : shardFileName(index));
  }

  /**
   * Records gradients computed elsewhere (another tool, or synthetic ones) as shard `index`,
   * written and recorded exactly like compute()'s shards (projected when the store projects).
   * The caller vouches that they belong to the store's model, adapter and dataset. The first
   * shard fixes the block layout; later ones must match it.
   */
  importShard(index: number, set: GradientSet): ShardRecord {
    return this.lockedSync(() => this.importShardLocked(index, set));
  }

  private importShardLocked(index: number, set: GradientSet): ShardRecord {
    const s = this.m.settings;
    const manifestFile = path.join(this.dir, MANIFEST_FILE);
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.shardCount) {
      throw new TdaError(`shard index must be in [0, ${this.shardCount - 1}], got ${index}`, { file: this.dir, field: 'index' });
    }
    const start = index * s.shardSize;
    const count = Math.min(s.shardSize, s.n - start);
    if (set.n !== count) throw new TdaError(`shard ${index} holds examples [${start}, ${start + count}): ${count} examples, got ${set.n}`, { file: this.dir, field: 'n' });
    if (!set.losses || set.losses.length !== count) throw new TdaError(`shard ${index} needs ${count} per-example losses`, { file: this.dir, field: 'losses' });
    for (const b of set.blocks) {
      if (b.dim !== b.shape.reduce((a, d) => a * d, 1) || b.data.length !== count * b.dim) {
        throw new TdaError(`block data has ${b.data.length} values; expected ${count} x [${b.shape.join(', ')}]`, { file: this.dir, field: b.name });
      }
    }
    const layout: ManifestBlock[] = set.blocks.map((b) => ({ name: b.name, shape: [...b.shape], dim: b.dim }));
    if (this.m.blocks === null) {
      if (layout.length === 0 || layout.some((b) => b.name === 'loss')) throw new TdaError('needs at least one gradient block, none named "loss"', { file: this.dir, field: 'blocks' });
      this.m.blocks = layout;
      writeManifest(this.dir, this.m);
    } else {
      checkBlocks(this.m.blocks, layout, manifestFile);
    }
    const projector = this.projector();
    try {
      const rec = this.writeShard(index, start, projector ? projector.projectSet(set) : set);
      this.m.shards = [...this.m.shards.filter((r) => r.index !== index), rec].sort((a, b) => a.index - b.index);
      writeManifest(this.dir, this.m);
      return { ...rec };
    } finally {
      projector?.dispose();
    }
  }

  /** All gradients in one set, [n, dim] per block. */
  readAll(): GradientSet {
    this.requireComplete();
    // n and the shapes come from the manifest, whose shard records must hold that much data:
    // allocate for them only once the files on disk have the recorded sizes.
    for (const rec of this.m.shards) checkShardSize(this.dir, rec);
    const layout = this.blocks ?? [];
    const n = this.n;
    const blocks: GradientBlock[] = layout.map((b) => ({ ...b, data: new Float32Array(n * b.dim) }));
    const losses = new Float32Array(n);
    for (const { start, set } of this.iterateShards()) {
      set.blocks.forEach((b, i) => blocks[i].data.set(b.data, start * b.dim));
      losses.set(set.losses!, start);
    }
    return { n, blocks, losses };
  }
}

const RECOMPUTE_HINT = 'run compute() on this store again to recompute it';

/** The shard's path, once its file is there with the size the manifest recorded. */
function checkShardSize(dir: string, rec: ShardRecord): string {
  const file = path.join(dir, rec.file);
  let size: number;
  try {
    size = fs.statSync(file).size;
  } catch {
    throw new TdaError(`gradient shard is missing; ${RECOMPUTE_HINT}`, { file });
  }
  if (size !== rec.bytes) throw new TdaError(`gradient shard is corrupt: ${size} bytes, the manifest recorded ${rec.bytes}; ${RECOMPUTE_HINT}`, { file });
  return file;
}

function checkBlocks(stored: ManifestBlock[], actual: ManifestBlock[], file: string): void {
  const fmt = (bs: ManifestBlock[]) => bs.map((b) => `${b.name} [${b.shape.join(', ')}]`).join(', ');
  const same = stored.length === actual.length && stored.every((b, i) => b.name === actual[i].name && b.shape.join() === actual[i].shape.join());
  if (!same) {
    throw new TdaError(`the adapter's gradient blocks (${fmt(actual)}) differ from the store's (${fmt(stored)})`, { file, field: 'blocks' });
  }
}

function expectShape(st: SafetensorsFile, name: string, shape: number[], file: string, hint: string): void {
  if (!st.has(name)) throw new TdaError(`gradient shard lacks tensor '${name}'; ${hint}`, { file });
  const got = st.info(name).shape;
  if (got.join() !== shape.join()) {
    throw new TdaError(`tensor has shape [${got.join(', ')}], expected [${shape.join(', ')}]; ${hint}`, { file, field: name });
  }
}

/** Null when the shard file matches its record (size and sha256), else why not. */
function verifyShardFile(dir: string, rec: ShardRecord): string | null {
  const file = path.join(dir, rec.file);
  let size: number;
  try {
    size = fs.statSync(file).size;
  } catch {
    return 'file is missing';
  }
  if (size !== rec.bytes) return `file has ${size} bytes, the manifest recorded ${rec.bytes}`;
  if (hashFile(file) !== rec.sha256) return 'file content does not match its recorded sha256';
  return null;
}

function lockStore(dir: string): Lock {
  return acquireLock(path.join(dir, STORE_LOCK_FILE), 'the gradient store');
}

/** Temp files left by writers that no longer run (a killed compute). */
function removeStaleTemps(dir: string): void {
  for (const f of fs.readdirSync(dir)) {
    if (!OWN_FILE_RE.test(f)) continue;
    const hidden = parseTempName(f);
    const old = OLD_TEMP_RE.exec(f);
    const pid = hidden ? hidden.pid : old ? Number(old[1]) : null;
    if (pid === null) continue;
    if (pid !== process.pid && processAlive(pid)) continue;
    try {
      fs.unlinkSync(path.join(dir, f));
    } catch {
      /* already gone */
    }
  }
}
